"""Prometheus metrics of one API process, in a registry of its own so apps do not collide."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, values

__all__ = ["ApiMetrics"]

# Decision latency buckets around the 1-10 ms objective.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def _keep_values_in_process() -> None:
    """Undo the multiprocess mode that importing Feast switches on.

    ``feast.metrics`` sets PROMETHEUS_MULTIPROCESS_DIR to a temporary folder at
    import time, for its own Gunicorn feature server. prometheus_client then keeps
    every metric's value in files keyed by name and label, so two apps in one
    process (or a child that inherits the variable) share counts. Nudge's metrics
    belong to one registry in one process, so they use in-memory values.
    """
    values.ValueClass = values.MutexValue


@dataclass
class ApiMetrics:
    """The counters the API updates.

    >>> m = ApiMetrics()
    >>> m.decisions.labels(action="mens_email", explored="false").inc()
    >>> m.registry.get_sample_value(
    ...     "nudge_decisions_total", {"action": "mens_email", "explored": "false"})
    1.0
    """

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        _keep_values_in_process()
        self.decisions = Counter(
            "nudge_decisions",
            "Decisions made, by chosen action and whether the policy explored.",
            ["action", "explored"],
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
        self.model_info = Gauge(
            "nudge_model_info",
            "The model version in use (value is always 1).",
            ["name", "version"],
            registry=self.registry,
        )
