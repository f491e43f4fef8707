"""A journey runner over a real decision engine, real stores and a real file outbox.

Only the feature store and the offline model are small in-test classes (they keep
their protocols); one settable clock drives both the engine and the runner, so a
journey's hours pass in a test's milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from channels import FileOutbox, TemplateRenderer, TrackingLinks
from decisioning import DecisionEngine
from decisioning.contact_store import ChannelState, ContactProfile
from decisioning.sqlite_contact import SQLiteContactStore
from features import FeatureRow, FeatureValue
from features.event_stream import CustomerEvent, EventStream
from features.sql import SqlDatabase, SQLiteDatabase
from journeys import parse_journey
from journeys.decisions import EngineDecisions
from journeys.runner import JourneyRunner
from journeys.store import JourneyStore

# 10:00 UTC: 10:00 in London, 05:00 in New York, 23:00 in Auckland (summer time).
START = datetime(2026, 1, 14, 10, 0, tzinfo=UTC)

DECISIONS: dict[str, Any] = {
    "channels": {"email": {"cost": 0.01}, "sms": {"cost": 0.05}},
    "messages": {
        "cart_reminder": {"channels": ["email", "sms"], "model_arm": "reminder"},
        "discount_10": {"channels": ["email", "sms"], "model_arm": "discount"},
    },
    "control_arm": "none",
    "slots": ["now", "+1h"],
    "default_time_zone": "Europe/London",
    "quiet_hours": {"start": "21:00", "end": "08:00"},
    "caps": [{"channel": "email", "limit": 1, "window": "1d"}, {"limit": 2, "window": "7d"}],
    "holdout": {"percent": 0, "salt": "journeys-test"},
    "exploration": 0.0,
    "rewards": {
        "default": {"attribution_window": "72h", "conversions": {"purchase": "value"}},
        "cart": {"attribution_window": "72h", "conversions": {"purchase": "value"}},
    },
}

CART_JOURNEY = """
journey: cart
trigger:
  event: add_to_cart
  where: {cart_value: {gte: 20}}
entry: {reentry: true, reentry_after: 2d}
goal: purchase
exit:
  - {event: unsubscribe}
  - {after: 10d}
steps:
  - id: settle
    wait: 1h
  - id: first
    decide:
      candidates: [cart_reminder, discount_10]
      slots: [now]
      allow_no_send: false
  - id: send_first
    send: {}
  - id: wait_purchase
    wait: {until: purchase, timeout: 1d}
  - id: second
    decide:
      candidates: [{message: discount_10, channels: [sms]}]
      slots: [now]
  - id: send_second
    send: {decision: second}
"""


class Clock:
    """The one clock of a test: it stands still until the test moves it."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class Priors:
    """A PriorModel with fixed priors: the reminder is the better message."""

    actions = ("reminder", "discount", "none")

    def predict_one(self, features: Mapping[str, FeatureValue]) -> dict[str, float]:
        return {"reminder": 0.30, "discount": 0.20, "none": 0.05}


class Features:
    """A FeatureSource over a dict."""

    def __init__(self, rows: Mapping[str, Mapping[str, FeatureValue]]) -> None:
        self.rows = rows

    def get(self, customer_id: str) -> FeatureRow:
        values = dict(self.rows.get(customer_id, {}))
        return FeatureRow(customer_id, values, ())


@dataclass
class Harness:
    runner: JourneyRunner
    engine: DecisionEngine
    stream: EventStream
    store: JourneyStore
    contacts: SQLiteContactStore
    clock: Clock
    outbox: Path
    links: TrackingLinks
    sequence: int = 0

    def event(self, customer: str, kind: str, **payload: Any) -> None:
        self.sequence += 1
        self.stream.append(
            [CustomerEvent(f"ev{self.sequence}", customer, kind, self.clock.now, payload)]
        )

    def customer(self, customer: str, *, zone: str = "Europe/London", sms: bool = True) -> None:
        """A customer opted in to e-mail (and SMS), with addresses on file."""
        every = ChannelState(consent="opted_in", reachable=True)
        channels = {"email": every} | ({"sms": every} if sms else {})
        self.contacts.load_profiles([ContactProfile(customer, channels, zone)])
        self.event(
            customer,
            "identify",
            email=f"{customer}@example.com",
            phone="+447700900123",
            first_name=customer.title(),
        )

    def run(self, advance: timedelta | None = None) -> None:
        if advance is not None:
            self.clock.advance(advance)
        self.runner.run_once()

    def sent(self) -> list[dict[str, Any]]:
        import json

        lines: list[dict[str, Any]] = []
        for path in sorted(self.outbox.glob("*.jsonl")):
            lines.extend(json.loads(line) for line in path.read_text().splitlines() if line)
        return lines


def build_runner(
    tmp_path: Path,
    engine: DecisionEngine,
    clock: Clock,
    journey_yaml: str,
    database: SqlDatabase | None = None,
    **kwargs: Any,
) -> tuple[JourneyRunner, EventStream, JourneyStore, TrackingLinks]:
    """A runner over SQLite files in ``tmp_path``, or over ``database`` (say, Postgres)."""
    journey = parse_journey(journey_yaml, "test.yaml")
    stream = EventStream(database or SQLiteDatabase(tmp_path / "events.db"))
    store = JourneyStore(database or SQLiteDatabase(tmp_path / "journeys.db"))
    links = TrackingLinks("test-secret", "http://nudge.test")
    outbox = tmp_path / "outbox"
    runner = JourneyRunner(
        journeys={journey.name: journey},
        store=store,
        stream=stream,
        decisions=EngineDecisions(engine),
        channels={
            "email": FileOutbox(outbox / "email.jsonl", name="email"),
            "sms": FileOutbox(outbox / "sms.jsonl", name="sms"),
        },
        renderer=TemplateRenderer(),
        links=links,
        features=Features({"c1": {"vip": 1}}),
        clock=clock,
        **kwargs,
    )
    return runner, stream, store, links
