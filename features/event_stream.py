"""The stream of customer events that journeys consume: append once, read in order from an offset.

Every accepted event gets the next offset; a consumer (the journey runner)
keeps the offset it has handled, so after a restart it goes on where it
stopped. The same ``event_id`` appended twice is stored once. Events are kept in
the order they arrived, not the order they happened: a late event is still
read, and it carries its own ``occurred_at``.

>>> import tempfile, pathlib
>>> from datetime import datetime, UTC
>>> from features.sql import SQLiteDatabase
>>> stream = EventStream(SQLiteDatabase(pathlib.Path(tempfile.mkdtemp()) / "events.db"))
>>> at = datetime(2026, 12, 1, 9, tzinfo=UTC)
>>> stream.append([CustomerEvent("e1", "c1", "add_to_cart", at, {"cart_value": 42.0})])
1
>>> stream.append([CustomerEvent("e1", "c1", "add_to_cart", at, {"cart_value": 42.0})])
0
>>> [(e.offset, e.event_id, e.payload["cart_value"]) for e in stream.read(after=0)]
[(1, 'e1', 42.0)]
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from features.errors import InvalidRequest
from features.event_schemas import check_payload
from features.sql import SqlDatabase

__all__ = ["CustomerEvent", "EventStream", "StoredEvent", "check_event"]

MAX_ID_LENGTH = 128
MAX_PAYLOAD_BYTES = 16 * 1024


@dataclass(frozen=True)
class CustomerEvent:
    """Something a customer did (or a system did to them), as it arrives."""

    event_id: str
    customer_id: str
    type: str
    occurred_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredEvent(CustomerEvent):
    """An accepted event with its place in the stream."""

    offset: int = 0
    received_at: datetime | None = None


def _identifier(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_LENGTH:
        raise InvalidRequest(
            name, f"must be a non-empty string of at most {MAX_ID_LENGTH} characters", value
        )
    return value


def check_event(event: CustomerEvent, where: str = "") -> CustomerEvent:
    """``event`` if every field is well formed; else ``InvalidRequest`` naming the field.

    >>> from datetime import datetime
    >>> check_event(CustomerEvent("e1", "c1", "purchase", datetime(2026, 1, 1)), "events[3].")
    Traceback (most recent call last):
    ...
    features.errors.InvalidRequest: `events[3].occurred_at` must carry a time zone, \
