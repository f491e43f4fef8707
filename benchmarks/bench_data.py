"""The data layer on one machine: events in over HTTP, online feature reads, point-in-time sets.

    python -m benchmarks.bench_data [--quick] [--keep]

1. Setup: the first steps of ``nudge demo`` (a Hillstrom sample ingested, its
   features materialised into Feast's SQLite online store, a model trained and
   registered) into a scratch folder, so that ``nudge serve`` can start on it.
2. Events accepted per second through the real API: ``nudge serve`` in a child
   process (1 and 2 workers; ``--quick``: 1), loaded by wrk with new events —
   one per request, and batches of 100 and 500 — each stored in SQLite
   (``event_stream.db``: WAL, ``synchronous=NORMAL``, committed before the 202)
   through the identity graph, as ``POST /v1/events`` always does. The rows
   stored are counted afterwards from the database. Baselines in the same run: the
   same bodies against a bare endpoint that parses and checks them and stores
   nothing (``benchmarks/events_echo_app.py``); ``EventStream.append`` in process
   (no HTTP); a bare SQLite insert of the same rows into the same table.
3. Online feature reads, in process: ``FeatureRepo.online("propensity_v1")``,
   one customer (``get``) and 100 customers (``get_many`` if the feature repo
   has it, else 100 ``get`` calls, and the report says so), p50/p99 over SQLite,
   and over Redis when the feature repo has scale mode (``storage="scale"``;
   otherwise the report says it was not measured). Baselines: a raw SQLite read
   of the same rows from Feast's online table, and a bare Redis round trip.
4. A point-in-time training set for 1M entity rows (``--quick``: 100k) over
   100k customers' profile snapshots (two each), through
   ``features.point_in_time`` (Feast's Dask offline store); baseline: the same
   join with ``pandas.merge_asof``, whose answer must agree.

Targets (issue 4), reported, not asserted: at least 5,000 events/s in batches
with durability; one customer's online read p99 at most 2 ms. Writes
``reports/bench_data.json`` and prints a table. wrk is needed for step 2
(``apt-get install wrk``); without it that step is skipped and said so. About
3 minutes on 2 cores; ``--quick`` about 1.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import json
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import psycopg
import redis

from benchmarks.bench_http import (
    REPO_ROOT,
    WRK_INSTALL_HINT,
    EchoServer,
    server_pid,
    tree_cpu_seconds,
    wrk_path,
)
from benchmarks.bench_setup import build_state
from features import EventLog, FeatureRepo, Unavailable
from features.event_stream import CustomerEvent, EventStream
from features.sql import SQLiteDatabase
from serving.api_process import ApiProcess, free_port
from serving.json_client import JsonClient
from serving.progress import Steps
from serving.settings import Settings

__all__ = ["main"]

LUA_SCRIPT = Path(__file__).with_name("wrk_events.lua")
TARGET_EVENTS_PER_S = 5_000.0
TARGET_READ_P99_MS = 2.0
BATCHES = (1, 100, 500)
_MARKER = "WRK_JSON "
_INSERT_SQL = (
    "INSERT INTO customer_events (event_id, customer_id, type, occurred_at, received_at, "
    "payload) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING"
)


@dataclass(frozen=True)
class Plan:
    customers: int
    """Hillstrom customers in the served state (features online, contacts)."""
    workers: tuple[int, ...]
    seconds: float
    """Per wrk run."""
    reads: int
    """Single-customer online reads timed (the 100-customer reads: a tenth)."""
    pit_rows: int
    pit_customers: int
    floor_rows: int
    """Rows per batch size in the in-process and bare SQLite baselines."""

    @staticmethod
    def full() -> Plan:
        return Plan(10_000, (1, 2), 8.0, 5_000, 1_000_000, 100_000, 20_000)

    @staticmethod
    def quick() -> Plan:
        return Plan(2_000, (1,), 4.0, 2_000, 100_000, 100_000, 5_000)


# -- events over HTTP ---------------------------------------------------------------------------


def _connections(batch: int) -> int:
    # Enough to keep the server busy; more only queues (measured: 1 worker saturates at ~4).
    return 8 if batch == 1 else 4


def run_wrk(
    wrk: str, base_url: str, *, batch: int, seconds: float, run_id: str, pid: int | None
) -> dict[str, Any]:
    """Load ``base_url``/v1/events with new events, ``batch`` per request."""
    connections = _connections(batch)
    command = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_SCRIPT),
        base_url,
        "--",
        str(batch),
        run_id,
        "1000",
    ]
    server_before = tree_cpu_seconds(pid)
    client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_after = tree_cpu_seconds(pid)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(_MARKER)), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {done.returncode}): {done.stderr or done.stdout}")
    raw = json.loads(line[len(_MARKER) :])
    elapsed = raw["duration_us"] / 1e6
    answered = raw["requests"] - raw["errors"]["status"]
    server_cpu = (
        None if server_before is None or server_after is None else server_after - server_before
    )
    return {
        "batch": batch,
        "connections": connections,
        "seconds": round(elapsed, 3),
        "requests": raw["requests"],
        "non_2xx": raw["errors"]["status"],
        "socket_errors": sum(raw["errors"][k] for k in ("connect", "read", "write", "timeout")),
        "requests_per_s": raw["requests"] / elapsed,
        "events_per_s": answered * batch / elapsed,
        "p50_ms": raw["latency_us"]["p50"] / 1e3,
        "p99_ms": raw["latency_us"]["p99"] / 1e3,
        "client_cpu_s": round(
            (client_after.ru_utime + client_after.ru_stime)
            - (client_before.ru_utime + client_before.ru_stime),
            2,
        ),
        "server_cpu_s": None if server_cpu is None else round(server_cpu, 2),
        "answered_events": answered * batch,
    }


def _stored_events(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM customer_events").fetchone()[0])
    finally:
        conn.close()


def _check_body_fits(base_url: str) -> None:
    """One batch of 500 the way wrk builds it, posted once: a 413 now, not 100 % errors later."""
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    events = [
        {
            "event_id": f"probe-{uuid.uuid4().hex[:8]}-{i}",
            "customer_id": "h00001",
            "type": "page_view",
            "occurred_at": at,
        }
        for i in range(max(BATCHES))
    ]
    client = JsonClient(base_url)
    try:
        answer = client.post("/v1/events", {"events": events})
    finally:
        client.close()
    if answer.status != 202:
        raise Unavailable(f"a batch of {max(BATCHES)} events was answered {answer.status}")


def events_over_http(
    settings: Settings, plan: Plan, wrk: str, say: Callable[[str], None]
) -> dict[str, Any]:
    results: dict[str, Any] = {"api": {}, "echo": {}}
    for workers in plan.workers:
        api = ApiProcess(settings.model_copy(update={"workers": workers, "port": free_port()}))
        with api:
            _check_body_fits(api.base_url)
            runs = []
            for batch in BATCHES:
                before = _stored_events(settings.event_stream_db)
                run = run_wrk(
                    wrk,
                    api.base_url,
                    batch=batch,
                    seconds=plan.seconds,
                    run_id=f"w{workers}b{batch}-{uuid.uuid4().hex[:6]}",
                    pid=server_pid(api),
                )
                time.sleep(0.5)  # requests wrk gave up on at the end may still commit
                run["stored_events"] = _stored_events(settings.event_stream_db) - before
                # Every 202 was a commit; requests wrk stopped waiting for may add a few more.
                run["stored_at_least_answered"] = run["stored_events"] >= run["answered_events"]
                runs.append(run)
                say(
                    f"{workers} worker(s), batch {batch:>3}: {run['events_per_s']:>8,.0f} "
                    f"events/s, p99 {run['p99_ms']:.1f} ms, {run['non_2xx']} non-2xx, "
                    f"{run['stored_events']:,} stored"
                )
        results["api"][str(workers)] = runs
    with EchoServer(
        workers=1,
        log_path=settings.state_dir / "echo.log",
        app="benchmarks.events_echo_app:app",
        probe=("/v1/events", _EVENT_PROBE),
        ready=(202, 422, 500),
    ) as echo:
        runs = []
        for batch in BATCHES:
            run = run_wrk(
                wrk,
                echo.base_url,
                batch=batch,
                seconds=plan.seconds,
                run_id=f"echo{batch}",
                pid=echo.pid,
            )
            runs.append(run)
            say(f"bare endpoint, batch {batch:>3}: {run['events_per_s']:>8,.0f} events/s")
        results["echo"]["1"] = runs
    return results


_EVENT_PROBE: dict[str, object] = {
    "event_id": "p",
    "customer_id": "c",
    "type": "t",
    "occurred_at": "2026",
}


# -- events: the floors -------------------------------------------------------------------------


def _events(prefix: str, n: int, at: datetime) -> list[CustomerEvent]:
    return [CustomerEvent(f"{prefix}-{i}", f"h{i % 1000:05d}", "page_view", at) for i in range(n)]


def events_in_process(scratch: Path, rows: int) -> dict[str, Any]:
    """``EventStream.append`` per batch size: no HTTP, no identity graph, same database."""
    results: dict[str, Any] = {}
    at = datetime.now(UTC)
    for batch in BATCHES:
        path = scratch / f"inprocess_{batch}.db"
        stream = EventStream(SQLiteDatabase(path))
        events = _events(f"b{batch}", rows, at)
        started = time.perf_counter()
        for start in range(0, rows, batch):
            stream.append(events[start : start + batch])
        seconds = time.perf_counter() - started
        stream.close()
        results[str(batch)] = {"rows": rows, "events_per_s": rows / seconds}
        for leftover in scratch.glob(f"inprocess_{batch}.db*"):
            leftover.unlink()
    return results


def bare_insert(scratch: Path, rows: int) -> dict[str, Any]:
    """The same rows into the same table with sqlite3 alone: a commit per batch of 1/100/500,
    WAL with synchronous NORMAL (as Nudge's SQLite) and, for comparison, FULL."""
    results: dict[str, Any] = {}
    now = time.time()
    values = [(f"e{i}", f"h{i % 1000:05d}", "page_view", now, now, "{}") for i in range(rows)]
    for sync in ("NORMAL", "FULL"):
        for batch in BATCHES:
            path = scratch / f"floor_{sync}_{batch}.db"
            EventStream(SQLiteDatabase(path)).close()  # the stream's own schema and index
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={sync}")
            started = time.perf_counter()
            for start in range(0, rows, batch):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_INSERT_SQL, values[start : start + batch])
                conn.execute("COMMIT")
            seconds = time.perf_counter() - started
            conn.close()
            results[f"{sync.lower()}_{batch}"] = {"rows": rows, "events_per_s": rows / seconds}
            for leftover in scratch.glob(f"floor_{sync}_{batch}.db*"):
                leftover.unlink()
    return results


