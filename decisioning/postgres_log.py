"""The decision and outcome log in Postgres: the scale-mode backend shared by many workers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from psycopg import errors
from psycopg.types.string import TextLoader

from decisioning._pg_pool import Connection, ConnectionPool
from decisioning._records import (
    DECISION_COLUMNS,
    OUTCOME_COLUMNS,
    check_finite,
    check_limit,
    decision_from_row,
    decision_row,
    outcome_from_row,
    outcome_row,
    utc,
)
from decisioning.types import Decision, Outcome
from features.errors import Conflict, InvalidRequest, NotFound

__all__ = ["PostgresDecisionLog"]

# The same columns as the SQLite log (see decisioning._records), with Postgres
# types. ``json`` rather than ``jsonb`` keeps the text as written: key order and
# every digit, at no parsing cost on insert. Flags are 0/1 smallints, so a
# report's SQL runs unchanged on either backend. ``seq`` is the insertion order
# that iter_decisions and iter_outcomes page by.
_SCHEMA = (
    "CREATE SCHEMA IF NOT EXISTS {s}",
    """CREATE TABLE IF NOT EXISTS {s}.decisions (
        seq                   bigint GENERATED ALWAYS AS IDENTITY,
        decision_id           text PRIMARY KEY,
        idempotency_key       text UNIQUE,
        customer_id           text NOT NULL,
        decided_at            timestamptz NOT NULL,
        journey               text NOT NULL,
        step                  text NOT NULL,
        decision_group        text NOT NULL,
        action_key            text NOT NULL,
        message               text,
        channel               text,
        slot                  text,
        send_at               timestamptz,
        transactional         smallint NOT NULL,
        propensity            double precision NOT NULL,
        propensity_error      double precision NOT NULL,
        explored              smallint NOT NULL,
        policy_version        text NOT NULL,
        model_version         text NOT NULL,
        attribution_closes_at timestamptz,
        eligible              json NOT NULL,
        excluded              json NOT NULL,
        scores                json NOT NULL,
        features              json NOT NULL,
        missing_features      json NOT NULL,
        time_zone             text NOT NULL,
        credits               integer NOT NULL DEFAULT 0,
        credited              smallint GENERATED ALWAYS AS
                                  (CASE WHEN credits > 0 THEN 1 ELSE 0 END) STORED,
        reward                double precision NOT NULL DEFAULT 0,
        window_closed         smallint NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS decisions_by_seq ON {s}.decisions (seq)",
    """CREATE INDEX IF NOT EXISTS decisions_open_windows
        ON {s}.decisions (attribution_closes_at, seq)
        WHERE window_closed = 0 AND attribution_closes_at IS NOT NULL""",
    """CREATE TABLE IF NOT EXISTS {s}.outcomes (
        seq         bigint GENERATED ALWAYS AS IDENTITY,
        outcome_id  text PRIMARY KEY,
        decision_id text NOT NULL REFERENCES {s}.decisions (decision_id),
        event       text NOT NULL,
        value       double precision NOT NULL,
        reward      double precision NOT NULL,
        occurred_at timestamptz NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now()
    )""",
    "CREATE INDEX IF NOT EXISTS outcomes_by_decision ON {s}.outcomes (decision_id, seq)",
    "CREATE INDEX IF NOT EXISTS outcomes_by_seq ON {s}.outcomes (seq)",
    """CREATE TABLE IF NOT EXISTS {s}.holdout_changes (
        seq     bigint GENERATED ALWAYS AS IDENTITY,
        at      timestamptz NOT NULL,
        percent double precision NOT NULL
    )""",
)

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_DECISIONS = ", ".join(DECISION_COLUMNS)
_OUTCOMES = ", ".join(OUTCOME_COLUMNS)
_PAGE = 1000


