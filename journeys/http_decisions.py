"""The decision API over HTTP, for a runner that is not in the API's process.

>>> client = HttpDecisions("http://127.0.0.1:1", timeout=0.2)
>>> client.check_send("d1")
Traceback (most recent call last):
...
features.errors.Unavailable: the decision API at http://127.0.0.1:1 cannot be reached: ...
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from decisioning.request import DecisionRequest
from features.errors import Conflict, InvalidRequest, NotFound, Unavailable
from journeys.decisions import ContactChange, SendVerdict, StepDecision, no_eligible_action

__all__ = ["HttpDecisions"]


class HttpDecisions:
    """:class:`journeys.decisions.DecisionService` over a running ``nudge serve``.

    Connection failures and 5xx answers are ``Unavailable`` (the runner retries
    the step later); 4xx answers keep their meaning as the domain's errors.
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers)

    def _post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        try:
            response = self._client.post(path, json=body)
        except httpx.HTTPError as error:
            raise Unavailable(
                f"the decision API at {self.base_url} cannot be reached: {error}"
            ) from error
        if response.status_code >= 500:
            raise Unavailable(
                f"the decision API at {self.base_url} answered {response.status_code} on {path}"
            )
        return response

    @staticmethod
    def _fail(response: httpx.Response, what: str) -> None:
        if response.status_code < 400:
            return
        try:
            detail = response.json()["detail"][0]
            message = str(detail.get("msg", detail))
            field = ".".join(str(part) for part in detail.get("loc", [])[1:]) or what
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            message, field = response.text, what
        if response.status_code == 404:
            raise NotFound(what, message)
        if response.status_code == 409:
            raise Conflict(message)
        raise InvalidRequest(field, f"was refused by the decision API: {message}")

    def decide(self, request: DecisionRequest) -> StepDecision:
        body = {
            "customer_id": request.customer_id,
            "journey": request.journey,
            "step": request.step,
            "candidates": [
                {"message": c.message}
                | ({} if c.channels is None else {"channels": list(c.channels)})
                for c in request.candidates
            ],
            "allow_no_send": request.allow_no_send,
            "idempotency_key": request.idempotency_key,
        }
        if request.slots is not None:
            body["slots"] = list(request.slots)
        if request.context:
            body["context"] = dict(request.context)
        response = self._post("/v1/decide", body)
        if response.status_code == 409 and not request.allow_no_send:
            try:
                message = str(response.json()["detail"][0]["msg"])
            except (ValueError, KeyError, IndexError, TypeError):
                message = response.text
            if "idempotency" not in message:
                return no_eligible_action(message)
        self._fail(response, "decision")
        data = response.json()
        action = data["action"]
        send_at = action.get("send_at")
        return StepDecision(
            decision_id=data["decision_id"],
            group=data["group"],
            message=action.get("message"),
            channel=action.get("channel"),
            slot=action.get("slot"),
            send_at=None if send_at is None else datetime.fromisoformat(send_at),
            excluded_rules=tuple(sorted({e["rule"] for e in data.get("excluded", [])})),
        )

    def check_send(self, decision_id: str) -> SendVerdict:
        response = self._post(f"/v1/decisions/{decision_id}/send-check")
        self._fail(response, "decision")
        data = response.json()
        return SendVerdict(bool(data["allowed"]), data.get("rule"), data.get("detail"))

    def cancel(self, decision_id: str) -> bool:
        response = self._post(f"/v1/decisions/{decision_id}/cancel")
        if response.status_code == 404:
            return False
        self._fail(response, "decision")
        return bool(response.json()["cancelled"])

    def update_contact(self, change: ContactChange) -> None:
        channels: dict[str, dict[str, Any]] = {}
        for channel, reachable in change.reachable.items():
            channels.setdefault(channel, {})["reachable"] = reachable
        for channel, opted_in in change.consent.items():
            channels.setdefault(channel, {})["consent"] = "opted_in" if opted_in else "opted_out"
        body: dict[str, Any] = {"channels": channels, "at": change.at.isoformat()}
        if change.time_zone is not None:
            body["time_zone"] = change.time_zone
        try:
            response = self._client.put(f"/v1/customers/{change.customer_id}/contact", json=body)
        except httpx.HTTPError as error:
            raise Unavailable(
                f"the decision API at {self.base_url} cannot be reached: {error}"
            ) from error
        if response.status_code >= 500:
            raise Unavailable(
                f"the decision API at {self.base_url} answered {response.status_code}"
            )
        self._fail(response, "contact")

    def record_outcome(
        self,
        decision_id: str,
        *,
        event: str,
        occurred_at: datetime,
        value: float | None = None,
        outcome_id: str | None = None,
    ) -> bool:
        body: dict[str, Any] = {
            "decision_id": decision_id,
            "event": event,
            "occurred_at": occurred_at.isoformat(),
        }
        if value is not None:
            body["value"] = value
        if outcome_id is not None:
            body["outcome_id"] = outcome_id
        response = self._post("/v1/outcomes", body)
        self._fail(response, "outcome")
        return bool(response.json()["new"])

    def close(self) -> None:
        self._client.close()
