"""In-test stand-ins for our own FeatureSource and PriorModel protocols, and an engine factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from decisioning import DecisionEngine, EpsilonGreedy, SQLiteDecisionLog, SQLitePolicyStateStore
from features import FeatureRow, FeatureValue
from features.errors import InvalidRequest

FEATURE_NAMES = ("recency", "channel", "vip")
ACTIONS = ("email", "sms", "push")
START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


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
    """A PriorModel with fixed priors per action; a VIP customer is a little likelier to respond.

    Like ArmPropensityModel, it refuses a string where it needs a number (``recency``).
    """

    def __init__(self, priors: Mapping[str, float] | None = None) -> None:
        self.priors = dict(priors or {"email": 0.30, "sms": 0.20, "push": 0.10})

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(self.priors)

    def predict_one(self, features: Mapping[str, FeatureValue]) -> dict[str, float]:
        if isinstance(features.get("recency"), str):
            raise InvalidRequest(
                "features['recency']", "must be a number or None", features["recency"]
            )
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
    "c1": {"recency": 3, "channel": "web", "vip": 0},
    "c2": {"recency": 40, "channel": "phone", "vip": 1},
    "c3": {"recency": 7, "channel": None, "vip": 0},
}

EngineFactory = Callable[..., DecisionEngine]


@pytest.fixture
def model() -> TableModel:
    return TableModel()


@pytest.fixture
def clock() -> TickingClock:
    return TickingClock()


@pytest.fixture
def make_engine(tmp_path: Path, model: TableModel, clock: TickingClock) -> Iterator[EngineFactory]:
    """Builds engines over the same database file, as a restarted process would.

    Every engine shares the test's ``model`` and ``clock`` unless overridden.
    """
    opened: list[Any] = []

    def build(**overrides: Any) -> DecisionEngine:
        db = overrides.pop("db", tmp_path / "nudge.db")
        log = SQLiteDecisionLog(db)
        state = SQLitePolicyStateStore(db)
        opened.extend([log, state])
        kwargs: dict[str, Any] = {
            "features": DictFeatures(ROWS),
            "model": model,
            "model_version": "v1",
            "policy": EpsilonGreedy(epsilon=0.1, seed=0),
            "log": log,
            "state": state,
            "clock": clock,
        }
        kwargs.update(overrides)
        return DecisionEngine(**kwargs)

    yield build
    for store in opened:
        store.close()