class PostgresDecisionLog:
    """Keeps every decision and outcome in Postgres tables under ``schema``.

    The tables are created on construction if they do not exist (under an
    advisory lock, so workers starting together do not race). Each call uses
    one pooled autocommit connection; the calls on the hot path are one round
    trip each, and every change that must happen once (a first credit, a closed
    window, an idempotency key) is a single statement whose row lock or unique
    constraint makes it atomic across processes.

    >>> import uuid
    >>> from decisioning.types import JointAction
    >>> schema = f"nudge_doctest_{uuid.uuid4().hex[:8]}"
    >>> log = PostgresDecisionLog("postgresql://postgres@127.0.0.1:5432/test", schema)
    >>> action = JointAction("welcome", "email", "now", datetime(2024, 5, 1, 9, tzinfo=UTC))
    >>> decision = Decision(
    ...     "d1", "c1", datetime(2024, 5, 1, 9, tzinfo=UTC), "welcome", "day-0", "policy",
    ...     action, 1.0, 0.0, (action,), (), {}, False, "uniform", "m1", {},
    ... )
    >>> log.record_decision(decision) == decision, log.get_decision("d1") == decision
    (True, True)
    >>> log.credit("d1", 1.0), log.credit("d1", 0.5), log.credited_reward("d1")
    (True, False, 1.5)
    >>> log.drop_schema()
    >>> log.close()
    """

    def __init__(
        self, dsn: str, schema: str = "nudge", *, pool_size: int = 4, timeout: float = 10.0
    ) -> None:
        if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
            expected = "must be 1 to 63 lowercase letters, digits or _, not starting with a digit"
            raise InvalidRequest("schema", expected, schema)
        self.schema = schema
        self._s = f'"{schema}"'
        self._pool = ConnectionPool(dsn, size=pool_size, timeout=timeout, configure=_json_as_text)
        self._insert_decision = (
            f"INSERT INTO {self._s}.decisions ({_DECISIONS}) "
            f"VALUES ({', '.join(['%s'] * len(DECISION_COLUMNS))}) ON CONFLICT DO NOTHING"
        )
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"nudge:{schema}",))
            for statement in _SCHEMA:
                conn.execute(statement.format(s=self._s))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Each call below is already its own transaction on a pooled connection.

        Batching several calls into one Postgres transaction would pin a
        connection per batch; the round trips, not the commits, dominate here.
        """
        yield

    def record_decision(self, decision: Decision) -> Decision:
        row = decision_row(decision, _as_is)
        with self._pool.connection() as conn:
            if conn.execute(self._insert_decision, row).rowcount == 1:
                return decision
            # Nothing was written: either the idempotency key or the decision id is
            # taken (by a committed row: ON CONFLICT waits for a concurrent insert).
            # The key wins, so a retried request gets its first decision back.
            key = decision.idempotency_key
            recorded = None if key is None else self._select_row(conn, "idempotency_key", key)
        if recorded is not None:
            return decision_from_row(recorded, _in_utc)
        raise Conflict(f"decision {decision.decision_id!r} is already recorded")

    def find_idempotent(self, idempotency_key: str) -> Decision | None:
        with self._pool.connection() as conn:
            row = self._select_row(conn, "idempotency_key", idempotency_key)
        return None if row is None else decision_from_row(row, _in_utc)

    def get_decision(self, decision_id: str) -> Decision:
        with self._pool.connection() as conn:
            row = self._select_row(conn, "decision_id", decision_id)
        if row is None:
            raise NotFound("decision", decision_id)
        return decision_from_row(row, _in_utc)

    def record_outcome(self, outcome: Outcome) -> bool:
        row = outcome_row(outcome, _as_is)
        try:
            with self._pool.connection() as conn:
                cursor = conn.execute(
                    f"INSERT INTO {self._s}.outcomes ({_OUTCOMES}) VALUES (%s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (outcome_id) DO NOTHING",
                    row,
                )
        except errors.ForeignKeyViolation as err:
            raise NotFound("decision", outcome.decision_id) from err
        return cursor.rowcount == 1

    def get_outcome(self, outcome_id: str) -> Outcome | None:
        with self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT {_OUTCOMES} FROM {self._s}.outcomes WHERE outcome_id = %s", (outcome_id,)
            ).fetchone()
        return None if row is None else outcome_from_row(row, _in_utc)

    def outcomes(self, decision_id: str) -> list[Outcome]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                f"SELECT {_OUTCOMES} FROM {self._s}.outcomes WHERE decision_id = %s ORDER BY seq",
                (decision_id,),
            ).fetchall()
        return [outcome_from_row(row, _in_utc) for row in rows]

    def credit(self, decision_id: str, reward: float) -> bool:
        reward = check_finite("reward", reward)
        with self._pool.connection() as conn:
            # The row lock orders concurrent credits; exactly one of them sees credits = 1.
            row = conn.execute(
                f"UPDATE {self._s}.decisions SET credits = credits + 1, reward = reward + %s "
                "WHERE decision_id = %s RETURNING credits",
                (reward, decision_id),
            ).fetchone()
        if row is None:
            raise NotFound("decision", decision_id)
        return bool(row[0] == 1)

    def credited_reward(self, decision_id: str) -> float | None:
        credited, reward = self._flags(decision_id, "credited, reward")
        return float(reward) if credited else None

    def close_window(self, decision_id: str) -> bool:
        with self._pool.connection() as conn:
            cursor = conn.execute(
                f"UPDATE {self._s}.decisions SET window_closed = 1 "
                "WHERE decision_id = %s AND window_closed = 0",
                (decision_id,),
            )
        if cursor.rowcount == 1:
            return True
        self._flags(decision_id, "window_closed")  # NotFound for an unknown decision
        return False

    def window_closed(self, decision_id: str) -> bool:
        (closed,) = self._flags(decision_id, "window_closed")
        return bool(closed)

    def due_windows(self, now: datetime, limit: int) -> list[Decision]:
        due = utc(now, "now")
        with self._pool.connection() as conn:
            # The conditions match decisions_open_windows, which also holds the order.
            rows = conn.execute(
                f"SELECT {_DECISIONS} FROM {self._s}.decisions "
                "WHERE window_closed = 0 AND attribution_closes_at <= %s "
                "ORDER BY attribution_closes_at, seq LIMIT %s",
                (due, check_limit(limit)),
            ).fetchall()
        return [decision_from_row(row, _in_utc) for row in rows]

    def count_due_windows(self, now: datetime) -> int:
        due = utc(now, "now")
        with self._pool.connection() as conn:
            # The same conditions as due_windows: counted from decisions_open_windows alone.
            row = conn.execute(
                f"SELECT count(*) FROM {self._s}.decisions "
                "WHERE window_closed = 0 AND attribution_closes_at <= %s",
                (due,),
            ).fetchone()
        return int(row[0]) if row else 0

    def count_decisions(self) -> int:
        with self._pool.connection() as conn:
            row = conn.execute(f"SELECT count(*) FROM {self._s}.decisions").fetchone()
        return int(row[0]) if row else 0

    def iter_decisions(self, since: datetime | None = None) -> Iterator[Decision]:
        # Pages by seq, borrowing a connection per page, so a long report neither
        # holds every row in memory nor keeps a pooled connection from the workers.
        # ``since`` is a filter, not an index: history is read once per report.
        query = f"SELECT seq, {_DECISIONS} FROM {self._s}.decisions WHERE seq > %s"
        params: tuple[object, ...] = ()
        if since is not None:
            query += " AND decided_at >= %s"
            params = (utc(since, "since"),)
        for row in self._pages(query + " ORDER BY seq LIMIT %s", *params):
            yield decision_from_row(row, _in_utc)

    def iter_outcomes(self) -> Iterator[Outcome]:
        for row in self._pages(
            f"SELECT seq, {_OUTCOMES} FROM {self._s}.outcomes WHERE seq > %s ORDER BY seq LIMIT %s"
        ):
            yield outcome_from_row(row, _in_utc)

    def record_holdout_change(self, at: datetime, percent: float) -> None:
        row = (utc(at, "at"), check_finite("percent", percent))
        with self._pool.connection() as conn:
            conn.execute(
                f"INSERT INTO {self._s}.holdout_changes (at, percent) VALUES (%s, %s)", row
            )

    def holdout_changes(self) -> list[tuple[datetime, float]]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                f"SELECT at, percent FROM {self._s}.holdout_changes ORDER BY at, seq"
            ).fetchall()
        return [(_in_utc(at), float(percent)) for at, percent in rows]

    def drop_schema(self) -> None:
        """Delete the schema and everything in it: for tests and throwaway runs."""
        with self._pool.connection() as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self._s} CASCADE")

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.close()

    def _select_row(self, conn: Connection, column: str, value: str) -> tuple[Any, ...] | None:
        """The row of the decision whose ``column`` is ``value``, decoded by the caller.

        Decoding after the connection went back to the pool keeps it free for others.
        """
        return conn.execute(
            f"SELECT {_DECISIONS} FROM {self._s}.decisions WHERE {column} = %s", (value,)
        ).fetchone()

    def _pages(self, query: str, *params: object) -> Iterator[tuple[Any, ...]]:
        """The rows of ``query`` page by page, without their leading seq.

        ``query`` selects seq first and takes the last seq seen, then ``params``,
        then the page size.
        """
        last = 0
        while True:
            with self._pool.connection() as conn:
                rows = conn.execute(query, (last, *params, _PAGE)).fetchall()
            if not rows:
                return
            for row in rows:
                yield tuple(row[1:])
            last = rows[-1][0]

    def _flags(self, decision_id: str, columns: str) -> tuple[Any, ...]:
        with self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT {columns} FROM {self._s}.decisions WHERE decision_id = %s",
                (decision_id,),
            ).fetchone()
        if row is None:
            raise NotFound("decision", decision_id)
        return row


def _json_as_text(conn: Connection) -> None:
    # decisioning._records parses the JSON columns itself (faster than psycopg's json.loads).
    conn.adapters.register_loader("json", TextLoader)


def _as_is(moment: datetime) -> datetime:
    return moment  # psycopg sends an aware datetime as timestamptz


def _in_utc(moment: datetime) -> datetime:
    # psycopg reads timestamptz in the session's time zone (often a ZoneInfo).
    return moment.astimezone(UTC)
