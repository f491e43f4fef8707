"""The value of a policy, on-policy or estimated off-policy from logged bandit feedback.

Intervals use the normal approximation, mean ± 1.96 standard errors, which is
what the uplift reports show; it is honest for the sample sizes of a campaign
(thousands of rows), not for a handful.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from features import InvalidRequest
from training.arrays import finite_numbers, one_dimensional

__all__ = [
    "PolicyValue",
    "bootstrap_ci",
    "bootstrap_intervals",
    "doubly_robust_value",
    "importance_weights",
    "ips_value",
    "mean_with_ci",
    "snips_value",
    "weighted_ips_value",
    "weighted_snips_value",
]

_Z95 = 1.96

Values = Sequence[float] | NDArray[Any] | Any
"""Anything ``numpy.asarray`` makes a 1-D array of: lists, arrays, pandas Series."""


@dataclass(frozen=True)
class PolicyValue:
    """An estimated mean reward per decision with its 95 % confidence interval."""

    mean: float
    ci95: tuple[float, float]
    n: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict.

        >>> PolicyValue(mean=0.5, ci95=(0.4, 0.6), n=100).to_dict()
        {'mean': 0.5, 'ci95': [0.4, 0.6], 'n': 100}
        """
        return {"mean": self.mean, "ci95": list(self.ci95), "n": self.n}


def mean_with_ci(rewards: Values) -> PolicyValue:
    """The mean of ``rewards`` with a normal-approximation 95 % interval (1.96·s/√n).

    With a single value the standard deviation is undefined and so is the interval (NaN).

    >>> value = mean_with_ci([0, 1, 1, 0])
    >>> value.mean, [round(bound, 3) for bound in value.ci95], value.n
    (0.5, [-0.066, 1.066], 4)
    """
    values = finite_numbers("rewards", rewards, length=None)
    n = values.size
    mean = float(values.mean())
    if n < 2:
        return PolicyValue(mean=mean, ci95=(math.nan, math.nan), n=n)
    half_width = _Z95 * float(values.std(ddof=1)) / math.sqrt(n)
    return PolicyValue(mean=mean, ci95=(mean - half_width, mean + half_width), n=n)


def ips_value(
    logged_actions: Sequence[str] | NDArray[Any] | Any,
    rewards: Values,
    logging_propensities: Values,
    target_actions: Sequence[str] | NDArray[Any] | Any,
) -> PolicyValue:
    """Inverse propensity scoring estimate of a deterministic target policy's value.

    Each row contributes ``1[target == logged] * reward / propensity``; the
    estimate is their mean over all rows and the interval is that of
    :func:`mean_with_ci` over the same terms. Unbiased when the logging
    propensities are the true probabilities of the logged actions.

    >>> logged, rewards, propensities = ["a", "b", "a", "b"], [1, 1, 0, 0], [0.5, 0.5, 0.25, 0.25]
    >>> ips_value(logged, rewards, propensities, target_actions=["a"] * 4).mean
    0.5
    """
    match, values, propensities = _feedback(
        logged_actions, rewards, logging_propensities, target_actions
    )
    return mean_with_ci(match * values / propensities)


def snips_value(
    logged_actions: Sequence[str] | NDArray[Any] | Any,
    rewards: Values,
    logging_propensities: Values,
    target_actions: Sequence[str] | NDArray[Any] | Any,
) -> PolicyValue:
    """Self-normalised IPS: the importance-weighted mean reward, ``Σ w·r / Σ w``.

    Weights are ``w = 1[target == logged] / propensity``. Slightly biased but with
    lower variance than IPS, and always within the range of the rewards. The
    interval uses the delta method: the standard error of the mean of
    ``w·(r − V) / mean(w)``.

    >>> logged, rewards, propensities = ["a", "b", "a", "b"], [1, 1, 0, 0], [0.5, 0.5, 0.25, 0.25]
    >>> round(snips_value(logged, rewards, propensities, target_actions=["a"] * 4).mean, 4)
    0.3333
    """
    match, values, propensities = _feedback(
        logged_actions, rewards, logging_propensities, target_actions
    )
    return _snips(match / propensities, values, "target_actions")


