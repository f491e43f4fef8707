"""Where journeys keep what survives a restart: instances, timers, sends, profiles, offsets.

One schema over SQLite (embedded) or Postgres (scale mode), through
:class:`features.sql.SqlDatabase`. An instance is one customer's pass through one
journey; its ``wake_at`` is its timer, so a timer is a row and survives any
crash. Saving an instance checks its ``version`` (optimistic locking): two
runners that pick up the same instance cannot both move it on. The send
ledger is what makes a send happen once: a send is claimed (``sending``) in
its own commit before the channel is called and marked ``sent`` after.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from features.sql import SqlDatabase

__all__ = ["Instance", "InstanceStatus", "JourneyStore", "SendRecord", "SendStatus"]

InstanceStatus = Literal["active", "completed", "goal", "exited"]
SendStatus = Literal["scheduled", "sending", "retry", "sent", "blocked", "failed", "cancelled"]
FINAL_SEND_STATES = frozenset({"sent", "blocked", "failed", "cancelled"})


def _seconds(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True)
class Instance:
    """One customer in one journey: where they are, and when to look at them next.

    ``state`` is the instance's own memory as JSON values: the decisions its
    decide steps made, the events seen since entry, visits per step, the
    trigger's payload.
    """

    instance_id: str
    journey: str
    customer_id: str
    entered_at: datetime
    step_id: str | None
    wake_at: datetime | None
    status: InstanceStatus = "active"
    waiting_for: str | None = None
    state: Mapping[str, Any] = field(default_factory=dict)
    version: int = 0
    ended_at: datetime | None = None
    end_reason: str | None = None

    def moved(self, **changes: Any) -> Instance:
        return replace(self, **changes)


@dataclass(frozen=True)
class SendRecord:
    """One decision's send, from scheduled to its end (sent, blocked, failed or cancelled)."""

    decision_id: str
    instance_id: str
    customer_id: str
    step_id: str
    channel: str
    message: str
    send_at: datetime
    status: SendStatus = "scheduled"
    attempts: int = 0
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    in_doubt: int = 0
    """How many times a claimed send was found unconfirmed after a crash and sent again."""
    detail: str | None = None
    provider_id: str | None = None
    updated_at: datetime | None = None


_REAL = {"sqlite": "REAL", "postgres": "DOUBLE PRECISION"}
_TABLES = """
CREATE TABLE IF NOT EXISTS journey_instances (
    instance_id TEXT PRIMARY KEY,
    journey TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    status TEXT NOT NULL,
    step_id TEXT,
    wake_at {real},
    waiting_for TEXT,
    entered_at {real} NOT NULL,
    ended_at {real},
    end_reason TEXT,
    state TEXT NOT NULL,
    version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS journey_instances_due ON journey_instances (wake_at)
    WHERE status = 'active';
CREATE INDEX IF NOT EXISTS journey_instances_customer ON journey_instances (customer_id, journey);
CREATE TABLE IF NOT EXISTS journey_sends (
    decision_id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    message TEXT NOT NULL,
    send_at {real} NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    claimed_by TEXT,
    claimed_at {real},
    in_doubt INTEGER NOT NULL,
    detail TEXT,
    provider_id TEXT,
    updated_at {real}
);
CREATE INDEX IF NOT EXISTS journey_sends_instance ON journey_sends (instance_id);
CREATE TABLE IF NOT EXISTS journey_offsets (consumer TEXT PRIMARY KEY, last_offset BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS customer_attributes (
    customer_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (customer_id, name)
);
CREATE TABLE IF NOT EXISTS customer_addresses (
    customer_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    PRIMARY KEY (customer_id, channel)
);
"""

_INSTANCE_COLUMNS = (
    "instance_id, journey, customer_id, status, step_id, wake_at, waiting_for, entered_at, "
    "ended_at, end_reason, state, version"
)
_SEND_COLUMNS = (
    "decision_id, instance_id, customer_id, step_id, channel, message, send_at, status, "
    "attempts, claimed_by, claimed_at, in_doubt, detail, provider_id, updated_at"
)


def _instance(row: tuple[Any, ...]) -> Instance:
    (iid, journey, customer, status, step, wake, waiting, entered, ended, reason, state, ver) = row
    return Instance(
        instance_id=iid,
        journey=journey,
        customer_id=customer,
        entered_at=_moment(entered) or datetime.fromtimestamp(0, UTC),
        step_id=step,
        wake_at=_moment(wake),
        status=status,
        waiting_for=waiting,
        state=json.loads(state),
        version=int(ver),
        ended_at=_moment(ended),
        end_reason=reason,
    )


def _send(row: tuple[Any, ...]) -> SendRecord:
    return SendRecord(
        decision_id=row[0],
        instance_id=row[1],
        customer_id=row[2],
        step_id=row[3],
        channel=row[4],
        message=row[5],
        send_at=_moment(row[6]) or datetime.fromtimestamp(0, UTC),
        status=row[7],
        attempts=int(row[8]),
        claimed_by=row[9],
        claimed_at=_moment(row[10]),
        in_doubt=int(row[11]),
        detail=row[12],
        provider_id=row[13],
        updated_at=_moment(row[14]),
    )


