"""Prometheus metrics of one API process, in a registry of its own so apps do not collide."""

from __future__ import annotations

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
    belong to one registry in one process, so they use in-memory values.
    """
    values.ValueClass = values.MutexValue


@dataclass
class ApiMetrics:
    """The counters the API updates.

    >>> m = ApiMetrics()
    >>> m.exclusions.labels(rule="quiet_hours").inc()
    >>> m.registry.get_sample_value("nudge_exclusions_total", {"rule": "quiet_hours"})
    1.0
    """

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

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
        self.model_info = Gauge(
            "nudge_model_info",
            "The model version in use (value is always 1).",
            ["name", "version"],
            registry=self.registry,
        )

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
