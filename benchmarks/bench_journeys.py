"""The journey runner at 100,000 active customers on one machine: what it reaches, and where.

    python -m benchmarks.bench_journeys [--quick] [--customers N] [--sample N] [--keep]

Builds the runner the way ``tests/journeys/conftest.py`` does — a real
DecisionEngine (LinearThompson, SQLite decision log, policy state and contact
store; fixed priors and an empty feature source), SQLite journey store and
event stream, FileOutbox channels, the TemplateRenderer, TrackingLinks, and one
settable clock shared by engine and runner — with the cart journey (wait 1h →
decide → send → wait until purchase, timeout 1d → decide → send). Every
customer is opted in and reachable on e-mail and SMS. Then:

1. append one ``identify`` and one ``add_to_cart`` event per customer, in
   batches of 1,000 (events/s appended);
2. ``runner.consume``: every customer enters the journey (events handled/s,
   entries/s), then active instances, ``journeys.db`` on disk, process RSS;
3. the first ``advance_due`` arms every instance's 1h timer (each instance is
   due the moment it enters); then idle passes with every instance waiting and
   nothing due (the cost of a timer scan; median of several), and one due-batch
   read with everything due;
4. the clock moves 1h and ``advance_due`` fires the timers: decide + send each.
   ``--quick`` fires all (10,000 customers). The full run fires a sample first
   and goes on to all 100,000 only if the sample says the whole drain fits in
   ``--budget`` seconds (6 minutes); otherwise the rest is extrapolated from the
   sample and labelled so. Per-instance ``_advance`` latency p50/p99;
5. baselines in the same run: a bare ``engine.decide`` loop with the step's own
   request (and decide + check_send + record_outcome, the engine's share of a
   step), and a bare SQLite insert of as many instance rows as entered (one
   commit per row, as the runner commits per event, and one transaction).

Writes ``reports/bench_journeys.json`` (every figure, the machine, the code
measured) and prints a table. All state is in a scratch folder, removed at the
end unless ``--keep``. The full run takes about 10–15 minutes on 2 cores,
``--quick`` about one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

from tqdm import tqdm

from channels import FileOutbox, TemplateRenderer, TrackingLinks
from decisioning import DecisionEngine, LinearThompson, SQLiteDecisionLog, SQLitePolicyStateStore
from decisioning.config import parse_decision_config
from decisioning.contact_store import ChannelState, ContactProfile
from decisioning.sqlite_contact import SQLiteContactStore
from features import FeatureRow
from features.event_stream import CustomerEvent, EventStream, StoredEvent
from features.sql import SQLiteDatabase
from journeys import parse_journey
from journeys.decisions import EngineDecisions, request_for
from journeys.definition import DecideStep, Journey
from journeys.runner import JourneyRunner, RunStats
from journeys.store import Instance, JourneyStore
from serving.progress import Steps

REPO_ROOT = Path(__file__).resolve().parent.parent

# The scenario the journey tests run (tests/journeys/journey_harness.py): the same
# catalogue, the cart journey, the settable clock and the fixed priors, at 10:00 UTC
# on a winter Wednesday (inside nobody's quiet hours in London) for the whole run.
sys.path.insert(0, str(REPO_ROOT / "tests" / "journeys"))
from journey_harness import CART_JOURNEY, DECISIONS, START, Clock, Priors  # noqa: E402


@dataclass(frozen=True)
class Plan:
    """How much to measure: ``--quick`` shrinks every part."""

    customers: int
    append_batch: int
    idle_repeats: int
    sample: int
    budget_s: float
    baseline_decisions: int

    @staticmethod
    def full(customers: int, sample: int, budget_s: float) -> Plan:
        return Plan(customers, 1000, 7, sample, budget_s, 5000)

    @staticmethod
    def quick(customers: int) -> Plan:
        return Plan(customers, 1000, 5, customers, float("inf"), 2000)


# -- the parts the journey tests also keep small -------------------------------------------


class Features:
    """A FeatureSource with no features: the decision reads nothing but the contact profile."""

    def get(self, customer_id: str) -> FeatureRow:
        return FeatureRow(customer_id, {}, ())


class CountingStream(EventStream):
    """The event stream, telling ``on_read`` how many events each read returned."""

    def __init__(self, db: SQLiteDatabase) -> None:
        super().__init__(db)
        self.on_read: Callable[[int], None] | None = None

    def read(self, after: int, limit: int = 500) -> list[StoredEvent]:
        events = super().read(after, limit)
        if self.on_read is not None:
            self.on_read(len(events))
        return events


class LimitReached(Exception):
    """The timed runner advanced as many instances as it was asked to."""


class TimedRunner(JourneyRunner):
    """The journey runner, timing each instance's ``_advance`` (and stopping after ``limit``).

    The stop is raised after an instance is saved, so what was advanced stays advanced and
    the rest stay due.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.latencies_s: list[float] = []
        self.limit: int | None = None
        self.on_advance: Callable[[], None] | None = None

    def _advance(self, instance: Instance, now: datetime, stats: RunStats) -> None:
        started = time.perf_counter()
        super()._advance(instance, now, stats)
        self.latencies_s.append(time.perf_counter() - started)
        if self.on_advance is not None:
            self.on_advance()
        if self.limit is not None and len(self.latencies_s) >= self.limit:
            raise LimitReached