# -- online reads -------------------------------------------------------------------------------


def _percentiles(samples_ns: Sequence[int]) -> dict[str, float]:
    values = np.asarray(samples_ns, dtype=np.float64) / 1e6
    return {
        "n": len(values),
        "p50_ms": float(np.percentile(values, 50)),
        "p99_ms": float(np.percentile(values, 99)),
        "max_ms": float(values.max()),
    }


def _time_calls(call: Callable[[int], Any], n: int, warmup: int = 100) -> dict[str, float]:
    for i in range(warmup):
        call(i)
    samples = []
    for i in range(n):
        started = time.perf_counter_ns()
        call(i)
        samples.append(time.perf_counter_ns() - started)
    return _percentiles(samples)


def online_reads(repo: FeatureRepo, customers: list[str], reads: int) -> dict[str, Any]:
    online = repo.online("propensity_v1")
    rng = np.random.default_rng(1)
    one = [customers[i] for i in rng.integers(0, len(customers), reads + 100)]
    many_n = max(20, reads // 10)
    many = [
        [customers[i] for i in rng.integers(0, len(customers), 100)] for _ in range(many_n + 20)
    ]
    get_many = getattr(online, "get_many", None)
    found = online.get(one[0])
    result: dict[str, Any] = {
        "features": len(found.values),
        "one": _time_calls(lambda i: online.get(one[i]), reads),
        "batch_read": "get_many" if get_many is not None else "100 x get (no get_many yet)",
    }
    if get_many is not None:
        result["hundred"] = _time_calls(lambda i: get_many(many[i]), many_n, warmup=20)
    else:
        result["hundred"] = _time_calls(
            lambda i: [online.get(c) for c in many[i]], many_n, warmup=20
        )
    return result


def raw_sqlite_read(repo: FeatureRepo, customers: list[str], reads: int) -> dict[str, Any]:
    """The same rows straight from Feast's online table (no Feast, no decoding): the floor."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    path = repo.feast_dir / "online.db"
    table = f"{repo.project}_customer_profile"
    conn = sqlite3.connect(path)
    rng = np.random.default_rng(2)
    keys = [
        serialize_entity_key(
            EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val=customer)]),
            entity_key_serialization_version=3,
        )
        for customer in (customers[i] for i in rng.integers(0, len(customers), reads + 100))
    ]
    sql = f'SELECT feature_name, value FROM "{table}" WHERE entity_key = ?'
    rows = conn.execute(sql, (keys[0],)).fetchall()
    timed = _time_calls(lambda i: conn.execute(sql, (keys[i],)).fetchall(), reads)
    conn.close()
    return {"rows_per_customer": len(rows), "one": timed}


def scale_supported() -> bool:
    return "storage" in inspect.signature(FeatureRepo.__init__).parameters


def redis_reads(
    scratch: Path,
    settings: Settings,
    profiles: Path,
    end: datetime,
    customers: list[str],
    reads: int,
) -> dict[str, Any]:
    """The same features materialised into Redis (scale mode), read as above; cleaned up after."""
    prefix = f"nudgebench{uuid.uuid4().hex[:8]}"
    repo = FeatureRepo(
        scratch / "scale",
        storage="scale",  # type: ignore[call-arg]
        redis_url=settings.redis_url,
        postgres_dsn=settings.postgres_dsn,
        key_prefix=prefix,
    )
    try:
        started = time.perf_counter()
        with _quiet():
            repo.apply(profiles)
            repo.materialize(end=end, start=end - timedelta(days=430))
        result = {"materialize_s": round(time.perf_counter() - started, 1)}
        result.update(online_reads(repo, customers, reads))
        client = redis.Redis.from_url(settings.redis_url)
        result["round_trip"] = _time_calls(lambda i: client.get(f"{prefix}:absent"), reads)
        client.close()
        return result
    finally:
        _drop_scale(settings, prefix)


def _drop_scale(settings: Settings, prefix: str) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    try:
        batch = list(client.scan_iter(match=f"*{prefix}*", count=1000))
        for start in range(0, len(batch), 1000):
            client.delete(*batch[start : start + 1000])
    finally:
        client.close()
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{prefix}_feast" CASCADE')
        conn.execute(f'DROP SCHEMA IF EXISTS "{prefix}" CASCADE')


# -- point in time ------------------------------------------------------------------------------


def point_in_time(scratch: Path, rows: int, customers: int) -> dict[str, Any]:
    """A training frame for ``rows`` entity rows over two snapshots of each of ``customers``."""
    rng = np.random.default_rng(3)
    start = pd.Timestamp("2025-01-01", tz="UTC")
    ids = np.array([f"c{i:06d}" for i in range(customers)], dtype=object)
    snapshots = []
    for half in range(2):
        seconds = rng.integers(half * 180 * 86_400, (half + 1) * 180 * 86_400, customers)
        at = (start + pd.to_timedelta(seconds, unit="s")).as_unit("ns")
        snapshots.append(
            pd.DataFrame(
                {
                    "customer_id": pd.array(ids, dtype="string"),
                    "recency": rng.integers(0, 12, customers),
                    "history": rng.gamma(2.0, 100.0, customers),
                    "mens": rng.integers(0, 2, customers),
                    "womens": rng.integers(0, 2, customers),
                    "newbie": rng.integers(0, 2, customers),
                    "zip_code": pd.array(
                        rng.choice(["Urban", "Rural", "Suburban"], customers), dtype="string"
                    ),
                    "channel": pd.array(
                        rng.choice(["Web", "Phone", "Multichannel"], customers), dtype="string"
                    ),
                    "event_timestamp": at,
                    "created_at": at,
                }
            )
        )
    profiles = pd.concat(snapshots, ignore_index=True).sort_values(
        "event_timestamp", kind="stable", ignore_index=True
    )
    path = EventLog(scratch / "pit_events").write("profiles", profiles)
    entity_seconds = rng.integers(0, 400 * 86_400, rows)
    entities = pd.DataFrame(
        {
            "customer_id": pd.array(ids[rng.integers(0, customers, rows)], dtype="string"),
            "event_timestamp": (start + pd.to_timedelta(entity_seconds, unit="s")).as_unit("ns"),
            "label": rng.integers(0, 2, rows),
        }
    )
    repo = FeatureRepo(scratch / "pit_state")
    repo.apply(path)
    started = time.perf_counter()
    frame = repo.training_frame(entities)
    feast_s = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    started = time.perf_counter()
    ordered = entities.reset_index().sort_values("event_timestamp", kind="stable")
    joined = pd.merge_asof(
        ordered,
        profiles.drop(columns="created_at").sort_values("event_timestamp", kind="stable"),
        on="event_timestamp",
        by="customer_id",
        direction="backward",
        tolerance=pd.Timedelta(days=400),
    ).sort_values("index")
    floor_s = time.perf_counter() - started
    ours = frame["recency"].to_numpy(dtype=float)
    theirs = joined["recency"].to_numpy(dtype=float)
    agree = bool(np.array_equal(np.isnan(ours), np.isnan(theirs)))
    agree = agree and bool(np.allclose(ours[~np.isnan(ours)], theirs[~np.isnan(theirs)]))
    return {
        "entity_rows": rows,
        "customers": customers,
        "profile_rows": len(profiles),
        "seconds": round(feast_s, 2),
        "rows_per_s": rows / feast_s,
        "missing_share": float(np.isnan(ours).mean()),
        "peak_rss_mb": round(rss_mb),
        "merge_asof_seconds": round(floor_s, 2),
        "agrees_with_merge_asof": agree,
    }


# -- the report ---------------------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_average_at_start": list(os.getloadavg()),
    }


def _git() -> dict[str, Any]:
    def git(*command: str) -> str:
        done = subprocess.run(
            ["git", *command], capture_output=True, text=True, check=False, cwd=REPO_ROOT
        )
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "changed": git("status", "--short").splitlines()}


def _targets(results: dict[str, Any]) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    http = results.get("events_http")
    if http:
        best = max(
            (run for runs in http["api"].values() for run in runs if run["batch"] > 1),
            key=lambda run: run["events_per_s"],
        )
        targets["events_per_s_in_batches"] = {
            "target": TARGET_EVENTS_PER_S,
            "measured": round(best["events_per_s"]),
            "at": f"batch {best['batch']}",
            "met": best["events_per_s"] >= TARGET_EVENTS_PER_S,
        }
    else:
        targets["events_per_s_in_batches"] = {"target": TARGET_EVENTS_PER_S, "met": None}
    p99 = results["online_sqlite"]["one"]["p99_ms"]
    targets["online_read_one_p99_ms"] = {
        "target": TARGET_READ_P99_MS,
        "measured": round(p99, 3),
        "met": p99 <= TARGET_READ_P99_MS,
    }
    return targets


def _spread(timed: dict[str, float], digits: int = 3) -> str:
    return f"p50 {timed['p50_ms']:.{digits}f}  p99 {timed['p99_ms']:.{digits}f} ms"


def table(results: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = []
    http = results.get("events_http")
    if http:
        for workers, runs in http["api"].items():
            for run in runs:
                rows.append(
                    (
                        f"POST /v1/events, {workers} worker(s), batch {run['batch']}",
                        f"{run['events_per_s']:,.0f} events/s (p50 {run['p50_ms']:.1f}, "
                        f"p99 {run['p99_ms']:.1f} ms; {run['stored_events']:,} stored)",
                    )
                )
        for run in http["echo"]["1"]:
            rows.append(
                (
                    f"  bare endpoint (parse, no store), batch {run['batch']}",
                    f"{run['events_per_s']:,.0f} events/s",
                )
            )
    else:
        rows.append(("POST /v1/events", f"not measured: {results['events_http_skipped']}"))
    for batch, run in results["events_in_process"].items():
        rows.append(
            (
                f"  EventStream.append in process, batch {batch}",
                f"{run['events_per_s']:,.0f} events/s",
            )
        )
    for name, run in results["bare_insert"].items():
        sync, batch = name.split("_")
        rows.append(
            (
                f"  bare SQLite insert ({sync.upper()}), batch {batch}",
                f"{run['events_per_s']:,.0f}/s",
            )
        )
    sqlite_reads = results["online_sqlite"]
    rows.append(
        (
            f"online read, 1 customer, SQLite ({sqlite_reads['features']} features)",
            _spread(sqlite_reads["one"]),
        )
    )
    rows.append(
        (
            f"online read, 100 customers, SQLite ({sqlite_reads['batch_read']})",
            _spread(sqlite_reads["hundred"], 2),
        )
    )
    floor = results["raw_sqlite_read"]["one"]
    rows.append(
        (
            "  raw SQLite read of the same rows",
            f"p50 {floor['p50_ms']:.3f}  p99 {floor['p99_ms']:.3f} ms",
        )
    )
    redis_reads_ = results.get("online_redis")
    if isinstance(redis_reads_, dict) and "one" in redis_reads_:
        rows.append(
            (
                "online read, 1 customer, Redis",
                _spread(redis_reads_["one"]),
            )
        )
        rows.append(
            (
                "online read, 100 customers, Redis",
                _spread(redis_reads_["hundred"], 2),
            )
        )
        trip = redis_reads_["round_trip"]
        rows.append(
            ("  bare Redis round trip", f"p50 {trip['p50_ms']:.3f}  p99 {trip['p99_ms']:.3f} ms")
        )
    else:
        rows.append(("online read, Redis", f"not measured: {redis_reads_}"))
    pit = results["point_in_time"]
    rows.append(
        (
            f"point-in-time training set, {pit['entity_rows']:,} rows",
            f"{pit['seconds']:.1f} s ({pit['rows_per_s']:,.0f} rows/s, "
            f"peak RSS {pit['peak_rss_mb']:,} MB)",
        )
    )
    rows.append(
        (
            "  pandas merge_asof, same join",
            f"{pit['merge_asof_seconds']:.1f} s (agrees: {pit['agrees_with_merge_asof']})",
        )
    )
    for name, target in results["targets"].items():
        met = {True: "met", False: "NOT met", None: "not measured"}[target["met"]]
        measured = target.get("measured", "-")
        rows.append((f"target {name}", f"{met} ({measured} vs {target['target']})"))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs, 100k-row training set")
    parser.add_argument("--out", type=Path, default=Path("reports") / "bench_data.json")
    parser.add_argument("--keep", action="store_true", help="keep the scratch state folder")
    args = parser.parse_args(argv)
    plan = Plan.quick() if args.quick else Plan.full()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="nudge-bench-data-"))
    steps = Steps(6)
    results: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "machine": _machine(),
        "code": _git(),
        "plan": asdict(plan),
        "durability": "each accepted event is committed to SQLite (WAL, synchronous=NORMAL) "
        "before the 202: it survives a crash of the process; a power cut may lose the last "
        "commits (synchronous=FULL would not; see bare_insert full_*)",
    }
    started = time.perf_counter()
    try:
        with steps.step("setup", f"Setup: {plan.customers:,} Hillstrom customers → {scratch}"):
            with _quiet():
                state = build_state(scratch, customers=plan.customers)
            settings = state.settings.model_copy(update=_quiet_settings())
            steps.note(", ".join(f"{k} {v:.0f} s" for k, v in state.timings_s.items()))
        wrk = wrk_path()
        with steps.step("events_http", "Events through POST /v1/events (wrk)"):
            if wrk is None:
                results["events_http_skipped"] = WRK_INSTALL_HINT
                steps.note(WRK_INSTALL_HINT)
            else:
                results["events_http"] = events_over_http(settings, plan, wrk, steps.note)
        with steps.step("events_floor", "Baselines: EventStream.append in process, bare SQLite"):
            results["events_in_process"] = inproc = events_in_process(scratch, plan.floor_rows)
            results["bare_insert"] = floor = bare_insert(scratch, plan.floor_rows)
            steps.note(
                "in process: "
                + ", ".join(f"batch {b} {r['events_per_s']:,.0f}/s" for b, r in inproc.items())
            )
            steps.note(
                "bare insert: "
                + ", ".join(f"{k} {r['events_per_s']:,.0f}/s" for k, r in floor.items())
            )
        repo = FeatureRepo(settings.state_dir)
        with steps.step("online_sqlite", "Online reads, SQLite online store"):
            results["online_sqlite"] = reads = online_reads(repo, state.customers, plan.reads)
            results["raw_sqlite_read"] = raw = raw_sqlite_read(repo, state.customers, plan.reads)
            steps.note(
                f"1 customer p50 {reads['one']['p50_ms']:.3f} p99 {reads['one']['p99_ms']:.3f} ms;"
                f" 100: p50 {reads['hundred']['p50_ms']:.2f} p99 "
                f"{reads['hundred']['p99_ms']:.2f} ms; raw read p50 {raw['one']['p50_ms']:.3f} ms"
            )
        with steps.step("online_redis", "Online reads, Redis online store (scale mode)"):
            if not scale_supported():
                results["online_redis"] = "FeatureRepo has no storage='scale' yet"
            else:
                try:
                    end = datetime(2008, 3, 15, tzinfo=UTC)  # the Hillstrom campaign's end
                    profiles = EventLog(settings.events_dir).path("profiles")
                    results["online_redis"] = redis_reads(
                        scratch, settings, profiles, end, state.customers, plan.reads
                    )
                except Exception as error:  # a backend still in the making: say why
                    results["online_redis"] = f"failed: {type(error).__name__}: {error}"
            redis_result = results["online_redis"]
            if isinstance(redis_result, dict):
                steps.note(
                    f"1 customer {_spread(redis_result['one'])}; "
                    f"100: {_spread(redis_result['hundred'], 2)}"
                )
            else:
                steps.note(str(redis_result))
        with steps.step("point_in_time", f"Point-in-time training set, {plan.pit_rows:,} rows"):
            results["point_in_time"] = pit = point_in_time(
                scratch, plan.pit_rows, plan.pit_customers
            )
            steps.note(
                f"{pit['seconds']:.1f} s; merge_asof {pit['merge_asof_seconds']:.1f} s; "
                f"agree: {pit['agrees_with_merge_asof']}"
            )
    finally:
        if args.keep:
            print(f"kept the scratch state in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    results["targets"] = _targets(results)
    results["machine"]["load_average_at_end"] = list(os.getloadavg())
    results["timings_s"] = {**steps.timings_s, "total": round(time.perf_counter() - started, 1)}
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print(table(results))
    print(f"\nwrote {args.out} in {results['timings_s']['total']:.0f} s")
    return 0


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Feast prints each materialisation, MLflow warns about SQLAlchemy: not the bench's output."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _quiet_settings() -> dict[str, Any]:
    """No model reloads or state snapshots in the server while it is measured (if it has them)."""
    wanted = {"model_reload_interval": 0.0, "snapshot_interval": 0.0}
    return {name: value for name, value in wanted.items() if name in Settings.model_fields}


if __name__ == "__main__":
    sys.exit(main())
