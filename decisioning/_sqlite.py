"""The one way Nudge opens its embedded SQLite database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["connect"]


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode, so each statement is its own durable transaction.

    The connection is shared between threads (callers guard it with a lock): WAL
    lets readers in other processes proceed during a write, and
    ``synchronous=NORMAL`` keeps every commit across a process crash (only a
    power loss can drop the last few) at a fraction of the cost of a sync per
    commit. ``busy_timeout`` lets the log and the state store share one file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn
