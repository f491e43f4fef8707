"""Metrics that read state: send results by channel, conversion and reward rates, feature
freshness and the attribution backlog.

Send results are counted as their outcomes are posted (:func:`observe_outcome`);
the gauges are set from the stores on a schedule (:func:`refresh_gauges`), because
they describe the whole system, not this process's requests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from decisioning import Decision, DecisionLog, OutcomeReceipt
from features.data_quality import DataQualityReport
from serving.log_readings import SEND_STATUS, LogReadings, ScanWindows, read_log
from serving.metrics import ApiMetrics
from serving.wiring import Runtime

if TYPE_CHECKING:
    from features import FeatureRepo  # importing Feast takes seconds; only callers need it

__all__ = [
    "apply_readings",
    "feature_ages",
    "observe_data_quality",
    "observe_outcome",
    "observe_receipt",
    "observe_recorded",
    "refresh_gauges",
]


def observe_outcome(metrics: ApiMetrics, decision_channel: str | None, event: str) -> bool:
    """Count a send result (``nudge_sends_total{channel,status}``); True if ``event`` was one.

    delivered → "delivered"; bounce, soft_bounce, hard_bounce, send_failed → "failed";
    other events (opens, conversions, ...) and decisions without a channel count nothing.

    >>> m = ApiMetrics()
    >>> observe_outcome(m, "email", "hard_bounce"), observe_outcome(m, "email", "click")
    (True, False)
    >>> m.registry.get_sample_value("nudge_sends_total", {"channel": "email", "status": "failed"})
    1.0
    """
    status = SEND_STATUS.get(event)
    if status is None or decision_channel is None:
        return False
    metrics.sends.labels(channel=decision_channel, status=status).inc()
    return True


def observe_receipt(
    metrics: ApiMetrics, log: DecisionLog, receipt: OutcomeReceipt, decision: Decision | None = None
) -> bool:
    """:func:`observe_outcome` for a posted outcome, once: only a new one, and the decision's
    channel is read from the log (unless the caller has ``decision`` at hand) only for the
    events that are send results."""
    event = receipt.outcome.event
    if not receipt.new or event not in SEND_STATUS:
        return False
    if decision is None:
        decision = log.get_decision(receipt.outcome.decision_id)
    return observe_outcome(metrics, decision.action.channel, event)


def observe_recorded(
    metrics: ApiMetrics, log: DecisionLog, receipt: OutcomeReceipt, decision: Decision | None = None
) -> None:
    """All that ``/metrics`` counts of a recorded outcome, wherever it came from (the
    outcome routes, a tracked link, a provider callback): the outcome by event and
    newness, the send result, and the reward when the policy learned from it."""
    metrics.outcomes.labels(event=receipt.outcome.event, new=str(receipt.new).lower()).inc()
    observe_receipt(metrics, log, receipt, decision)
    if receipt.learned:
        metrics.reward.observe(receipt.outcome.reward)


def feature_ages(repo: FeatureRepo, now: datetime) -> dict[str, float | None]:
    """Seconds from each feature view's latest materialisation end to ``now``; None if never.

    Read from the Feast registry file itself (not a cached copy), so a
    materialisation by another process shows at once. No registry: no views
    (and no empty registry is created as a side effect).
    """
    if not (repo.feast_dir / "registry.db").exists():
        return {}
    ages: dict[str, float | None] = {}
    for view in repo.store.list_feature_views(allow_cache=False):
        end = view.most_recent_end_time
        ages[view.name] = None if end is None else (now - end).total_seconds()
    return ages


def apply_readings(
    metrics: ApiMetrics,
    readings: LogReadings | None = None,
    *,
    ages: Mapping[str, float | None] | None = None,
    backlog: int | None = None,
) -> None:
    """Set the gauges from what was read; a source not given leaves its gauges as they are."""
    if readings is not None:
        groups = readings.by_group
        metrics.set_gauges(metrics.conversion_rate, {key: c.rate for key, c in groups.items()})
        metrics.set_gauges(metrics.reward_rate, {key: c.reward_rate for key, c in groups.items()})
    if ages is not None:
        metrics.set_gauges(
            metrics.feature_age,
            {(view,): math.inf if age is None else age for view, age in ages.items()},
        )
    if backlog is not None:
        metrics.backlog.set(backlog)


def refresh_gauges(
    metrics: ApiMetrics,
    runtime: Runtime,
    now: datetime,
    *,
    feature_repo: FeatureRepo | None = None,
    windows: ScanWindows | None = None,
) -> LogReadings:
    """Set every state gauge as of ``now``; returns the log readings for the alerts to reuse.

    Conversion and reward rates cover the decisions whose attribution windows
    closed in ``windows.recent`` (a day by default); feature ages need ``feature_repo``.
    """
    engine = runtime.engine
    readings = read_log(
        engine.log, engine.config, now, model_version=runtime.model_version, windows=windows
    )
    ages = None if feature_repo is None else feature_ages(feature_repo, now)
    apply_readings(metrics, readings, ages=ages, backlog=engine.log.count_due_windows(now))
    return readings


def observe_data_quality(metrics: ApiMetrics, report: DataQualityReport) -> None:
    """The data check's measures per source as gauges; sources gone since disappear."""
    sources = report.sources
    metrics.set_gauges(
        metrics.data_age,
        {(s.source,): s.age_s for s in sources if s.age_s is not None},
    )
    metrics.set_gauges(
        metrics.data_null_rate,
        {(s.source,): max(s.null_rates.values(), default=0.0) for s in sources},
    )
    metrics.set_gauges(
        metrics.data_duplicate_rate, {(s.source,): s.duplicate_rate for s in sources}
    )
    metrics.set_gauges(
        metrics.data_problems, {(s.source,): float(len(s.problems)) for s in sources}
    )
