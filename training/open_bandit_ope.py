"""Off-policy estimates on the Open Bandit Dataset, checked against the other log's own click rate.

The two logs of the sample ran side by side on the same widget, so the click
rate per impression of one policy (Bernoulli Thompson sampling, say) can be
estimated from the other's log (uniform random) by IPS, SNIPS and doubly robust
and compared with the mean click of the policy's own log, the on-policy truth.

Neither policy looks at the user, so each is a distribution over items per
position, and :func:`logged_action_distribution` recovers it from its log. The
doubly robust reward model is a table of click rates per (position, item),
shrunk towards the position's click rate and cross-fitted: each row's
prediction comes from a table fitted on the other folds, so a row's own click
does not leak into the model that corrects it.

Intervals are percentile bootstraps over the logged rows, seeded. They hold the
target distribution and the reward model fixed, so they leave out the noise of
estimating those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from features import InvalidRequest
from training.open_bandit import OpenBanditLog
from training.policy_value import (
    PolicyValue,
    bootstrap_ci,
    bootstrap_intervals,
    doubly_robust_value,
    importance_weights,
    weighted_ips_value,
    weighted_snips_value,
)

__all__ = [
    "OpenBanditEvaluation",
    "click_rate_table",
    "evaluate_open_bandit",
    "logged_action_distribution",
]

_ESTIMATORS = ("ips", "snips", "dr")


@dataclass(frozen=True)
class OpenBanditEvaluation:
    """The target policy's click rate: on-policy truth, off-policy estimates, their relative errors.

    ``estimates`` and ``relative_errors`` are keyed by estimator ("ips",
    "snips", "dr"); a relative error is ``|estimate − truth| / truth``. Every
    ``ci95`` is a percentile bootstrap interval. ``effective_n`` is
    ``(Σw)² / Σw²`` of the importance weights: how many logged rows the
    estimates really rest on.
    """

    truth: PolicyValue
    estimates: dict[str, PolicyValue]
    relative_errors: dict[str, float]
    effective_n: float
    logging_policy: str
    target_policy: str

    def covers_truth(self, estimator: str) -> bool:
        """Whether ``estimator``'s interval holds the on-policy truth."""
        low, high = self.estimates[estimator].ci95
        return low <= self.truth.mean <= high

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "logging_policy": self.logging_policy,
            "target_policy": self.target_policy,
            "truth": self.truth.to_dict(),
            "estimates": {name: value.to_dict() for name, value in self.estimates.items()},
            "relative_errors": dict(self.relative_errors),
            "effective_n": self.effective_n,
        }


def logged_action_distribution(log: OpenBanditLog) -> NDArray[np.float64]:
    """The logging policy's probability of each item at each position, ``(n_positions, n_items)``.

    Each row's ``propensity_score`` is the probability of *its* item at *its*
    position at that moment, and a bandit's probabilities drift as it learns.
    Averaging the logged scores per pair is biased upwards: a pair is logged
    more often exactly when its probability is high, so the plain mean is
    ``E[p²] / E[p]``, not ``E[p]`` (on the sample's BTS log the plain means add
    up to 3.7, 2.3 and 2.0 over the items of positions 1–3). The harmonic mean
    of the logged scores, ``count / Σ 1/p``, undoes that sampling and estimates
    the probability averaged over the log's time (there they add up to 1.12,
    1.11 and 1.08). Pairs never logged get 0; each position's row is then
    normalised to sum to 1.

    >>> log = OpenBanditLog("bts", np.array([0, 0, 1]), np.array([1, 1, 1]),
    ...                     np.array([0.0, 0.0, 0.0]), np.array([0.5, 0.5, 0.5]),
    ...                     source="example", n_items=2, n_positions=1)
    >>> logged_action_distribution(log).tolist()
    [[0.5, 0.5]]
    """
    shape = (log.n_positions, log.n_items)
    counts = np.zeros(shape)
    inverse = np.zeros(shape)
    pairs = (log.position - 1, log.item_id)
    np.add.at(counts, pairs, 1.0)
    np.add.at(inverse, pairs, 1.0 / log.propensity_score)
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = np.where(counts > 0, counts / inverse, 0.0)
    totals = harmonic.sum(axis=1, keepdims=True)
    if (totals == 0).any():
        empty = int(np.flatnonzero(totals[:, 0] == 0)[0]) + 1
        raise InvalidRequest(f"{log.source}: position", f"must have rows at position {empty}")
    distribution: NDArray[np.float64] = harmonic / totals
    return distribution


