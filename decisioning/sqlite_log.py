"""The decision and outcome log in one SQLite file: the embedded default."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from decisioning._sqlite import connect
from decisioning.types import ActionScore, Decision, Outcome
from features.errors import Conflict, InvalidRequest, NotFound

__all__ = ["SQLiteDecisionLog"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    decision_id    TEXT PRIMARY KEY,
    customer_id    TEXT NOT NULL,
    decided_at     TEXT NOT NULL,
    candidates     TEXT NOT NULL,
    action         TEXT NOT NULL,
    propensity     REAL NOT NULL,
    scores         TEXT NOT NULL,
    explored       INTEGER NOT NULL,
    policy_version TEXT NOT NULL,
    model_version  TEXT NOT NULL,
    features       TEXT NOT NULL,
    missing        TEXT NOT NULL,
    learned        INTEGER NOT NULL DEFAULT 0
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
CREATE INDEX IF NOT EXISTS outcomes_by_decision ON outcomes (decision_id);
"""

_DECISION_COLUMNS = (
    "decision_id, customer_id, decided_at, candidates, action, propensity, scores, explored, "
    "policy_version, model_version, features, missing"
)
_OUTCOME_COLUMNS = "outcome_id, decision_id, event, value, reward, occurred_at"
_PAGE = 1000


class SQLiteDecisionLog:
    """Keeps every decision and outcome in SQLite; each call is one committed transaction.

    One connection is shared by all threads behind a lock; SQLite itself makes
    :meth:`mark_learned` atomic across processes too. Floats are stored as
    IEEE doubles and in JSON by their shortest round-trip repr, so a decision
    reads back equal to the one written.

    >>> import pathlib, tempfile
    >>> from decisioning.types import ActionScore
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     log = SQLiteDecisionLog(pathlib.Path(tmp) / "nudge.db")
    ...     decision = Decision(
    ...         "d1", "c1", datetime(2024, 5, 1, 9, tzinfo=UTC), ("email",), "email", 1.0,
    ...         {"email": ActionScore(0.2, 0.2, 1.0)}, False, "uniform-random", "v1", {},
    ...     )
    ...     log.record_decision(decision)
    ...     print(log.get_decision("d1") == decision, log.mark_learned("d1"),
    ...           log.mark_learned("d1"))
    ...     log.close()
    True True False
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = connect(self.path)
        with self._lock:
            self._conn.executescript(_SCHEMA)

    def record_decision(self, decision: Decision) -> None:
        row = (
            decision.decision_id,
            decision.customer_id,
            _to_text(decision.decided_at, "decided_at"),
            json.dumps(list(decision.candidates)),
            decision.action,
            decision.propensity,
            json.dumps({a: _score_to_json(s) for a, s in decision.scores.items()}),
            int(decision.explored),
            decision.policy_version,
            decision.model_version,
            json.dumps(dict(decision.features)),
            json.dumps(list(decision.missing_features)),
        )
        try:
            with self._lock:
                self._conn.execute(
                    f"INSERT INTO decisions ({_DECISION_COLUMNS}) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
        except sqlite3.IntegrityError as err:
            raise Conflict(f"decision {decision.decision_id!r} is already recorded") from err

    def get_decision(self, decision_id: str) -> Decision:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE decision_id = ?",
                (decision_id,),
            ).fetchone()
        if row is None:
            raise NotFound("decision", decision_id)
        return _decision_from_row(row)

    def record_outcome(self, outcome: Outcome) -> bool:
        row = (
            outcome.outcome_id,
            outcome.decision_id,
            outcome.event,
            outcome.value,
            outcome.reward,
            _to_text(outcome.occurred_at, "occurred_at"),
            _to_text(datetime.now(UTC), "recorded_at"),
        )
        try:
            with self._lock:
                cursor = self._conn.execute(
                    f"INSERT INTO outcomes ({_OUTCOME_COLUMNS}, recorded_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (outcome_id) DO NOTHING",
                    row,
                )
        except sqlite3.IntegrityError as err:  # the foreign key: no such decision
            raise NotFound("decision", outcome.decision_id) from err
        return cursor.rowcount == 1

    def get_outcome(self, outcome_id: str) -> Outcome | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_OUTCOME_COLUMNS} FROM outcomes WHERE outcome_id = ?", (outcome_id,)
            ).fetchone()
        return None if row is None else _outcome_from_row(row)

    def mark_learned(self, decision_id: str) -> bool:
        with self._lock:
            # One conditional UPDATE is the atomic test-and-set, also across processes.
            cursor = self._conn.execute(
                "UPDATE decisions SET learned = 1 WHERE decision_id = ? AND learned = 0",
                (decision_id,),
            )
            if cursor.rowcount == 1:
                return True
            exists = self._conn.execute(
                "SELECT 1 FROM decisions WHERE decision_id = ?", (decision_id,)
            ).fetchone()
        if exists is None:
            raise NotFound("decision", decision_id)
        return False

    def count_decisions(self) -> int:
        with self._lock:
            (count,) = self._conn.execute("SELECT COUNT(*) FROM decisions").fetchone()
        return int(count)

    def outcomes(self, decision_id: str) -> list[Outcome]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_OUTCOME_COLUMNS} FROM outcomes WHERE decision_id = ? ORDER BY rowid",
                (decision_id,),
            ).fetchall()
        return [_outcome_from_row(row) for row in rows]

    def iter_decisions(self) -> Iterator[Decision]:
        # Pages by rowid, taking the lock per page, so a long report neither holds
        # every row in memory nor blocks the decisions being made meanwhile.
        last = 0
        while True:
            with self._lock:
                rows = self._conn.execute(
                    f"SELECT rowid, {_DECISION_COLUMNS} FROM decisions "
                    "WHERE rowid > ? ORDER BY rowid LIMIT ?",
                    (last, _PAGE),
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _decision_from_row(row[1:])
            last = rows[-1][0]

    def close(self) -> None:
        """Release the database file."""
        with self._lock:
            self._conn.close()


def _to_text(moment: datetime, field: str) -> str:
    # A fixed width (always microseconds, always UTC) keeps the text sortable.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidRequest(field, "must include a time zone", moment.isoformat())
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _score_to_json(score: ActionScore) -> dict[str, float]:
    return {"prior": score.prior, "mean": score.mean, "probability": score.probability}


def _decision_from_row(row: tuple[Any, ...]) -> Decision:
    return Decision(
        decision_id=row[0],
        customer_id=row[1],
        decided_at=datetime.fromisoformat(row[2]),
        candidates=tuple(json.loads(row[3])),
        action=row[4],
        propensity=row[5],
        scores={a: ActionScore(**s) for a, s in json.loads(row[6]).items()},
        explored=bool(row[7]),
        policy_version=row[8],
        model_version=row[9],
        features=json.loads(row[10]),
        missing_features=tuple(json.loads(row[11])),
    )


def _outcome_from_row(row: tuple[Any, ...]) -> Outcome:
    return Outcome(
        outcome_id=row[0],
        decision_id=row[1],
        event=row[2],
        value=row[3],
        reward=row[4],
        occurred_at=datetime.fromisoformat(row[5]),
    )
