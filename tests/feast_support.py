"""A small behaviour history and Feast repos over it, for the feature tests.

``NOW`` is a Monday, 12:00 UTC. Four customers:

- c1 buys 40 a hundred days ago and 10 ten days ago, puts 25 in the cart two
  hours ago, views a page an hour ago, and buys again an hour after ``NOW``;
- c2 is sent e-mails three and twenty days ago and an SMS sixty days ago; opens
  the first e-mail (in the stream and, under the same id, in the decision log),
  clicks it (decision log only), and unsubscribes from SMS forty days ago;
- c3 lives in New York, opts in to e-mail and gives an address five days ago,
  and views pages on three Monday mornings (07:00 local) and once 95 days ago;
  the contact store says SMS is reachable (read yesterday) and records an SMS
  opt-in dated tomorrow;
- c4 does nothing until after ``NOW``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg
import redis

from features import EventLog, FeatureRepo
from features.behaviour import (
    BEHAVIOUR_TABLE,
    ContactRecord,
    OutcomeRecord,
    SendRecord,
    behaviour_snapshots,
    write_snapshots,
)
from features.event_stream import CustomerEvent

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


def event(
    event_id: str, customer: str, kind: str, at: datetime, **payload: object
) -> CustomerEvent:
    return CustomerEvent(event_id, customer, kind, at, payload)


def sample_events() -> list[CustomerEvent]:
    return [
        event("p1", "c1", "purchase", NOW - 100 * D, value=40.0),
        event("p2", "c1", "purchase", NOW - 10 * D, value=10.0),
        event("a1", "c1", "add_to_cart", NOW - 2 * H, cart_value=25.0),
        event("v1", "c1", "page_view", NOW - H),
        event("p3", "c1", "purchase", NOW + H, value=25.0),
        event("o1", "c2", "email_open", NOW - 3 * D + H, decision_id="d1", channel="email"),
        event("u1", "c2", "unsubscribe", NOW - 40 * D, decision_id="d3", channel="sms"),
        event("k1", "c3", "consent_update", NOW - 5 * D, channel="email", consent="opted_in"),
        event(
            "i1",
            "c3",
            "identify",
            NOW - 5 * D,
            email="c3@example.com",
            time_zone="America/New_York",
        ),
        *(event(f"w{n}", "c3", "page_view", NOW - 7 * n * D) for n in (1, 2, 3)),
        event("w0", "c3", "page_view", NOW - 95 * D),
        event("f1", "c4", "page_view", NOW + H),
    ]


def sample_sends() -> list[SendRecord]:
    return [
        SendRecord("d1", "c2", "email", NOW - 3 * D),
        SendRecord("d2", "c2", "email", NOW - 20 * D),
        SendRecord("d3", "c2", "sms", NOW - 60 * D),
    ]


def sample_outcomes() -> list[OutcomeRecord]:
    return [
        OutcomeRecord("o1", "c2", "email", "open", NOW - 3 * D + H),
        OutcomeRecord("o2", "c2", "email", "click", NOW - 3 * D + 2 * H),
    ]


def sample_contacts() -> list[ContactRecord]:
    return [ContactRecord("c3", "sms", "opted_in", NOW + D, None, True, NOW - D)]


def sample_snapshots(at: list[datetime]) -> pd.DataFrame:
    return behaviour_snapshots(
        at,
        events=sample_events(),
        sends=sample_sends(),
        outcomes=sample_outcomes(),
        contacts=sample_contacts(),
    )


def profiles_frame(customers: list[str], at: datetime) -> pd.DataFrame:
    """A profile table in the Hillstrom layout: the propensity_v1 service reads it."""
    n = len(customers)
    return pd.DataFrame(
        {
            "customer_id": pd.array(customers, dtype="string"),
            "event_timestamp": [at] * n,
            "created_at": [at] * n,
            "recency": list(range(1, n + 1)),
            "history": [10.0 * (i + 1) for i in range(n)],
            "mens": [1] * n,
            "womens": [0] * n,
            "newbie": [0] * n,
            "zip_code": ["Urban"] * n,
            "channel": ["Web"] * n,
        }
    )


@dataclass
class Tables:
    events: EventLog
    profiles: Path
    behaviour: Path


def write_tables(root: Path, at: list[datetime]) -> Tables:
    """The profile table (as of 2008, as the demo's) and behaviour snapshots at ``at``."""
    events = EventLog(root / "events")
    profiles = events.write(
        "profiles", profiles_frame(["c1", "c2", "c3"], datetime(2008, 1, 1, tzinfo=UTC))
    )
    write_snapshots(events, sample_snapshots(at))
    return Tables(events, profiles, events.path(BEHAVIOUR_TABLE))


def scale_repo(root: Path, prefix: str | None = None) -> FeatureRepo:
    return FeatureRepo(
        root,
        storage="scale",
        redis_url=REDIS_URL,
        postgres_dsn=POSTGRES_DSN,
        key_prefix=prefix or f"nudge_test_{uuid.uuid4().hex[:8]}",
    )


def drop_scale(prefix: str) -> None:
    """Remove what a scale-mode repo with ``prefix`` left: its Redis keys and Postgres schema."""
    client = redis.Redis(host="127.0.0.1", port=6379)
    suffix = prefix.encode()
    keys = [key for key in client.scan_iter(match=b"*" + suffix) if key.endswith(suffix)]
    if keys:
        client.delete(*keys)
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{prefix}_feast" CASCADE')
