"""SQLiteDecisionLog and SQLitePolicyStateStore: exact round trips, idempotence, durability."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from decisioning import (
    ActionScore,
    Decision,
    Outcome,
    SQLiteDecisionLog,
    SQLitePolicyStateStore,
)
from features.errors import Conflict, InvalidRequest, NotFound

WHEN = datetime(2024, 5, 1, 11, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))


def decision(decision_id: str = "d1", **overrides: object) -> Decision:
    fields: dict[str, object] = {
        "decision_id": decision_id,
        "customer_id": "c1",
        "decided_at": WHEN,
        "candidates": ("email", "sms", "push"),
        "action": "sms",
        "propensity": 1 / 3 + 0.1 / 3,
        "scores": {
            "email": ActionScore(0.1 + 0.2, 0.30000000000000004, 0.1 / 3),
            "sms": ActionScore(1e-300, 0.123456789012345678, 0.9 + 0.1 / 3),
            "push": ActionScore(0.0, 1.0, 0.1 / 3),
        },
        "explored": True,
        "policy_version": "epsilon-greedy(epsilon=0.1,learning_rate=0.05)+7",
        "model_version": "3",
        "features": {"recency": 3, "spend": 29.990000000000002, "channel": "Web", "zip": None},
        "missing_features": ("zip",),
    }
    fields.update(overrides)
    return Decision(**fields)  # type: ignore[arg-type]


def outcome(outcome_id: str = "o1", decision_id: str = "d1") -> Outcome:
    return Outcome(outcome_id, decision_id, "click", 49.9, 1.0, WHEN + timedelta(hours=1))


@pytest.fixture
def log(tmp_path: Path) -> SQLiteDecisionLog:
    store = SQLiteDecisionLog(tmp_path / "nudge.db")
    yield store  # type: ignore[misc]
    store.close()


def test_a_decision_reads_back_equal_with_utc_times_and_exact_floats(
    log: SQLiteDecisionLog,
) -> None:
    written = decision()
    log.record_decision(written)
    read = log.get_decision("d1")
    assert read == written
    assert read.decided_at.tzinfo == UTC
    assert read.decided_at == datetime(2024, 5, 1, 9, 30, 15, 123456, tzinfo=UTC)
    assert read.propensity == written.propensity
    assert read.scores["sms"].mean == 0.123456789012345678
    assert isinstance(read.features["recency"], int)
    assert read.features["zip"] is None


def test_a_duplicate_decision_id_is_a_conflict(log: SQLiteDecisionLog) -> None:
    log.record_decision(decision())
    with pytest.raises(Conflict, match="decision 'd1' is already recorded"):
        log.record_decision(decision(action="email"))
    assert log.get_decision("d1").action == "sms"
    assert log.count_decisions() == 1


def test_a_naive_decision_time_is_rejected(log: SQLiteDecisionLog) -> None:
    with pytest.raises(InvalidRequest, match="`decided_at` must include a time zone"):
        log.record_decision(decision(decided_at=datetime(2024, 5, 1, 9)))
    assert log.count_decisions() == 0


def test_unknown_decisions_are_not_found(log: SQLiteDecisionLog) -> None:
    with pytest.raises(NotFound, match="decision 'nope' not found"):
        log.get_decision("nope")
    with pytest.raises(NotFound, match="decision 'nope' not found"):
        log.mark_learned("nope")
    with pytest.raises(NotFound, match="decision 'nope' not found"):
        log.record_outcome(outcome(decision_id="nope"))
    assert log.outcomes("nope") == []


def test_an_outcome_id_is_recorded_once(log: SQLiteDecisionLog) -> None:
    log.record_decision(decision())
    assert log.record_outcome(outcome("o1")) is True
    assert log.record_outcome(outcome("o1")) is False
    assert log.record_outcome(outcome("o2")) is True
    read = log.outcomes("d1")
    assert [o.outcome_id for o in read] == ["o1", "o2"]
    assert read[0] == outcome("o1")
    assert read[0].occurred_at.tzinfo == UTC


def test_get_outcome_reads_back_what_was_recorded_first(log: SQLiteDecisionLog) -> None:
    log.record_decision(decision())
    assert log.get_outcome("o1") is None
    log.record_outcome(outcome("o1"))
    log.record_outcome(Outcome("o1", "d1", "open", 0.0, 0.0, WHEN))  # ignored: o1 is taken
    assert log.get_outcome("o1") == outcome("o1")


def test_mark_learned_is_true_only_the_first_time(log: SQLiteDecisionLog) -> None:
    log.record_decision(decision("d1"))
    log.record_decision(decision("d2"))
    assert [log.mark_learned("d1"), log.mark_learned("d1"), log.mark_learned("d2")] == [
        True,
        False,
        True,
    ]


def test_iter_decisions_pages_through_all_in_recorded_order(log: SQLiteDecisionLog) -> None:
    ids = [f"d{i:04d}" for i in range(2_345)]  # more than two pages
    for i in ids:
        log.record_decision(decision(i))
    assert log.count_decisions() == 2_345
    assert [d.decision_id for d in log.iter_decisions()] == ids


def test_the_tables_have_the_documented_columns(log: SQLiteDecisionLog, tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "nudge.db")
    columns = {
        table: [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
        for table in ("decisions", "outcomes")
    }
    (journal,) = conn.execute("PRAGMA journal_mode").fetchone()
    conn.close()
    assert columns["decisions"] == [
        "decision_id", "customer_id", "decided_at", "candidates", "action", "propensity",
        "scores", "explored", "policy_version", "model_version", "features", "missing",
        "learned",
    ]  # fmt: skip
    assert columns["outcomes"] == [
        "outcome_id", "decision_id", "event", "value", "reward", "occurred_at", "recorded_at",
    ]  # fmt: skip
    assert journal == "wal"


def test_what_was_accepted_survives_a_process_that_dies_without_closing(tmp_path: Path) -> None:
    db = tmp_path / "nudge.db"
    child = textwrap.dedent(
        f"""
        import os, sys
        from datetime import UTC, datetime
        from pathlib import Path
        from decisioning import ActionScore, Decision, SQLiteDecisionLog, SQLitePolicyStateStore
        log = SQLiteDecisionLog(Path({str(db)!r}))
        state = SQLitePolicyStateStore(Path({str(db)!r}))
        log.record_decision(Decision(
            "d1", "c1", datetime(2024, 5, 1, tzinfo=UTC), ("email",), "email", 1.0,
            {{"email": ActionScore(0.2, 0.2, 1.0)}}, False, "uniform-random", "1", {{}},
        ))
        log.mark_learned("d1")
        state.put("policy", b"learned")
        os._exit(0)  # no close, no clean shutdown
        """
    )
    subprocess.run([sys.executable, "-c", child], check=True, timeout=60)
    log, state = SQLiteDecisionLog(db), SQLitePolicyStateStore(db)
    assert log.get_decision("d1").action == "email"
    assert log.mark_learned("d1") is False
    assert state.get("policy") == b"learned"
    log.close()
    state.close()


def test_the_state_store_overwrites_and_persists(tmp_path: Path) -> None:
    db = tmp_path / "nudge.db"
    log, state = SQLiteDecisionLog(db), SQLitePolicyStateStore(db)  # one file, two tables
    assert state.get("policy") is None
    state.put("policy", b"one")
    state.put("policy", b"two")
    state.put("other", bytes(range(256)))
    log.record_decision(decision())
    state.close()
    log.close()
    reopened = SQLitePolicyStateStore(db)
    assert reopened.get("policy") == b"two"
    assert reopened.get("other") == bytes(range(256))
    reopened.close()
