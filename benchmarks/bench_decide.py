"""Decision latency and throughput, in process and over HTTP, against a bare echo endpoint.

    python -m benchmarks.bench_decide [--quick] [--profile] [--py-spy [PATH]] [--keep]

Builds its own state in a scratch folder (a 5,000-customer Hillstrom sample, its
Feast features and LightGBM model), with a decision configuration of 3 messages
× 3 channels × 6 slots = 54 joint actions plus no send, every contact rule on
(consent and reachability on all three channels, four frequency caps, quiet
hours in a narrow window two hours ahead, so the "+3h" slot is excluded and the
rest stay eligible), the 5 % holdout, the 5 % exploration slice and the
decision log. Reserved sends are cleared before each timed run, so caps bind
only for customers drawn more than once in it. Then:

1. in process, embedded (SQLite) and scale (Redis + Postgres, under a key prefix
   and schema of its own, dropped at the end): decision latency p50/p99, and
   outcome ingestion with online updates;
2. over HTTP: ``nudge serve`` with 1 and 2 workers, loaded by wrk
   (``benchmarks/wrk_decide.lua``) at 8, 32 and 64 connections, and in the same
   run the echo app (``benchmarks/echo_app.py``) served by uvicorn the same way,
   so decide/echo is a like-for-like ratio; scale mode at 32 connections.

Writes ``reports/bench_decide.json`` (every raw figure, the machine and the code
measured) and prints a table of each figure beside its target. The full run
takes about six minutes, ``--quick`` about two. ``--profile`` adds a breakdown of
decide by part and cProfile listings (``reports/bench_decide_profile.txt``);
``--py-spy`` samples a serving worker under load
(``reports/bench_decide_server_profile.txt``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

from benchmarks.bench_http import (
    REPO_ROOT,
    WRK_INSTALL_HINT,
    EchoServer,
    WrkRun,
    decide_server,
    median_of,
    run_wrk,
    server_pid,
    write_bodies,
    wrk_path,
)
from benchmarks.bench_inprocess import profile_engine, run_in_process
from benchmarks.bench_report import TARGETS, best_http, table
from benchmarks.bench_setup import (
    MESSAGES,
    SLOTS,
    TIME_ZONE,
    BenchState,
    build_state,
    clear_sends,
    drop_scale_state,
    load_contacts,
)
from benchmarks.bench_spy import record, summarise
from features import NudgeError
from serving.progress import Steps
from serving.settings import Settings


@dataclass(frozen=True)
class Plan:
    """How much to measure: ``--quick`` shrinks every part."""

    rounds: int
    per_round: int
    warmup: int
    http_seconds: float
    http_repeats: int
    http_warmup_seconds: float
    workers: tuple[int, ...]
    connections: tuple[int, ...]
    scale_workers: tuple[int, ...]
    scale_connections: tuple[int, ...]

    @staticmethod
    def full() -> Plan:
        return Plan(3, 2000, 300, 5.0, 3, 2.0, (1, 2), (8, 32, 64), (1, 2), (32,))

    @staticmethod
    def quick() -> Plan:
        return Plan(3, 500, 100, 3.0, 1, 1.0, (1, 2), (32,), (2,), (32,))


def _machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import uvicorn

    wrk = wrk_path()
    wrk_version = ""
    if wrk is not None:
        shown = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
        wrk_version = next(iter((shown.stdout or shown.stderr).splitlines()), "")
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": list(os.getloadavg()),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "uvicorn": uvicorn.__version__,
        "wrk": wrk_version,
    }


def _quiet() -> None:
    from serving.cli import _quiet_libraries

    _quiet_libraries()


@contextlib.contextmanager
def _captured() -> Iterator[io.StringIO]:
    """Feast prints its materialisation progress; the steps say what matters."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield sink


def _scale_settings(embedded: Settings) -> Settings:
    # The prefix is also the Postgres schema name, so it must be a plain identifier.
    return embedded.model_copy(
        update={"storage": "scale", "key_prefix": f"nudge_bench_{os.getpid()}"}
    )


def _scale_available(settings: Settings) -> str | None:
    """None when Redis and Postgres answer, else why not."""
    import psycopg
    import redis

    try:
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as err:
        return f"Redis at {settings.redis_url}: {err}"
    try:
        with psycopg.connect(settings.postgres_dsn, connect_timeout=3):
            pass
    except psycopg.Error as err:
        return f"Postgres at {settings.postgres_dsn}: {err}"
    return None


