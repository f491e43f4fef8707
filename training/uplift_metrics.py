"""How well a ranking finds the customers a treatment helps: uplift and Qini curves, uplift@k.

All of these work on randomised data: ``y`` is each customer's outcome (0/1
or an amount such as spend), ``treated`` whether they got the treatment (the
others are the control) and ``score`` the ranking, highest first. The
treatment and control groups may be of any sizes, and tied scores are one
block whose customers count together, so no result depends on the order of
the rows. The Qini curve and coefficient are :mod:`training.metrics`' own,
re-exported here with their siblings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from features import InvalidRequest
from training.arrays import finite_numbers, one_dimensional
from training.metrics import QiniCurve, qini_coefficient, qini_curve

__all__ = [
    "QiniCurve",
    "UpliftCurve",
    "qini_coefficient",
    "qini_curve",
    "uplift_at_k",
    "uplift_coefficient",
    "uplift_curve",
]

ArrayLike = Any
"""Anything ``numpy.asarray`` makes a 1-D array of: lists, arrays, pandas Series."""


@dataclass(frozen=True)
class UpliftCurve:
    """Points of an uplift curve; see :func:`uplift_curve` for the definition."""

    fraction: NDArray[np.float64]
    """Share of all customers targeted, from 0 to 1, at the end of each block of tied scores."""
    gain: NDArray[np.float64]
    """Estimated incremental outcome per customer of the whole set at that fraction."""


@dataclass(frozen=True)
class _Prefixes:
    """Counts and outcome sums of each arm among the top ``k`` customers, at each block end."""

    k: NDArray[np.float64]
    n_t: NDArray[np.float64]
    n_c: NDArray[np.float64]
    y_t: NDArray[np.float64]
    y_c: NDArray[np.float64]


def uplift_curve(y: ArrayLike, treated: ArrayLike, score: ArrayLike) -> UpliftCurve:
    """The uplift curve of a ranking: the difference of means in the top ``k``, times ``k / n``.

    With ``N_t(k)``, ``N_c(k)`` treated and control customers among the first
    ``k`` and ``Y_t(k)``, ``Y_c(k)`` their summed outcomes::

        fraction(k) = k / n
        gain(k)     = (Y_t(k) / N_t(k) - Y_c(k) / N_c(k)) * k / n   (0 while either count is 0)

    Each arm is averaged on its own, so unequal group sizes do not bias it,
    and ``gain[-1]`` is the average treatment effect. Like :func:`qini_curve`
    it has a point only at the end of each block of tied scores and starts at
    (0, 0). The Qini curve weighs the top ``k`` by its share of the treated,
    ``N_t(k) / N_t``, rather than of everyone, ``k / n``; both end at the
    average effect.

    >>> curve = uplift_curve(
    ...     y=[1, 0, 1, 0, 0], treated=[True, False, True, False, False], score=[5, 4, 3, 2, 1]
    ... )
    >>> curve.fraction.tolist(), curve.gain.round(4).tolist()
    ([0.0, 0.2, 0.4, 0.6, 0.8, 1.0], [0.0, 0.0, 0.4, 0.6, 0.8, 1.0])
    """
    prefixes, n = _prefixes(y, treated, score)
    with np.errstate(divide="ignore", invalid="ignore"):
        difference = prefixes.y_t / prefixes.n_t - prefixes.y_c / prefixes.n_c
    both = (prefixes.n_t > 0) & (prefixes.n_c > 0)
    gain = np.where(both, difference * prefixes.k / n, 0.0)
    return UpliftCurve(
        fraction=np.concatenate(([0.0], prefixes.k / n)),
        gain=np.concatenate(([0.0], gain)),
    )


def uplift_coefficient(curve: UpliftCurve) -> float:
    """Area between the uplift curve and a random ranking's line, as :func:`qini_coefficient`.

    >>> curve = UpliftCurve(fraction=np.array([0.0, 0.5, 1.0]), gain=np.array([0.0, 0.1, 0.1]))
    >>> round(uplift_coefficient(curve), 6)
    0.025
    """
    return qini_coefficient(QiniCurve(fraction=curve.fraction, gain=curve.gain))


def uplift_at_k(y: ArrayLike, treated: ArrayLike, score: ArrayLike, k: float) -> float:
    """Mean outcome of the treated minus that of the control among the top share ``k``.

    The top share is ``k * n`` customers, taken whole from the highest score
    down; a block of tied scores that the cut splits counts with the weight of
    the share of it that fits (as if the block were in a random order, on
    average), so the result does not depend on the order of the rows and
    ``k * n`` need not be whole. ``k = 1`` gives the average treatment effect.

    >>> # Top 3 of 6: treated outcomes 1, 0 and a control outcome 1: 0.5 - 1.
    >>> uplift_at_k([1, 0, 1, 0, 0, 1], [1, 1, 0, 0, 1, 0], [6, 5, 4, 3, 2, 1], k=0.5)
    -0.5
    """
    if isinstance(k, bool) or not isinstance(k, int | float) or not 0 < k <= 1:
        raise InvalidRequest("k", "must be a share of the customers in (0, 1]", k)
    outcomes, arm, scores = _checked(y, treated, score)
    n = outcomes.size
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    targeted = k * n
    # Each row's block: rows before the block count whole, the block pro rata.
    first = np.searchsorted(-sorted_scores, -sorted_scores, side="left")
    last = np.searchsorted(-sorted_scores, -sorted_scores, side="right")
    share = np.clip((targeted - first) / (last - first), 0.0, 1.0)
    weight = np.empty(n)
    weight[order] = share
    w_t, w_c = weight * arm, weight * ~arm
    if w_t.sum() == 0 or w_c.sum() == 0:
        raise InvalidRequest("k", "must leave treated and control customers among the top share", k)
    return float((w_t @ outcomes) / w_t.sum() - (w_c @ outcomes) / w_c.sum())


def _checked(
    y: ArrayLike, treated: ArrayLike, score: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.float64]]:
    outcomes = finite_numbers("y", y, length=None)
    n = outcomes.size
    flags = one_dimensional("treated", treated, length=n, length_of="`y`")
    if flags.dtype != np.bool_:
        numbers = finite_numbers("treated", flags, length=n, length_of="`y`")
        if not np.isin(numbers, (0.0, 1.0)).all():
            raise InvalidRequest("treated", "must contain only 0 and 1 (or booleans)")
        flags = numbers.astype(np.bool_)
    if flags.all() or not flags.any():
        raise InvalidRequest("treated", "must contain both treated and control customers")
    scores = finite_numbers("score", score, length=n, length_of="`y`")
    return outcomes, flags, scores


def _prefixes(y: ArrayLike, treated: ArrayLike, score: ArrayLike) -> tuple[_Prefixes, int]:
    """The arms' counts and sums in each top ``k`` that ends a block of ties, and ``n``."""
    outcomes, arm, scores = _checked(y, treated, score)
    n = outcomes.size
    order = np.argsort(-scores, kind="stable")
    sorted_scores, outcomes, arm = scores[order], outcomes[order], arm[order]
    ends = np.append(np.flatnonzero(np.diff(sorted_scores) != 0), n - 1)
    n_t = np.cumsum(arm)[ends].astype(np.float64)
    prefixes = _Prefixes(
        k=(ends + 1).astype(np.float64),
        n_t=n_t,
        n_c=(ends + 1) - n_t,
        y_t=np.cumsum(outcomes * arm)[ends],
        y_c=np.cumsum(outcomes * ~arm)[ends],
    )
    return prefixes, n
