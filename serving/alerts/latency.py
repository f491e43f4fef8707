"""Decision latency quantiles from the Prometheus histogram, in-process or from /metrics text.

The histogram counts every decision since the process started, so a spike
an hour ago would stay in its p99 for good. :class:`LatencyWindow` keeps a few
earlier readings of the buckets and judges only the decisions made since the
one about ``window`` ago.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Metric
from prometheus_client.parser import text_string_to_metric_families

from serving.alerts.inputs import LatencyReading

__all__ = [
    "LATENCY_METRIC",
    "Buckets",
    "LatencyWindow",
    "buckets_from_registry",
    "buckets_from_text",
    "histogram_quantile",
]

LATENCY_METRIC = "nudge_decision_latency_seconds"

Buckets = tuple[tuple[float, float], ...]
"""A histogram's cumulative counts: (upper bound, observations at or below it), bounds
ascending, the last bound +Inf."""


def _buckets(families: Iterable[Metric], name: str) -> Buckets | None:
    for family in families:
        if family.name != name or family.type != "histogram":
            continue
        counts = [
            (float(sample.labels["le"]), float(sample.value))
            for sample in family.samples
            if sample.name == f"{name}_bucket"
        ]
        return tuple(sorted(counts))
    return None


def buckets_from_registry(
    registry: CollectorRegistry, name: str = LATENCY_METRIC
) -> Buckets | None:
    """The histogram's buckets as this process counts them; None if it has no such histogram."""
    return _buckets(registry.collect(), name)


def buckets_from_text(text: str, name: str = LATENCY_METRIC) -> Buckets | None:
    """The histogram's buckets from a /metrics page (Prometheus text format)."""
    return _buckets(text_string_to_metric_families(text), name)


def histogram_quantile(buckets: Buckets, quantile: float) -> float:
    """The ``quantile`` of the observations, interpolated in its bucket as Prometheus does.

    Within a bucket observations are taken as spread evenly; the first bucket
    starts at 0. A quantile that falls in the +Inf bucket is reported as the
    highest finite bound (all one knows is that it is above it). NaN when
    nothing was observed.

    >>> histogram_quantile(((0.01, 50.0), (0.025, 90.0), (math.inf, 100.0)), 0.5)
    0.01
    >>> round(histogram_quantile(((0.01, 50.0), (0.025, 90.0), (math.inf, 100.0)), 0.7), 6)
    0.0175
    >>> histogram_quantile(((0.01, 50.0), (0.025, 90.0), (math.inf, 100.0)), 0.99)
    0.025
    """
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return math.nan
    rank = quantile * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank and count > below:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def _minus(later: Buckets, earlier: Buckets | None) -> Buckets:
    if earlier is None or [b for b, _ in earlier] != [b for b, _ in later]:
        return later
    return tuple(
        (bound, count - before[1]) for (bound, count), before in zip(later, earlier, strict=True)
    )


class LatencyWindow:
    """Readings of the latency histogram over time; :meth:`reading` judges the recent ones.

    >>> from datetime import UTC
    >>> window = LatencyWindow(timedelta(minutes=10))
    >>> t0 = datetime(2024, 5, 1, tzinfo=UTC)
    >>> slow = ((0.01, 0.0), (0.025, 100.0), (math.inf, 100.0))  # 100 slow decisions
    >>> window.reading(t0, slow).count
    100
    >>> later = ((0.01, 300.0), (0.025, 400.0), (math.inf, 400.0))  # then 300 fast ones
    >>> r = window.reading(t0 + timedelta(minutes=11), later)
    >>> r.count, round(r.seconds, 4), r.period
    (300, 0.0099, 'the last 11 minutes')
    """

    def __init__(self, window: timedelta, quantile: float = 0.99) -> None:
        self.window = window
        self.quantile = quantile
        self._readings: deque[tuple[datetime, Buckets]] = deque()
        self._started: datetime | None = None

    def reading(self, now: datetime, buckets: Buckets) -> LatencyReading:
        """The quantile over the decisions counted since the newest reading ``window`` old.

        Before any reading is that old, over everything counted so far.
        """
        if self._started is None:
            self._started = now
        base: tuple[datetime, Buckets] | None = None
        while self._readings and now - self._readings[0][0] >= self.window:
            base = self._readings.popleft()
        if base is not None:
            self._readings.appendleft(base)  # the one to compare against next time too
        self._readings.append((now, buckets))
        delta = _minus(buckets, base[1] if base else None)
        since = base[0] if base else self._started
        minutes = round((now - since).total_seconds() / 60)
        period = f"the last {minutes} minutes" if base else "since the process started"
        return LatencyReading(
            quantile=self.quantile,
            seconds=histogram_quantile(delta, self.quantile),
            count=int(delta[-1][1]) if delta else 0,
            period=period,
        )
