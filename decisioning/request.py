"""What a journey step asks of the engine, checked against the catalogue before any write."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from decisioning._requests import check_context, check_customer_id, check_moment
from decisioning.config import DecisionConfig
from decisioning.slots import SlotSpec, load_zone
from features import FeatureValue
from features.errors import InvalidRequest

__all__ = [
    "CandidateMessage",
    "CheckedRequest",
    "DecisionRequest",
    "OutcomeReport",
    "check_request",
]

MAX_NAME_LENGTH = 128
MAX_CANDIDATES = 64


@dataclass(frozen=True)
class CandidateMessage:
    """A message the step may send, and the channels it may go on (default: all it allows)."""

    message: str
    channels: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DecisionRequest:
    """One decision for one customer at one journey step.

    ``slots`` narrows the configured send-time slots by name, or gives explicit
    send times (ISO 8601 with a zone); ``allow_no_send=False`` is for steps that
    must send (the holdout then does not apply).
    """

    customer_id: str
    candidates: Sequence[CandidateMessage]
    journey: str = "default"
    step: str = "default"
    allow_no_send: bool = True
    slots: Sequence[str] | None = None
    time_zone: str | None = None
    context: Mapping[str, FeatureValue] | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class OutcomeReport:
    """One outcome of a batch: what :meth:`DecisionEngine.record_outcome` takes, as a record."""

    decision_id: str
    event: str
    occurred_at: datetime
    value: float | None = None
    outcome_id: str | None = None


@dataclass(frozen=True)
class CheckedRequest:
    customer_id: str
    pairs: tuple[tuple[str, str], ...]
    """(message, channel) pairs in request order."""
    journey: str
    step: str
    allow_no_send: bool
    slots: tuple[SlotSpec, ...]
    explicit_slots: tuple[tuple[str, datetime], ...]
    zone: ZoneInfo | None
    context: dict[str, FeatureValue] = field(default_factory=dict)
    idempotency_key: str | None = None


def _name(value: object, field_name: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_LENGTH:
        raise InvalidRequest(
            field_name, f"must be a non-empty string of at most {MAX_NAME_LENGTH} characters", value
        )
    return value


def check_request(
    request: DecisionRequest, config: DecisionConfig, now: datetime
) -> CheckedRequest:
    """``request`` checked field by field; the first problem raises ``InvalidRequest``."""
    customer_id = check_customer_id(request.customer_id)
    candidates = request.candidates
    if isinstance(candidates, str | bytes) or not isinstance(candidates, Sequence):
        raise InvalidRequest("candidates", "must be a list of messages", candidates)
    if not candidates:
        raise InvalidRequest("candidates", "must name at least one message", [])
    if len(candidates) > MAX_CANDIDATES:
        raise InvalidRequest("candidates", f"must name at most {MAX_CANDIDATES} messages")
    pairs: list[tuple[str, str]] = []
    for i, candidate in enumerate(candidates):
        where = f"candidates[{i}]"
        if not isinstance(candidate, CandidateMessage):
            raise InvalidRequest(where, "must be a CandidateMessage", candidate)
        spec = config.messages.get(candidate.message)
        if spec is None:
            raise InvalidRequest(
                f"{where}.message", f"must be one of {sorted(config.messages)}", candidate.message
            )
        channels = spec.channels if candidate.channels is None else candidate.channels
        if not channels:
            raise InvalidRequest(f"{where}.channels", "must name at least one channel", [])
        for j, channel in enumerate(channels):
            if channel not in spec.channels:
                raise InvalidRequest(
                    f"{where}.channels[{j}]",
                    f"must be one of the channels {candidate.message!r} may go on, "
                    f"{list(spec.channels)}",
                    channel,
                )
            pair = (candidate.message, channel)
            if pair in pairs:
                raise InvalidRequest(
                    f"{where}.channels[{j}]", "must not repeat a candidate", channel
                )
            pairs.append(pair)
    slots, explicit = _check_slots(request.slots, config, now)
    zone = None if request.time_zone is None else load_zone(request.time_zone, "time_zone")
    if not isinstance(request.allow_no_send, bool):
        raise InvalidRequest("allow_no_send", "must be true or false", request.allow_no_send)
    key = request.idempotency_key
    if key is not None:
        key = _name(key, "idempotency_key")
    return CheckedRequest(
        customer_id=customer_id,
        pairs=tuple(pairs),
        journey=_name(request.journey, "journey"),
        step=_name(request.step, "step"),
        allow_no_send=request.allow_no_send,
        slots=slots,
        explicit_slots=explicit,
        zone=zone,
        context=check_context(request.context),
        idempotency_key=key,
    )


def _check_slots(
    requested: Sequence[str] | None, config: DecisionConfig, now: datetime
) -> tuple[tuple[SlotSpec, ...], tuple[tuple[str, datetime], ...]]:
    if requested is None:
        return config.slots, ()
    if isinstance(requested, str) or not isinstance(requested, Sequence) or not requested:
        raise InvalidRequest("slots", "must be a non-empty list of slot names or times", requested)
    by_name = {slot.name: slot for slot in config.slots}
    named: list[SlotSpec] = []
    explicit: list[tuple[str, datetime]] = []
    seen: set[str] = set()
    for i, text in enumerate(requested):
        where = f"slots[{i}]"
        if not isinstance(text, str):
            raise InvalidRequest(where, "must be a slot name or an ISO 8601 time", text)
        if text in seen:
            raise InvalidRequest(where, "must not repeat a slot", text)
        seen.add(text)
        if text in by_name:
            named.append(by_name[text])
            continue
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidRequest(
                where, f"must be one of {sorted(by_name)} or an ISO 8601 time with a zone", text
            ) from None
        moment = check_moment(where, moment)
        # A second of slack: the caller computed "now" a moment before we did.
        if moment < now - timedelta(seconds=1):
            raise InvalidRequest(where, "must not be in the past", text)
        if moment - now > config.horizon:
            hours = config.horizon.total_seconds() / 3600
            raise InvalidRequest(where, f"must be within the {hours:g} h horizon", text)
        explicit.append((moment.isoformat(), moment))
    return tuple(named), tuple(explicit)
