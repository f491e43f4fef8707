"""The journey tests' fixture: a runner over a real engine (see journey_harness)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
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
from features.sql import PostgresDatabase

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgres"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """The runner with its state in SQLite files (embedded) or in Postgres (scale mode)."""
    clock = Clock()
    schema = f"nudge_journeys_test_{uuid.uuid4().hex[:8]}"
    database = PostgresDatabase(POSTGRES_DSN, schema) if request.param == "postgres" else None
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
    runner, stream, store, links = build_runner(tmp_path, engine, clock, CART_JOURNEY, database)
    yield Harness(runner, engine, stream, store, contacts, clock, tmp_path / "outbox", links)
    engine.close()
    store.close()
    stream.close()
    contacts.close()
    state.close()
    log.close()
    if database is not None:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
