"""When each alert fires: thresholds with their defaults and why they are what they are."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from serving.log_readings import ScanWindows
from serving.settings import Settings

__all__ = ["AlertThresholds"]


@dataclass(frozen=True)
class AlertThresholds:
    """Every alert's threshold; the periods each looks at are in ``windows``.

    >>> t = AlertThresholds.from_settings(Settings(latency_objective_ms=5, feature_max_age_hours=2))
    >>> t.latency_objective_ms, t.feature_max_age, t.failure_rate
    (5.0, datetime.timedelta(seconds=7200), 0.2)
    """

    windows: ScanWindows = field(default_factory=ScanWindows)

    failure_rate: float = 0.2
    """send_failure_spike: failed / (delivered + failed) over ``windows.sends`` above this..."""
    failure_min_sends: int = 50
    """...with at least this many send results on the channel (fewer say too little)."""

    conversion_drop: float = 0.2
    """conversion_drop: the recent rate is this much (relative) below the baseline's..."""
    conversion_p_value: float = 0.01
    """...and a two-sided two-proportion z-test puts the difference below this p-value..."""
    conversion_min_decisions: int = 100
    """...with at least this many closed windows in each period (the z-test is approximate)."""

    feature_max_age: timedelta = timedelta(hours=48)
    """stale_features: a feature view whose last materialisation ended longer ago than this."""

    drift_psi: float = 0.2
    """model_drift: population stability index above this (the usual "significant shift")..."""
    drift_min_recent: int = 500
    """...with a full reference window and at least this many recent decisions."""
    drift_bins: int = 10
    """Quantile bins of numeric inputs and scores."""

    latency_objective_ms: float = 10.0
    """decision_latency: the p99 decision latency above this..."""
    latency_quantile: float = 0.99
    latency_min_count: int = 100
    """...over at least this many decisions in the latency window."""
    latency_window: timedelta = timedelta(minutes=10)
    """The server compares its histogram with its state this long ago."""

    contamination_max: int = 0
    """holdout_contamination: more contacts of holdout customers than this (none is right)."""

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> AlertThresholds:
        """The defaults, with the objectives ``settings`` carries and any ``overrides``."""
        base = cls(
            latency_objective_ms=settings.latency_objective_ms,
            feature_max_age=timedelta(hours=settings.feature_max_age_hours),
        )
        return replace(base, **overrides)