@dataclass
class Bench:
    """Everything one run builds in its scratch folder."""

    scratch: Path
    clock: Clock
    contacts: SQLiteContactStore
    log: SQLiteDecisionLog
    state: SQLitePolicyStateStore
    engine: DecisionEngine
    stream: CountingStream
    store: JourneyStore
    runner: TimedRunner
    journey: Journey
    outboxes: list[FileOutbox] = field(default_factory=list)

    def close(self) -> None:
        for outbox in self.outboxes:
            outbox.close()
        self.engine.close()
        self.store.close()
        self.stream.close()
        self.contacts.close()
        self.state.close()
        self.log.close()


def build(scratch: Path) -> Bench:
    clock = Clock()
    contacts = SQLiteContactStore(scratch / "contacts.db")
    log = SQLiteDecisionLog(scratch / "decisions.db")
    state = SQLitePolicyStateStore(scratch / "decisions.db")
    engine = DecisionEngine(
        config=parse_decision_config(DECISIONS),
        features=Features(),
        model=Priors(),
        model_version="v1",
        policy=LinearThompson(seed=0),
        log=log,
        state=state,
        contacts=contacts,
        clock=clock,
        seed=0,
    )
    journey = parse_journey(CART_JOURNEY, "bench.yaml")
    stream = CountingStream(SQLiteDatabase(scratch / "events.db"))
    store = JourneyStore(SQLiteDatabase(scratch / "journeys.db"))
    outboxes = [
        FileOutbox(scratch / "outbox" / f"{channel}.jsonl", name=channel)
        for channel in ("email", "sms")
    ]
    runner = TimedRunner(
        journeys={journey.name: journey},
        store=store,
        stream=stream,
        decisions=EngineDecisions(engine),
        channels={outbox.name: outbox for outbox in outboxes},
        renderer=TemplateRenderer(),
        links=TrackingLinks("bench-secret", "http://nudge.test"),
        features=Features(),
        clock=clock,
    )
    return Bench(
        scratch, clock, contacts, log, state, engine, stream, store, runner, journey, outboxes
    )


# -- measuring helpers -----------------------------------------------------------------------