class JourneyStore:
    """Journey state in one SQL database (see the module docstring)."""

    def __init__(self, db: SqlDatabase) -> None:
        self.db = db
        for statement in _TABLES.format(real=_REAL[db.dialect]).split(";"):
            if statement.strip():
                db.execute(statement)

    def transaction(self) -> Any:
        return self.db.transaction()

    # -- instances ----------------------------------------------------------------------

    def enter(self, instance: Instance) -> bool:
        """Store a new instance; False (writing nothing) when its id is already there."""
        return bool(
            self.db.execute(
                f"INSERT INTO journey_instances ({_INSTANCE_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (instance_id) DO NOTHING",
                self._instance_row(instance),
            )
        )

    @staticmethod
    def _instance_row(instance: Instance) -> tuple[Any, ...]:
        return (
            instance.instance_id,
            instance.journey,
            instance.customer_id,
            instance.status,
            instance.step_id,
            _seconds(instance.wake_at),
            instance.waiting_for,
            instance.entered_at.timestamp(),
            _seconds(instance.ended_at),
            instance.end_reason,
            json.dumps(instance.state, separators=(",", ":")),
            instance.version,
        )

    def save(self, instance: Instance) -> Instance | None:
        """Write ``instance`` if nobody moved it since it was read; the saved copy, or None."""
        changed = self.db.execute(
            "UPDATE journey_instances SET status = ?, step_id = ?, wake_at = ?, waiting_for = ?, "
            "ended_at = ?, end_reason = ?, state = ?, version = ? "
            "WHERE instance_id = ? AND version = ?",
            (
                instance.status,
                instance.step_id,
                _seconds(instance.wake_at),
                instance.waiting_for,
                _seconds(instance.ended_at),
                instance.end_reason,
                json.dumps(instance.state, separators=(",", ":")),
                instance.version + 1,
                instance.instance_id,
                instance.version,
            ),
        )
        return instance.moved(version=instance.version + 1) if changed else None

    def get(self, instance_id: str) -> Instance | None:
        rows = self.db.query(
            f"SELECT {_INSTANCE_COLUMNS} FROM journey_instances WHERE instance_id = ?",
            (instance_id,),
        )
        return _instance(rows[0]) if rows else None

    def instances_of(self, customer_id: str, journey: str | None = None) -> list[Instance]:
        """Every instance of the customer (in ``journey`` if given), oldest entry first."""
        if journey is None:
            rows = self.db.query(
                f"SELECT {_INSTANCE_COLUMNS} FROM journey_instances WHERE customer_id = ? "
                "ORDER BY entered_at",
                (customer_id,),
            )
        else:
            rows = self.db.query(
                f"SELECT {_INSTANCE_COLUMNS} FROM journey_instances "
                "WHERE customer_id = ? AND journey = ? ORDER BY entered_at",
                (customer_id, journey),
            )
        return [_instance(row) for row in rows]

    def due(
        self, now: datetime, limit: int = 500, journeys: tuple[str, ...] | None = None
    ) -> list[Instance]:
        """Active instances whose timer has come, earliest first (of ``journeys`` if given).

        A runner passes the journeys it has loaded: customers in a journey it does not
        know (a file missing from its folder) wait for a runner that does.
        """
        if journeys is not None and not journeys:
            return []
        where = "" if journeys is None else f" AND journey IN ({', '.join('?' * len(journeys))})"
        rows = self.db.query(
            f"SELECT {_INSTANCE_COLUMNS} FROM journey_instances "
            f"WHERE status = 'active' AND wake_at <= ?{where} ORDER BY wake_at LIMIT ?",
            (now.timestamp(), *(journeys or ()), limit),
        )
        return [_instance(row) for row in rows]

    def next_wake(self) -> datetime | None:
        rows = self.db.query("SELECT MIN(wake_at) FROM journey_instances WHERE status = 'active'")
        return _moment(rows[0][0]) if rows and rows[0][0] is not None else None

    def counts(self) -> dict[str, int]:
        """Instances by status, and ``active:<journey>`` for each journey's active ones."""
        counts: dict[str, int] = {}
        for status, journey, n in self.db.query(
            "SELECT status, journey, COUNT(*) FROM journey_instances GROUP BY status, journey"
        ):
            counts[status] = counts.get(status, 0) + int(n)
            if status == "active":
                counts[f"active:{journey}"] = int(n)
        return counts

    # -- the send ledger ----------------------------------------------------------------

    def schedule_send(self, record: SendRecord) -> None:
        """Record a decided send (once: a decision already in the ledger keeps its record)."""
        self.db.execute(
            f"INSERT INTO journey_sends ({_SEND_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (decision_id) DO NOTHING",
            (
                record.decision_id,
                record.instance_id,
                record.customer_id,
                record.step_id,
                record.channel,
                record.message,
                record.send_at.timestamp(),
                record.status,
                record.attempts,
                record.claimed_by,
                _seconds(record.claimed_at),
                record.in_doubt,
                record.detail,
                record.provider_id,
                _seconds(record.updated_at),
            ),
        )

    def send_record(self, decision_id: str) -> SendRecord | None:
        rows = self.db.query(
            f"SELECT {_SEND_COLUMNS} FROM journey_sends WHERE decision_id = ?", (decision_id,)
        )
        return _send(rows[0]) if rows else None

    def sends_of(self, instance_id: str) -> list[SendRecord]:
        rows = self.db.query(
            f"SELECT {_SEND_COLUMNS} FROM journey_sends WHERE instance_id = ? ORDER BY send_at",
            (instance_id,),
        )
        return [_send(row) for row in rows]

    def claim_send(
        self, decision_id: str, runner_id: str, now: datetime, lease_s: float
    ) -> SendRecord | None:
        """Take the send for this runner; None when it is final or another runner holds it.

        A claim older than ``lease_s`` is a runner that died mid-send: taking it
        over counts the send as in doubt (it may have gone out).
        """
        stale = now.timestamp() - lease_s
        changed = self.db.execute(
            "UPDATE journey_sends SET "
            "in_doubt = in_doubt + CASE WHEN status = 'sending' THEN 1 ELSE 0 END, "
            "status = 'sending', attempts = attempts + 1, claimed_by = ?, claimed_at = ?, "
            "updated_at = ? WHERE decision_id = ? AND (status IN ('scheduled', 'retry') "
            "OR (status = 'sending' AND claimed_at < ?))",
            (runner_id, now.timestamp(), now.timestamp(), decision_id, stale),
        )
        return self.send_record(decision_id) if changed else None

    def finish_send(
        self,
        decision_id: str,
        status: SendStatus,
        now: datetime,
        *,
        detail: str | None = None,
        provider_id: str | None = None,
    ) -> bool:
        """Move a send on to ``status``; a final send stays as it is (False)."""
        return bool(
            self.db.execute(
                "UPDATE journey_sends SET status = ?, detail = ?, provider_id = ?, "
                "updated_at = ? WHERE decision_id = ? AND status NOT IN "
                "('sent', 'blocked', 'failed', 'cancelled')",
                (status, detail, provider_id, now.timestamp(), decision_id),
            )
        )

    def send_counts(self) -> dict[str, int]:
        """Sends by status, ``<channel>:<status>`` for each channel, and ``in_doubt``."""
        counts: dict[str, int] = {"in_doubt": 0}
        for channel, status, n, doubt in self.db.query(
            "SELECT channel, status, COUNT(*), SUM(in_doubt) FROM journey_sends "
            "GROUP BY channel, status"
        ):
            counts[status] = counts.get(status, 0) + int(n)
            counts[f"{channel}:{status}"] = int(n)
            counts["in_doubt"] += int(doubt or 0)
        return counts

    # -- profiles, addresses and the event offset ---------------------------------------

    def attributes(self, customer_id: str) -> dict[str, Any]:
        rows = self.db.query(
            "SELECT name, value FROM customer_attributes WHERE customer_id = ?", (customer_id,)
        )
        return {name: json.loads(value) for name, value in rows}

    def set_attributes(self, customer_id: str, values: Mapping[str, Any]) -> None:
        self.db.executemany(
            "INSERT INTO customer_attributes (customer_id, name, value) VALUES (?, ?, ?) "
            "ON CONFLICT (customer_id, name) DO UPDATE SET value = excluded.value",
            [(customer_id, name, json.dumps(value)) for name, value in values.items()],
        )

    def address(self, customer_id: str, channel: str) -> str | None:
        rows = self.db.query(
            "SELECT address FROM customer_addresses WHERE customer_id = ? AND channel = ?",
            (customer_id, channel),
        )
        return str(rows[0][0]) if rows else None

    def set_addresses(self, customer_id: str, addresses: Iterable[tuple[str, str]]) -> None:
        self.db.executemany(
            "INSERT INTO customer_addresses (customer_id, channel, address) VALUES (?, ?, ?) "
            "ON CONFLICT (customer_id, channel) DO UPDATE SET address = excluded.address",
            [(customer_id, channel, address) for channel, address in addresses],
        )

    def offset(self, consumer: str) -> int:
        rows = self.db.query(
            "SELECT last_offset FROM journey_offsets WHERE consumer = ?", (consumer,)
        )
        return int(rows[0][0]) if rows else 0

    def set_offset(self, consumer: str, offset: int) -> None:
        self.db.execute(
            "INSERT INTO journey_offsets (consumer, last_offset) VALUES (?, ?) "
            "ON CONFLICT (consumer) DO UPDATE SET last_offset = excluded.last_offset",
            (consumer, offset),
        )

    def close(self) -> None:
        self.db.close()