got '2026-01-01T00:00:00'
    """
    _identifier(event.event_id, f"{where}event_id")
    _identifier(event.customer_id, f"{where}customer_id")
    _identifier(event.type, f"{where}type")
    if not isinstance(event.occurred_at, datetime):
        raise InvalidRequest(f"{where}occurred_at", "must be a date-time", event.occurred_at)
    if event.occurred_at.utcoffset() is None:
        # A naive time would be read in whichever zone the server runs in: guessing is wrong.
        raise InvalidRequest(
            f"{where}occurred_at", "must carry a time zone", event.occurred_at.isoformat()
        )
    if not isinstance(event.payload, Mapping):
        raise InvalidRequest(f"{where}payload", "must be a JSON object", event.payload)
    check_payload(event.type, event.payload, where)
    try:
        encoded = json.dumps(dict(event.payload), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidRequest(
            f"{where}payload", "must hold only JSON values (no NaN or infinity)"
        ) from error
    except RecursionError:
        raise InvalidRequest(f"{where}payload", "must not be nested this deep") from None
    if len(encoded) > MAX_PAYLOAD_BYTES:
        raise InvalidRequest(f"{where}payload", f"must encode to at most {MAX_PAYLOAD_BYTES} bytes")
    return event


_TABLES = {
    "sqlite": """
        CREATE TABLE IF NOT EXISTS customer_events (
            "offset" INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL UNIQUE,
            customer_id TEXT NOT NULL,
            type TEXT NOT NULL,
            occurred_at REAL NOT NULL,
            received_at REAL NOT NULL,
            payload TEXT NOT NULL
        )""",
    "postgres": """
        CREATE TABLE IF NOT EXISTS customer_events (
            "offset" BIGSERIAL PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            customer_id TEXT NOT NULL,
            type TEXT NOT NULL,
            occurred_at DOUBLE PRECISION NOT NULL,
            received_at DOUBLE PRECISION NOT NULL,
            payload TEXT NOT NULL
        )""",
}


_COLUMNS = '"offset", event_id, customer_id, type, occurred_at, received_at, payload'


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _stored(rows: Sequence[tuple[Any, ...]]) -> list[StoredEvent]:
    return [
        StoredEvent(
            event_id=event_id,
            customer_id=customer_id,
            type=kind,
            occurred_at=_moment(occurred),
            payload=json.loads(payload),
            offset=offset,
            received_at=_moment(received),
        )
        for offset, event_id, customer_id, kind, occurred, received, payload in rows
    ]


class EventStream:
    """Customer events in arrival order, in SQLite (embedded) or Postgres (scale mode)."""

    def __init__(self, db: SqlDatabase) -> None:
        self._db = db
        db.execute(_TABLES[db.dialect])
        db.execute(
            "CREATE INDEX IF NOT EXISTS customer_events_by_customer ON customer_events "
            "(customer_id)"
        )

    def append(self, events: Sequence[CustomerEvent], now: datetime | None = None) -> int:
        """Store ``events`` in one commit (each checked first); how many were new."""
        return len(self.append_new(events, now))

    def append_new(self, events: Sequence[CustomerEvent], now: datetime | None = None) -> set[str]:
        """Like :meth:`append`; the ids of the events that were new."""
        for i, event in enumerate(events):
            check_event(event, f"events[{i}]." if len(events) > 1 else "")
        received = (now or datetime.now(UTC)).timestamp()
        new: set[str] = set()
        with self._db.transaction():
            if self._db.dialect == "postgres":
                # Offsets must become visible in order: a consumer that has read offset 5
                # never looks below it again, so an offset 4 still uncommitted in another
                # worker's transaction would be skipped for good. One appender at a time
                # (readers are not blocked) makes commit order the offset order, as
                # SQLite's single writer does already.
                self._db.execute("LOCK TABLE customer_events IN EXCLUSIVE MODE")
            for event in events:
                if self._db.execute(
                    "INSERT INTO customer_events (event_id, customer_id, type, occurred_at, "
                    "received_at, payload) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (event_id) DO NOTHING",
                    (
                        event.event_id,
                        event.customer_id,
                        event.type,
                        event.occurred_at.timestamp(),
                        received,
                        json.dumps(dict(event.payload), allow_nan=False),
                    ),
                ):
                    new.add(event.event_id)
        return new

    def get(self, event_ids: Collection[str]) -> dict[str, StoredEvent]:
        """The stored events among ``event_ids``, by id, in one query (no ids: no query).

        What a repeated id was first stored with, to tell a retry from another event.
        """
        wanted = sorted(set(event_ids))
        if not wanted:
            return {}
        marks = ", ".join("?" * len(wanted))
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM customer_events WHERE event_id IN ({marks})", tuple(wanted)
        )
        return {event.event_id: event for event in _stored(rows)}

    def read(self, after: int, limit: int = 500) -> list[StoredEvent]:
        """Up to ``limit`` events with offsets above ``after``, in order."""
        rows = self._db.query(
            f'SELECT {_COLUMNS} FROM customer_events WHERE "offset" > ? ORDER BY "offset" LIMIT ?',
            (after, limit),
        )
        return _stored(rows)

    def last_offset(self) -> int:
        rows = self._db.query('SELECT MAX("offset") FROM customer_events')
        return int(rows[0][0] or 0)

    def count(self) -> int:
        return int(self._db.query("SELECT COUNT(*) FROM customer_events")[0][0])

    @property
    def db(self) -> SqlDatabase:
        """The database, for a writer whose rows must commit with the events (identity)."""
        return self._db

    def customers_merged(self, merged_id: str, into_id: str) -> None:
        """Move a merged customer's history to the customer it was merged into.

        Offsets stay as they are: a consumer that read these events under the old id
        has acted on them already, and re-reading them would act twice.
        """
        self._db.execute(
            "UPDATE customer_events SET customer_id = ? WHERE customer_id = ?", (into_id, merged_id)
        )

    def history(self, customer_id: str) -> list[StoredEvent]:
        """A customer's events in arrival order."""
        rows = self._db.query(
            f'SELECT {_COLUMNS} FROM customer_events WHERE customer_id = ? ORDER BY "offset"',
            (customer_id,),
        )
        return _stored(rows)

    def close(self) -> None:
        self._db.close()
