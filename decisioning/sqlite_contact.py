"""Contact profiles and reserved sends in SQLite: the embedded default :class:`ContactStore`."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from decisioning._sqlite import connect
from decisioning.contact_rules import FrequencyCap
from decisioning.contact_store import (
    SUPPRESSION_REASONS,
    ChannelState,
    ConsentState,
    ContactProfile,
    Send,
)
from decisioning.slots import load_zone
from features.errors import InvalidRequest

__all__ = ["SQLiteContactStore"]

# Times are integer microseconds since the epoch, so window bounds compare exactly.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS contact_channels (
    customer_id   TEXT NOT NULL,
    channel       TEXT NOT NULL,
    consent       TEXT NOT NULL DEFAULT 'unknown',
    consent_at    INTEGER,
    suppressed    TEXT,
    suppressed_at INTEGER,
    reachable     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (customer_id, channel)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS contact_zones (
    customer_id TEXT PRIMARY KEY,
    time_zone   TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS contact_sends (
    decision_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    channel     TEXT NOT NULL,
    send_at     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS contact_sends_by_customer ON contact_sends (customer_id, send_at);
"""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _moment(micros: int | None) -> datetime | None:
    return None if micros is None else _EPOCH + timedelta(microseconds=micros)


def _check_moment(moment: object) -> datetime:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise InvalidRequest("at", "must be a time-zone-aware datetime", moment)
    return moment


