"""The journey tests' fixture: a runner over a real engine (see journey_harness)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from journey_harness import (
    CART_JOURNEY,
    DECISIONS,
    Clock,
    Features,
    Harness,
    Priors,
    build_runner,
)

from decisioning import DecisionEngine, LinearThompson, SQLiteDecisionLog, SQLitePolicyStateStore
from decisioning.config import parse_decision_config
from decisioning.sqlite_contact import SQLiteContactStore


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    clock = Clock()
    contacts = SQLiteContactStore(tmp_path / "contacts.db")
    log = SQLiteDecisionLog(tmp_path / "decisions.db")
    state = SQLitePolicyStateStore(tmp_path / "decisions.db")
    engine = DecisionEngine(
        config=parse_decision_config(DECISIONS),
        features=Features({}),
        model=Priors(),
        model_version="v1",
        policy=LinearThompson(seed=0),
        log=log,
        state=state,
        contacts=contacts,
        clock=clock,
        seed=0,
    )
    runner, stream, store, links = build_runner(tmp_path, engine, clock, CART_JOURNEY)
    yield Harness(runner, engine, stream, store, contacts, clock, tmp_path / "outbox", links)
    engine.close()
    store.close()
    stream.close()
    contacts.close()
    state.close()
    log.close()
