"""Provider callbacks: normalisation, named field errors, signatures and replays."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from channels import CallbackVerifier, ProviderEvent, parse_callback, sign_payload
from features.errors import InvalidRequest

T0 = 1_714_554_000  # 2024-05-01 09:00:00 UTC


def _event(kind: object = "delivered", **changes: object) -> dict[str, object]:
    return {"id": "evt-1", "message_id": "d-42", "type": kind, "timestamp": T0, **changes}


@pytest.mark.parametrize(
    ("provider_type", "event"),
    [
        ("delivered", "delivered"),
        ("bounced", "hard_bounce"),
        ("Hard bounce", "hard_bounce"),
        ("hard-bounce", "hard_bounce"),
        ("soft bounce", "soft_bounce"),
        ("deferred", "soft_bounce"),
        ("complained", "complaint"),
        ("spam", "complaint"),
        ("SPAMREPORT", "complaint"),
        ("opened", "open"),
        ("clicked", "click"),
        ("unsubscribed", "unsubscribe"),
    ],
)
def test_provider_types_become_nudge_outcome_events(provider_type: str, event: str) -> None:
    (parsed,) = parse_callback("acme", {"events": [_event(provider_type)]})
    assert parsed == ProviderEvent(
        "acme", "evt-1", "d-42", event, datetime(2024, 5, 1, 9, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (T0, datetime(2024, 5, 1, 9, tzinfo=UTC)),
        (T0 + 0.5, datetime(2024, 5, 1, 9, 0, 0, 500000, tzinfo=UTC)),
        ("2024-05-01T09:00:00Z", datetime(2024, 5, 1, 9, tzinfo=UTC)),
        ("2024-05-01T11:00:00+02:00", datetime(2024, 5, 1, 9, tzinfo=UTC)),
    ],
)
def test_timestamps_are_read_as_utc(timestamp: object, expected: datetime) -> None:
    (parsed,) = parse_callback("acme", {"events": [_event(timestamp=timestamp)]})
    assert parsed.occurred_at == expected
    assert parsed.occurred_at.utcoffset() is not None


GOOD = _event()


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ([GOOD], "`payload` must be a JSON object with an `events` list"),
        ({}, "`events` must be a list of events, got None"),
        ({"events": {"id": "x"}}, "`events` must be a list"),
        ({"events": [GOOD, "evt"]}, r"`events\[1\]` must be an object"),
        ({"events": [GOOD, GOOD, _event("teleported")]}, r"`events\[2\].type` must be one of"),
        ({"events": [_event(None)]}, r"`events\[0\].type` must be one of"),
        ({"events": [_event(id="")]}, r"`events\[0\].id` must be a non-empty string"),
        ({"events": [_event(message_id=7)]}, r"`events\[0\].message_id` must be a non-empty"),
        (
            {"events": [_event(timestamp="2024-05-01T09:00:00")]},
            r"`events\[0\].timestamp` must be ISO 8601 with a time zone offset, or unix seconds",
        ),
        ({"events": [_event(timestamp=True)]}, r"`events\[0\].timestamp` must be ISO 8601"),
        ({"events": [_event(timestamp="yesterday")]}, r"`events\[0\].timestamp` must be ISO"),
        ({"events": [_event(timestamp=1e20)]}, r"`events\[0\].timestamp` must be ISO"),
    ],
)
def test_bad_fields_are_named(payload: Any, match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        parse_callback("acme", payload)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _signed(events: list[dict[str, object]], at: int = T0) -> tuple[str, bytes, str]:
    body = json.dumps({"events": events}).encode()
    return str(at), body, sign_payload("cb-secret", at, body)


def test_a_signed_callback_is_accepted() -> None:
    verifier = CallbackVerifier("cb-secret", clock=Clock(T0 + 10))
    events = verifier.accept("acme", *_signed([_event("opened")]))
    assert [(e.provider, e.message_id, e.event) for e in events] == [("acme", "d-42", "open")]


def test_a_tampered_body_is_rejected() -> None:
    verifier = CallbackVerifier("cb-secret", clock=Clock(T0))
    timestamp, body, signature = _signed([_event("delivered")])
    tampered = body.replace(b"delivered", b"clicked")
    with pytest.raises(InvalidRequest, match="`X-Nudge-Signature` must be"):
        verifier.accept("acme", timestamp, tampered, signature)


@pytest.mark.parametrize("offset", [301, -301, 3600])
def test_a_stale_or_future_timestamp_is_rejected(offset: int) -> None:
    verifier = CallbackVerifier("cb-secret", tolerance=300, clock=Clock(T0 + offset))
    with pytest.raises(InvalidRequest, match="`X-Nudge-Timestamp` must be within 300 s of now"):
        verifier.verify(*_signed([_event()]))


def test_a_timestamp_that_is_not_a_number_is_rejected() -> None:
    verifier = CallbackVerifier("cb-secret", clock=Clock(T0))
    _, body, signature = _signed([_event()])
    with pytest.raises(InvalidRequest, match="`X-Nudge-Timestamp` must be unix seconds"):
        verifier.verify("noon", body, signature)


def test_a_replay_is_rejected_and_remembered_only_while_it_could_pass() -> None:
    clock = Clock(T0)
    verifier = CallbackVerifier("cb-secret", tolerance=300, clock=clock)
    signed = _signed([_event()])
    verifier.verify(*signed)
    clock.now = T0 + 299
    with pytest.raises(InvalidRequest, match="`X-Nudge-Signature` must not repeat a callback"):
        verifier.verify(*signed)
    # Later the timestamp alone rejects it, so it need not be remembered.
    clock.now = T0 + 301
    with pytest.raises(InvalidRequest, match="`X-Nudge-Timestamp`"):
        verifier.verify(*signed)
    verifier.verify(*_signed([_event()], at=T0 + 301))
    assert len(verifier._signatures) == 1


def test_a_resent_event_with_a_new_signature_counts_once() -> None:
    clock = Clock(T0)
    verifier = CallbackVerifier("cb-secret", clock=clock)
    first = verifier.accept("acme", *_signed([_event("clicked", id="e1")]))
    clock.now = T0 + 5
    again = verifier.accept(
        "acme", *_signed([_event("clicked", id="e1"), _event("opened", id="e2")], at=T0 + 5)
    )
    assert [e.provider_event_id for e in first] == ["e1"]
    assert [e.provider_event_id for e in again] == ["e2"]


def test_a_signed_body_that_is_not_json_is_named() -> None:
    verifier = CallbackVerifier("cb-secret", clock=Clock(T0))
    body = b"not json"
    with pytest.raises(InvalidRequest, match="`payload` must be a JSON object"):
        verifier.accept("acme", str(T0), body, sign_payload("cb-secret", T0, body))


def test_a_signed_body_nested_too_deep_is_named() -> None:
    verifier = CallbackVerifier("cb-secret", clock=Clock(T0))
    body = b"[" * 3000
    with pytest.raises(InvalidRequest, match=r"`payload` .* not nested this deep"):
        verifier.accept("acme", str(T0), body, sign_payload("cb-secret", T0, body))
