"""``POST /v1/webhooks/{source}``: signed events from outside systems into the event stream.

Each source (a CRM, a shop, a form tool) has a shared secret of its own
(``NUDGE_WEBHOOK_SECRETS='{"crm": "..."}'``) and signs each request as Nudge's
provider callbacks are signed: ``X-Nudge-Timestamp`` (unix seconds) and
``X-Nudge-Signature: sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">``. The
check is :class:`channels.CallbackVerifier`'s: a bad signature, a timestamp
more than 5 minutes off, or a signature seen before (a replay) is a 401 and
nothing is stored; so is a source that has no secret, so that which sources
exist cannot be probed. With no source configured the route is off (403).

The body is one of:

- ``{"events": [{"id", "customer_id", "type", "occurred_at", "payload"?}, ...]}`` —
  customer events in Nudge's own schema;
- ``{"contacts": [{"id", "customer_id", "updated_at", "email"?, "phone"?, "push_token"?,
  "time_zone"?, "attributes"?: {...}, "consent"?: {"email": "opted_in", ...}}, ...]}`` —
  a CRM's contact updates: each becomes a ``profile_update`` event (addresses,
  time zone and attributes, which journeys keep and templates use) and, when it
  carries consent, a ``consent_update`` event (which the journey runner applies
  to the contact profile the decisions check).

Stored event ids are ``<source>:<id>`` (``:profile`` / ``:consent`` for a contact),
so two sources never clash and a webhook the sender resends is stored once. As
for ``POST /v1/events``, each item is checked on its own (at most 500): the good
ones are stored in one commit before the answer, the bad ones reported with
their field, and an id reused for another event is refused.

Delivery, open, bounce and complaint events of messages Nudge sent are outcomes
of a decision: they go to ``POST /v1/callbacks/{provider}``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from channels import CallbackVerifier
from features import InvalidRequest
from features.event_changes import changed_fields
from features.event_stream import CustomerEvent, StoredEvent, check_event
from features.stitching import StitchingStream
from serving.events_api import FUTURE_TOLERANCE, MAX_BATCH
from serving.settings import Settings

__all__ = ["ContactUpdateBody", "WebhookEventBody", "webhooks_router"]

_REFUSED = "the webhook's source, signature or timestamp is not valid"
_CONTACT_FIELDS = ("email", "phone", "push_token", "time_zone")


class WebhookEventBody(BaseModel):
    """One customer event from an outside system; ``id`` is unique within its source."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=96)
    customer_id: str = Field(min_length=1, max_length=128)
    type: str = Field(min_length=1, max_length=128)
    occurred_at: datetime = Field(description="ISO 8601 with an offset.")
    payload: dict[str, Any] = Field(default_factory=dict)


