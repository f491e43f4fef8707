"""A policy's learned state in SQLite, optionally in the same file as the decision log."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from decisioning._sqlite import connect

__all__ = ["SQLitePolicyStateStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS policy_state (
    key        TEXT PRIMARY KEY,
    blob       BLOB NOT NULL,
    updated_at TEXT NOT NULL
);
"""


class SQLitePolicyStateStore:
    """Bytes under a key, each ``put`` committed before it returns.

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     store = SQLitePolicyStateStore(pathlib.Path(tmp) / "nudge.db")
    ...     store.put("policy", b"state")
    ...     print(store.get("policy"), store.get("other"))
    ...     store.close()
    b'state' None
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = connect(self.path)
        with self._lock:
            self._conn.executescript(_SCHEMA)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT blob FROM policy_state WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def put(self, key: str, blob: bytes) -> None:
        updated_at = datetime.now(UTC).isoformat(timespec="microseconds")
        with self._lock:
            self._conn.execute(
                "INSERT INTO policy_state (key, blob, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET blob = excluded.blob, "
                "updated_at = excluded.updated_at",
                (key, bytes(blob), updated_at),
            )

    def close(self) -> None:
        """Release the database file."""
        with self._lock:
            self._conn.close()
