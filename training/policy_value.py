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

__all__ = ["PolicyValue", "ips_value", "mean_with_ci", "snips_value"]

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
    weights = match / propensities
    n = weights.size
    mean_weight = float(weights.mean())
    if mean_weight == 0:
        raise InvalidRequest(
            "target_actions", "must agree with the logged action in at least one row for SNIPS"
        )
    value = float((weights * values).sum() / weights.sum())
    if n < 2:
        return PolicyValue(mean=value, ci95=(math.nan, math.nan), n=n)
    influence = weights * (values - value) / mean_weight
    half_width = _Z95 * float(influence.std(ddof=1)) / math.sqrt(n)
    return PolicyValue(mean=value, ci95=(value - half_width, value + half_width), n=n)


def _feedback(
    logged_actions: Any, rewards: Values, logging_propensities: Values, target_actions: Any
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Validated logged feedback: (target agrees with log as 0/1, rewards, propensities)."""
    values = finite_numbers("rewards", rewards, length=None)
    n = values.size
    propensities = finite_numbers("logging_propensities", logging_propensities, length=n)
    if ((propensities <= 0) | (propensities > 1)).any():
        bad = propensities[(propensities <= 0) | (propensities > 1)]
        raise InvalidRequest("logging_propensities", "must be in (0, 1]", float(bad[0]))
    logged = one_dimensional("logged_actions", logged_actions, length=n)
    target = one_dimensional("target_actions", target_actions, length=n)
    return (logged == target).astype(np.float64), values, propensities
