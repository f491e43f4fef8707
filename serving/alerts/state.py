"""Which alerts are open, kept in SQLite so a restart neither forgets nor repeats them.

Opening and resolving are single conditional statements, so when several
processes share the file exactly one of them wins each change (and notifies).
Every announced event is also kept, with whether the webhook took it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from serving.alerts.types import AlertEvent, AlertStatus, Finding

__all__ = ["AlertStateStore", "RecordedEvent"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    key         TEXT PRIMARY KEY,
    rule        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    opened_at   TEXT NOT NULL,
    resolved_at TEXT,
    summary     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_events (
    key       TEXT NOT NULL,
    status    TEXT NOT NULL,
    at        TEXT NOT NULL,
    summary   TEXT NOT NULL,
    details   TEXT NOT NULL,
    delivered INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class RecordedEvent:
    key: str
    status: AlertStatus
    at: datetime
    summary: str
    delivered: bool
    """Whether every notifier (the webhook, when one is set) took it."""


class AlertStateStore:
    """Open and closed alerts, and every event announced, in one SQLite file.

    >>> import tempfile
    >>> from datetime import UTC
    >>> now = datetime(2024, 5, 1, tzinfo=UTC)
    >>> finding = Finding("stale_features", "profile", True, "old")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     store = AlertStateStore(Path(tmp) / "alerts.db")
    ...     first, again = store.open(finding, now), store.open(finding, now)
    ...     print(first, again, store.open_keys(), store.resolve(finding.key, now, "fresh"))
    ...     store.close()
    True False {'stale_features:profile'} True
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=10.0
        )
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(_SCHEMA)

    def open_keys(self) -> set[str]:
        """The keys of the alerts open now."""
        with self._lock:
            rows = self._conn.execute("SELECT key FROM alerts WHERE status = 'open'").fetchall()
        return {key for (key,) in rows}

    def open(self, finding: Finding, at: datetime) -> bool:
        """Mark the finding's alert open; True only if it was not open (so: notify)."""
        with self._lock:
            cursor = self._conn.execute(
                "INSERT INTO alerts (key, rule, subject, status, opened_at, summary) "
                "VALUES (?, ?, ?, 'open', ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET status = 'open', opened_at = excluded.opened_at, "
                "resolved_at = NULL, summary = excluded.summary WHERE alerts.status = 'closed'",
                (finding.key, finding.rule, finding.subject, at.isoformat(), finding.summary),
            )
        return cursor.rowcount == 1

    def resolve(self, key: str, at: datetime, summary: str) -> bool:
        """Mark the alert closed; True only if it was open (so: announce the resolution)."""
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE alerts SET status = 'closed', resolved_at = ?, summary = ? "
                "WHERE key = ? AND status = 'open'",
                (at.isoformat(), summary, key),
            )
        return cursor.rowcount == 1

    def record(self, event: AlertEvent, delivered: bool) -> None:
        """Keep an announced event, and whether it reached every notifier."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO alert_events (key, status, at, summary, details, delivered) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    event.key,
                    event.status,
                    event.at.isoformat(),
                    event.summary,
                    json.dumps(dict(event.details), sort_keys=True),
                    int(delivered),
                ),
            )

    def history(self) -> list[RecordedEvent]:
        """Every announced event, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT key, status, at, summary, delivered FROM alert_events ORDER BY rowid"
            ).fetchall()
        return [
            RecordedEvent(key, status, datetime.fromisoformat(at), summary, bool(delivered))
            for key, status, at, summary, delivered in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
