"""Where decisions, their outcomes and the policy's learned state are kept.

Small protocols, one per backend concern, so that the embedded SQLite stores
and the scale-mode Postgres (log) and Redis (state) ones are interchangeable.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from decisioning.types import Decision, Outcome

__all__ = ["DecisionLog", "PolicyStateStore"]


class DecisionLog(Protocol):
    """The decision and outcome log: the bandit feedback every report and evaluation reads.

    Besides the records it keeps, per decision, the reward credited so far and
    whether its attribution window has been closed, so that each decision
    teaches the policy exactly once per change, from any number of processes.

    >>> import pathlib, tempfile
    >>> from decisioning.sqlite_log import SQLiteDecisionLog
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     log: DecisionLog = SQLiteDecisionLog(pathlib.Path(tmp) / "nudge.db")
    ...     print(log.count_decisions())
    ...     log.close()
    0
    """

    def transaction(self) -> AbstractContextManager[None]:
        """A block whose writes commit together, where the backend gains from it (a batch)."""
        ...

    def record_decision(self, decision: Decision) -> Decision:
        """Keep ``decision`` and return it.

        If its ``idempotency_key`` is already recorded, nothing is written and the
        decision recorded under that key is returned instead. A decision id
        already recorded raises ``Conflict``.
        """
        ...

    def find_idempotent(self, idempotency_key: str) -> Decision | None:
        """The decision recorded under ``idempotency_key``, or None."""
        ...

    def get_decision(self, decision_id: str) -> Decision:
        """The recorded decision, or ``NotFound("decision", decision_id)``."""
        ...

    def record_outcome(self, outcome: Outcome) -> bool:
        """Keep ``outcome``; False, writing nothing, when its ``outcome_id`` is already recorded."""
        ...

    def get_outcome(self, outcome_id: str) -> Outcome | None:
        """The outcome recorded under ``outcome_id``, or None."""
        ...

    def outcomes(self, decision_id: str) -> list[Outcome]:
        """The decision's outcomes in the order they were recorded."""
        ...

    def credit(self, decision_id: str, reward: float) -> bool:
        """Add ``reward`` to the decision's credited reward, atomically.

        True when this was the decision's first credit (so the policy sees the
        context for the first time), False for every later one.
        """
        ...

    def credited_reward(self, decision_id: str) -> float | None:
        """The reward credited so far, or None when nothing was credited yet."""
        ...

    def close_window(self, decision_id: str) -> bool:
        """Mark the attribution window closed; True only the first time, atomically."""
        ...

    def window_closed(self, decision_id: str) -> bool:
        """Whether :meth:`close_window` has been called for the decision."""
        ...

    def due_windows(self, now: datetime, limit: int) -> list[Decision]:
        """Up to ``limit`` decisions whose window closed by ``now`` and is not yet marked closed.

        Oldest first.
        """
        ...

    def count_due_windows(self, now: datetime) -> int:
        """How many decisions :meth:`due_windows` would return without a limit.

        The backlog of windows waiting to be finalised: monitoring watches it grow.
        """
        ...

    def count_decisions(self) -> int:
        """How many decisions are recorded."""
        ...

    def iter_decisions(self, since: datetime | None = None) -> Iterator[Decision]:
        """Every decision in the order it was recorded, for reports and evaluation.

        With ``since``, only those decided at or after it (a report of recent weeks
        need not decode years of history).
        """
        ...

    def iter_outcomes(self) -> Iterator[Outcome]:
        """Every outcome in the order it was recorded, for reports and evaluation."""
        ...

    def record_holdout_change(self, at: datetime, percent: float) -> None:
        """Remember that the holdout share became ``percent`` at ``at``."""
        ...

    def holdout_changes(self) -> list[tuple[datetime, float]]:
        """Every recorded holdout share, oldest first."""
        ...

    def close(self) -> None: ...


class PolicyStateStore(Protocol):
    """What each worker process has learned, under a policy key, as bytes.

    Each worker publishes only its own blob (so no two writers ever touch the
    same value) and reads everyone's: learning is shared without locks. Blobs
    are pickles written by Nudge alone, so the store must be writable by Nudge alone.

    >>> import pathlib, tempfile
    >>> from decisioning.sqlite_state import SQLitePolicyStateStore
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     store: PolicyStateStore = SQLitePolicyStateStore(pathlib.Path(tmp) / "nudge.db")
    ...     store.publish("policy", "worker-1", b"learned")
    ...     print(store.collect("policy"))
    ...     store.close()
    {'worker-1': b'learned'}
    """

    def publish(self, key: str, worker: str, blob: bytes) -> None:
        """Replace what ``worker`` has published under ``key``."""
        ...

    def collect(self, key: str) -> Mapping[str, bytes]:
        """Every worker's latest blob under ``key``."""
        ...

    def close(self) -> None: ...
