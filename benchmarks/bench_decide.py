"""Decision latency in process and over HTTP, against a bare echo endpoint in the same run.

    python -m benchmarks.bench_decide [--state-dir .nudge] [--requests 2000]

Uses the state a demo left (runs a 6,000-customer demo into a temporary folder
when there is none), writes reports/bench_decide.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

os.environ.setdefault("OMP_NUM_THREADS", "1")

from features import EventLog
from serving.api_process import ApiProcess, free_port
from serving.pipeline import run_demo
from serving.settings import Settings
from serving.wiring import build_runtime


def _percentiles(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)
    return {
        "p50_ms": 1e3 * statistics.median(ordered),
        "p99_ms": 1e3 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    }


def _in_process(settings: Settings, customers: list[str]) -> dict[str, float]:
    runtime = build_runtime(settings)
    try:
        for customer in customers[:200]:  # warm caches and the model
            runtime.engine.decide(customer)
        samples = []
        for customer in customers:
            started = time.perf_counter()
            runtime.engine.decide(customer)
            samples.append(time.perf_counter() - started)
    finally:
        runtime.close()
    return _percentiles(samples)


async def _load(base_url: str, customers: list[str], concurrency: int) -> dict[str, float]:
    samples: list[float] = []
    queue = list(customers)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0) as client:

        async def worker() -> None:
            while queue:
                customer = queue.pop()
                started = time.perf_counter()
                response = await client.post("/v1/decide", json={"customer_id": customer})
                response.raise_for_status()
                samples.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {**_percentiles(samples), "throughput_rps": len(samples) / elapsed}


def _echo_server(port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", "benchmarks.echo_app:app", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}/v1/decide", json={"customer_id": "x"})
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("echo server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=Path(".nudge"))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()

    settings = Settings(state_dir=args.state_dir, port=free_port())
    if not (settings.state_dir / "mlflow.db").exists():
        scratch = Path(tempfile.mkdtemp(prefix="nudge-bench-"))
        print(f"no demo state in {settings.state_dir}; running a 6,000-customer demo in {scratch}")
        settings = Settings(
            state_dir=scratch / "state", reports_dir=scratch / "reports", port=free_port()
        )
        run_demo(settings, sample=6000, out=io.StringIO(), progress=False)
    customers = EventLog(settings.events_dir).read("decisions")["customer_id"].astype(str).tolist()
    customers = (customers * (1 + args.requests // len(customers)))[: args.requests]

    results: dict[str, Any] = {
        "requests": args.requests,
        "in_process": _in_process(settings, customers),
    }
    echo_port = free_port()
    echo = _echo_server(echo_port)
    try:
        with ApiProcess(settings):
            for concurrency in args.concurrency:
                results[f"http_c{concurrency}"] = asyncio.run(
                    _load(f"http://127.0.0.1:{settings.port}", customers, concurrency)
                )
                results[f"echo_c{concurrency}"] = asyncio.run(
                    _load(f"http://127.0.0.1:{echo_port}", customers, concurrency)
                )
    finally:
        echo.terminate()
        echo.wait()

    out = Path("reports") / "bench_decide.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'measure':<16}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}")
    for name, value in results.items():
        if isinstance(value, dict):
            rps = f"{value['throughput_rps']:.0f}" if "throughput_rps" in value else "-"
            print(f"{name:<16}{value['p50_ms']:>10.3f}{value['p99_ms']:>10.3f}{rps:>10}")
    for concurrency in args.concurrency:
        ratio = (
            results[f"http_c{concurrency}"]["throughput_rps"]
            / results[f"echo_c{concurrency}"]["throughput_rps"]
        )
        print(f"decide / echo throughput at concurrency {concurrency}: {ratio:.0%}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
