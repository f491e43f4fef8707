"""A small thread-safe pool of Postgres connections (``psycopg_pool`` is not a dependency).

Connections are opened on demand up to ``size``, in autocommit mode, and reused
last-in first-out so that a quiet service keeps few of them warm. A connection
that broke is dropped rather than handed out again, and a connection failure is
reported as ``Unavailable``. A pool inherited through ``fork`` forgets the
parent's connections without closing them, since closing would end the parent's
sessions.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

from features.errors import InvalidRequest, Unavailable

__all__ = ["ConnectionPool"]

Connection = psycopg.Connection[tuple[Any, ...]]


class ConnectionPool:
    """Up to ``size`` autocommit connections to ``dsn``; :meth:`connection` lends one.

    ``timeout`` bounds both the wait for a free connection and opening a new one;
    ``configure`` is called with each new connection before it is first lent.
    """

    def __init__(
        self,
        dsn: str,
        size: int = 4,
        timeout: float = 10.0,
        configure: Callable[[Connection], None] | None = None,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InvalidRequest("pool_size", "must be a positive integer", size)
        if not isinstance(timeout, int | float) or not timeout > 0:
            raise InvalidRequest("timeout", "must be a positive number of seconds", timeout)
        self.size = size
        self.timeout = float(timeout)
        self._dsn = dsn
        self._configure = configure
        self._where = _where(dsn)
        self._slots = threading.BoundedSemaphore(size)
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue()
        self._pid = os.getpid()
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection for the duration of the ``with`` block, returned to the pool after."""
        if self._closed:
            raise Unavailable(f"the connection pool to {self._where} is closed")
        if not self._slots.acquire(timeout=self.timeout):
            raise Unavailable(
                f"no free connection to {self._where} within {self.timeout:g} s "
                f"(all {self.size} in use)"
            )
        try:
            conn = self._take()
            try:
                yield conn
            except psycopg.OperationalError as err:
                conn.close()
                raise Unavailable(f"lost the connection to {self._where}: {err}") from err
            except BaseException:
                self._give_back(conn)
                raise
            self._give_back(conn)
        finally:
            self._slots.release()

    def close(self) -> None:
        """Close the idle connections; those lent out are closed as they come back."""
        self._closed = True
        self._drain(close=os.getpid() == self._pid)

    def _take(self) -> Connection:
        if os.getpid() != self._pid:  # forked: the parent's connections are not ours
            self._drain(close=False)
            self._pid = os.getpid()
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        try:
            conn = psycopg.connect(
                self._dsn, autocommit=True, connect_timeout=math.ceil(self.timeout)
            )
        except psycopg.Error as err:
            raise Unavailable(f"cannot connect to {self._where}: {err}") from err
        if self._configure is not None:
            self._configure(conn)
        return conn

    def _give_back(self, conn: Connection) -> None:
        reusable = (
            not self._closed
            and not conn.closed
            and conn.info.transaction_status == pq.TransactionStatus.IDLE
            and os.getpid() == self._pid
        )
        if reusable:
            self._idle.put(conn)
        elif os.getpid() == self._pid:
            conn.close()

    def _drain(self, *, close: bool) -> None:
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return
            if close:
                conn.close()


def _where(dsn: str) -> str:
    """Where ``dsn`` points, for messages, without its password."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as err:
        raise InvalidRequest("dsn", "must be a valid Postgres connection string") from err
    host = parts.get("host") or "localhost"
    return f"Postgres at {host}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"
