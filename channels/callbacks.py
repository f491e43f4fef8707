"""Provider delivery callbacks, checked and turned into Nudge's outcome events.

The generic JSON shape a provider (or an adapter in front of one) posts::

    {"events": [
        {"id": "evt-1",             # the provider's event id, unique per event
         "message_id": "d42",       # the message id Nudge sent (the decision id)
         "type": "delivered",       # see EVENT_TYPES
         "timestamp": "2024-05-01T09:00:00Z"}   # ISO 8601 with an offset, or unix seconds
    ]}

signed like Nudge's own webhooks (``X-Nudge-Timestamp``, ``X-Nudge-Signature``).

>>> [e.event for e in parse_callback("acme", {"events": [
...     {"id": "e1", "message_id": "d42", "type": "Hard bounce", "timestamp": 1714554000},
... ]})]
['hard_bounce']
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from channels.webhook import SIGNATURE_HEADER, verify_signature
from features.errors import InvalidRequest

__all__ = ["EVENT_TYPES", "CallbackVerifier", "ProviderEvent", "parse_callback"]

# Provider vocabularies, lower-cased with spaces and dashes as "_", to Nudge's outcome events.
EVENT_TYPES: Mapping[str, str] = {
    "delivered": "delivered",
    "delivery": "delivered",
    "bounced": "hard_bounce",
    "bounce": "hard_bounce",
    "hard_bounce": "hard_bounce",
    "soft_bounce": "soft_bounce",
    "deferred": "soft_bounce",
    "complained": "complaint",
    "complaint": "complaint",
    "spam": "complaint",
    "spamreport": "complaint",
    "spam_report": "complaint",
    "opened": "open",
    "open": "open",
    "clicked": "click",
    "click": "click",
    "unsubscribed": "unsubscribe",
    "unsubscribe": "unsubscribe",
}


@dataclass(frozen=True)
class ProviderEvent:
    provider: str
    provider_event_id: str
    message_id: str
    event: str
    """One of Nudge's outcome events: delivered, hard_bounce, soft_bounce, complaint,
    open, click, unsubscribe."""
    occurred_at: datetime
    """UTC."""


def parse_callback(provider: str, payload: Mapping[str, object]) -> list[ProviderEvent]:
    """The events of one callback body; InvalidRequest names the first bad field."""
    if not isinstance(payload, Mapping):
        raise InvalidRequest("payload", "must be a JSON object with an `events` list", payload)
    events = payload.get("events")
    if not isinstance(events, list):
        raise InvalidRequest("events", "must be a list of events", events)
    return [_event(provider, raw, f"events[{i}]") for i, raw in enumerate(events)]


def _event(provider: str, raw: object, where: str) -> ProviderEvent:
    if not isinstance(raw, Mapping):
        raise InvalidRequest(where, "must be an object with id, message_id, type, timestamp", raw)
    ident = _text(raw.get("id"), f"{where}.id")
    message_id = _text(raw.get("message_id"), f"{where}.message_id")
    kind = raw.get("type")
    key = kind.strip().lower().replace(" ", "_").replace("-", "_") if isinstance(kind, str) else ""
    if key not in EVENT_TYPES:
        raise InvalidRequest(f"{where}.type", f"must be one of {sorted(EVENT_TYPES)}", kind)
    return ProviderEvent(
        provider, ident, message_id, EVENT_TYPES[key], _when(raw.get("timestamp"), where)
    )


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest(where, "must be a non-empty string", value)
    return value


def _when(value: object, where: str) -> datetime:
    expected = "must be ISO 8601 with a time zone offset, or unix seconds"
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidRequest(f"{where}.timestamp", expected, value) from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidRequest(f"{where}.timestamp", expected, value) from None
        # A naive time would be read in the server's zone: an outcome hours off its window.
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
    raise InvalidRequest(f"{where}.timestamp", expected, value)


class CallbackVerifier:
    """Checks signed callbacks and refuses replays.

    A signature seen before is a replay and is rejected. It is remembered only while its
    timestamp is within ``tolerance``: after that the timestamp check rejects it anyway.
    ``accept`` also drops events whose id it saw in that window: providers resend
    callbacks they think were lost, and an outcome must count once.
    Thread-safe.

    >>> from channels.webhook import sign_payload
    >>> verifier = CallbackVerifier("s3cret", clock=lambda: 1_714_554_000.0)
    >>> body = '{"events": [{"id": "e1", "message_id": "d42", "type": "open", "timestamp": 1}]}'
    >>> signature = sign_payload("s3cret", 1_714_554_000, body)
    >>> [e.event for e in verifier.accept("acme", "1714554000", body, signature)]
    ['open']
    >>> verifier.accept("acme", "1714554000", body, signature)
    Traceback (most recent call last):
    ...
    features.errors.InvalidRequest: `X-Nudge-Signature` must not repeat a callback already received
    """

    def __init__(
        self, secret: str, tolerance: float = 300, clock: Callable[[], float] = time.time
    ) -> None:
        if not secret:
            raise InvalidRequest("secret", "must be a non-empty string")
        self.tolerance = tolerance
        self._secret = secret
        self._clock = clock
        self._lock = threading.Lock()
        self._signatures: dict[str, float] = {}
        self._event_ids: dict[tuple[str, str], float] = {}

    def verify(self, timestamp: str, body: bytes | str, signature: str) -> None:
        """Raise InvalidRequest for a bad signature, a stale timestamp or a replay."""
        now = self._clock()
        verify_signature(
            self._secret, timestamp, body, signature, now=now, tolerance=self.tolerance
        )
        with self._lock:
            self._forget(now)
            if signature in self._signatures:
                raise InvalidRequest(
                    SIGNATURE_HEADER, "must not repeat a callback already received"
                )
            self._signatures[signature] = float(int(timestamp))

    def accept(
        self, provider: str, timestamp: str, body: bytes | str, signature: str
    ) -> list[ProviderEvent]:
        """Verify a callback and return its events not seen before within the window."""
        self.verify(timestamp, body, signature)
        try:
            payload = json.loads(body)
        except ValueError:
            raise InvalidRequest("payload", "must be a JSON object with an `events` list") from None
        except RecursionError:
            # Thousands of nested brackets exhaust the parser's stack: a bad body, not a 500.
            raise InvalidRequest(
                "payload", "must be a JSON object with an `events` list, not nested this deep"
            ) from None
        events = parse_callback(provider, payload)
        now = self._clock()
        fresh: list[ProviderEvent] = []
        with self._lock:
            for event in events:
                key = (event.provider, event.provider_event_id)
                if key not in self._event_ids:
                    self._event_ids[key] = now
                    fresh.append(event)
        return fresh

    def _forget(self, now: float) -> None:
        horizon = now - self.tolerance
        for signature in [s for s, sent in self._signatures.items() if sent < horizon]:
            del self._signatures[signature]
        for key in [k for k, seen in self._event_ids.items() if seen < horizon]:
            del self._event_ids[key]