class SQLiteContactStore:
    """A :class:`ContactStore` in one SQLite file (it may be the decision log's file).

    ``reserve`` runs inside ``BEGIN IMMEDIATE``, which takes the database's
    write lock before counting, so it is atomic across threads and processes
    alike. Sends further back than the longest cap window plus ``prune_slack``
    before a new reservation can no longer count and are deleted then;
    ``prune_slack`` must exceed how far a later reservation's send time can lie
    before an earlier one's (the slot horizon).

    >>> import pathlib, tempfile
    >>> from datetime import UTC, datetime, timedelta
    >>> cap = FrequencyCap(1, timedelta(days=1), "sms")
    >>> at = datetime(2024, 5, 1, 9, tzinfo=UTC)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     store = SQLiteContactStore(pathlib.Path(tmp) / "nudge.db")
    ...     first = store.reserve("c1", Send("d1", "sms", at), [cap])
    ...     second = store.reserve("c1", Send("d2", "sms", at + timedelta(hours=3)), [cap])
    ...     print(first, second.label if second else None, len(store.sends("c1")))
    ...     store.close()
    None sms cap 1 per day 1
    """

    def __init__(self, path: Path, *, prune_slack: timedelta = timedelta(days=7)) -> None:
        self.path = Path(path)
        self.prune_slack = prune_slack
        self._lock = threading.Lock()
        self._conn = connect(self.path)
        with self._lock:
            self._conn.executescript(_SCHEMA)

    def profile(self, customer_id: str) -> ContactProfile:
        with self._lock:
            rows = self._conn.execute(
                "SELECT channel, consent, suppressed, reachable, consent_at, suppressed_at "
                "FROM contact_channels WHERE customer_id = ?",
                (customer_id,),
            ).fetchall()
            zone = self._conn.execute(
                "SELECT time_zone FROM contact_zones WHERE customer_id = ?", (customer_id,)
            ).fetchone()
        channels = {
            row[0]: ChannelState(row[1], row[2], bool(row[3]), _moment(row[4]), _moment(row[5]))
            for row in rows
        }
        return ContactProfile(customer_id, channels, None if zone is None else zone[0])

    def set_consent(self, customer_id: str, channel: str, opted_in: bool, at: datetime) -> None:
        consent: ConsentState = "opted_in" if opted_in else "opted_out"
        micros = _micros(_check_moment(at))
        with self._lock:
            self._conn.execute(
                "INSERT INTO contact_channels (customer_id, channel, consent, consent_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (customer_id, channel) DO UPDATE SET "
                "consent = excluded.consent, consent_at = excluded.consent_at "
                "WHERE consent_at IS NULL OR consent_at <= excluded.consent_at",
                (customer_id, channel, consent, micros),
            )

    def suppress(self, customer_id: str, channel: str, reason: str, at: datetime) -> None:
        if reason not in SUPPRESSION_REASONS:
            raise InvalidRequest("reason", f"must be one of {SUPPRESSION_REASONS}", reason)
        micros = _micros(_check_moment(at))
        with self._lock:
            self._conn.execute(
                "INSERT INTO contact_channels (customer_id, channel, suppressed, suppressed_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (customer_id, channel) DO UPDATE SET "
                "suppressed = excluded.suppressed, suppressed_at = excluded.suppressed_at "
                "WHERE suppressed_at IS NULL OR suppressed_at <= excluded.suppressed_at",
                (customer_id, channel, reason, micros),
            )

    def set_reachable(self, customer_id: str, channel: str, reachable: bool) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO contact_channels (customer_id, channel, reachable) VALUES (?, ?, ?) "
                "ON CONFLICT (customer_id, channel) DO UPDATE SET reachable = excluded.reachable",
                (customer_id, channel, int(bool(reachable))),
            )

    def set_time_zone(self, customer_id: str, zone: str | None) -> None:
        if zone is not None:
            load_zone(zone, "time_zone")
        with self._lock:
            self._conn.execute(
                "INSERT INTO contact_zones (customer_id, time_zone) VALUES (?, ?) "
                "ON CONFLICT (customer_id) DO UPDATE SET time_zone = excluded.time_zone",
                (customer_id, zone),
            )

    def load_profiles(self, profiles: Iterable[ContactProfile]) -> int:
        batch = list(profiles)
        ids = [(profile.customer_id,) for profile in batch]
        zones = [(profile.customer_id, profile.time_zone) for profile in batch]
        channels = [
            (
                profile.customer_id,
                name,
                state.consent,
                None if state.consent_at is None else _micros(state.consent_at),
                state.suppressed,
                None if state.suppressed_at is None else _micros(state.suppressed_at),
                int(state.reachable),
            )
            for profile in batch
            for name, state in profile.channels.items()
        ]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("DELETE FROM contact_channels WHERE customer_id = ?", ids)
                self._conn.executemany(
                    "INSERT INTO contact_channels (customer_id, channel, consent, consent_at, "
                    "suppressed, suppressed_at, reachable) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    channels,
                )
                self._conn.executemany(
                    "INSERT INTO contact_zones (customer_id, time_zone) VALUES (?, ?) "
                    "ON CONFLICT (customer_id) DO UPDATE SET time_zone = excluded.time_zone",
                    zones,
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return len(batch)

    def sends(self, customer_id: str) -> list[Send]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT decision_id, channel, send_at FROM contact_sends "
                "WHERE customer_id = ? ORDER BY send_at, decision_id",
                (customer_id,),
            ).fetchall()
        return [Send(row[0], row[1], _EPOCH + timedelta(microseconds=row[2])) for row in rows]

    def reserve(
        self, customer_id: str, send: Send, caps: Sequence[FrequencyCap]
    ) -> FrequencyCap | None:
        at = _micros(send.send_at)
        checks = [
            (cap, _micros(send.send_at - cap.window), _micros(send.send_at + cap.window))
            for cap in caps
            if cap.active and cap.applies_to(send.channel)
        ]
        longest = max((cap.window for cap in caps if cap.active), default=timedelta(0))
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                blocked = self._reserve(customer_id, send, at, checks)
                if blocked is None:
                    self._conn.execute(
                        "DELETE FROM contact_sends WHERE customer_id = ? AND send_at < ?",
                        (customer_id, _micros(send.send_at - longest - self.prune_slack)),
                    )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return blocked

    def _reserve(
        self, customer_id: str, send: Send, at: int, checks: list[tuple[FrequencyCap, int, int]]
    ) -> FrequencyCap | None:
        if self._conn.execute(
            "SELECT 1 FROM contact_sends WHERE decision_id = ?", (send.decision_id,)
        ).fetchone():
            return None
        for cap, low, high in checks:
            if cap.channel is None:
                query = (
                    "SELECT COUNT(*) FROM contact_sends "
                    "WHERE customer_id = ? AND send_at > ? AND send_at < ?"
                )
                params: tuple[object, ...] = (customer_id, low, high)
            else:
                query = (
                    "SELECT COUNT(*) FROM contact_sends "
                    "WHERE customer_id = ? AND send_at > ? AND send_at < ? AND channel = ?"
                )
                params = (customer_id, low, high, cap.channel)
            (count,) = self._conn.execute(query, params).fetchone()
            assert cap.limit is not None  # only active caps are checked
            if count >= cap.limit:
                return cap
        self._conn.execute(
            "INSERT INTO contact_sends (decision_id, customer_id, channel, send_at) "
            "VALUES (?, ?, ?, ?)",
            (send.decision_id, customer_id, send.channel, at),
        )
        return None

    def release(self, decision_id: str) -> bool:
        with self._lock:
            cursor = self._conn.execute(
                "DELETE FROM contact_sends WHERE decision_id = ?", (decision_id,)
            )
        return cursor.rowcount > 0

    def close(self) -> None:
        with self._lock:
            self._conn.close()
