"""The alert rules: each a small pure function from :class:`AlertInputs` to findings.

A rule returns one :class:`Finding` per subject it could judge, firing or not,
and nothing for a subject without enough data (see ``Finding``).
:func:`evaluate_alerts` runs them all and keeps what fires.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from numbers import Real

from features import FeatureValue, InvalidRequest
from serving.alerts.inputs import AlertInputs
from serving.alerts.types import AlertEvent, Finding
from training.metrics import population_stability_index

__all__ = [
    "RULES",
    "conversion_drop",
    "decision_latency",
    "evaluate_alerts",
    "holdout_contamination",
    "judge",
    "model_drift",
    "send_failure_spike",
    "stale_features",
    "two_proportion_p_value",
]

DRIFT_MAX_CATEGORIES = 50
"""A non-numeric input with more distinct values than this in the reference (an id, a
free text) has no stable distribution to compare: it is not judged."""
SCORE_PREFIX = "score:"


def _period(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    if hours <= 48:
        return f"{hours:g} h"
    return f"{hours / 24:g} days"


def _age(seconds: float) -> str:
    """An age in hours, or in days beyond two.

    >>> _age(5400.0), _age(3 * 86400.0)
    ('1.5 h', '3.0 days')
    """
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def send_failure_spike(inputs: AlertInputs) -> list[Finding]:
    """Per channel: failed / (delivered + failed) over the send window above the threshold."""
    t = inputs.thresholds
    findings = []
    for channel, counts in sorted(inputs.log.sends.items()):
        if counts.total < t.failure_min_sends:
            continue
        rate = counts.failure_rate
        findings.append(
            Finding(
                "send_failure_spike",
                channel,
                rate > t.failure_rate,
                f"{channel}: {counts.failed} of {counts.total} sends failed in the last "
                f"{_period(t.windows.sends)} ({rate:.1%}; alert above {t.failure_rate:.0%})",
                {
                    "failed": counts.failed,
                    "delivered": counts.delivered,
                    "failure_rate": rate,
                    "threshold": t.failure_rate,
                },
            )
        )
    return findings


def two_proportion_p_value(successes_a: int, n_a: int, successes_b: int, n_b: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test that both rates are equal.

    >>> round(two_proportion_p_value(50, 1000, 100, 1000), 6)
    2.2e-05
    >>> two_proportion_p_value(0, 100, 0, 100)
    1.0
    """
    if n_a <= 0 or n_b <= 0:
        return 1.0
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return 1.0
    z = (successes_a / n_a - successes_b / n_b) / se
    return math.erfc(abs(z) / math.sqrt(2))


def conversion_drop(inputs: AlertInputs) -> list[Finding]:
    """Per journey: the last period's conversion rate well and significantly below the baseline's.

    Both the relative drop and the z-test must agree: a large drop on a few
    decisions is noise, and a significant but tiny one is not worth a page.
    """
    t = inputs.thresholds
    log = inputs.log
    findings = []
    for journey in sorted(set(log.recent) & set(log.baseline)):
        recent, baseline = log.recent[journey], log.baseline[journey]
        if min(recent.decisions, baseline.decisions) < t.conversion_min_decisions:
            continue
        drop = (baseline.rate - recent.rate) / baseline.rate if baseline.rate > 0 else 0.0
        p_value = two_proportion_p_value(
            recent.converted, recent.decisions, baseline.converted, baseline.decisions
        )
        firing = drop > t.conversion_drop and p_value < t.conversion_p_value
        findings.append(
            Finding(
                "conversion_drop",
                journey,
                firing,
                f"journey {journey}: {recent.rate:.2%} of {recent.decisions} decisions converted "
                f"in the last {_period(t.windows.recent)} against {baseline.rate:.2%} of "
                f"{baseline.decisions} in the {_period(t.windows.baseline)} before "
                f"({-drop:+.0%}, p = {p_value:.2g}; alert below {-t.conversion_drop:+.0%} "
                f"with p < {t.conversion_p_value:g})",
                {
                    "recent_rate": recent.rate,
                    "recent_decisions": recent.decisions,
                    "baseline_rate": baseline.rate,
                    "baseline_decisions": baseline.decisions,
                    "relative_drop": drop,
                    "p_value": p_value,
                },
            )
        )
    return findings


def stale_features(inputs: AlertInputs) -> list[Finding]:
    """Per feature view: its last materialisation ended longer ago than the maximum age."""
    limit = inputs.thresholds.feature_max_age.total_seconds()
    findings = []
    for view, age in sorted(inputs.feature_ages.items()):
        if age is None:
            summary = f"feature view {view} has never been materialised"
        else:
            summary = (
                f"feature view {view}: its last materialisation ended {_age(age)} ago "
                f"(alert above {_period(inputs.thresholds.feature_max_age)})"
            )
        details: dict[str, float | str] = {"max_age_seconds": limit}
        if age is not None:
            details["age_seconds"] = age
        findings.append(
            Finding("stale_features", view, age is None or age > limit, summary, details)
        )
    return findings


