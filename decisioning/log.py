"""Where decisions, their outcomes and the policy's learned state are kept.

Two small protocols, one per backend concern, so that the embedded SQLite
stores and the scale-mode Postgres/Redis ones are interchangeable.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from decisioning.types import Decision, Outcome

__all__ = ["DecisionLog", "PolicyStateStore"]


class DecisionLog(Protocol):
    """The decision and outcome log: the bandit feedback every report and evaluation reads.

    >>> import pathlib, tempfile
    >>> from decisioning.sqlite_log import SQLiteDecisionLog
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     log: DecisionLog = SQLiteDecisionLog(pathlib.Path(tmp) / "nudge.db")
    ...     print(log.count_decisions())
    ...     log.close()
    0
    """

    def record_decision(self, decision: Decision) -> None:
        """Keep ``decision``; a decision id already recorded raises ``Conflict``."""
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

    def mark_learned(self, decision_id: str) -> bool:
        """True only the first time for a decision, atomically, so the policy learns once."""
        ...

    def count_decisions(self) -> int:
        """How many decisions are recorded."""
        ...

    def outcomes(self, decision_id: str) -> list[Outcome]:
        """The decision's outcomes in the order they were recorded."""
        ...

    def iter_decisions(self) -> Iterator[Decision]:
        """Every decision in the order it was recorded, for reports and evaluation."""
        ...


class PolicyStateStore(Protocol):
    """Bytes under a key: where a policy's learned state survives a restart.

    The engine stores pickles here and loads them on start, so the store must be
    writable by Nudge alone.

    >>> import pathlib, tempfile
    >>> from decisioning.sqlite_state import SQLitePolicyStateStore
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     store: PolicyStateStore = SQLitePolicyStateStore(pathlib.Path(tmp) / "nudge.db")
    ...     print(store.get("policy"))
    ...     store.close()
    None
    """

    def get(self, key: str) -> bytes | None:
        """The blob last put under ``key``, or None."""
        ...

    def put(self, key: str, blob: bytes) -> None:
        """Replace what is stored under ``key``."""
        ...