def click_rate_table(
    log: OpenBanditLog, rows: NDArray[np.bool_] | None = None, *, prior_strength: float = 50.0
) -> NDArray[np.float64]:
    """Click rate per (position, item) from ``rows`` of ``log``, shrunk towards the position's rate.

    ``(clicks + a·m) / (shows + a)`` with ``m`` the position's click rate and
    ``a = prior_strength`` pseudo-impressions. Clicks are rare (about 4 in
    1,000) and a pair is shown some 40 times in 10,000 rows, so a pair's own
    rate is mostly noise and the prior carries about as much weight as a
    pair's own data.

    >>> log = OpenBanditLog("random", np.array([0, 0, 1, 1]), np.array([1, 1, 1, 1]),
    ...                     np.array([1.0, 1.0, 0.0, 0.0]), np.full(4, 0.5),
    ...                     source="example", n_items=2, n_positions=1)
    >>> click_rate_table(log, prior_strength=2.0).tolist()
    [[0.75, 0.25]]
    """
    if not math.isfinite(prior_strength) or prior_strength <= 0:
        raise InvalidRequest("prior_strength", "must be a positive number", prior_strength)
    kept = np.ones(len(log), dtype=bool) if rows is None else rows
    shape = (log.n_positions, log.n_items)
    shows = np.zeros(shape)
    clicks = np.zeros(shape)
    pairs = (log.position[kept] - 1, log.item_id[kept])
    np.add.at(shows, pairs, 1.0)
    np.add.at(clicks, pairs, log.click[kept])
    overall = clicks.sum() / max(shows.sum(), 1.0)
    position_shows = shows.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        position_rate = np.where(
            position_shows > 0, clicks.sum(axis=1, keepdims=True) / position_shows, overall
        )
    table: NDArray[np.float64] = (clicks + prior_strength * position_rate) / (
        shows + prior_strength
    )
    return table


def evaluate_open_bandit(
    logged: OpenBanditLog,
    target: OpenBanditLog,
    *,
    resamples: int = 1000,
    seed: int = 0,
    folds: int = 5,
    prior_strength: float = 50.0,
) -> OpenBanditEvaluation:
    """Estimate ``target``'s policy's click rate from ``logged`` and compare with ``target``'s own.

    The target policy is :func:`logged_action_distribution` of its log; the
    logging propensities are ``logged.propensity_score``. IPS and SNIPS weight
    each logged click by ``π_target(item | position) / propensity``; doubly
    robust adds those weighted residuals to a cross-fitted
    :func:`click_rate_table` (``folds`` folds, assigned at random from
    ``seed``). The truth is the mean click of ``target``'s log. Intervals are
    bootstraps of ``resamples`` resamples seeded with ``seed``: the same seed,
    the same figures.
    """
    if (logged.n_items, logged.n_positions) != (target.n_items, target.n_positions):
        raise InvalidRequest(
            "target",
            f"must have the items and positions of the logged log "
            f"({logged.n_items} × {logged.n_positions})",
            (target.n_items, target.n_positions),
        )
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise InvalidRequest("folds", "must be a whole number of at least 2", folds)
    distribution = logged_action_distribution(target)
    positions, items = logged.position - 1, logged.item_id
    target_probabilities = distribution[positions, items]
    rewards, propensities = logged.click, logged.propensity_score
    weights = importance_weights(propensities, target_probabilities)

    rng = np.random.default_rng(seed)
    fold = rng.permutation(len(logged)) % folds
    logged_estimates = np.empty(len(logged))
    target_estimates = np.empty(len(logged))
    for k in range(folds):
        held_out = fold == k
        table = click_rate_table(logged, ~held_out, prior_strength=prior_strength)
        logged_estimates[held_out] = table[positions[held_out], items[held_out]]
        target_estimates[held_out] = (distribution * table).sum(axis=1)[positions[held_out]]

    points = {
        "ips": weighted_ips_value(rewards, propensities, target_probabilities),
        "snips": weighted_snips_value(rewards, propensities, target_probabilities),
        "dr": doubly_robust_value(
            rewards, propensities, target_probabilities, logged_estimates, target_estimates
        ),
    }
    dr_terms = target_estimates + weights * (rewards - logged_estimates)
    numerators = np.column_stack([weights * rewards, weights * rewards, dr_terms])
    denominators = np.column_stack([np.ones_like(weights), weights, np.ones_like(weights)])
    intervals = bootstrap_intervals(numerators, denominators, resamples=resamples, seed=seed)
    estimates = {
        name: PolicyValue(mean=points[name].mean, ci95=interval, n=len(logged))
        for name, interval in zip(_ESTIMATORS, intervals, strict=True)
    }

    truth_mean = float(target.click.mean())
    if truth_mean <= 0:
        raise InvalidRequest(f"{target.source}: click", "must hold at least one click")
    truth = PolicyValue(
        mean=truth_mean,
        ci95=bootstrap_ci(target.click, resamples=resamples, seed=seed),
        n=len(target),
    )
    return OpenBanditEvaluation(
        truth=truth,
        estimates=estimates,
        relative_errors={
            name: abs(value.mean - truth_mean) / truth_mean for name, value in estimates.items()
        },
        effective_n=float(weights.sum() ** 2 / (weights**2).sum()),
        logging_policy=logged.policy,
        target_policy=target.policy,
    )
