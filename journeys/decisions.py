"""How a journey step reaches the decision API: one protocol, in process or over HTTP.

The runner needs four verbs of the decisioning layer: decide, check a send
just before it goes out, cancel a decision that will not be carried out, and
report an outcome. :class:`EngineDecisions` calls a :class:`DecisionEngine`
in the runner's own process; ``journeys.http_decisions.HttpDecisions`` calls a
running ``nudge serve``. Both answer with the same small values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from decisioning import DecisionEngine
from decisioning.engine import NoEligibleAction
from decisioning.request import CandidateMessage, DecisionRequest
from decisioning.slots import load_zone
from decisioning.types import Decision
from features.errors import InvalidRequest, NotFound
from features.online import FeatureValue
from journeys.definition import DecideStep

__all__ = [
    "ContactChange",
    "DecisionService",
    "EngineDecisions",
    "SendVerdict",
    "StepDecision",
    "no_eligible_action",
    "request_for",
]


@dataclass(frozen=True)
class StepDecision:
    """What a decide step got back: the joint action, or no send (``message`` None)."""

    decision_id: str | None
    group: str
    message: str | None = None
    channel: str | None = None
    slot: str | None = None
    send_at: datetime | None = None
    excluded_rules: tuple[str, ...] = ()

    @property
    def sends(self) -> bool:
        return self.message is not None

    def as_json(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "group": self.group,
            "message": self.message,
            "channel": self.channel,
            "slot": self.slot,
            "send_at": None if self.send_at is None else self.send_at.isoformat(),
            "excluded_rules": list(self.excluded_rules),
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> StepDecision:
        send_at = data.get("send_at")
        return StepDecision(
            decision_id=data.get("decision_id"),
            group=str(data["group"]),
            message=data.get("message"),
            channel=data.get("channel"),
            slot=data.get("slot"),
            send_at=None if send_at is None else datetime.fromisoformat(send_at),
            excluded_rules=tuple(data.get("excluded_rules", ())),
        )


@dataclass(frozen=True)
class ContactChange:
    """What an identify, profile or consent event changes in a customer's contact profile."""

    customer_id: str
    at: datetime
    reachable: Mapping[str, bool] = field(default_factory=dict)
    """Per channel: an address, number or token is now on file."""
    consent: Mapping[str, bool] = field(default_factory=dict)
    """Per channel: True for opted in, False for opted out."""
    time_zone: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.reachable or self.consent or self.time_zone)


@dataclass(frozen=True)
class SendVerdict:
    """The contact policy's answer just before sending; ``rule`` says what stopped it."""

    allowed: bool
    rule: str | None = None
    detail: str | None = None


class DecisionService(Protocol):
    """The decision API as a journey sees it."""

    def decide(self, request: DecisionRequest) -> StepDecision:
        """The decision for one step; the same idempotency key returns the same decision."""
        ...

    def check_send(self, decision_id: str) -> SendVerdict: ...

    def cancel(self, decision_id: str) -> bool: ...

    def update_contact(self, change: ContactChange) -> None:
        """Apply ``change``; an unknown channel or time zone is ``InvalidRequest``."""
        ...

    def record_outcome(
        self,
        decision_id: str,
        *,
        event: str,
        occurred_at: datetime,
        value: float | None = None,
        outcome_id: str | None = None,
    ) -> bool:
        """True when the outcome was new (the same ``outcome_id`` again answers False)."""
        ...

    def close(self) -> None: ...


def request_for(
    step: DecideStep,
    *,
    customer_id: str,
    journey: str,
    idempotency_key: str,
    context: Mapping[str, FeatureValue] | None = None,
) -> DecisionRequest:
    """The decision request a decide step makes for one customer.

    ``context`` goes into the logged decision (a score trigger's score, say).
    """
    return DecisionRequest(
        customer_id=customer_id,
        candidates=[CandidateMessage(c.message, c.channels) for c in step.candidates],
        journey=journey,
        step=step.id,
        allow_no_send=step.allow_no_send,
        slots=None if step.slots is None else list(step.slots),
        idempotency_key=idempotency_key,
        context=context,
    )


def no_eligible_action(message: str) -> StepDecision:
    """A step that must send but cannot: nothing is logged, nothing goes out.

    >>> no_eligible_action("... a/email/now (quiet_hours: 21:00–08:00); b/sms/now (consent: no)")
    StepDecision(decision_id=None, group='none', message=None, channel=None, slot=None, \
send_at=None, excluded_rules=('consent', 'quiet_hours'))
    """
    return StepDecision(None, "none", excluded_rules=tuple(sorted(set(_RULE.findall(message)))))


_RULE = re.compile(r"\((\w+): ")


def _step_decision(decision: Decision) -> StepDecision:
    action = decision.action
    return StepDecision(
        decision_id=decision.decision_id,
        group=decision.group,
        message=action.message,
        channel=action.channel,
        slot=action.slot,
        send_at=action.send_at,
        excluded_rules=tuple(sorted({e.rule for e in decision.excluded})),
    )


class EngineDecisions:
    """The decision engine of this process, behind :class:`DecisionService`."""

    def __init__(self, engine: DecisionEngine) -> None:
        self.engine = engine

    def decide(self, request: DecisionRequest) -> StepDecision:
        try:
            return _step_decision(self.engine.decide(request))
        except NoEligibleAction as error:
            return no_eligible_action(str(error))

    def check_send(self, decision_id: str) -> SendVerdict:
        check = self.engine.check_send(decision_id)
        if check.exclusion is None:
            return SendVerdict(True)
        return SendVerdict(False, check.exclusion.rule, check.exclusion.detail)

    def cancel(self, decision_id: str) -> bool:
        try:
            return self.engine.cancel(decision_id)
        except NotFound:
            return False

    def update_contact(self, change: ContactChange) -> None:
        known = self.engine.config.channels
        for channel in (*change.reachable, *change.consent):
            if channel not in known:
                raise InvalidRequest(f"channels.{channel}", f"must be one of {sorted(known)}")
        if change.time_zone is not None:
            load_zone(change.time_zone, "time_zone")
        contacts = self.engine.contacts
        for channel, opted_in in change.consent.items():
            contacts.set_consent(change.customer_id, channel, opted_in, change.at)
        for channel, reachable in change.reachable.items():
            contacts.set_reachable(change.customer_id, channel, reachable)
        if change.time_zone is not None:
            contacts.set_time_zone(change.customer_id, change.time_zone)

    def record_outcome(
        self,
        decision_id: str,
        *,
        event: str,
        occurred_at: datetime,
        value: float | None = None,
        outcome_id: str | None = None,
    ) -> bool:
        receipt = self.engine.record_outcome(
            decision_id, event=event, occurred_at=occurred_at, value=value, outcome_id=outcome_id
        )
        return receipt.new

    def close(self) -> None:
        """Nothing to release: whoever built the engine closes it."""