def _rss_mb() -> float:
    """The process's resident set now, from /proc (0 where there is none)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _db_mb(path: Path) -> dict[str, float]:
    """A SQLite file with its WAL and shared-memory files, in MB."""
    sizes = {
        suffix or "db": (path.with_name(path.name + suffix)).stat().st_size / 1e6
        for suffix in ("", "-wal", "-shm")
        if path.with_name(path.name + suffix).exists()
    }
    return {**sizes, "total": sum(sizes.values())}


def _disk(scratch: Path) -> dict[str, dict[str, float]]:
    return {p.name: _db_mb(p) for p in sorted(scratch.glob("*.db"))}


def _percentiles_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {"p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "n": 0}

    def at(q: float) -> float:
        return 1e3 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "p50_ms": 1e3 * statistics.median(ordered),
        "p90_ms": at(0.90),
        "p99_ms": at(0.99),
        "max_ms": 1e3 * ordered[-1],
        "n": len(ordered),
    }


@contextlib.contextmanager
def _progress(total: int, unit: str, desc: str) -> Iterator[tqdm[Any]]:
    with tqdm(total=total, unit=unit, desc=f"      {desc}", mininterval=2.0, leave=False) as bar:
        yield bar


def _customer(i: int) -> str:
    return f"c{i:06d}"


# -- the steps -------------------------------------------------------------------------------


def load_contacts(bench: Bench, customers: list[str]) -> dict[str, Any]:
    every = ChannelState(consent="opted_in", reachable=True)
    started = time.perf_counter()
    for low in range(0, len(customers), 10_000):
        bench.contacts.load_profiles(
            ContactProfile(c, {"email": every, "sms": every}, "Europe/London")
            for c in customers[low : low + 10_000]
        )
    return {"profiles": len(customers), "seconds": time.perf_counter() - started}


def append_events(bench: Bench, customers: list[str], batch: int) -> dict[str, Any]:
    """One identify and one add_to_cart per customer, in batches (each batch one commit)."""
    now = bench.clock()
    events: list[CustomerEvent] = []
    for c in customers:
        events.append(
            CustomerEvent(
                f"id-{c}",
                c,
                "identify",
                now,
                {"email": f"{c}@example.com", "phone": "+447700900123", "first_name": c.title()},
            )
        )
    events += [
        CustomerEvent(f"cart-{c}", c, "add_to_cart", now, {"cart_value": 50.0, "items": 2})
        for c in customers
    ]
    new = 0
    started = time.perf_counter()
    with _progress(len(events), "ev", "append") as bar:
        for low in range(0, len(events), batch):
            chunk = events[low : low + batch]
            new += bench.stream.append(chunk, now=now)
            bar.update(len(chunk))
    seconds = time.perf_counter() - started
    assert new == len(events), (new, len(events))
    return {
        "events": new,
        "batch": batch,
        "seconds": seconds,
        "events_per_s": new / seconds,
        "events_db_mb": _db_mb(bench.scratch / "events.db")["total"],
    }


def consume(bench: Bench, total: int) -> dict[str, Any]:
    stats = RunStats()
    rss_before = _rss_mb()
    with _progress(total, "ev", "consume") as bar:
        bench.stream.on_read = bar.update
        started = time.perf_counter()
        bench.runner.consume(stats)
        seconds = time.perf_counter() - started
        bench.stream.on_read = None
    counts = bench.store.counts()
    return {
        "events": stats.events,
        "entered": stats.entered,
        "seconds": seconds,
        "events_per_s": stats.events / seconds,
        "entries_per_s": stats.entered / seconds,
        "per_event_us": 1e6 * seconds / max(stats.events, 1),
        "counts": counts,
        "active": counts.get("active", 0),
        "journeys_db_mb": _db_mb(bench.scratch / "journeys.db"),
        "rss_mb_before": rss_before,
        "rss_mb_after": _rss_mb(),
        "peak_rss_mb": _peak_rss_mb(),
    }


def arm_timers(bench: Bench, total: int) -> dict[str, Any]:
    """Each instance is due at entry: its first pass runs the 1h wait and arms the timer."""
    runner, stats = bench.runner, RunStats()
    runner.latencies_s = []
    with _progress(total, "inst", "arm timers") as bar:
        runner.on_advance = bar.update
        started = time.perf_counter()
        runner.advance_due(stats)
        seconds = time.perf_counter() - started
        runner.on_advance = None
    armed = len(runner.latencies_s)
    next_wake = bench.store.next_wake()
    return {
        "instances": armed,
        "seconds": seconds,
        "instances_per_s": armed / seconds,
        "advance": _percentiles_ms(runner.latencies_s),
        "next_wake_in_s": None
        if next_wake is None
        else (next_wake - bench.clock()).total_seconds(),
    }


def idle(bench: Bench, repeats: int) -> dict[str, Any]:
    """Passes with every instance waiting and none due: what a timer scan costs."""
    runner = bench.runner

    def timed(call: Callable[[RunStats], Any]) -> list[float]:
        samples = []
        for _ in range(repeats):
            stats = RunStats()
            started = time.perf_counter()
            call(stats)
            samples.append(time.perf_counter() - started)
            assert not stats.busy, stats
        return samples

    advance = timed(runner.advance_due)
    whole = timed(lambda stats: stats.add(runner.run_once()))
    plan = bench.store.db.query(
        "EXPLAIN QUERY PLAN SELECT instance_id FROM journey_instances "
        "WHERE status = 'active' AND wake_at <= ? ORDER BY wake_at LIMIT ?",
        (bench.clock().timestamp(), 500),
    )
    return {
        "waiting": bench.store.counts().get("active", 0),
        "repeats": repeats,
        "advance_due_ms": 1e3 * statistics.median(advance),
        "advance_due_samples_ms": [1e3 * s for s in advance],
        "run_once_ms": 1e3 * statistics.median(whole),
        "due_query_plan": [str(row[-1]) for row in plan],
    }


def due_read(bench: Bench, repeats: int) -> dict[str, Any]:
    """One ``store.due`` batch (500, decoded) with every instance due: the read side of a pass."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        rows = bench.store.due(bench.clock(), bench.runner.batch)
        samples.append(time.perf_counter() - started)
    return {
        "batch": bench.runner.batch,
        "rows": len(rows),
        "ms": 1e3 * statistics.median(samples),
        "per_instance_us": 1e6 * statistics.median(samples) / max(len(rows), 1),
    }


