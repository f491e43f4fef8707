"""What the SQLite log adds to the DecisionLog contract: its file, its columns, its processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from log_samples import BASE, WHEN, decision, outcome

import decisioning
from decisioning import _records
from decisioning.sqlite_log import SQLiteDecisionLog
from decisioning.sqlite_state import SQLitePolicyStateStore
from features.errors import Unavailable

# Child processes import this checkout's packages, and log_samples beside this file.
CHILD_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(
        [str(Path(decisioning.__file__).resolve().parent.parent), str(Path(__file__).parent)]
    ),
}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "nudge.db"


@pytest.fixture
def log(db: Path) -> Iterator[SQLiteDecisionLog]:
    store = SQLiteDecisionLog(db)
    yield store
    store.close()


def run_child(code: str, *args: str) -> str:
    """Runs ``code`` in a new Python process; returns what it printed."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
        env=CHILD_ENV,
    )
    return done.stdout


def test_reports_can_query_the_real_columns(log: SQLiteDecisionLog, db: Path) -> None:
    log.record_decision(decision("d1", idempotency_key="req-1"))
    log.record_decision(decision("d2", group="holdout", propensity=1.0))
    log.credit("d1", 2.0)
    conn = sqlite3.connect(db)
    columns = [row[1] for row in conn.execute("PRAGMA table_xinfo(decisions)")]
    rows = conn.execute(
        "SELECT decision_id, idempotency_key, customer_id, decided_at, decision_group, "
        "action_key, message, channel, slot, send_at, propensity, policy_version, "
        "model_version, time_zone, credited, reward, window_closed FROM decisions "
        "ORDER BY decision_id"
    ).fetchall()
    (journal,) = conn.execute("PRAGMA journal_mode").fetchone()
    conn.close()
    assert columns == [*_records.DECISION_COLUMNS, "credits", "credited", "reward", "window_closed"]
    assert rows == [
        ("d1", "req-1", "c1", "2024-05-01T09:30:15.123456+00:00", "explore", "welcome/sms/+1h",
         "welcome", "sms", "+1h", "2024-05-01T10:30:15.123456+00:00", 1 / 3 + 0.1 / 3,
         "linear-ts(v=0.5,seed=7)+1234", "3", "Europe/Paris", 1, 2.0, 0),
        ("d2", None, "c1", "2024-05-01T09:30:15.123456+00:00", "holdout", "welcome/sms/+1h",
         "welcome", "sms", "+1h", "2024-05-01T10:30:15.123456+00:00", 1.0,
         "linear-ts(v=0.5,seed=7)+1234", "3", "Europe/Paris", 0, 0.0, 0),
    ]  # fmt: skip
    assert journal == "wal"


def test_due_windows_reads_only_the_open_windows_index(log: SQLiteDecisionLog, db: Path) -> None:
    conn = sqlite3.connect(db)
    plan = " ".join(
        str(row[3])
        for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT decision_id FROM decisions "
            "WHERE window_closed = 0 AND attribution_closes_at <= ? "
            "ORDER BY attribution_closes_at, rowid LIMIT ?",
            ("2024-05-01", 10),
        )
    )
    conn.close()
    assert "USING INDEX decisions_open_windows" in plan
    assert "TEMP B-TREE" not in plan  # the index also gives the order


