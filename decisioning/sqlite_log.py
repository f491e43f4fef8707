"""The decision and outcome log in one SQLite file: the embedded default."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from decisioning._records import (
    DECISION_COLUMNS,
    OUTCOME_COLUMNS,
    check_finite,
    check_limit,
    decision_from_row,
    decision_row,
    outcome_from_row,
    outcome_row,
    utc,
    utc_text,
)
from decisioning._sqlite import connect
from decisioning.types import Decision, Outcome
from features.errors import Conflict, NotFound, Unavailable

__all__ = ["SQLiteDecisionLog"]

# Moments are fixed-width UTC ISO text (see decisioning._records), so comparing
# the text compares the moments. ``credited`` is derived from ``credits`` so that
# one UPDATE ... RETURNING both adds the reward and tells whether it was the first.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    decision_id           TEXT PRIMARY KEY,
    idempotency_key       TEXT UNIQUE,
    customer_id           TEXT NOT NULL,
    decided_at            TEXT NOT NULL,
    journey               TEXT NOT NULL,
    step                  TEXT NOT NULL,
    decision_group        TEXT NOT NULL,
    action_key            TEXT NOT NULL,
    message               TEXT,
    channel               TEXT,
    slot                  TEXT,
    send_at               TEXT,
    transactional         INTEGER NOT NULL,
    propensity            REAL NOT NULL,
    propensity_error      REAL NOT NULL,
    explored              INTEGER NOT NULL,
    policy_version        TEXT NOT NULL,
    model_version         TEXT NOT NULL,
    attribution_closes_at TEXT,
    eligible              TEXT NOT NULL,
    excluded              TEXT NOT NULL,
    scores                TEXT NOT NULL,
    features              TEXT NOT NULL,
    missing_features      TEXT NOT NULL,
    time_zone             TEXT NOT NULL,
    credits               INTEGER NOT NULL DEFAULT 0,
    credited              INTEGER GENERATED ALWAYS AS (credits > 0) VIRTUAL,
    reward                REAL NOT NULL DEFAULT 0,
    window_closed         INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS outcomes (
    outcome_id  TEXT PRIMARY KEY,
    decision_id TEXT NOT NULL REFERENCES decisions (decision_id),
    event       TEXT NOT NULL,
    value       REAL NOT NULL,
    reward      REAL NOT NULL,
    occurred_at TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS holdout_changes (
    at      TEXT NOT NULL,
    percent REAL NOT NULL
);
"""
# Indexes come after the layout check: on an older table they would fail obscurely.
_INDEXES = """
CREATE INDEX IF NOT EXISTS decisions_open_windows ON decisions (attribution_closes_at)
    WHERE window_closed = 0 AND attribution_closes_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS outcomes_by_decision ON outcomes (decision_id);
"""

_DECISIONS = ", ".join(DECISION_COLUMNS)
_OUTCOMES = ", ".join(OUTCOME_COLUMNS)
_INSERT_DECISION = (
    f"INSERT INTO decisions ({_DECISIONS}) VALUES ({', '.join('?' * len(DECISION_COLUMNS))}) "
    "ON CONFLICT DO NOTHING"
)
_INSERT_OUTCOME = (
    f"INSERT INTO outcomes ({_OUTCOMES}, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (outcome_id) DO NOTHING"
)
_PAGE = 1000