def _http(
    settings: Settings,
    *,
    wrk: str,
    bodies: Path,
    workers: tuple[int, ...],
    connections: tuple[int, ...],
    plan: Plan,
    log_dir: Path,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Decide and echo side by side, per worker count and concurrency; medians of repeats."""
    rows: list[dict[str, Any]] = []
    for count in workers:
        with (
            decide_server(settings, workers=count) as api,
            EchoServer(workers=count, log_path=log_dir / "echo.log") as echo,
        ):
            servers = {"decide": (api.base_url, server_pid(api)), "echo": (echo.base_url, echo.pid)}
            load = functools.partial(run_wrk, wrk, bodies=bodies)
            for url, _ in servers.values():  # warm both: imports, caches, connection pools
                load(url, connections=max(connections), seconds=plan.http_warmup_seconds)
            for conns in connections:
                runs: dict[str, list[WrkRun]] = {"decide": [], "echo": []}
                for repeat in range(plan.http_repeats):
                    clear_sends(settings)  # each run starts with no caps taken
                    for app, (url, pid) in servers.items():  # alternated, so drift hits both
                        run = load(
                            url,
                            connections=conns,
                            seconds=plan.http_seconds,
                            seed=1 + repeat,
                            server_pid=pid,
                        )
                        runs[app].append(run)
                    d, e = runs["decide"][-1], runs["echo"][-1]
                    say(
                        f"{settings.storage}, {count} worker(s), {conns} connections, "
                        f"run {repeat + 1}/{plan.http_repeats}: decide {d.per_s:,.0f}/s "
                        f"p50 {d.p50_ms:.1f} p99 {d.p99_ms:.1f} ms, non-2xx {d.non_2xx} | "
                        f"echo {e.per_s:,.0f}/s p99 {e.p99_ms:.1f} ms"
                    )
                decide, echo_figures = median_of(runs["decide"]), median_of(runs["echo"])
                rows.append(
                    {
                        "storage": settings.storage,
                        "workers": count,
                        "connections": conns,
                        "decide": decide,
                        "echo": echo_figures,
                        "decide_share_of_echo": decide["per_s"] / echo_figures["per_s"],
                        "decide_runs": [run.as_dict() for run in runs["decide"]],
                        "echo_runs": [run.as_dict() for run in runs["echo"]],
                    }
                )
    return rows


def _server_profile(
    settings: Settings, *, py_spy: str, wrk: str, bodies: Path, seconds: float, out_dir: Path
) -> str:
    """py-spy over one ``nudge serve`` worker while wrk loads it with 32 connections."""
    raw = out_dir / f"bench_decide_server_{settings.storage}.collapsed"
    with decide_server(settings, workers=1) as api:
        pid = server_pid(api)
        if pid is None:
            return "the server's process id is unknown; not profiled\n"
        run_wrk(wrk, api.base_url, connections=32, seconds=2, bodies=bodies)
        clear_sends(settings)
        spy = record(py_spy, pid, seconds, raw)
        time.sleep(0.5)  # py-spy attaches
        run = run_wrk(
            wrk, api.base_url, connections=32, seconds=seconds, bodies=bodies, server_pid=pid
        )
        spy.wait(timeout=seconds + 60)
    if not raw.exists():
        return f"py-spy wrote nothing (exit {spy.returncode}); is ptrace allowed?\n"
    head = (
        f"{settings.storage}, 1 worker, 32 connections: {run.per_s:,.0f} decisions/s, "
        f"p99 {run.p99_ms:.1f} ms, server CPU {run.server_cpu_ms_per_request or 0:.2f} ms "
        f"per request (under py-spy); raw stacks in {raw}\n"
    )
    return head + summarise(raw)


def _git() -> dict[str, Any]:
    """Which code was measured: the commit, and the files changed on top of it."""

    def git(*command: str) -> str:
        done = subprocess.run(
            ["git", *command], capture_output=True, text=True, check=False, cwd=REPO_ROOT
        )
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "changed": git("status", "--short").splitlines()}


@dataclass
class Run:
    """One benchmark run: what to measure, where its scratch state is, what it found."""

    args: argparse.Namespace
    plan: Plan
    scratch: Path
    steps: Steps
    results: dict[str, Any]
    state: BenchState | None = None
    scale: Settings | None = None

    @property
    def embedded(self) -> Settings:
        assert self.state is not None
        return self.state.settings

    def setup(self) -> None:
        count, seed = self.args.customers, self.args.seed
        with self.steps.step("setup", f"Setup: {count:,} Hillstrom customers → {self.scratch}"):
            with _captured():
                state = self.state = build_state(self.scratch, customers=count, seed=seed)
            start, end = state.quiet_hours
            self.steps.note(
                f"features and model ready; {len(state.customers):,} contact profiles opted in "
                f"and reachable on email, sms and push ({TIME_ZONE})"
            )
            self.steps.note(
                f"quiet hours {start}–{end} {TIME_ZONE}: a narrow window two hours ahead; it "
                "takes the +3h slot (and any wall-clock slot inside it) out and leaves the rest"
            )
            self.results["setup"] = {
                "customers": len(state.customers),
                "messages": dict(MESSAGES),
                "channels": ["email", "sms", "push"],
                "slots": SLOTS,
                "joint_actions": len(MESSAGES) * 3 * len(SLOTS),
                "quiet_hours": {"start": start, "end": end, "time_zone": TIME_ZONE},
                "decision_config": self.embedded.decision_config.read_text(encoding="utf-8"),
                "timings_s": state.timings_s,
            }

    def in_process(self) -> None:
        assert self.state is not None
        measured = self.results["in_process"]
        with self.steps.step("in_process_embedded", "In process, embedded (SQLite)"):
            measured["embedded"] = self._in_process(self.embedded)
        with self.steps.step("in_process_scale", "In process, scale (Redis + Postgres)"):
            why_not = "--no-scale" if self.args.no_scale else _scale_available(self.embedded)
            if why_not is not None:
                self.steps.note(f"skipped: {why_not}")
                measured["scale"] = {"skipped": why_not}
                return
            scale = self.scale = _scale_settings(self.embedded)
            drop_scale_state(scale)
            load_contacts(scale, self.state.customers)
            self.steps.note(f"key prefix and Postgres schema {scale.key_prefix}")
            measured["scale"] = self._in_process(scale)

    def _in_process(self, settings: Settings) -> dict[str, Any]:
        assert self.state is not None
        return run_in_process(
            settings,
            self.state.customers,
            list(MESSAGES),
            rounds=self.plan.rounds,
            per_round=self.plan.per_round,
            warmup=self.plan.warmup,
            reset_sends=functools.partial(clear_sends, settings),
            seed=self.args.seed,
            say=self.steps.note,
        )

    def http(self) -> None:
        assert self.state is not None
        wrk = wrk_path()
        if self.args.no_http or wrk is None:
            reason = "--no-http" if self.args.no_http else WRK_INSTALL_HINT
            self.results["http"] = {"skipped": reason}
            for key, title in (("http_embedded", "embedded"), ("http_scale", "scale")):
                with self.steps.step(key, f"Over HTTP, {title}"):
                    self.steps.note(f"skipped: {reason}")
            return
        bodies = write_bodies(self.scratch / "bodies.jsonl", self.state.customers, list(MESSAGES))
        plan = self.plan
        measure = functools.partial(
            _http, wrk=wrk, bodies=bodies, plan=plan, log_dir=self.scratch, say=self.steps.note
        )
        rows: list[dict[str, Any]] = []
        title = (
            f"Over HTTP, embedded: decide and echo, {'/'.join(map(str, plan.workers))} workers × "
            f"{'/'.join(map(str, plan.connections))} connections"
        )
        failures: dict[str, str] = {}
        with self.steps.step("http_embedded", title):
            try:
                rows += measure(self.embedded, workers=plan.workers, connections=plan.connections)
            except (RuntimeError, NudgeError, OSError) as err:  # keep what was measured
                failures["embedded"] = f"{type(err).__name__}: {err}"
                self.steps.note(f"FAILED: {failures['embedded']}")
        title = (
            f"Over HTTP, scale: decide and echo, {'/'.join(map(str, plan.scale_workers))} "
            f"workers × {'/'.join(map(str, plan.scale_connections))} connections"
        )
        with self.steps.step("http_scale", title):
            if self.scale is None:
                self.steps.note("skipped: scale mode is not available")
            else:
                try:
                    rows += measure(
                        self.scale, workers=plan.scale_workers, connections=plan.scale_connections
                    )
                except (RuntimeError, NudgeError, OSError) as err:
                    failures["scale"] = f"{type(err).__name__}: {err}"
                    self.steps.note(f"FAILED: {failures['scale']}")
        self.results["http"] = {
            "client": "wrk -t1 --timeout 10s, closed loop, keep-alive; benchmarks/wrk_decide.lua",
            "rows": rows,
            "best": best_http(rows),
            "failures": failures,
        }

    def profile_in_process(self) -> None:
        assert self.state is not None
        with self.steps.step("profile", "Profile: cProfile of decide and record_outcome"):
            listings: dict[str, str] = {}
            for settings in (self.embedded, self.scale):
                if settings is None:
                    continue
                for name, text in profile_engine(
                    settings,
                    self.state.customers,
                    list(MESSAGES),
                    decisions=self.plan.per_round,
                    reset_sends=functools.partial(clear_sends, settings),
                ).items():
                    listings[f"{settings.storage}: {name}"] = text
            path = self.args.out.with_name("bench_decide_profile.txt")
            path.write_text(
                "\n".join(f"== {name} ==\n{text}" for name, text in listings.items()),
                encoding="utf-8",
            )
            self.steps.note(f"wrote {path}")

    def profile_server(self, py_spy: str) -> None:
        assert self.state is not None
        with self.steps.step("py_spy", "Profile: py-spy on one serving worker under load"):
            wrk = wrk_path()
            found = shutil.which(py_spy)
            if wrk is None or found is None:
                self.steps.note(f"skipped: {'wrk' if wrk is None else py_spy} not found")
                return
            bodies = self.scratch / "bodies.jsonl"
            if not bodies.exists():
                write_bodies(bodies, self.state.customers, list(MESSAGES))
            texts = [
                _server_profile(
                    settings,
                    py_spy=found,
                    wrk=wrk,
                    bodies=bodies,
                    seconds=8 if not self.args.quick else 4,
                    out_dir=self.args.out.parent,
                )
                for settings in (self.embedded, self.scale)
                if settings is not None
            ]
            path = self.args.out.with_name("bench_decide_server_profile.txt")
            path.write_text("\n\n".join(texts), encoding="utf-8")
            self.steps.note(f"wrote {path}")

    def clean_up(self) -> None:
        if self.scale is not None:
            with contextlib.suppress(Exception):
                drop_scale_state(self.scale)
        if self.args.keep:
            print(f"kept the scratch state in {self.scratch}")
        else:
            shutil.rmtree(self.scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short run (about two minutes)")
    parser.add_argument("--customers", type=int, default=5000, help="Hillstrom sample size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports") / "bench_decide.json")
    parser.add_argument("--no-scale", action="store_true", help="skip Redis + Postgres")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP part")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also cProfile decide and record_outcome in process; listings beside the JSON",
    )
    parser.add_argument(
        "--py-spy",
        nargs="?",
        const="py-spy",
        metavar="PATH",
        help="also sample one serving worker under load with py-spy (not a dependency: "
        "pip install --target /tmp/pyspy py-spy); summary beside the JSON",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch state folder")
    args = parser.parse_args(argv)
    plan = Plan.quick() if args.quick else Plan.full()

    _quiet()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    run = Run(
        args=args,
        plan=plan,
        scratch=Path(tempfile.mkdtemp(prefix="nudge-bench-")),
        steps=Steps(5 + int(args.profile) + int(args.py_spy is not None)),
        results={
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": "quick" if args.quick else "full",
            "machine": _machine(),
            "code": _git(),
            "plan": plan.__dict__,
            "targets": TARGETS,
            "in_process": {},
        },
    )
    try:
        run.setup()
        run.in_process()
        run.http()
        if args.profile:
            run.profile_in_process()
        if args.py_spy is not None:
            run.profile_server(args.py_spy)
    finally:
        run.clean_up()
    results = run.results
    results["machine"]["load_average_at_end"] = list(os.getloadavg())
    results["timings_s"] = {**run.steps.timings_s, "total": round(time.perf_counter() - started, 1)}
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(table(results))
    print(f"\nwrote {args.out} in {results['timings_s']['total']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
