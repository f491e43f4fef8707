"""Where one decision's time goes, without a profiler's distortion, and what the collector costs.

:func:`component_times` times the engine's collaborators (feature read, model,
policy, contact store, log) around each call, so a decision's time splits into
their parts and the engine's own Python; the slowest decisions are attributed
to the part that took longest in them. :class:`GcPauses` records every
garbage collection and how long it stopped the process.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from decisioning import DecisionEngine, DecisionRequest

__all__ = ["GcPauses", "component_times", "describe"]

# (label, the engine attribute holding the collaborator, its method). The private
# attributes are read with getattr: a renamed one is left out of the breakdown.
_PARTS = (
    ("contact profile", "contacts", "profile"),
    ("contact sends", "contacts", "sends"),
    ("feature read (Feast)", "_features", "get"),
    ("model priors (LightGBM)", "_model", "predict_one"),
    ("policy select", "policy", "select"),
    ("cap reservation", "contacts", "reserve"),
    ("decision log write", "log", "record_decision"),
)


class GcPauses:
    """``with GcPauses() as pauses:`` collects (generation, seconds) of each collection."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._started))

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> dict[str, Any]:
        by_generation: dict[str, Any] = {}
        for generation in (0, 1, 2):
            times = [s for g, s in self.pauses if g == generation]
            if times:
                by_generation[f"gen{generation}"] = {
                    "count": len(times),
                    "max_ms": 1e3 * max(times),
                    "total_ms": 1e3 * sum(times),
                }
        return by_generation


@contextmanager
def _timed_parts(engine: DecisionEngine, spent: dict[str, float]) -> Iterator[list[str]]:
    """Wrap each collaborator's method on its instance; yields the labels that could be wrapped."""
    wrapped: list[tuple[object, str]] = []
    labels: list[str] = []
    for label, attribute, method in _PARTS:
        owner = getattr(engine, attribute, None)
        original = getattr(owner, method, None)
        if owner is None or original is None:
            continue
        setattr(owner, method, _timer(original, label, spent))
        wrapped.append((owner, method))
        labels.append(label)
    try:
        yield labels
    finally:
        for owner, method in wrapped:
            delattr(owner, method)  # the class's method shows through again


def _timer(original: Callable[..., Any], label: str, spent: dict[str, float]) -> Callable[..., Any]:
    clock = time.perf_counter

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return original(*args, **kwargs)
        finally:
            spent[label] = spent.get(label, 0.0) + clock() - started

    return timed


def component_times(engine: DecisionEngine, requests: Sequence[DecisionRequest]) -> dict[str, Any]:
    """Per part: median and mean ms per decision, and which part made the slowest 1 % slow."""
    spent: dict[str, float] = {}
    rows: list[tuple[float, dict[str, float]]] = []
    clock = time.perf_counter
    with _timed_parts(engine, spent) as labels:
        for request in requests:
            spent.clear()
            started = clock()
            engine.decide(request)
            rows.append((clock() - started, dict(spent)))
    parts: dict[str, dict[str, float]] = {}
    for label in [*labels, "engine's own Python (the rest)"]:
        if label in labels:
            values = [row.get(label, 0.0) for _, row in rows]
        else:
            values = [total - sum(row.values()) for total, row in rows]
        parts[label] = {
            "p50_ms": 1e3 * statistics.median(values),
            "mean_ms": 1e3 * statistics.mean(values),
        }
    totals = [total for total, _ in rows]
    slowest = sorted(rows, key=lambda row: row[0])[-max(1, len(rows) // 100) :]
    blame = Counter(max(row.items(), key=lambda kv: kv[1])[0] for _, row in slowest if row)
    return {
        "decisions": len(rows),
        "total": {
            "p50_ms": 1e3 * statistics.median(totals),
            "mean_ms": 1e3 * statistics.mean(totals),
        },
        "parts": parts,
        "slowest_1pct_dominated_by": dict(blame),
        "slowest_1pct_min_ms": 1e3 * min(total for total, _ in slowest),
    }


def describe(breakdown: dict[str, Any]) -> str:
    """The breakdown as a small table."""
    total = breakdown["total"]
    lines = [
        f"{breakdown['decisions']:,} decisions; per decision p50 {total['p50_ms']:.3f} ms, "
        f"mean {total['mean_ms']:.3f} ms",
        f"  {'part':<34}{'p50 ms':>9}{'mean ms':>9}{'share':>7}",
    ]
    for label, figures in breakdown["parts"].items():
        share = figures["mean_ms"] / total["mean_ms"]
        lines.append(
            f"  {label:<34}{figures['p50_ms']:>9.3f}{figures['mean_ms']:>9.3f}{share:>7.0%}"
        )
    lines.append(
        f"  slowest 1 % (≥ {breakdown['slowest_1pct_min_ms']:.1f} ms) dominated by: "
        + ", ".join(f"{k} ×{v}" for k, v in breakdown["slowest_1pct_dominated_by"].items())
    )
    return "\n".join(lines)
