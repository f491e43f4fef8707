"""Ad audiences as two states: what each audience should contain, and what the network confirmed.

Every membership row holds both: ``desired`` (the journeys, segments and
removal rules want the customer in) and ``sent`` (the ad network confirmed the
last add or remove we sent). A sync sends exactly the difference, in batches
that are written down *before* they are sent, so a sync that crashes leaves
its batches open and the next sync resends them with the same batch id (which
the network dedupes) before planning anything new. Identifiers are kept only
as SHA-256 hashes, never raw; a remove goes out with the hashes its add used,
so a customer who changes address is still removed.

>>> import tempfile, pathlib
>>> from datetime import UTC, datetime
>>> from features.sql import SQLiteDatabase
>>> store = AudienceStore(SQLiteDatabase(pathlib.Path(tempfile.mkdtemp()) / "a.db"))
>>> at = datetime(2026, 12, 1, tzinfo=UTC)
>>> store.set_identity("c1", {"em": "ab" * 32}, at)
>>> store.want("retargeting", "c1", at, "journey:cart")
True
>>> [batch.op for batch in store.plan(store.begin_sync(at), "retargeting", 100, at)]
['add']
>>> store.summary()[0]["desired"], store.summary()[0]["confirmed"]
(1, 0)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from features.errors import InvalidRequest
from features.sql import SqlDatabase

__all__ = ["AudienceStore", "Batch", "BatchMember", "SyncCounts"]

Op = Literal["add", "remove"]

_TABLES = (
    """CREATE TABLE IF NOT EXISTS audience_members (
        audience TEXT NOT NULL, customer_id TEXT NOT NULL,
        desired INTEGER NOT NULL, reason TEXT NOT NULL, changed_at TEXT NOT NULL,
        sent INTEGER NOT NULL DEFAULT 0, sent_ids TEXT, sent_at TEXT,
        PRIMARY KEY (audience, customer_id))""",
    """CREATE TABLE IF NOT EXISTS audience_identities (
        customer_id TEXT PRIMARY KEY, ids TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS audience_batches (
        batch_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, sync_id INTEGER NOT NULL,
        audience TEXT NOT NULL, op TEXT NOT NULL, members TEXT NOT NULL,
        status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, error TEXT,
        created_at TEXT NOT NULL, sent_at TEXT)""",
    """CREATE TABLE IF NOT EXISTS audience_in_flight (
        audience TEXT NOT NULL, customer_id TEXT NOT NULL, batch_id TEXT NOT NULL,
        PRIMARY KEY (audience, customer_id))""",
    """CREATE TABLE IF NOT EXISTS audience_syncs (
        sync_id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT)""",
    """CREATE TABLE IF NOT EXISTS audience_sync_results (
        sync_id INTEGER NOT NULL, audience TEXT NOT NULL, adds INTEGER NOT NULL,
        removes INTEGER NOT NULL, failures INTEGER NOT NULL, skipped INTEGER NOT NULL,
        PRIMARY KEY (sync_id, audience))""",
    """CREATE TABLE IF NOT EXISTS audience_buyers (
        customer_id TEXT PRIMARY KEY, purchased_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS audience_cursor (
        name TEXT PRIMARY KEY, position BIGINT NOT NULL)""",
)


@dataclass(frozen=True)
class BatchMember:
    customer_id: str
    ids: Mapping[str, str]
    """Hashed identifiers by the network's key (``em``, ``ph``)."""


@dataclass(frozen=True)
class Batch:
    """Adds or removes for one audience, with the id the network dedupes on."""

    batch_id: str
    sync_id: int
    audience: str
    op: Op
    members: tuple[BatchMember, ...]
    attempts: int = 0


@dataclass
class SyncCounts:
    """One sync's work on one audience: members confirmed added/removed, failed, skipped."""

    adds: int = 0
    removes: int = 0
    failures: int = 0
    skipped: int = 0
    """Wanted, but no hashed identifier is known yet: planned again at the next sync."""


def _text(at: datetime) -> str:
    if at.utcoffset() is None:
        raise InvalidRequest("at", "must be a time-zone-aware datetime", at)
    return at.isoformat()


class AudienceStore:
    """Desired and confirmed membership, batches, the sync log and hashed identities."""

    def __init__(self, db: SqlDatabase) -> None:
        self.db = db
        for statement in _TABLES:
            db.execute(statement)

    # -- desired membership -------------------------------------------------------------

    def want(self, audience: str, customer_id: str, at: datetime, reason: str) -> bool:
        """The customer should be in ``audience``; True when that changed the desired state."""
        return self._desire(audience, customer_id, True, at, reason)

    def drop(self, audience: str, customer_id: str, at: datetime, reason: str) -> bool:
        """The customer should not be in ``audience``; True when that changed anything."""
        return self._desire(audience, customer_id, False, at, reason)

    def drop_everywhere(
        self, customer_id: str, at: datetime, reason: str, audiences: Sequence[str] | None = None
    ) -> list[str]:
        """Drop the customer from every audience (or those named); the audiences changed."""
        rows = self.db.query(
            "SELECT audience FROM audience_members WHERE customer_id = ? AND desired = 1",
            (customer_id,),
        )
        changed = []
        for (audience,) in rows:
            if (audiences is None or audience in audiences) and self.drop(
                audience, customer_id, at, reason
            ):
                changed.append(audience)
        return changed

    def _desire(
        self, audience: str, customer_id: str, desired: bool, at: datetime, reason: str
    ) -> bool:
        if not audience or not customer_id:
            raise InvalidRequest("audience", "and customer_id must be non-empty", audience)
        flag = int(desired)
        with self.db.transaction():
            rows = self.db.query(
                "SELECT desired FROM audience_members WHERE audience = ? AND customer_id = ?",
                (audience, customer_id),
            )
            if rows and rows[0][0] == flag:
                return False
            if not rows and not desired:
                return False  # never wanted, never sent: nothing to remove
            self.db.execute(
                "INSERT INTO audience_members (audience, customer_id, desired, reason, changed_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (audience, customer_id) DO UPDATE SET"
                " desired = excluded.desired, reason = excluded.reason,"
                " changed_at = excluded.changed_at",
                (audience, customer_id, flag, reason, _text(at)),
            )
            return True

    def desired(self, audience: str) -> set[str]:
        rows = self.db.query(
            "SELECT customer_id FROM audience_members WHERE audience = ? AND desired = 1",
            (audience,),
        )
        return {row[0] for row in rows}

    def confirmed(self, audience: str) -> set[str]:
        """Customers the network confirmed in the audience (last add acknowledged)."""
        rows = self.db.query(
            "SELECT customer_id FROM audience_members WHERE audience = ? AND sent = 1",
            (audience,),
        )
        return {row[0] for row in rows}

    def audiences(self) -> list[str]:
        rows = self.db.query("SELECT DISTINCT audience FROM audience_members ORDER BY audience")
        return [row[0] for row in rows]

    # -- identities and buyers ----------------------------------------------------------

    def set_identity(self, customer_id: str, ids: Mapping[str, str], at: datetime) -> None:
        """Merge hashed identifiers into the customer's (a new address replaces the old)."""
        with self.db.transaction():
            merged = {**self.identity(customer_id), **ids}
            self.db.execute(
                "INSERT INTO audience_identities (customer_id, ids, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (customer_id) DO UPDATE SET ids = excluded.ids,"
                " updated_at = excluded.updated_at",
                (customer_id, json.dumps(merged, sort_keys=True), _text(at)),
            )

    def identity(self, customer_id: str) -> dict[str, str]:
        rows = self.db.query(
            "SELECT ids FROM audience_identities WHERE customer_id = ?", (customer_id,)
        )
        return dict(json.loads(rows[0][0])) if rows else {}

    def record_purchase(self, customer_id: str, at: datetime) -> None:
        self.db.execute(
            "INSERT INTO audience_buyers (customer_id, purchased_at) VALUES (?, ?)"
            " ON CONFLICT (customer_id) DO UPDATE SET purchased_at = excluded.purchased_at",
            (customer_id, _text(at)),
        )

    def last_purchase(self, customer_id: str) -> datetime | None:
        rows = self.db.query(
            "SELECT purchased_at FROM audience_buyers WHERE customer_id = ?", (customer_id,)
        )
        return datetime.fromisoformat(rows[0][0]) if rows else None

    def cursor(self, name: str) -> int:
        rows = self.db.query("SELECT position FROM audience_cursor WHERE name = ?", (name,))
        return int(rows[0][0]) if rows else 0

    def set_cursor(self, name: str, position: int) -> None:
        self.db.execute(
            "INSERT INTO audience_cursor (name, position) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            (name, position),
        )

    # -- batches --------------------------------------------------------------------------

    def begin_sync(self, at: datetime) -> int:
        with self.db.transaction():
            rows = self.db.query("SELECT MAX(sync_id) FROM audience_syncs")
            sync_id = int(rows[0][0] or 0) + 1
            self.db.execute(
                "INSERT INTO audience_syncs (sync_id, started_at) VALUES (?, ?)",
                (sync_id, _text(at)),
            )
        return sync_id

    def finish_sync(self, sync_id: int, counts: Mapping[str, SyncCounts], at: datetime) -> None:
        with self.db.transaction():
            for audience, c in counts.items():
                self.db.execute(
                    "INSERT INTO audience_sync_results (sync_id, audience, adds, removes,"
                    " failures, skipped) VALUES (?, ?, ?, ?, ?, ?)",
                    (sync_id, audience, c.adds, c.removes, c.failures, c.skipped),
                )
            self.db.execute(
                "UPDATE audience_syncs SET finished_at = ? WHERE sync_id = ?", (_text(at), sync_id)
            )

    def open_batches(self) -> list[Batch]:
        """Batches written but never confirmed nor given up on, oldest first: resend these."""
        rows = self.db.query(
            "SELECT batch_id, sync_id, audience, op, members, attempts FROM audience_batches"
            " WHERE status = 'open' ORDER BY seq"
        )
        return [_batch(row) for row in rows]

    def plan(self, sync_id: int, audience: str, batch_size: int, at: datetime) -> tuple[Batch, ...]:
        """Write the batches that close the gap between desired and confirmed; removes first.

        Members already in an open batch wait for it. A wanted customer with no
        hashed identifier is not planned (see :meth:`unplannable`).
        """
        if batch_size < 1:
            raise InvalidRequest("batch_size", "must be at least 1", batch_size)
        with self.db.transaction():
            rows = self.db.query(
                "SELECT m.customer_id, m.desired, m.sent_ids, i.ids FROM audience_members m"
                " LEFT JOIN audience_identities i ON i.customer_id = m.customer_id"
                " WHERE m.audience = ? AND m.desired <> m.sent AND NOT EXISTS (SELECT 1 FROM"
                " audience_in_flight f WHERE f.audience = m.audience"
                " AND f.customer_id = m.customer_id) ORDER BY m.customer_id",
                (audience,),
            )
            removes = [BatchMember(c, json.loads(sent)) for c, d, sent, _ in rows if not d and sent]
            adds = [BatchMember(c, json.loads(ids)) for c, d, _, ids in rows if d and ids]
            seq = int(self.db.query("SELECT COUNT(*) FROM audience_batches")[0][0])
            batches: list[Batch] = []
            for op, members in (("remove", removes), ("add", adds)):
                for start in range(0, len(members), batch_size):
                    chunk = tuple(members[start : start + batch_size])
                    seq += 1
                    batch = Batch(f"s{sync_id}.{seq}", sync_id, audience, op, chunk)  # type: ignore[arg-type]
                    self._write(batch, seq, at)
                    batches.append(batch)
        return tuple(batches)

    def unplannable(self, audience: str) -> int:
        """Wanted, not yet sent, and no hashed identifier known for them."""
        rows = self.db.query(
            "SELECT COUNT(*) FROM audience_members m WHERE m.audience = ? AND m.desired = 1"
            " AND m.sent = 0 AND NOT EXISTS (SELECT 1 FROM audience_identities i"
            " WHERE i.customer_id = m.customer_id)",
            (audience,),
        )
        return int(rows[0][0])

    def _write(self, batch: Batch, seq: int, at: datetime) -> None:
        members = [{"customer_id": m.customer_id, "ids": dict(m.ids)} for m in batch.members]
        self.db.execute(
            "INSERT INTO audience_batches (batch_id, seq, sync_id, audience, op, members,"
            " status, created_at) VALUES (?, ?, ?, ?, ?, ?, 'open', ?)",
            (
                batch.batch_id,
                seq,
                batch.sync_id,
                batch.audience,
                batch.op,
                json.dumps(members),
                _text(at),
            ),
        )
        self.db.executemany(
            "INSERT INTO audience_in_flight (audience, customer_id, batch_id) VALUES (?, ?, ?)",
            [(batch.audience, m.customer_id, batch.batch_id) for m in batch.members],
        )

    def confirm(self, batch: Batch, at: datetime) -> None:
        """The network accepted the batch: its members' confirmed state follows it."""
        with self.db.transaction():
            for member in batch.members:
                if batch.op == "add":
                    self.db.execute(
                        "UPDATE audience_members SET sent = 1, sent_ids = ?, sent_at = ?"
                        " WHERE audience = ? AND customer_id = ?",
                        (
                            json.dumps(dict(member.ids)),
                            _text(at),
                            batch.audience,
                            member.customer_id,
                        ),
                    )
                else:
                    self.db.execute(
                        "UPDATE audience_members SET sent = 0, sent_ids = NULL, sent_at = ?"
                        " WHERE audience = ? AND customer_id = ?",
                        (_text(at), batch.audience, member.customer_id),
                    )
            self._close(batch, "sent", None, at)

    def failed(self, batch: Batch, error: str, *, permanent: bool, at: datetime) -> None:
        """A send failed: a transient failure keeps the batch open (resent, same id, next
        sync); a permanent one closes it, so its members are planned afresh."""
        with self.db.transaction():
            if permanent:
                self._close(batch, "failed", error, at)
            else:
                self.db.execute(
                    "UPDATE audience_batches SET attempts = attempts + 1, error = ?"
                    " WHERE batch_id = ?",
                    (error, batch.batch_id),
                )

    def _close(self, batch: Batch, status: str, error: str | None, at: datetime) -> None:
        self.db.execute(
            "UPDATE audience_batches SET status = ?, error = ?, attempts = attempts + 1,"
            " sent_at = ? WHERE batch_id = ?",
            (status, error, _text(at), batch.batch_id),
        )
        self.db.execute("DELETE FROM audience_in_flight WHERE batch_id = ?", (batch.batch_id,))

    # -- the log ------------------------------------------------------------------------

    def summary(self) -> list[dict[str, Any]]:
        """Per audience: desired size, confirmed size, and the members still to add/remove."""
        rows = self.db.query(
            "SELECT audience, SUM(desired), SUM(sent),"
            " SUM(CASE WHEN desired = 1 AND sent = 0 THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN desired = 0 AND sent = 1 THEN 1 ELSE 0 END)"
            " FROM audience_members GROUP BY audience ORDER BY audience"
        )
        return [
            {
                "audience": a,
                "desired": int(d or 0),
                "confirmed": int(s or 0),
                "to_add": int(p or 0),
                "to_remove": int(r or 0),
            }
            for a, d, s, p, r in rows
        ]

    def syncs(self) -> list[dict[str, Any]]:
        """The sync log: per sync and audience, adds, removes, failures and skipped members."""
        rows = self.db.query(
            "SELECT s.sync_id, s.started_at, s.finished_at, r.audience, r.adds, r.removes,"
            " r.failures, r.skipped FROM audience_syncs s JOIN audience_sync_results r"
            " ON r.sync_id = s.sync_id ORDER BY s.sync_id, r.audience"
        )
        keys = ("sync_id", "started_at", "finished_at", "audience", "adds", "removes")
        return [
            {**dict(zip(keys, row[:6], strict=True)), "failures": row[6], "skipped": row[7]}
            for row in rows
        ]

    def batches(self) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT batch_id, sync_id, audience, op, members, status, attempts, error"
            " FROM audience_batches ORDER BY seq"
        )
        return [
            {
                "batch_id": b,
                "sync_id": s,
                "audience": a,
                "op": op,
                "size": len(json.loads(m)),
                "status": st,
                "attempts": n,
                "error": e,
            }
            for b, s, a, op, m, st, n, e in rows
        ]

    def close(self) -> None:
        self.db.close()


def _batch(row: tuple[Any, ...]) -> Batch:
    batch_id, sync_id, audience, op, members, attempts = row
    parsed = tuple(BatchMember(m["customer_id"], m["ids"]) for m in json.loads(members))
    return Batch(batch_id, int(sync_id), audience, op, parsed, int(attempts))
