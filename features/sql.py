"""One small interface over the two SQL databases Nudge runs on: SQLite (embedded) and Postgres.

Statements are written once, with ``?`` placeholders and the SQL both
dialects share (``INSERT ... ON CONFLICT``, partial indexes); only table
definitions differ, and the caller gives both. A transaction is re-entrant, so
a method that writes in its own transaction can also run inside a caller's.

>>> import tempfile, pathlib
>>> db = SQLiteDatabase(pathlib.Path(tempfile.mkdtemp()) / "x.db")
>>> db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
0
>>> with db.transaction():
...     _ = db.execute("INSERT INTO t VALUES (?, ?)", ("a", 1))
...     _ = db.execute("INSERT INTO t VALUES (?, ?) ON CONFLICT (k) DO NOTHING", ("a", 2))
>>> db.query("SELECT k, v FROM t")
[('a', 1)]
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

from features.errors import InvalidRequest, Unavailable

__all__ = ["PostgresDatabase", "SQLiteDatabase", "SqlDatabase"]

Params = Sequence[Any]


class SqlDatabase(Protocol):
    """Statements in, rows out; every statement outside a transaction commits on its own."""

    dialect: Literal["sqlite", "postgres"]

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    def executemany(self, sql: str, rows: Sequence[Params]) -> None: ...

    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]: ...

    def transaction(self) -> Any:
        """A context manager: everything inside commits together or not at all."""
        ...

    def close(self) -> None: ...


class _Reentrant:
    """Shared by both databases: one connection, one lock, transactions that nest."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0

    def _begin(self) -> None:
        raise NotImplementedError

    def _end(self, commit: bool) -> None:
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._begin()
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._end(commit=False)
                raise
            self._depth = 0
            self._end(commit=True)


class SQLiteDatabase(_Reentrant):
    """A SQLite file in WAL mode, safe to share between threads and with other processes."""

    dialect: Literal["sqlite", "postgres"] = "sqlite"

    def __init__(self, path: Path) -> None:
        super().__init__()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=30.0
        )
        # WAL lets the API read while the runner writes; NORMAL keeps every commit
        # across a process crash (only a power cut can lose the last few).
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")

    def _begin(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def _end(self, commit: bool) -> None:
        self._conn.execute("COMMIT" if commit else "ROLLBACK")

    def execute(self, sql: str, params: Params = ()) -> int:
        with self._lock:
            return max(self._conn.execute(sql, tuple(params)).rowcount, 0)

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        with self._lock:
            self._conn.executemany(sql, [tuple(row) for row in rows])

    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


_PLACEHOLDER = re.compile(r"\?")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresDatabase(_Reentrant):
    """One Postgres connection in schema ``schema`` (created if missing), guarded by a lock."""

    dialect: Literal["sqlite", "postgres"] = "postgres"

    def __init__(self, dsn: str, schema: str) -> None:
        super().__init__()
        if not _SCHEMA.match(schema):
            raise InvalidRequest("schema", "must be a lower-case SQL identifier", schema)
        import psycopg

        try:
            self._conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as error:
            raise Unavailable(f"Postgres at {dsn!r} cannot be reached: {error}") from error
        self._conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        self._conn.execute(f'SET search_path TO "{schema}"')
        self._tx: Any = None

    def _begin(self) -> None:
        self._tx = self._conn.transaction()
        self._tx.__enter__()

    def _end(self, commit: bool) -> None:
        tx, self._tx = self._tx, None
        if commit:
            tx.__exit__(None, None, None)
        else:
            tx.__exit__(RuntimeError, RuntimeError("rolled back"), None)

    @staticmethod
    def _sql(sql: str) -> str:
        return _PLACEHOLDER.sub("%s", sql)

    def execute(self, sql: str, params: Params = ()) -> int:
        with self._lock:
            cursor = self._conn.execute(self._sql(sql), tuple(params))
            return max(cursor.rowcount, 0)

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        with self._lock, self._conn.cursor() as cursor:
            cursor.executemany(self._sql(sql), [tuple(row) for row in rows])

    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._conn.execute(self._sql(sql), tuple(params)).fetchall())

    def close(self) -> None:
        with self._lock:
            self._conn.close()
