"""A snapshot of everything the alert rules judge: built from the stores, or by hand in tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from features import FeatureValue
from serving.alerts.thresholds import AlertThresholds
from serving.log_readings import LogReadings

__all__ = ["AlertInputs", "LatencyReading"]


@dataclass(frozen=True)
class LatencyReading:
    """A quantile of decision latency over some recent decisions."""

    quantile: float
    """e.g. 0.99."""
    seconds: float
    """The latency at that quantile (interpolated within a histogram bucket)."""
    count: int
    """How many decisions the histogram counted over the period."""
    period: str
    """In words: "the last 10 minutes", "since the server started"."""


@dataclass(frozen=True)
class AlertInputs:
    """The inputs of :func:`serving.alerts.evaluate_alerts`; a missing source is simply absent.

    ``feature_ages`` holds seconds since each feature view's last
    materialisation ended (None: never materialised). ``drift_reference`` is
    the first decisions of ``log.model_version``, as (decision id, row) pairs.
    """

    log: LogReadings
    thresholds: AlertThresholds = field(default_factory=AlertThresholds)
    feature_ages: Mapping[str, float | None] = field(default_factory=dict)
    drift_reference: Sequence[tuple[str, Mapping[str, FeatureValue]]] = ()
    latency: LatencyReading | None = None

    @property
    def now(self) -> datetime:
        return self.log.now