def importance_weights(logging_propensities: Values, target_propensities: Values) -> NDArray[Any]:
    """``target / logging`` probability of each logged action: how much a row counts for the target.

    ``target_propensities`` is the probability that the *target* policy takes the
    action that was logged (0 where it would do something else); a deterministic
    target has 0 or 1, a stochastic one (uniform random, the logging policy
    itself) anything in [0, 1].

    >>> importance_weights([0.5, 0.25], [1.0, 0.0]).tolist()
    [2.0, 0.0]
    """
    propensities = _propensities(logging_propensities, length=None)
    target = finite_numbers("target_propensities", target_propensities, length=propensities.size)
    if ((target < 0) | (target > 1)).any():
        bad = target[(target < 0) | (target > 1)]
        raise InvalidRequest("target_propensities", "must be in [0, 1]", float(bad[0]))
    return target / propensities


def weighted_ips_value(
    rewards: Values, logging_propensities: Values, target_propensities: Values
) -> PolicyValue:
    """IPS for any target policy, deterministic or stochastic: the mean of ``w·r``.

    ``w`` are the :func:`importance_weights`. With a target that agrees with the
    log as 0/1 this is :func:`ips_value`.

    >>> weighted_ips_value([1, 1, 0, 0], [0.5, 0.5, 0.25, 0.25], [1, 0, 1, 0]).mean
    0.5
    """
    values = finite_numbers("rewards", rewards, length=None)
    weights = importance_weights(_sized(logging_propensities, values), target_propensities)
    return mean_with_ci(weights * values)


def weighted_snips_value(
    rewards: Values, logging_propensities: Values, target_propensities: Values
) -> PolicyValue:
    """Self-normalised IPS for any target policy: ``Σ w·r / Σ w`` (see :func:`snips_value`).

    >>> round(weighted_snips_value([1, 1, 0, 0], [0.5, 0.5, 0.25, 0.25], [1, 0, 1, 0]).mean, 4)
    0.3333
    """
    values = finite_numbers("rewards", rewards, length=None)
    weights = importance_weights(_sized(logging_propensities, values), target_propensities)
    return _snips(weights, values, "target_propensities")


def doubly_robust_value(
    rewards: Values,
    logging_propensities: Values,
    target_propensities: Values,
    logged_estimates: Values,
    target_estimates: Values,
) -> PolicyValue:
    """Doubly robust estimate: a reward model's prediction, corrected by weighted residuals.

    Each row contributes ``v̂ + w·(r − q̂)``, where ``q̂ = q̂(x, logged action)``
    (``logged_estimates``), ``v̂ = Σ_a π(a | x) q̂(x, a)`` is the model's expected
    reward of the target policy in that context (``target_estimates``) and ``w``
    the :func:`importance_weights`. Unbiased when either the propensities or the
    reward model are right, and of lower variance than IPS when the model is
    close. The interval is normal, as in :func:`mean_with_ci`, over the terms.

    >>> # A perfect reward model: the estimate is its value whatever the propensities.
    >>> doubly_robust_value([1, 0], [0.5, 0.5], [1, 0], [1, 0], [0.5, 0.5]).mean
    0.5
    """
    values = finite_numbers("rewards", rewards, length=None)
    n = values.size
    weights = importance_weights(_sized(logging_propensities, values), target_propensities)
    logged = finite_numbers("logged_estimates", logged_estimates, length=n)
    target = finite_numbers("target_estimates", target_estimates, length=n)
    return mean_with_ci(target + weights * (values - logged))