def test_credit_has_exactly_one_first_across_processes(log: SQLiteDecisionLog, db: Path) -> None:
    n = 500
    for i in range(n):
        log.record_decision(decision(f"d{i}", eligible=(), excluded=(), scores={}))
    # Two processes, each with four logs (own connections) on threads: eight writers.
    child = f"""
        import sys, threading, time
        from pathlib import Path
        from decisioning.sqlite_log import SQLiteDecisionLog
        logs = [SQLiteDecisionLog(Path({str(db)!r})) for _ in range(4)]
        firsts = []
        def credit_all(log):
            while time.time() < float(sys.argv[1]):  # both processes start together
                time.sleep(0.0005)
            firsts.extend(i for i in range({n}) if log.credit(f"d{{i}}", 1.0))
        threads = [threading.Thread(target=credit_all, args=(log,)) for log in logs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(" ".join(map(str, firsts)))
    """
    start = str(time.time() + 2.0)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(child), start],
            stdout=subprocess.PIPE,
            text=True,
            env=CHILD_ENV,
        )
        for _ in range(2)
    ]
    outputs = [child.communicate(timeout=120)[0] for child in children]
    assert [c.returncode for c in children] == [0, 0]
    firsts = [int(i) for out in outputs for i in out.split()]
    assert sorted(firsts) == list(range(n))  # each decision's first credit exactly once
    assert {log.credited_reward(f"d{i}") for i in range(n)} == {8.0}


def test_what_was_accepted_survives_a_process_that_dies_without_closing(db: Path) -> None:
    run_child(
        f"""
        import os
        from pathlib import Path
        from decisioning.sqlite_log import SQLiteDecisionLog
        from decisioning.sqlite_state import SQLitePolicyStateStore
        from log_samples import decision, outcome
        log = SQLiteDecisionLog(Path({str(db)!r}))
        state = SQLitePolicyStateStore(Path({str(db)!r}))
        log.record_decision(decision("d1", idempotency_key="req-1"))
        log.credit("d1", 1.0)
        log.close_window("d1")
        log.record_outcome(outcome())
        state.publish("policy", "w1", b"learned")
        os._exit(0)  # no close, no clean shutdown
        """
    )
    log, state = SQLiteDecisionLog(db), SQLitePolicyStateStore(db)
    assert log.find_idempotent("req-1") == decision("d1", idempotency_key="req-1")
    assert log.credit("d1", 1.0) is False
    assert log.window_closed("d1") is True
    assert log.outcomes("d1") == [outcome()]
    assert state.collect("policy") == {"w1": b"learned"}
    log.close()
    state.close()


def test_the_log_and_the_state_share_one_file(db: Path) -> None:
    log, state = SQLiteDecisionLog(db), SQLitePolicyStateStore(db)
    log.record_decision(decision())
    state.publish("policy", "w1", bytes(range(256)))
    state.close()
    log.close()
    tables = {row[0] for row in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")}
    assert {"decisions", "outcomes", "holdout_changes", "policy_snapshots"} <= tables


def test_a_file_with_a_log_in_an_older_layout_is_refused(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE decisions (decision_id TEXT PRIMARY KEY, candidates TEXT)")
    conn.close()
    with pytest.raises(
        Unavailable, match=r"nudge\.db holds a decision log in an older layout; move it away"
    ):
        SQLiteDecisionLog(db)


def test_what_orjson_cannot_write_falls_back_and_reads_back_equal(log: SQLiteDecisionLog) -> None:
    # orjson writes the JSON columns, but refuses an integer beyond 64 bits: json takes over.
    written = decision(idempotency_key="req-1", features={**BASE.features, "huge": 2**70})
    log.record_decision(written)
    assert log.get_decision("d1") == written


def test_text_that_is_not_valid_unicode_still_reads_back_equal(log: SQLiteDecisionLog) -> None:
    written = decision(features={"text": "\ud800"}, customer_id="c\u00e9")
    log.record_decision(written)
    assert log.get_decision("d1") == written


def test_holdout_times_are_stored_in_utc_text(log: SQLiteDecisionLog, db: Path) -> None:
    log.record_holdout_change(WHEN, 5.0)
    (at,) = sqlite3.connect(db).execute("SELECT at FROM holdout_changes").fetchone()
    assert at == "2024-05-01T09:30:15.123456+00:00"
    assert log.holdout_changes() == [(datetime(2024, 5, 1, 9, 30, 15, 123456, tzinfo=UTC), 5.0)]