class SQLiteDecisionLog:
    """Keeps every decision and outcome in SQLite; each call is one committed transaction.

    One connection is shared by all threads behind a lock. Every change that
    must happen once (a first credit, a closed window, an idempotency key) is a
    single statement that SQLite's uniqueness constraints or its one-writer lock
    make atomic, so it holds across processes sharing the file as well.

    >>> import pathlib, tempfile
    >>> from decisioning.types import JointAction
    >>> action = JointAction("welcome", "email", "now", datetime(2024, 5, 1, 9, tzinfo=UTC))
    >>> decision = Decision(
    ...     "d1", "c1", datetime(2024, 5, 1, 9, tzinfo=UTC), "welcome", "day-0", "policy",
    ...     action, 1.0, 0.0, (action,), (), {}, False, "uniform", "m1", {},
    ... )
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     log = SQLiteDecisionLog(pathlib.Path(tmp) / "nudge.db")
    ...     _ = log.record_decision(decision)
    ...     print(log.get_decision("d1") == decision, log.credit("d1", 1.0),
    ...           log.credit("d1", 0.5), log.credited_reward("d1"))
    ...     log.close()
    True True False 1.5
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # Re-entrant, so that the calls inside a transaction() take it again.
        self._lock = threading.RLock()
        self._conn = connect(self.path)
        with self._lock:
            self._conn.executescript(_SCHEMA)
            _check_columns(self._conn, self.path)
            self._conn.executescript(_INDEXES)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything written inside is one commit (other threads wait for it)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def record_decision(self, decision: Decision) -> Decision:
        row = decision_row(decision, utc_text)
        with self._lock:
            if self._conn.execute(_INSERT_DECISION, row).rowcount == 1:
                return decision
            # Nothing was written: either the idempotency key or the decision id is
            # taken. The key wins, so a retried request gets its first decision back.
            key = decision.idempotency_key
            recorded = None if key is None else self._select_row("idempotency_key", key)
        if recorded is not None:
            return decision_from_row(recorded, datetime.fromisoformat)
        raise Conflict(f"decision {decision.decision_id!r} is already recorded")

    def find_idempotent(self, idempotency_key: str) -> Decision | None:
        with self._lock:
            row = self._select_row("idempotency_key", idempotency_key)
        return None if row is None else decision_from_row(row, datetime.fromisoformat)

    def get_decision(self, decision_id: str) -> Decision:
        with self._lock:
            row = self._select_row("decision_id", decision_id)
        if row is None:
            raise NotFound("decision", decision_id)
        return decision_from_row(row, datetime.fromisoformat)

    def record_outcome(self, outcome: Outcome) -> bool:
        row = (*outcome_row(outcome, utc_text), utc_text(datetime.now(UTC)))
        try:
            with self._lock:
                cursor = self._conn.execute(_INSERT_OUTCOME, row)
        except sqlite3.IntegrityError as err:
            if "FOREIGN KEY" not in str(err):
                raise
            raise NotFound("decision", outcome.decision_id) from err
        return cursor.rowcount == 1

    def get_outcome(self, outcome_id: str) -> Outcome | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_OUTCOMES} FROM outcomes WHERE outcome_id = ?", (outcome_id,)
            ).fetchone()
        return None if row is None else outcome_from_row(row, datetime.fromisoformat)

    def outcomes(self, decision_id: str) -> list[Outcome]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_OUTCOMES} FROM outcomes WHERE decision_id = ? ORDER BY rowid",
                (decision_id,),
            ).fetchall()
        return [outcome_from_row(row, datetime.fromisoformat) for row in rows]

    def credit(self, decision_id: str, reward: float) -> bool:
        reward = check_finite("reward", reward)
        with self._lock:
            # fetchall steps the statement to its end, which commits it.
            rows = self._conn.execute(
                "UPDATE decisions SET credits = credits + 1, reward = reward + ? "
                "WHERE decision_id = ? RETURNING credits",
                (reward, decision_id),
            ).fetchall()
        if not rows:
            raise NotFound("decision", decision_id)
        return bool(rows[0][0] == 1)

    def credited_reward(self, decision_id: str) -> float | None:
        credited, reward = self._flags(decision_id, "credited, reward")
        return float(reward) if credited else None

    def close_window(self, decision_id: str) -> bool:
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE decisions SET window_closed = 1 "
                "WHERE decision_id = ? AND window_closed = 0",
                (decision_id,),
            )
        if cursor.rowcount == 1:
            return True
        self._flags(decision_id, "window_closed")  # NotFound for an unknown decision
        return False

    def window_closed(self, decision_id: str) -> bool:
        (closed,) = self._flags(decision_id, "window_closed")
        return bool(closed)

    def due_windows(self, now: datetime, limit: int) -> list[Decision]:
        due = utc_text(utc(now, "now"))
        with self._lock:
            # The conditions match decisions_open_windows, so SQLite reads only open windows.
            rows = self._conn.execute(
                f"SELECT {_DECISIONS} FROM decisions "
                "WHERE window_closed = 0 AND attribution_closes_at <= ? "
                "ORDER BY attribution_closes_at, rowid LIMIT ?",
                (due, check_limit(limit)),
            ).fetchall()
        return [decision_from_row(row, datetime.fromisoformat) for row in rows]

    def count_due_windows(self, now: datetime) -> int:
        due = utc_text(utc(now, "now"))
        with self._lock:
            # The same conditions as due_windows: counted from decisions_open_windows alone.
            (count,) = self._conn.execute(
                "SELECT COUNT(*) FROM decisions "
                "WHERE window_closed = 0 AND attribution_closes_at <= ?",
                (due,),
            ).fetchone()
        return int(count)

    def count_decisions(self) -> int:
        with self._lock:
            (count,) = self._conn.execute("SELECT COUNT(*) FROM decisions").fetchone()
        return int(count)

    def iter_decisions(self, since: datetime | None = None) -> Iterator[Decision]:
        # Pages by rowid, taking the lock per page, so a long report neither holds
        # every row in memory nor blocks the decisions being made meanwhile.
        # ``since`` is a filter, not an index: history is read once per report. Without
        # it the bound is the empty text, which every moment's text sorts after.
        start = "" if since is None else utc_text(utc(since, "since"))
        for row in self._pages(
            f"SELECT rowid, {_DECISIONS} FROM decisions "
            "WHERE rowid > ? AND decided_at >= ? ORDER BY rowid LIMIT ?",
            start,
        ):
            yield decision_from_row(row, datetime.fromisoformat)

    def iter_outcomes(self) -> Iterator[Outcome]:
        for row in self._pages(
            f"SELECT rowid, {_OUTCOMES} FROM outcomes WHERE rowid > ? ORDER BY rowid LIMIT ?"
        ):
            yield outcome_from_row(row, datetime.fromisoformat)

    def record_holdout_change(self, at: datetime, percent: float) -> None:
        row = (utc_text(utc(at, "at")), check_finite("percent", percent))
        with self._lock:
            self._conn.execute("INSERT INTO holdout_changes (at, percent) VALUES (?, ?)", row)

    def holdout_changes(self) -> list[tuple[datetime, float]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT at, percent FROM holdout_changes ORDER BY at, rowid"
            ).fetchall()
        return [(datetime.fromisoformat(at), float(percent)) for at, percent in rows]

    def close(self) -> None:
        """Release the database file."""
        with self._lock:
            self._conn.close()

    def _select_row(self, column: str, value: str) -> tuple[Any, ...] | None:
        """The row of the decision whose ``column`` is ``value``; the caller holds the lock.

        Callers decode it after releasing the lock, so other threads need not wait.
        """
        row: tuple[Any, ...] | None = self._conn.execute(
            f"SELECT {_DECISIONS} FROM decisions WHERE {column} = ?", (value,)
        ).fetchone()
        return row

    def _pages(self, query: str, *params: object) -> Iterator[tuple[Any, ...]]:
        """The rows of ``query`` page by page, without their leading rowid.

        ``query`` selects the rowid first and takes the last rowid seen, then
        ``params``, then the page size.
        """
        last = 0
        while True:
            with self._lock:
                rows = self._conn.execute(query, (last, *params, _PAGE)).fetchall()
            if not rows:
                return
            for row in rows:
                yield tuple(row[1:])
            last = rows[-1][0]

    def _flags(self, decision_id: str, columns: str) -> tuple[Any, ...]:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {columns} FROM decisions WHERE decision_id = ?", (decision_id,)
            ).fetchone()
        if row is None:
            raise NotFound("decision", decision_id)
        return tuple(row)


def _check_columns(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a file whose ``decisions`` table an earlier Nudge wrote with other columns.

    ``CREATE TABLE IF NOT EXISTS`` leaves such a table as it is, and every write
    would then fail with a message about a column, far from the cause.
    """
    columns = {row[1] for row in conn.execute("PRAGMA table_xinfo(decisions)")}
    if not {*DECISION_COLUMNS, "credits", "credited", "reward", "window_closed"} <= columns:
        raise Unavailable(
            f"{path} holds a decision log in an older layout; move it away to start a new log"
        )
