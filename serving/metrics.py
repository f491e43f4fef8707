"""Prometheus metrics of one API process, in a registry of its own so apps do not collide."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, values

from decisioning.types import Decision

__all__ = ["ApiMetrics"]

# Decision latency buckets around the 1-10 ms objective.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def _keep_values_in_process() -> None:
    """Undo the multiprocess mode that importing Feast switches on.

    ``feast.metrics`` sets PROMETHEUS_MULTIPROCESS_DIR to a temporary folder at
    import time, for its own Gunicorn feature server. prometheus_client then keeps
    every metric's value in files keyed by name and label, so two apps in one
    process (or a child that inherits the variable) share counts. Nudge's metrics
    belong to one registry in one process, so they use in-memory values, and the
    warnings that removing a label set "is not implemented in multi-process mode"
    (raised whenever that variable is set) do not apply to them.
    """
    values.ValueClass = values.MutexValue
    warnings.filterwarnings(
        "ignore",
        message=r"(Clearing|Removal of) labels has not been implemented",
        category=UserWarning,
        module="prometheus_client",
    )


@dataclass
class ApiMetrics:
    """The counters the API updates.

    >>> m = ApiMetrics()
    >>> m.exclusions.labels(rule="quiet_hours").inc()
    >>> m.registry.get_sample_value("nudge_exclusions_total", {"rule": "quiet_hours"})
    1.0
    """

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    _label_sets: dict[int, set[tuple[str, ...]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        _keep_values_in_process()
        self.decisions = Counter(
            "nudge_decisions",
            "Decisions made, by group (policy, explore, holdout), message, channel and slot.",
            ["group", "message", "channel", "slot"],
            registry=self.registry,
        )
        self.exclusions = Counter(
            "nudge_exclusions",
            "Candidates the contact policy excluded, by rule.",
            ["rule"],
            registry=self.registry,
        )
        self.send_blocked = Counter(
            "nudge_sends_blocked",
            "Scheduled sends stopped by the re-check just before sending, by rule.",
            ["rule"],
            registry=self.registry,
        )
        self.decision_latency = Histogram(
            "nudge_decision_latency_seconds",
            "Time to make and log one decision, inside the process.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.outcomes = Counter(
            "nudge_outcomes",
            "Outcomes received, by event and whether they were new.",
            ["event", "new"],
            registry=self.registry,
        )
        # A summary, not a counter: rewards may be negative (refunds, penalties).
        self.reward = Summary(
            "nudge_learned_reward",
            "Rewards the policy learned from (count and sum).",
            registry=self.registry,
        )
        self.missing_features = Counter(
            "nudge_missing_features",
            "Decisions made with a feature missing from the store, by feature.",
            ["feature"],
            registry=self.registry,
        )
        self.errors = Counter(
            "nudge_request_errors",
            "Requests rejected, by endpoint and status code.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.sends = Counter(
            "nudge_sends",
            "Send results reported as outcomes, by channel and status (delivered, failed).",
            ["channel", "status"],
            registry=self.registry,
        )
        # The gauges below are refreshed on a schedule from the stores
        # (serving.monitoring.refresh_gauges), not updated per request.
        self.conversion_rate = Gauge(
            "nudge_conversion_rate",
            "Share of decisions whose attribution window closed in the last day that converted, "
            "by journey and group.",
            ["journey", "group"],
            registry=self.registry,
        )
        self.reward_rate = Gauge(
            "nudge_reward_rate",
            "Mean reward credited per decision whose window closed in the last day, "
            "by journey and group.",
            ["journey", "group"],
            registry=self.registry,
        )
        self.data_age = Gauge(
            "nudge_data_age_seconds",
            "Age of the newest row of each data source (event log table, event stream type).",
            ["source"],
            registry=self.registry,
        )
        self.data_null_rate = Gauge(
            "nudge_data_null_rate_max",
            "The highest null rate among a data source's columns "
            "(stream: expected payload fields).",
            ["source"],
            registry=self.registry,
        )
        self.data_duplicate_rate = Gauge(
            "nudge_data_duplicate_rate",
            "Share of a data source's rows that repeat another's key (stream: same event, new id).",
            ["source"],
            registry=self.registry,
        )
        self.data_problems = Gauge(
            "nudge_data_problems",
            "Thresholds a data source breaks now (nudge data check's, freshness not judged "
            "for the event log's experiment tables).",
            ["source"],
            registry=self.registry,
        )
        self.feature_age = Gauge(
            "nudge_feature_age_seconds",
            "Seconds since the end of the feature view's latest materialisation "
            "(+Inf when it was never materialised).",
            ["view"],
            registry=self.registry,
        )
        self.backlog = Gauge(
            "nudge_attribution_backlog",
            "Attribution windows that have ended but are not closed yet.",
            registry=self.registry,
        )
        self.alerts_firing = Gauge(
            "nudge_alerts_firing",
            "Alerts open, by rule; reported by the one process that evaluates them.",
            ["rule"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "nudge_model_info",
            "The model version in use (value is always 1).",
            ["name", "version"],
            registry=self.registry,
        )
        self.model_reloads = Counter(
            "nudge_model_reloads",
            "Attempts to put a new model version in service without a restart, by result "
            "(swapped, failed: the model in service kept serving).",
            ["result"],
            registry=self.registry,
        )
        self.state_snapshots = Counter(
            "nudge_online_state_snapshots",
            "Scheduled snapshots of the online learners' state to MLflow, by result "
            "(logged, unchanged, failed).",
            ["result"],
            registry=self.registry,
        )

    def set_gauges(self, gauge: Gauge, by_labels: Mapping[tuple[str, ...], float]) -> None:
        """Set ``gauge`` to exactly ``by_labels``, keyed by label values: others disappear.

        Label sets are replaced one by one, never cleared first, so a scrape
        meanwhile sees either the old value or the new one, never none.

        >>> m = ApiMetrics()
        >>> m.set_gauges(m.feature_age, {("a",): 1.0, ("b",): 2.0})
        >>> m.set_gauges(m.feature_age, {("b",): 3.0})
        >>> [m.registry.get_sample_value("nudge_feature_age_seconds", {"view": v}) for v in "ab"]
        [None, 3.0]
        """
        before = self._label_sets.get(id(gauge), set())
        for labels in before - set(by_labels):
            gauge.remove(*labels)
        for labels, value in by_labels.items():
            gauge.labels(*labels).set(value)
        self._label_sets[id(gauge)] = set(by_labels)

    def observe_decision(self, decision: Decision) -> None:
        """Count one decision by its parts, its exclusions by rule, and its missing features."""
        action = decision.action
        self.decisions.labels(
            group=decision.group,
            message=action.message or "none",
            channel=action.channel or "none",
            # An explicit ISO send time would make a label value per request.
            slot="none"
            if action.slot is None
            else ("explicit" if "T" in action.slot else action.slot),
        ).inc()
        for exclusion in decision.excluded:
            self.exclusions.labels(rule=exclusion.rule).inc()
        for feature in decision.missing_features:
            self.missing_features.labels(feature=feature).inc()
