"""Decisions over HTTP: ``nudge serve`` and the echo app as child processes, loaded by wrk.

wrk (C, one thread, closed loop: each connection sends its next request when
the last one is answered) shares the machine's cores with the server, so the
figures are what the server does while a client runs beside it.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features import Unavailable
from serving.api_process import ApiProcess, free_port, stop_process
from serving.json_client import JsonClient
from serving.settings import Settings

__all__ = [
    "LUA_SCRIPT",
    "REPO_ROOT",
    "WRK_INSTALL_HINT",
    "EchoServer",
    "WrkRun",
    "decide_server",
    "machine_busy_seconds",
    "median_of",
    "run_wrk",
    "server_pid",
    "tree_cpu_seconds",
    "write_bodies",
    "wrk_path",
]

LUA_SCRIPT = Path(__file__).with_name("wrk_decide.lua")
REPO_ROOT = Path(__file__).resolve().parents[1]
WRK_INSTALL_HINT = (
    "wrk is not installed: `sudo apt-get install wrk` (Debian/Ubuntu) or "
    "`brew install wrk` (macOS), then run the benchmark again"
)
_MARKER = "WRK_JSON "


def wrk_path() -> str | None:
    """The wrk executable on PATH (or /usr/bin/wrk), if there is one."""
    found = shutil.which("wrk")
    if found is None and Path("/usr/bin/wrk").is_file():
        found = "/usr/bin/wrk"
    return found


def write_bodies(path: Path, customers: Sequence[str], messages: Sequence[str]) -> Path:
    """One /v1/decide body per known customer, each offering every message on every channel."""
    candidates = [{"message": message} for message in messages]
    lines = (json.dumps({"customer_id": c, "candidates": candidates}) for c in customers)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tree_cpu_seconds(pid: int | None) -> float | None:
    """CPU seconds (user + system) used so far by ``pid`` and its descendants; None off Linux."""
    if pid is None:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    usage: dict[int, tuple[int, float]] = {}  # pid → (parent, cpu seconds)
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return None
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it ended meanwhile
        # Fields after the parenthesised command: state, ppid, ..., utime (12th), stime (13th).
        fields = stat[stat.rindex(")") + 2 :].split()
        usage[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    if pid not in usage:
        return None
    total = 0.0
    wanted = {pid}
    changed = True
    while changed:  # grow the set of descendants until it stops growing
        changed = False
        for child, (parent, _) in usage.items():
            if parent in wanted and child not in wanted:
                wanted.add(child)
                changed = True
    for member in wanted:
        total += usage[member][1]
    return total


def machine_busy_seconds() -> float | None:
    """CPU seconds all cores have spent busy since boot (Linux ``/proc/stat``); None elsewhere."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    ticks = [int(value) for value in first[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class WrkRun:
    """One wrk run's figures (latencies in ms)."""

    requests: int
    seconds: float
    per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    non_2xx: int
    """Responses with status ≥ 400 (wrk's count); the API answers no 1xx or 3xx here."""
    socket_errors: int
    """Connect, read, write errors and timeouts (10 s)."""
    client_cpu_s: float
    """CPU time wrk itself used: taken from the same cores as the server's."""
    server_cpu_ms_per_request: float | None
    """Server CPU (every worker) per answered request, free of queueing; None if unknown."""
    other_cpu_s: float | None
    """CPU the rest of the machine used meanwhile (neither wrk nor the server): noise."""
    bytes_per_response: float
    """Response size, headers included."""

    def as_dict(self) -> dict[str, float | int | None]:
        return dict(self.__dict__)


def run_wrk(
    wrk: str,
    base_url: str,
    *,
    connections: int,
    seconds: float,
    bodies: Path,
    seed: int = 1,
    server_pid: int | None = None,
) -> WrkRun:
    """Load ``base_url``/v1/decide for ``seconds`` over ``connections`` keep-alive connections.

    With ``server_pid``, the server's CPU time (its process and its workers) is
    read before and after, for its CPU cost per request.
    """
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
        str(bodies),
        str(seed),
    ]
    server_before = tree_cpu_seconds(server_pid)
    client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before = machine_busy_seconds()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    busy_after = machine_busy_seconds()
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_after = tree_cpu_seconds(server_pid)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(_MARKER)), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
        )
    raw: dict[str, Any] = json.loads(line[len(_MARKER) :])
    errors = raw["errors"]
    latency = raw["latency_us"]
    elapsed = raw["duration_us"] / 1e6
    client_cpu = (client_after.ru_utime + client_after.ru_stime) - (
        client_before.ru_utime + client_before.ru_stime
    )
    server_used = (
        None if server_before is None or server_after is None else server_after - server_before
    )
    server_cpu = (
        None if server_used is None or not raw["requests"] else 1e3 * server_used / raw["requests"]
    )
    other = (
        None
        if busy_before is None or busy_after is None or server_used is None
        else max(0.0, busy_after - busy_before - server_used - client_cpu)
    )
    return WrkRun(
        requests=raw["requests"],
        seconds=round(elapsed, 3),
        per_s=raw["requests"] / elapsed,
        p50_ms=latency["p50"] / 1e3,
        p90_ms=latency["p90"] / 1e3,
        p99_ms=latency["p99"] / 1e3,
        max_ms=latency["max"] / 1e3,
        mean_ms=latency["mean"] / 1e3,
        non_2xx=errors["status"],
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        client_cpu_s=round(client_cpu, 3),
        server_cpu_ms_per_request=server_cpu,
        other_cpu_s=None if other is None else round(other, 2),
        bytes_per_response=raw["bytes"] / raw["requests"] if raw["requests"] else 0.0,
    )