def _is_number(value: FeatureValue) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _column(
    rows: Sequence[Mapping[str, FeatureValue]], name: str, keep_missing: bool
) -> list[FeatureValue]:
    values = [row.get(name) for row in rows]
    return values if keep_missing else [v for v in values if v is not None]


def model_drift(inputs: AlertInputs) -> list[Finding]:
    """Per model input and per score: PSI between the model version's first and latest decisions.

    Inputs count a missing value as a value of its own (a feature going
    missing is drift); scores are compared where they were logged.
    """
    t = inputs.thresholds
    reference_ids = {decision_id for decision_id, _ in inputs.drift_reference}
    reference = [row for _, row in inputs.drift_reference]
    recent = [
        row for decision_id, row in inputs.log.drift_recent if decision_id not in reference_ids
    ]
    if len(reference) < t.windows.drift_reference or len(recent) < t.drift_min_recent:
        return []
    names = sorted({name for row in (*reference, *recent) for name in row})
    findings = []
    for name in names:
        is_score = name.startswith(SCORE_PREFIX)
        before = _column(reference, name, keep_missing=not is_score)
        after = _column(recent, name, keep_missing=not is_score)
        if not before or not after:
            continue
        levels = {v for v in before if v is not None and not _is_number(v)}
        if len(levels) > DRIFT_MAX_CATEGORIES:
            continue
        try:
            psi = population_stability_index(before, after, bins=t.drift_bins)
        except InvalidRequest:
            continue
        what = "score" if is_score else "input"
        findings.append(
            Finding(
                "model_drift",
                name,
                psi > t.drift_psi,
                f"model {inputs.log.model_version} {what} {name.removeprefix(SCORE_PREFIX)}: "
                f"PSI {psi:.3f} between its first {len(before)} and latest {len(after)} "
                f"decisions (alert above {t.drift_psi:g})",
                {
                    "psi": psi,
                    "model_version": inputs.log.model_version or "",
                    "reference": len(before),
                    "recent": len(after),
                },
            )
        )
    return findings


def decision_latency(inputs: AlertInputs) -> list[Finding]:
    """The decision latency quantile (p99) above its objective."""
    t = inputs.thresholds
    reading = inputs.latency
    if reading is None or reading.count < t.latency_min_count or math.isnan(reading.seconds):
        return []
    ms = reading.seconds * 1000
    label = f"p{reading.quantile * 100:g}"
    return [
        Finding(
            "decision_latency",
            label,
            ms > t.latency_objective_ms,
            f"decision latency {label} {ms:.1f} ms over {reading.count} decisions in "
            f"{reading.period} (objective {t.latency_objective_ms:g} ms)",
            {"milliseconds": ms, "objective_ms": t.latency_objective_ms, "count": reading.count},
        )
    ]


def holdout_contamination(inputs: AlertInputs) -> list[Finding]:
    """Customers of the holdout who were contacted: the control group is no longer clean."""
    t = inputs.thresholds
    contacts = inputs.log.holdout_contacts
    shown = "; ".join(f"decision {c.decision_id}: {c.reason}" for c in contacts[:5])
    more = f" and {len(contacts) - 5} more" if len(contacts) > 5 else ""
    summary = (
        f"{len(contacts)} contacts of holdout customers in the last "
        f"{_period(t.windows.contamination)}" + (f": {shown}{more}" if contacts else "")
    )
    return [
        Finding(
            "holdout_contamination",
            "holdout",
            len(contacts) > t.contamination_max,
            summary,
            {
                "contacts": len(contacts),
                "decision_ids": ",".join(c.decision_id for c in contacts[:20]),
            },
        )
    ]


RULES: Mapping[str, Callable[[AlertInputs], list[Finding]]] = {
    "send_failure_spike": send_failure_spike,
    "conversion_drop": conversion_drop,
    "stale_features": stale_features,
    "model_drift": model_drift,
    "decision_latency": decision_latency,
    "holdout_contamination": holdout_contamination,
}
"""Every rule by name, in the order reports list them."""


def judge(inputs: AlertInputs) -> list[Finding]:
    """Every rule's findings, firing or not."""
    return [finding for rule in RULES.values() for finding in rule(inputs)]


def evaluate_alerts(inputs: AlertInputs) -> list[AlertEvent]:
    """The alerts that fire on ``inputs``, as firing events at ``inputs.now``; no side effects."""
    return [finding.event(inputs.now) for finding in judge(inputs) if finding.firing]