def bootstrap_ci(
    numerators: Values,
    denominators: Values | None = None,
    *,
    resamples: int = 500,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``Σ numerators / Σ denominators`` (a mean without them).

    Rows are resampled with replacement ``resamples`` times from a generator
    seeded with ``seed``, so the interval is the same on every run. Every
    estimator here is such a ratio of row sums: IPS and DR are means of their
    terms, SNIPS is ``Σ w·r / Σ w``. Resamples whose denominator is 0 are
    dropped; with none left, or a single row, the interval is NaN.

    >>> low, high = bootstrap_ci([0, 1] * 50, seed=1)
    >>> 0.38 < low < 0.5 < high < 0.62
    True
    """
    terms = finite_numbers("numerators", numerators, length=None)
    weights = (
        None
        if denominators is None
        else finite_numbers("denominators", denominators, length=terms.size)
    )
    intervals = bootstrap_intervals(
        terms[:, None],
        None if weights is None else weights[:, None],
        resamples=resamples,
        seed=seed,
        level=level,
    )
    return intervals[0]


def bootstrap_intervals(
    numerators: NDArray[Any],
    denominators: NDArray[Any] | None = None,
    *,
    resamples: int = 500,
    seed: int = 0,
    level: float = 0.95,
) -> list[tuple[float, float]]:
    """:func:`bootstrap_ci` of many estimates at once, one per column, over the same resamples.

    Sharing the resamples makes the work one pass over the rows per resample,
    whatever the number of estimates (a report has a dozen).

    >>> terms = np.column_stack([np.r_[np.zeros(50), np.ones(50)], np.full(100, 2.0)])
    >>> [(round(low, 2), round(high, 2)) for low, high in bootstrap_intervals(terms)][1]
    (2.0, 2.0)
    """
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise InvalidRequest("resamples", "must be a whole number of at least 1", resamples)
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise InvalidRequest("level", "must be a number between 0 and 1", level)
    terms = _matrix("numerators", numerators)
    n, m = terms.shape
    weights = np.ones_like(terms) if denominators is None else _matrix("denominators", denominators)
    if weights.shape != terms.shape:
        raise InvalidRequest(
            "denominators", f"must have the shape of numerators {terms.shape}", weights.shape
        )
    if n < 2:
        return [(math.nan, math.nan)] * m
    rng = np.random.default_rng(seed)
    estimates = np.empty((resamples, m))
    for r in range(resamples):
        # How often each row is drawn: the resample as weights, one matrix product per side.
        counts = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            estimates[r] = (counts @ terms) / (counts @ weights)
    estimates[~np.isfinite(estimates)] = np.nan
    tail = 100 * (1 - level) / 2
    intervals: list[tuple[float, float]] = []
    for column in estimates.T:
        kept = column[~np.isnan(column)]
        if kept.size == 0:
            intervals.append((math.nan, math.nan))
            continue
        low, high = np.percentile(kept, [tail, 100 - tail])
        intervals.append((float(low), float(high)))
    return intervals


def _snips(weights: NDArray[Any], values: NDArray[Any], field: str) -> PolicyValue:
    n = weights.size
    mean_weight = float(weights.mean())
    if mean_weight == 0:
        raise InvalidRequest(
            field, "must agree with the logged action in at least one row for SNIPS"
        )
    value = float((weights * values).sum() / weights.sum())
    if n < 2:
        return PolicyValue(mean=value, ci95=(math.nan, math.nan), n=n)
    influence = weights * (values - value) / mean_weight
    half_width = _Z95 * float(influence.std(ddof=1)) / math.sqrt(n)
    return PolicyValue(mean=value, ci95=(value - half_width, value + half_width), n=n)


def _sized(values: Values, reference: NDArray[Any]) -> NDArray[Any]:
    """``values`` checked to have one entry per reward."""
    return one_dimensional("logging_propensities", values, length=reference.size)


def _propensities(values: Values, *, length: int | None) -> NDArray[np.float64]:
    propensities = finite_numbers("logging_propensities", values, length=length)
    if ((propensities <= 0) | (propensities > 1)).any():
        bad = propensities[(propensities <= 0) | (propensities > 1)]
        raise InvalidRequest("logging_propensities", "must be in (0, 1]", float(bad[0]))
    return propensities


def _matrix(field: str, values: Any) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0:
        raise InvalidRequest(field, "must be a non-empty 2-D array (rows × estimates)")
    if not np.isfinite(array).all():
        raise InvalidRequest(field, "must be finite (no NaN or infinity)")
    return array


def _feedback(
    logged_actions: Any, rewards: Values, logging_propensities: Values, target_actions: Any
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Validated logged feedback: (target agrees with log as 0/1, rewards, propensities)."""
    values = finite_numbers("rewards", rewards, length=None)
    n = values.size
    propensities = _propensities(logging_propensities, length=n)
    logged = one_dimensional("logged_actions", logged_actions, length=n)
    target = one_dimensional("target_actions", target_actions, length=n)
    return (logged == target).astype(np.float64), values, propensities
