"""Where each score trigger stands for each customer: last score, armed or not, crossings.

It lives in the journey store's database (SQLite, or Postgres in scale mode),
so a crossing and the journey entry it causes commit together, and a runner
restart neither forgets that a customer already crossed nor re-triggers them.

>>> from pathlib import Path
>>> from tempfile import mkdtemp
>>> from features.sql import SQLiteDatabase
>>> store = ScoreStateStore(SQLiteDatabase(Path(mkdtemp()) / "journeys.db"))
>>> store.get("winback", "c1") is None
True
>>> store.put("winback", "c1", ScoreState(0.7, armed=False, crossings=1, updated_at=0.0))
>>> store.get("winback", "c1")
ScoreState(score=0.7, armed=False, crossings=1, updated_at=0.0)
"""

from __future__ import annotations

from dataclasses import dataclass

from features.sql import SqlDatabase

__all__ = ["ScoreState", "ScoreStateStore"]

_REAL = {"sqlite": "REAL", "postgres": "DOUBLE PRECISION"}
_TABLE = """
CREATE TABLE IF NOT EXISTS journey_score_state (
    journey TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    score {real} NOT NULL,
    armed INTEGER NOT NULL,
    crossings INTEGER NOT NULL,
    updated_at {real} NOT NULL,
    PRIMARY KEY (journey, customer_id)
)
"""


@dataclass(frozen=True)
class ScoreState:
    """One customer's standing on one journey's score trigger.

    ``armed`` is whether a rise above the threshold starts the journey;
    ``crossings`` counts the rises that did (it names each entry, so one crossing
    enters once); ``updated_at`` is Unix seconds.
    """

    score: float
    armed: bool
    crossings: int
    updated_at: float


class ScoreStateStore:
    """``get`` / ``put`` of :class:`ScoreState` by journey and customer, in ``db``."""

    def __init__(self, db: SqlDatabase) -> None:
        self.db = db
        db.execute(_TABLE.format(real=_REAL[db.dialect]))

    def get(self, journey: str, customer_id: str) -> ScoreState | None:
        rows = self.db.query(
            "SELECT score, armed, crossings, updated_at FROM journey_score_state "
            "WHERE journey = ? AND customer_id = ?",
            (journey, customer_id),
        )
        if not rows:
            return None
        score, armed, crossings, updated_at = rows[0]
        return ScoreState(float(score), bool(armed), int(crossings), float(updated_at))

    def put(self, journey: str, customer_id: str, state: ScoreState) -> None:
        self.db.execute(
            "INSERT INTO journey_score_state "
            "(journey, customer_id, score, armed, crossings, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (journey, customer_id) DO UPDATE SET score = excluded.score, "
            "armed = excluded.armed, crossings = excluded.crossings, "
            "updated_at = excluded.updated_at",
            (
                journey,
                customer_id,
                state.score,
                int(state.armed),
                state.crossings,
                state.updated_at,
            ),
        )

    def counts(self, journey: str) -> dict[str, int]:
        """Customers ``armed`` and ``disarmed`` on ``journey``'s trigger."""
        rows = self.db.query(
            "SELECT armed, COUNT(*) FROM journey_score_state WHERE journey = ? GROUP BY armed",
            (journey,),
        )
        result = {"armed": 0, "disarmed": 0}
        for armed, n in rows:
            result["armed" if armed else "disarmed"] = int(n)
        return result
