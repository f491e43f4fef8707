"""What each worker learned, in SQLite, optionally in the same file as the decision log."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from decisioning._sqlite import connect

__all__ = ["SQLitePolicyStateStore"]

# One row per (key, worker): a worker only ever replaces its own row, so
# workers never overwrite each other's learning.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS policy_snapshots (
    key        TEXT NOT NULL,
    worker     TEXT NOT NULL,
    blob       BLOB NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (key, worker)
);
"""


class SQLitePolicyStateStore:
    """Each worker's bytes under a key, each ``publish`` committed before it returns.

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     store = SQLitePolicyStateStore(pathlib.Path(tmp) / "nudge.db")
    ...     store.publish("policy", "w1", b"one")
    ...     store.publish("policy", "w2", b"two")
    ...     store.publish("policy", "w1", b"three")
    ...     print(store.collect("policy"), store.collect("other"))
    ...     store.close()
    {'w1': b'three', 'w2': b'two'} {}
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = connect(self.path)
        with self._lock:
            self._conn.executescript(_SCHEMA)

    def publish(self, key: str, worker: str, blob: bytes) -> None:
        updated_at = datetime.now(UTC).isoformat(timespec="microseconds")
        with self._lock:
            self._conn.execute(
                "INSERT INTO policy_snapshots (key, worker, blob, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key, worker) DO UPDATE SET blob = excluded.blob, "
                "updated_at = excluded.updated_at",
                (key, worker, bytes(blob), updated_at),
            )

    def collect(self, key: str) -> dict[str, bytes]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT worker, blob FROM policy_snapshots WHERE key = ? ORDER BY worker", (key,)
            ).fetchall()
        return {worker: bytes(blob) for worker, blob in rows}

    def close(self) -> None:
        """Release the database file."""
        with self._lock:
            self._conn.close()
