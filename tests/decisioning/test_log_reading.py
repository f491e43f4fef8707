"""Reading the log back for reports and monitoring, over every backend: SQLite and Postgres.

Outcomes in recording order, decisions since a moment, and the backlog of
attribution windows waiting to be finalised.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from log_samples import BASE, WHEN, decision, outcome

from decisioning.log import DecisionLog
from decisioning.postgres_log import PostgresDecisionLog
from decisioning.sqlite_log import SQLiteDecisionLog
from features.errors import InvalidRequest

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
SMALL = {"eligible": (BASE.action,), "excluded": (), "scores": {}}
"""Decisions without the bulky parts, so that thousands record quickly."""


@pytest.fixture(params=["sqlite", "postgres"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DecisionLog]:
    schema = f"nudge_test_{uuid.uuid4().hex[:8]}"
    opened: DecisionLog
    if request.param == "sqlite":
        opened = SQLiteDecisionLog(tmp_path / "nudge.db")
    else:
        opened = PostgresDecisionLog(POSTGRES_DSN, schema)
    yield opened
    opened.close()
    if request.param == "postgres":
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# -- outcomes ---------------------------------------------------------------------------------


def test_iter_outcomes_pages_through_all_in_recorded_order(log: DecisionLog) -> None:
    # Outcomes of several decisions, interleaved and recorded out of id order,
    # more than two pages: the order is the recording order, not the id's.
    for d in ("d1", "d2", "d3"):
        log.record_decision(decision(d, **SMALL))
    ids = [f"o{i:05d}" for i in random.Random(2).sample(range(100_000), 2_345)]
    written = [
        outcome(
            oid,
            f"d{1 + i % 3}",
            value=i / 7,
            reward=-i / 3,
            occurred_at=WHEN + timedelta(seconds=i),
        )
        for i, oid in enumerate(ids)
    ]
    with log.transaction():
        for o in written:
            assert log.record_outcome(o)
    assert log.record_outcome(written[5]) is False  # a repeat is not a second outcome

    read = list(log.iter_outcomes())
    assert [o.outcome_id for o in read] == ids
    assert read == written  # every field, the moments in UTC
    assert {o.occurred_at.tzinfo for o in read} == {UTC}


def test_iter_outcomes_of_an_empty_log_is_empty(log: DecisionLog) -> None:
    log.record_decision(decision("d1", **SMALL))
    assert list(log.iter_outcomes()) == []


# -- decisions since a moment ----------------------------------------------------------------


def test_iter_decisions_since_keeps_the_recorded_order_and_includes_the_boundary(
    log: DecisionLog,
) -> None:
    # Recorded in an order unrelated to decided_at, across more than two pages.
    minutes = random.Random(3).sample(range(3_000), 2_100)
    if 1_000 not in minutes:
        minutes[50] = 1_000  # a decision exactly at the boundary
    for i, minute in enumerate(minutes):
        log.record_decision(
            decision(f"d{i:04d}", decided_at=WHEN + timedelta(minutes=minute), **SMALL)
        )
    since = WHEN + timedelta(minutes=1_000)
    expected = [f"d{i:04d}" for i, minute in enumerate(minutes) if minute >= 1_000]

    read = list(log.iter_decisions(since=since.astimezone(UTC)))
    assert [d.decision_id for d in read] == expected
    assert [d.decision_id for d in log.iter_decisions(since=since)] == expected  # any zone
    assert len(list(log.iter_decisions())) == 2_100
    assert len(list(log.iter_decisions(since=None))) == 2_100
    later = WHEN + timedelta(minutes=5_000)
    assert list(log.iter_decisions(since=later)) == []


def test_iter_decisions_since_refuses_a_naive_moment(log: DecisionLog) -> None:
    with pytest.raises(InvalidRequest, match="`since` must be a datetime that includes a time"):
        list(log.iter_decisions(since=datetime(2024, 5, 1)))


# -- the finalisation backlog ----------------------------------------------------------------


def test_count_due_windows_counts_what_due_windows_returns(log: DecisionLog) -> None:
    hours = [5, 1, 3, 2, 4, 30]
    for i, h in enumerate(hours):
        log.record_decision(decision(f"d{i}", attribution_closes_at=WHEN + timedelta(hours=h)))
    log.record_decision(decision("never", attribution_closes_at=None))
    log.close_window("d2")  # closes at +3 h, but already handled
    now = WHEN + timedelta(hours=4)  # d4 closes exactly now: due

    assert log.count_due_windows(now) == 3  # d1 (+1 h), d3 (+2 h), d4 (+4 h)
    assert log.count_due_windows(now) == len(log.due_windows(now, limit=100))
    assert log.count_due_windows(WHEN) == 0
    assert log.count_due_windows(WHEN + timedelta(days=2)) == 5  # all but d2 and "never"
    log.close_window("d1")
    assert log.count_due_windows(now.astimezone(UTC)) == 2


def test_count_due_windows_refuses_a_naive_moment(log: DecisionLog) -> None:
    with pytest.raises(InvalidRequest, match="`now` must be a datetime that includes a time zone"):
        log.count_due_windows(datetime(2024, 5, 1))