class ContactUpdateBody(BaseModel):
    """A CRM's change to one contact: where they are reached, attributes, consent per channel."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=96, description="The CRM's id of this change.")
    customer_id: str = Field(min_length=1, max_length=128)
    updated_at: datetime = Field(description="When the contact changed, ISO 8601 with an offset.")
    email: str | None = None
    phone: str | None = None
    push_token: str | None = None
    time_zone: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    consent: dict[str, Literal["opted_in", "opted_out"]] = Field(default_factory=dict)


def webhooks_router(
    settings: Settings,
    stream_of: Callable[[Request], StitchingStream],
    *,
    clock: Callable[[], float] = time.time,
) -> APIRouter:
    """The route; ``stream_of(request)`` gives the process's :class:`StitchingStream`.

    ``clock`` (unix seconds) is for tests of the timestamp tolerance.
    """
    verifiers = {
        source: CallbackVerifier(secret, clock=clock)
        for source, secret in settings.webhook_secrets.items()
    }
    router = APIRouter(tags=["webhooks"])

    @router.post("/v1/webhooks/{source}", status_code=202)
    async def receive_webhook(
        source: str,
        request: Request,
        x_nudge_timestamp: str = Header(""),
        x_nudge_signature: str = Header(""),
    ) -> JSONResponse:
        """Customer events or contact updates from an outside system, signed with its secret."""
        if not verifiers:
            raise HTTPException(403, "inbound webhooks are off: set NUDGE_WEBHOOK_SECRETS")
        body = await request.body()
        verifier = verifiers.get(source)
        if verifier is None:
            raise HTTPException(401, _REFUSED)
        try:
            verifier.verify(x_nudge_timestamp, body, x_nudge_signature)
        except InvalidRequest:
            raise HTTPException(401, _REFUSED) from None
        items, kind = _items(body)
        stream = stream_of(request)
        now = datetime.fromtimestamp(clock(), UTC)
        results: list[dict[str, Any]] = []
        good: list[tuple[int, CustomerEvent]] = []
        for index, item in enumerate(items):
            where = f"{kind}[{index}]."
            try:
                events = _events(source, kind, item, where)
                for event in events:
                    _check(event, where, kind, now, stream)
            except (ValidationError, InvalidRequest) as error:
                results.append({"index": index, "status": "refused", **_problem(where, error)})
                continue
            good.extend((index, event) for event in events)
        results.extend(await asyncio.to_thread(_store, stream, good, kind))
        results.sort(key=lambda r: int(r["index"]))
        counts = {s: sum(r["status"] == s for r in results) for s in _STATUSES}
        return JSONResponse({**counts, "results": results}, status_code=202)

    return router


_STATUSES = ("accepted", "duplicate", "refused")


def _items(body: bytes) -> tuple[list[Any], str]:
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidRequest("body", "must be a JSON object") from None
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in ("events", "contacts"):
        raise InvalidRequest("body", "must be {'events': [...]} or {'contacts': [...]}")
    kind = next(iter(raw))
    items = raw[kind]
    if not isinstance(items, list) or not items or len(items) > MAX_BATCH:
        raise InvalidRequest(kind, f"must be a list of 1 to {MAX_BATCH} items")
    return items, kind


def _events(source: str, kind: str, item: object, where: str) -> list[CustomerEvent]:
    if kind == "events":
        event = WebhookEventBody.model_validate(item)
        return [
            CustomerEvent(
                f"{source}:{event.id}",
                event.customer_id,
                event.type,
                event.occurred_at,
                event.payload,
            )
        ]
    contact = ContactUpdateBody.model_validate(item)
    for name in contact.attributes:
        if name in _CONTACT_FIELDS:
            raise InvalidRequest(f"{where}attributes.{name}", f"must be given as `{name}` itself")
    profile: dict[str, Any] = {
        name: value for name in _CONTACT_FIELDS if (value := getattr(contact, name)) is not None
    }
    profile.update(contact.attributes)
    events: list[CustomerEvent] = []
    base = f"{source}:{contact.id}"
    if profile:
        events.append(
            CustomerEvent(
                f"{base}:profile",
                contact.customer_id,
                "profile_update",
                contact.updated_at,
                profile,
            )
        )
    if contact.consent:
        events.append(
            CustomerEvent(
                f"{base}:consent",
                contact.customer_id,
                "consent_update",
                contact.updated_at,
                {"channels": dict(contact.consent)},
            )
        )
    if not events:
        raise InvalidRequest(
            where.rstrip("."),
            "must carry an address, a time zone, attributes or consent: it changes nothing",
        )
    return events


def _check(
    event: CustomerEvent, where: str, kind: str, now: datetime, stream: StitchingStream
) -> None:
    check_event(event, where)
    if event.occurred_at - now > FUTURE_TOLERANCE:
        raise InvalidRequest(
            where + ("occurred_at" if kind == "events" else "updated_at"),
            f"must not be more than {FUTURE_TOLERANCE.total_seconds() / 60:g} minutes ahead",
            event.occurred_at.isoformat(),
        )
    stream.check(event, where)


def _problem(where: str, error: ValidationError | InvalidRequest) -> dict[str, str]:
    if isinstance(error, InvalidRequest):
        # What was checked is the stored id, `<source>:<id>`; the sender knows it as `id`.
        field = error.field.replace(f"{where}event_id", f"{where}id")
        return {"field": field, "error": str(error).replace(f"`{error.field}`", f"`{field}`")}
    first = error.errors()[0]
    field = (where + ".".join(str(part) for part in first["loc"])).rstrip(".")
    return {"field": field, "error": f"`{field}` {first['msg'].lower()}"}


def _store(
    stream: StitchingStream, good: list[tuple[int, CustomerEvent]], kind: str
) -> list[dict[str, Any]]:
    """Store ``good`` in one commit; each event's result (accepted, duplicate, refused)."""
    if not good:
        return []
    new, as_stored = stream.append_new([event for _, event in good])
    times = Counter(event.event_id for event in as_stored)
    # What each id was first stored with: a repeat must be the same event.
    repeats: dict[str, StoredEvent] = stream.stream.get(
        [event_id for event_id, n in times.items() if n > 1 or event_id not in new]
    )
    results: list[dict[str, Any]] = []
    reported: set[str] = set()
    for (index, _), event in zip(good, as_stored, strict=True):
        fresh = event.event_id in new and event.event_id not in reported
        reported.add(event.event_id)
        result: dict[str, Any] = {"index": index, "event_id": event.event_id}
        stored = None if fresh else repeats.get(event.event_id)
        changes = [] if stored is None else changed_fields(event, stored)
        if changes:
            result.update(
                status="refused",
                field=f"{kind}[{index}].id",
                error=f"{event.event_id!r} was stored before for another event "
                f"(other {', '.join(changes)}); a resend must repeat it unchanged",
            )
        else:
            result["status"] = "accepted" if fresh else "duplicate"
        results.append(result)
    return results
