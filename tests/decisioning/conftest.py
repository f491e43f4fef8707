"""In-test stand-ins for our own FeatureSource and PriorModel protocols, and an engine factory.

The stores are real (SQLite files in the test's folder); only the feature
store and the offline model are replaced, by small classes that keep their protocols.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from decisioning import (
    DecisionEngine,
    LinearThompson,
    SQLiteDecisionLog,
    SQLitePolicyStateStore,
)
from decisioning.config import DecisionConfig, parse_decision_config
from decisioning.contact_store import ChannelState, ContactProfile
from decisioning.sqlite_contact import SQLiteContactStore
from features import FeatureRow, FeatureValue
from features.errors import InvalidRequest

FEATURE_NAMES = ("recency", "vip", "engagement_email", "engagement_sms")
# 09:00 UTC is 11:00 in Paris (summer time) and 05:00 in New York.
START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
CHANNELS = ("email", "sms", "push")

CONFIG: dict[str, Any] = {
    "channels": {"email": {"cost": 0.01}, "sms": {"cost": 0.05}, "push": {"cost": 0.0}},
    "messages": {
        "welcome": {"channels": ["email", "push"], "model_arm": "welcome"},
        "discount": {"channels": ["email", "sms", "push"], "model_arm": "discount"},
        "news": {"channels": ["email", "sms", "push"]},
        "receipt": {"channels": ["email", "sms"], "transactional": True},
    },
    "control_arm": "none",
    "slots": ["now", "+1h", "09:00", "20:00"],
    "default_time_zone": "Europe/Paris",
    "quiet_hours": {"start": "21:00", "end": "08:00"},
    "caps": [
        {"channel": "email", "limit": 2, "window": "7d"},
        {"channel": "sms", "limit": 1, "window": "1d"},
        {"channel": "push", "limit": 0, "window": "1d"},
        {"limit": 4, "window": "7d"},
    ],
    "holdout": {"percent": 0, "salt": "test-salt"},
    "exploration": 0.1,
    "rewards": {
        "default": {
            "attribution_window": "72h",
            "conversions": {"purchase": "value", "conversion": 1.0},
            "penalties": {"unsubscribe": 1.0, "complaint": 2.0},
        }
    },
}


def make_config(**changes: Any) -> DecisionConfig:
    """The test configuration, with top-level keys replaced by ``changes``."""
    return parse_decision_config({**CONFIG, **changes})


class DictFeatures:
    """A FeatureSource over a fixed dict; an unknown customer gets every feature missing."""

    def __init__(self, rows: Mapping[str, Mapping[str, FeatureValue]]) -> None:
        self.rows = rows

    def get(self, customer_id: str) -> FeatureRow:
        stored = self.rows.get(customer_id, {})
        values = {name: stored.get(name) for name in FEATURE_NAMES}
        missing = tuple(name for name in FEATURE_NAMES if values[name] is None)
        return FeatureRow(customer_id, values, missing)


class TableModel:
    """A PriorModel with fixed priors per arm; a VIP customer is a little likelier to respond.

    Like ArmPropensityModel, it refuses a string where it needs a number (``recency``).
    """

    def __init__(self, priors: Mapping[str, float] | None = None) -> None:
        self.priors = dict(priors or {"welcome": 0.30, "discount": 0.20, "none": 0.05})

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(self.priors)

    def predict_one(self, features: Mapping[str, FeatureValue]) -> dict[str, float]:
        recency = features.get("recency")
        if isinstance(recency, float) and recency != recency:
            raise InvalidRequest("features['recency']", "must be a number or None", recency)
        if isinstance(recency, str):
            raise InvalidRequest("features['recency']", "must be a number or None", recency)
        lift = 0.05 if features.get("vip") == 1 else 0.0
        return {action: prior + lift for action, prior in self.priors.items()}


class TickingClock:
    """A deterministic clock: each call is one millisecond after the previous one."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now

    def advance(self, delta: timedelta) -> None:
        """Let ``delta`` pass, as between a decision and its outcome."""
        self.now += delta


ROWS: dict[str, dict[str, FeatureValue]] = {
    "c1": {"recency": 3, "vip": 0, "engagement_email": 0.4, "engagement_sms": 0.1},
    "c2": {"recency": 40, "vip": 1, "engagement_email": 0.1, "engagement_sms": 0.5},
    "c3": {"recency": 7, "vip": 0},
}


def opted_in_everywhere(customer_id: str, time_zone: str | None = None) -> ContactProfile:
    every = ChannelState(consent="opted_in", reachable=True)
    return ContactProfile(customer_id, dict.fromkeys(CHANNELS, every), time_zone)


EngineFactory = Callable[..., DecisionEngine]


@pytest.fixture
def model() -> TableModel:
    return TableModel()


@pytest.fixture
def clock() -> TickingClock:
    return TickingClock()


@pytest.fixture
def contacts(tmp_path: Path) -> Iterator[SQLiteContactStore]:
    store = SQLiteContactStore(tmp_path / "contacts.db")
    store.load_profiles(
        [
            opted_in_everywhere("c1"),
            opted_in_everywhere("c2", "America/New_York"),
            opted_in_everywhere("c3"),
        ]
    )
    yield store
    store.close()


@pytest.fixture
def make_engine(
    tmp_path: Path, model: TableModel, clock: TickingClock, contacts: SQLiteContactStore
) -> Iterator[EngineFactory]:
    """Builds engines over the same database files, as a restarted process (or a second
    worker) would. ``config=`` takes a DecisionConfig; other keywords go to the engine."""
    opened: list[Any] = []

    def build(**overrides: Any) -> DecisionEngine:
        db = overrides.pop("db", tmp_path / "nudge.db")
        log = SQLiteDecisionLog(db)
        state = SQLitePolicyStateStore(db)
        opened.extend([log, state])
        kwargs: dict[str, Any] = {
            "config": make_config(),
            "features": DictFeatures(ROWS),
            "model": model,
            "model_version": "v1",
            "policy": LinearThompson(seed=0),
            "log": log,
            "state": state,
            "contacts": contacts,
            "clock": clock,
        }
        kwargs.update(overrides)
        return DecisionEngine(**kwargs)

    yield build
    for store in opened:
        store.close()


def with_holdout(config: DecisionConfig, percent: float) -> DecisionConfig:
    return dataclasses.replace(config, holdout_percent=percent)