def fire(bench: Bench, total: int, plan: Plan, say: Callable[[str], None]) -> dict[str, Any]:
    """The 1h timers fire: decide + send for each instance, the sample first."""
    runner = bench.runner
    runner.latencies_s = []
    stats = RunStats()
    sample = min(plan.sample, total)
    seconds = 0.0
    cpu_started = time.process_time()
    with _progress(total, "inst", "fire timers") as bar:
        runner.on_advance = bar.update
        for limit in (sample, None):
            runner.limit = limit
            started = time.perf_counter()
            with contextlib.suppress(LimitReached):
                runner.advance_due(stats)
            seconds += time.perf_counter() - started
            done = len(runner.latencies_s)
            if limit is None or done >= total:
                break
            projected = seconds * total / done
            if projected > plan.budget_s:
                say(
                    f"sample of {done:,} took {seconds:.0f} s: all {total:,} would take "
                    f"~{projected:.0f} s, over the {plan.budget_s:.0f} s budget; extrapolating"
                )
                break
            say(f"sample of {done:,} took {seconds:.0f} s (all: ~{projected:.0f} s); going on")
        runner.on_advance = None
        runner.limit = None
    cpu_seconds = time.process_time() - cpu_started
    done = len(runner.latencies_s)
    tenth = max(done // 10, 1)
    by_tenth = [
        {
            "instances_per_s": len(chunk) / sum(chunk),
            "p50_ms": 1e3 * statistics.median(chunk),
        }
        for chunk in (runner.latencies_s[low : low + tenth] for low in range(0, done, tenth))
    ]
    counts = bench.store.counts()
    sends = bench.store.send_counts()
    outbox_lines = sum(
        sum(1 for _ in path.open(encoding="utf-8"))
        for path in (bench.scratch / "outbox").glob("*.jsonl")
    )
    extrapolated = done < total
    return {
        "due": total,
        "advanced": done,
        "extrapolated": extrapolated,
        "seconds": seconds,
        "steps": stats.steps,
        "decided": stats.decided,
        "sent": stats.sent,
        "blocked": stats.blocked,
        "failed": stats.failed,
        "retried": stats.retried,
        "instances_per_s": done / seconds,
        "steps_per_s": stats.steps / seconds,
        "decisions_per_s": stats.decided / seconds,
        "sends_per_s": stats.sent / seconds,
        "advance": _percentiles_ms(runner.latencies_s),
        "by_tenth": by_tenth,
        "cpu_seconds": cpu_seconds,
        "cpu_share": cpu_seconds / seconds,
        "drain_all_s": seconds * total / done,
        "drain_all_s_is": "extrapolated from the sample" if extrapolated else "measured",
        "counts": counts,
        "send_counts": sends,
        "outbox_lines": outbox_lines,
        "rss_mb_after": _rss_mb(),
        "peak_rss_mb": _peak_rss_mb(),
        "disk_mb": _disk(bench.scratch),
    }


def baseline_decide(bench: Bench, count: int) -> dict[str, Any]:
    """The step's own decision request, straight to the engine, for fresh customers.

    Then the same with the engine's other two calls of a step (check_send before the send and
    the ``delivered`` outcome after it), for another set of fresh customers.
    """
    step = bench.journey.step("first")
    assert isinstance(step, DecideStep)
    fresh = [f"b{i:06d}" for i in range(2 * count + 100)]
    load_contacts(bench, fresh)
    engine = bench.engine

    def request(customer: str) -> Any:
        return request_for(
            step, customer_id=customer, journey="cart", idempotency_key=f"bench:{customer}"
        )

    for customer in fresh[-100:]:  # warm-up
        engine.decide(request(customer))
    decide_only: list[float] = []
    with _progress(count, "dec", "bare decide") as bar:
        for customer in fresh[:count]:
            started = time.perf_counter()
            engine.decide(request(customer))
            decide_only.append(time.perf_counter() - started)
            bar.update()
    engine_calls: list[float] = []
    now = bench.clock()
    with _progress(count, "dec", "decide+check+outcome") as bar:
        for customer in fresh[count : 2 * count]:
            started = time.perf_counter()
            decision = engine.decide(request(customer))
            engine.check_send(decision.decision_id)
            engine.record_outcome(
                decision.decision_id,
                event="delivered",
                occurred_at=now,
                outcome_id=f"{decision.decision_id}:delivered",
            )
            engine_calls.append(time.perf_counter() - started)
            bar.update()
    return {
        "decisions": count,
        "decide": {**_percentiles_ms(decide_only), "per_s": count / sum(decide_only)},
        "decide_check_outcome": {
            **_percentiles_ms(engine_calls),
            "per_s": count / sum(engine_calls),
        },
    }


def baseline_insert(scratch: Path, rows: int) -> dict[str, Any]:
    """Instance-shaped rows into a bare SQLite table (same schema, WAL, synchronous=NORMAL)."""
    state = json.dumps(
        {
            "trigger": {"event_id": "cart-c000000", "payload": {"cart_value": 50.0, "items": 2}},
            "events": [],
            "visits": {},
            "decisions": {},
        },
        separators=(",", ":"),
    )
    now = START.timestamp()
    result: dict[str, Any] = {"rows": rows}
    for name, per_row_commit in (("commit_per_row", True), ("one_transaction", False)):
        path = scratch / f"floor_{name}.db"
        JourneyStore(SQLiteDatabase(path)).close()  # the journey store's own schema and indexes
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        sql = (
            "INSERT INTO journey_instances (instance_id, journey, customer_id, status, step_id, "
            "wake_at, waiting_for, entered_at, ended_at, end_reason, state, version) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (instance_id) DO NOTHING"
        )
        tail = (None, None, state, 0)  # ended_at, end_reason, state, version
        values = [
            (f"{i:032x}", "cart", _customer(i), "active", "settle", now, None, now, *tail)
            for i in range(rows)
        ]
        started = time.perf_counter()
        if per_row_commit:
            for row in values:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(sql, row)
                conn.execute("COMMIT")
        else:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, values)
            conn.execute("COMMIT")
        seconds = time.perf_counter() - started
        conn.close()
        result[name] = {"seconds": seconds, "rows_per_s": rows / seconds}
        for leftover in scratch.glob(f"floor_{name}.db*"):
            leftover.unlink()
    return result


