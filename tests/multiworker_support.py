"""Talking to one chosen worker of a multi-worker API, and cleaning up scale-mode state.

uvicorn's workers share one listening socket, and the kernel hands each new
connection to whichever worker accepts it first; a keep-alive connection then
stays with that worker process. So a test reaches a particular worker by
opening connections until one lands there and keeping it, and a connection
that the server closed must fail loudly rather than reconnect (as
:class:`serving.json_client.JsonClient` does), since the new connection could
land on another worker.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from typing import Any

import psycopg
import redis

from serving.json_client import JsonResponse
from serving.settings import Settings

__all__ = [
    "WorkerConnection",
    "close_all",
    "connect_to_workers",
    "drop_scale_state",
    "update_count",
    "wait_until",
]


def update_count(policy_version: str) -> int:
    """How many updates a policy version counts, its own and absorbed ones.

    >>> update_count("linear-thompson(prior_precision=30.0,noise=0.5,exploration=1.0)+17")
    17
    """
    return int(policy_version.rsplit("+", 1)[1])


class WorkerConnection:
    """One keep-alive connection, pinned to the worker that accepted it; never reconnects."""

    def __init__(self, host: str, port: int, timeout_s: float = 30.0) -> None:
        self._conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
        self.worker_id: str = self.request("GET", "/healthz").json()["worker_id"]

    def request(self, method: str, path: str, body: Any = None) -> JsonResponse:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if payload is not None else {}
        self._conn.request(method, path, body=payload, headers=headers)
        response = self._conn.getresponse()
        return JsonResponse(response.status, response.read())

    def get(self, path: str) -> JsonResponse:
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> JsonResponse:
        return self.request("POST", path, body)

    def health(self) -> dict[str, Any]:
        """This worker's /healthz; fails if the connection moved to another worker."""
        payload: dict[str, Any] = self.get("/healthz").json()
        assert payload["worker_id"] == self.worker_id, "the connection moved to another worker"
        return payload

    def close(self) -> None:
        self._conn.close()


def connect_to_workers(
    host: str, port: int, workers: int, per_worker: int = 1, timeout_s: float = 30.0
) -> dict[str, list[WorkerConnection]]:
    """``per_worker`` open connections to each of ``workers`` distinct worker processes."""
    pinned: dict[str, list[WorkerConnection]] = {}
    deadline = time.monotonic() + timeout_s
    while not (len(pinned) == workers and all(len(c) >= per_worker for c in pinned.values())):
        if time.monotonic() > deadline:
            close_all(pinned)
            counts = {worker: len(c) for worker, c in pinned.items()}
            raise AssertionError(f"wanted {per_worker} connections to {workers} workers: {counts}")
        connection = WorkerConnection(host, port)
        mine = pinned.setdefault(connection.worker_id, [])
        if len(mine) < per_worker:
            mine.append(connection)
        else:
            connection.close()
    return pinned


def close_all(pinned: dict[str, list[WorkerConnection]]) -> None:
    for connections in pinned.values():
        for connection in connections:
            connection.close()


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition`` until it holds; a deadline, not a timed assertion."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s} s")
        time.sleep(0.05)


def drop_scale_state(settings: Settings) -> None:
    """Drop the Postgres schema and delete the Redis keys of ``settings.key_prefix``."""
    prefix = settings.key_prefix
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{prefix}" CASCADE')
    client = redis.Redis.from_url(settings.redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()
