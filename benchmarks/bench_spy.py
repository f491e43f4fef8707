"""Where a serving worker's time goes under load: py-spy samples, summed per function.

py-spy is not a Nudge dependency; install it anywhere (``pip install --target
/tmp/pyspy py-spy``) and pass ``--py-spy /tmp/pyspy/bin/py-spy`` to the benchmark.
Sampling is wall-clock: a worker blocked on Redis or Postgres shows as time
in the call that waits.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

__all__ = ["LAYERS", "ROUTE", "record", "summarise"]

_FRAME = re.compile(r"(?P<name>.*) \((?P<path>.*?):\d+\)$")

ROUTE = "create_app.<locals>.decide (serving/app.py)"
"""The decide route function: inclusive counts start here."""
LAYERS = (
    ("request handling (middleware, route, response)", "RequestResponseCycle.run_asgi"),
    ("the decide route", ROUTE),
    ("request body validation (FastAPI, pydantic)", "solve_dependencies"),
    ("DecisionEngine.decide", "DecisionEngine.decide"),
    ("to_response (pydantic response models)", "to_response"),
    ("writing the response", "RequestResponseCycle.send"),
    ("metrics", "ApiMetrics.observe_decision"),
)
"""(label, frame-name prefix) pairs whose share of all samples is reported first."""


def record(py_spy: str, pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Start sampling ``pid`` (100 Hz, for ``seconds``) into ``out`` as collapsed stacks."""
    command = [
        py_spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        "100",
        "--format",
        "raw",
        "--nonblocking",
        "--output",
        str(out),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _short(frame: str) -> str:
    """``decide (/x/y/serving/app.py:140)`` → ``decide (serving/app.py)``."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    return f"{match['name']} ({'/'.join(match['path'].split('/')[-2:])})"


def summarise(collapsed: Path, *, top: int = 40) -> str:
    """Shares of all samples: a few layers, then functions inclusive (from the route) and own."""
    stacks: list[tuple[list[str], int]] = []
    for line in collapsed.read_text(encoding="utf-8").splitlines():
        stack, _, samples = line.rpartition(" ")
        if stack:
            stacks.append(([_short(frame) for frame in stack.split(";")], int(samples)))
    total = sum(count for _, count in stacks)
    if not total:
        return "no samples\n"
    layers: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, count in stacks:
        for label, prefix in LAYERS:
            if any(frame.startswith(prefix) for frame in frames):
                layers[label] += count
        own[frames[-1]] += count
        if ROUTE in frames:
            for frame in set(frames[frames.index(ROUTE) :]):
                inclusive[frame] += count
    lines = [f"{total} samples (share of all of them)", "", "layers:"]
    lines += [f"  {100 * layers[label] / total:5.1f} %  {label}" for label, _ in LAYERS]
    lines += ["", "inclusive, from the decide route down:"]
    lines += [f"  {100 * n / total:5.1f} %  {name}" for name, n in inclusive.most_common(top)]
    lines += ["", "own time:"]
    lines += [f"  {100 * n / total:5.1f} %  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines) + "\n"