# -- the report ------------------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "load_average_at_start": list(os.getloadavg()),
    }


def _git() -> dict[str, Any]:
    def git(*command: str) -> str:
        done = subprocess.run(
            ["git", *command], capture_output=True, text=True, check=False, cwd=REPO_ROOT
        )
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "changed": git("status", "--short").splitlines()}


def table(r: dict[str, Any]) -> str:
    """The figures that answer "how far does it get with N customers", one per line."""
    n = r["plan"]["customers"]
    a, c, arm, i, d, f = (r[k] for k in ("append", "consume", "arm", "idle", "due_read", "fire"))
    b, floor = r["baseline_decide"], r["baseline_insert"]
    per_instance_ms = 1e3 * f["seconds"] / max(f["advanced"], 1)
    engine_ms = 1e3 / b["decide_check_outcome"]["per_s"]
    fired = f"{f['advanced']:,} of {f['due']:,}" + (" (sample)" if f["extrapolated"] else "")
    per_row, one_tx = floor["commit_per_row"], floor["one_transaction"]
    advance, decide, engine = f["advance"], b["decide"], b["decide_check_outcome"]
    state_mb = sum(v["total"] for v in f["disk_mb"].values())
    p50_ms, engine_p50 = advance["p50_ms"], engine["p50_ms"]
    first, last = f["by_tenth"][0]["instances_per_s"], f["by_tenth"][-1]["instances_per_s"]
    rows: list[tuple[str, str]] = [
        ("customers", f"{n:,}"),
        ("1. events appended (batches of 1,000)", f"{a['events_per_s']:,.0f} events/s"),
        ("2. consume: events handled", f"{c['events_per_s']:,.0f} events/s"),
        ("   entries", f"{c['entries_per_s']:,.0f}/s ({c['seconds']:.0f} s for {n:,})"),
        ("   floor: bare insert, commit per row", f"{per_row['rows_per_s']:,.0f}/s"),
        ("   floor: bare insert, one transaction", f"{one_tx['rows_per_s']:,.0f}/s"),
        ("   active instances", f"{c['active']:,}"),
        ("   journeys.db on disk (db+wal)", f"{c['journeys_db_mb']['total']:.1f} MB"),
        (
            "   process RSS after entry (peak)",
            f"{c['rss_mb_after']:.0f} ({c['peak_rss_mb']:.0f}) MB",
        ),
        ("3. first pass: arm 1h timers", f"{arm['instances_per_s']:,.0f} instances/s"),
        (f"   idle advance_due, {i['waiting']:,} waiting", f"{1e3 * i['advance_due_ms']:.0f} µs"),
        ("   idle run_once (consume + advance_due)", f"{1e3 * i['run_once_ms']:.0f} µs"),
        (f"   due read, {d['rows']} of all due", f"{d['ms']:.1f} ms"),
        (f"4. timers fire: decide + send, {fired}", f"{f['seconds']:.0f} s"),
        ("   instances advanced", f"{f['instances_per_s']:,.0f}/s"),
        ("   steps", f"{f['steps_per_s']:,.0f}/s"),
        ("   decisions", f"{f['decisions_per_s']:,.0f}/s"),
        ("   sends", f"{f['sends_per_s']:,.0f}/s"),
        ("   first / last tenth of the drain", f"{first:,.0f} / {last:,.0f} instances/s"),
        ("   process CPU / wall during the drain", f"{f['cpu_share']:.0%}"),
        ("   _advance p50 / p99", f"{advance['p50_ms']:.2f} / {advance['p99_ms']:.2f} ms"),
        (f"   drain all {n:,} ({f['drain_all_s_is']})", f"{f['drain_all_s'] / 60:.1f} min"),
        ("   RSS after (peak)", f"{f['rss_mb_after']:.0f} ({f['peak_rss_mb']:.0f}) MB"),
        ("   all state on disk", f"{state_mb:.0f} MB"),
        ("5. bare engine.decide", f"{decide['per_s']:,.0f}/s (p50 {decide['p50_ms']:.2f} ms)"),
        ("   decide + check_send + record_outcome", f"{engine['per_s']:,.0f}/s"),
        ("   runner per instance vs engine calls, p50", f"{p50_ms:.2f} vs {engine_p50:.2f} ms"),
        ("   the same, mean", f"{per_instance_ms:.2f} vs {engine_ms:.2f} ms"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="10,000 customers, all fired")
    parser.add_argument("--customers", type=int, help="default 100,000 (10,000 with --quick)")
    parser.add_argument(
        "--sample", type=int, default=20_000, help="instances fired before deciding to go on"
    )
    parser.add_argument(
        "--budget", type=float, default=360.0, help="seconds the whole drain may take (full run)"
    )
    parser.add_argument("--out", type=Path, default=Path("reports") / "bench_journeys.json")
    parser.add_argument("--keep", action="store_true", help="keep the scratch state folder")
    args = parser.parse_args(argv)
    customers = args.customers or (10_000 if args.quick else 100_000)
    plan = Plan.quick(customers) if args.quick else Plan.full(customers, args.sample, args.budget)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="nudge-bench-journeys-"))
    steps = Steps(6)
    results: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "machine": _machine(),
        "code": _git(),
        "plan": asdict(plan),
        "journey": CART_JOURNEY,
        "decision_config": DECISIONS,
    }
    started = time.perf_counter()
    ids = [_customer(i) for i in range(customers)]
    bench = build(scratch)
    try:
        with steps.step("append", f"Append {2 * customers:,} events → {scratch}"):
            results["contacts"] = load_contacts(bench, ids)
            steps.note(f"{customers:,} contact profiles in {results['contacts']['seconds']:.1f} s")
            results["append"] = a = append_events(bench, ids, plan.append_batch)
            steps.note(f"{a['events']:,} events, {a['events_per_s']:,.0f}/s")
        with steps.step("consume", "Consume: every customer enters the journey"):
            results["consume"] = c = consume(bench, 2 * customers)
            steps.note(
                f"{c['events_per_s']:,.0f} events/s, {c['entries_per_s']:,.0f} entries/s; "
                f"{c['active']:,} active; journeys.db {c['journeys_db_mb']['total']:.1f} MB; "
                f"RSS {c['rss_mb_after']:.0f} MB"
            )
        with steps.step("idle", "Timers: arm them, then idle passes with nothing due"):
            results["arm"] = arm = arm_timers(bench, customers)
            steps.note(f"armed {arm['instances']:,} at {arm['instances_per_s']:,.0f}/s")
            results["idle"] = i = idle(bench, plan.idle_repeats)
            steps.note(
                f"idle advance_due {i['advance_due_ms']:.2f} ms with {i['waiting']:,} waiting "
                f"({'; '.join(i['due_query_plan'])})"
            )
        with steps.step("fire", "Clock +1h: the timers fire, decide + send each"):
            bench.clock.advance(timedelta(hours=1))
            results["due_read"] = due_read(bench, plan.idle_repeats)
            results["fire"] = f = fire(bench, customers, plan, steps.note)
            steps.note(
                f"{f['advanced']:,} advanced at {f['instances_per_s']:,.0f}/s, "
                f"{f['decisions_per_s']:,.0f} decisions/s, {f['sends_per_s']:,.0f} sends/s; "
                f"p50 {f['advance']['p50_ms']:.2f} p99 {f['advance']['p99_ms']:.2f} ms"
            )
        with steps.step("baseline_decide", "Baseline: bare engine.decide, same request"):
            results["baseline_decide"] = b = baseline_decide(bench, plan.baseline_decisions)
            steps.note(
                f"decide {b['decide']['per_s']:,.0f}/s; with check_send and record_outcome "
                f"{b['decide_check_outcome']['per_s']:,.0f}/s"
            )
        with steps.step("baseline_insert", f"Baseline: bare SQLite insert of {customers:,} rows"):
            results["baseline_insert"] = floor = baseline_insert(scratch, customers)
            steps.note(
                f"commit per row {floor['commit_per_row']['rows_per_s']:,.0f}/s; "
                f"one transaction {floor['one_transaction']['rows_per_s']:,.0f}/s"
            )
    finally:
        bench.close()
        if args.keep:
            print(f"kept the scratch state in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    results["machine"]["load_average_at_end"] = list(os.getloadavg())
    results["timings_s"] = {**steps.timings_s, "total": round(time.perf_counter() - started, 1)}
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print(table(results))
    print(f"\nwrote {args.out} in {results['timings_s']['total']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