def median_of(runs: Sequence[WrkRun]) -> dict[str, Any]:
    """Each figure's median over repeated runs; error counts are summed."""
    return {
        "runs": len(runs),
        "requests": sum(run.requests for run in runs),
        "per_s": statistics.median(run.per_s for run in runs),
        "p50_ms": statistics.median(run.p50_ms for run in runs),
        "p90_ms": statistics.median(run.p90_ms for run in runs),
        "p99_ms": statistics.median(run.p99_ms for run in runs),
        "max_ms": max(run.max_ms for run in runs),
        "non_2xx": sum(run.non_2xx for run in runs),
        "socket_errors": sum(run.socket_errors for run in runs),
        "client_cpu_s": statistics.median(run.client_cpu_s for run in runs),
        "other_cpu_s": _median_or_none([run.other_cpu_s for run in runs]),
        "bytes_per_response": statistics.median(run.bytes_per_response for run in runs),
        "server_cpu_ms_per_request": _median_or_none(
            [run.server_cpu_ms_per_request for run in runs]
        ),
    }


def _median_or_none(values: Sequence[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


_DECIDE_PROBE = ("/v1/decide", {"customer_id": "echo", "candidates": [{"message": "m"}]})


class EchoServer:
    """A baseline app (``benchmarks.echo_app`` by default) under uvicorn with ``workers``
    processes, as ``nudge serve`` runs; it is up once ``probe`` (path, body) is answered
    with one of ``ready`` statuses."""

    def __init__(
        self,
        *,
        workers: int,
        log_path: Path,
        startup_timeout_s: float = 60.0,
        app: str = "benchmarks.echo_app:app",
        probe: tuple[str, dict[str, object]] = _DECIDE_PROBE,
        ready: tuple[int, ...] = (200,),
    ) -> None:
        self.app = app
        self.probe = probe
        self.ready = ready
        self.workers = workers
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def __enter__(self) -> EchoServer:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            self.app,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--log-level",
            "warning",
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_until_answering()
        return self

    def _wait_until_answering(self) -> None:
        assert self._process is not None
        client = JsonClient(self.base_url, timeout_s=5)
        deadline = time.monotonic() + self.startup_timeout_s
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise Unavailable(f"the echo server exited; see {self.log_path}")
                try:
                    path, body = self.probe
                    if client.post(path, body).status in self.ready:
                        return
                except OSError:
                    client.close()
                time.sleep(0.2)
        finally:
            client.close()
        self.__exit__()
        raise Unavailable(f"the echo server did not start; see {self.log_path}")

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            stop_process(self._process)


@contextmanager
def decide_server(settings: Settings, *, workers: int) -> Iterator[ApiProcess]:
    """``nudge serve --workers N`` in a child process; settings travel as NUDGE_* variables."""
    api = ApiProcess(settings.model_copy(update={"workers": workers, "port": free_port()}))
    with api:
        _wait_for_workers(api.base_url, workers)
        yield api


def server_pid(api: ApiProcess) -> int | None:
    """The ``nudge serve`` process's id (its workers are its children), for CPU accounting."""
    process = getattr(api, "_process", None)  # ApiProcess keeps it private; None if renamed
    pid = getattr(process, "pid", None)
    return pid if isinstance(pid, int) else None


def _wait_for_workers(base_url: str, workers: int, timeout_s: float = 90.0) -> None:
    """Until /healthz has answered from ``workers`` distinct worker processes.

    The first worker to come up answers /healthz while the others may still be
    loading the model; a run started then would measure one worker.
    """
    seen: set[object] = set()
    deadline = time.monotonic() + timeout_s
    while len(seen) < workers:
        if time.monotonic() > deadline:
            raise Unavailable(
                f"only {len(seen)} of {workers} workers answered within {timeout_s} s"
            )
        client = JsonClient(base_url, timeout_s=5)  # a new connection may reach another worker
        try:
            seen.add(client.get("/healthz").json().get("worker_id"))
        except OSError:
            time.sleep(0.2)
        finally:
            client.close()
