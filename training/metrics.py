"""Evaluation metrics for response models and uplift rankings.

Library functions: the CLI, reports and notebooks call these and only plot.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn import metrics as skm

from features import InvalidRequest
from training.arrays import finite_numbers, one_dimensional

__all__ = [
    "PSI_FLOOR",
    "QiniCurve",
    "auc",
    "log_loss",
    "population_stability_index",
    "qini_coefficient",
    "qini_curve",
]

ArrayLike = Sequence[float] | Sequence[bool] | NDArray[Any] | Any
"""Anything ``numpy.asarray`` makes a 1-D array of: lists, arrays, pandas Series."""


def auc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the ROC curve of scores ``p`` for binary outcomes ``y``.

    >>> auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    labels = _binary("y", y)
    scores = _finite("p", p, len(labels))
    if labels.min() == labels.max():
        raise InvalidRequest("y", "must contain both 0 and 1 for an AUC")
    return float(skm.roc_auc_score(labels, scores))


def log_loss(y: ArrayLike, p: ArrayLike) -> float:
    """Mean negative log-likelihood of probabilities ``p`` for binary outcomes ``y``.

    >>> round(log_loss([0, 1], [0.5, 0.5]), 4)
    0.6931
    """
    labels = _binary("y", y)
    probabilities = _finite("p", p, len(labels))
    if ((probabilities < 0) | (probabilities > 1)).any():
        raise InvalidRequest("p", "must be probabilities in [0, 1]")
    return float(skm.log_loss(labels, probabilities, labels=[0, 1]))


@dataclass(frozen=True)
class QiniCurve:
    """Points of a Qini curve; see :func:`qini_curve` for the definition."""

    fraction: NDArray[np.float64]
    """Share of all customers targeted, from 0 to 1, at the end of each block of tied scores."""
    gain: NDArray[np.float64]
    """Estimated incremental responses per customer of the whole set at that fraction."""


def qini_curve(y: ArrayLike, treated: ArrayLike, score: ArrayLike) -> QiniCurve:
    """The Qini curve of an uplift ranking on randomised data.

    ``y`` is any real outcome: 0/1 (a visit; "responses" below) or an amount (spend).

    Customers are sorted by ``score``, highest first. Tied scores form one block
    and the curve has a point only at the end of each block, so the order within
    ties cannot change it (between two points the curve is linear, which is the
    expected gain of a random order within the block). At a cut after the first
    ``k`` customers, with ``N_t(k)``, ``N_c(k)`` treated and control customers
    and ``Y_t(k)``, ``Y_c(k)`` responses among them::

        fraction(k) = k / n
        gain(k)     = (Y_t(k) - Y_c(k) * N_t(k) / N_c(k)) / N_t    (0 while N_c(k) = 0)

    where ``N_t`` is the number of treated customers in the whole set. The
    numerator is Radcliffe's Qini (incremental responses among the treated in
    the top ``k``); dividing by ``N_t`` rather than ``n`` scales it to incremental
    responses per customer if the whole set had been treated, which estimates
    ``fraction * uplift_in_top_k`` whatever the treated/control ratio. So
    ``gain[-1]`` is the average treatment effect. The curve starts at (0, 0).

    >>> curve = qini_curve(
    ...     y=[1, 0, 0, 1], treated=[True, False, True, False], score=[0.9, 0.8, 0.8, 0.1]
    ... )
    >>> curve.fraction.tolist(), curve.gain.tolist()
    ([0.0, 0.25, 0.75, 1.0], [0.0, 0.0, 0.5, 0.0])
    """
    labels = finite_numbers("y", y, length=None)
    n = len(labels)
    arm = _boolean("treated", treated, n)
    scores = _finite("score", score, n)
    n_treated = int(arm.sum())
    if n_treated == 0 or n_treated == n:
        raise InvalidRequest("treated", "must contain both treated and control customers")

    order = np.argsort(-scores, kind="stable")
    sorted_scores, labels, arm = scores[order], labels[order], arm[order]
    # The last index of each block of tied scores: the only places the curve is defined.
    ends = np.append(np.flatnonzero(np.diff(sorted_scores) != 0), n - 1)
    n_t = np.cumsum(arm)[ends].astype(np.float64)
    n_c = (ends + 1) - n_t
    y_t = np.cumsum(labels * arm)[ends]
    y_c = np.cumsum(labels * ~arm)[ends]
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(n_c > 0, (y_t - y_c * n_t / n_c) / n_treated, 0.0)
    return QiniCurve(
        fraction=np.concatenate(([0.0], (ends + 1) / n)),
        gain=np.concatenate(([0.0], gain)),
    )


def qini_coefficient(curve: QiniCurve) -> float:
    """Area between the Qini curve and the straight line from (0, 0) to (1, ``gain[-1]``).

    The line is the expected curve of a random ranking, so the coefficient is 0
    for a ranking no better than chance, positive when high scores find the
    customers the treatment helps most, and negative when the ranking is reversed.
    The area is taken by the trapezoid rule over the curve's points; units are
    incremental responses per customer (as ``gain``).

    >>> curve = QiniCurve(fraction=np.array([0.0, 0.5, 1.0]), gain=np.array([0.0, 0.1, 0.1]))
    >>> round(qini_coefficient(curve), 6)
    0.025
    """
    fraction, gain = curve.fraction, curve.gain
    if fraction.shape != gain.shape or fraction.size < 2:
        raise InvalidRequest("curve", "must have matching fraction and gain with at least 2 points")
    under_curve = float(np.sum(np.diff(fraction) * (gain[1:] + gain[:-1]) / 2))
    return under_curve - float(gain[-1]) / 2


PSI_FLOOR = 1e-4
"""The share an empty bin counts as, so that a bin empty on one side costs a finite amount."""


def population_stability_index(expected: ArrayLike, actual: ArrayLike, bins: int = 10) -> float:
    """How far the distribution of ``actual`` has moved from that of ``expected``.

    ``PSI = Σ (a_i - e_i) · ln(a_i / e_i)`` over bins, where ``e_i`` and ``a_i``
    are the shares of ``expected`` and ``actual`` in bin ``i``: a symmetrised
    Kullback-Leibler divergence (for two normals one standard deviation apart
    it approaches 1). The usual reading: below 0.1 stable, 0.1-0.2 a moderate
    shift, above 0.2 a significant one. A share of 0 counts as
    :data:`PSI_FLOOR`, so a bin only one side fills costs a large but finite amount.

    Numeric inputs (numbers, with None or NaN for missing) are cut at the
    ``bins``-quantiles of ``expected``; bins are intervals ``(lo, hi]``, and
    repeated quantiles of a discrete feature merge, so a 0/1 feature gets two
    bins. Anything else (strings, booleans, a mix) is categorical: one bin per
    value seen on either side. Missing values (None, NaN) form a bin of their
    own in both cases: a feature that goes missing has drifted too. Samples of
    different sizes compare fine: only shares enter.

    >>> population_stability_index([1, 2, 3, 4] * 25, [4, 3, 2, 1] * 25)
    0.0
    >>> round(population_stability_index(["a"] * 50 + ["b"] * 50, ["a"] * 80 + ["b"] * 20), 4)
    0.4159
    >>> rng = np.random.default_rng(0)
    >>> shifted = population_stability_index(rng.normal(0, 1, 20_000), rng.normal(0.5, 1, 20_000))
    >>> 0.2 < shifted < 0.28  # deciles of N(0, 1) against N(0.5, 1): 0.238 in theory
    True
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise InvalidRequest("bins", "must be an integer of at least 2", bins)
    reference = one_dimensional("expected", _keep_types(expected), length=None)
    current = one_dimensional("actual", _keep_types(actual), length=None)
    numbers = _numeric_or_none(reference), _numeric_or_none(current)
    if numbers[0] is not None and numbers[1] is not None:
        e_counts, a_counts = _numeric_counts(numbers[0], numbers[1], bins)
    else:
        e_counts, a_counts = _categorical_counts(reference, current)
    e_share = np.maximum(e_counts / e_counts.sum(), PSI_FLOOR)
    a_share = np.maximum(a_counts / a_counts.sum(), PSI_FLOOR)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


def _keep_types(values: ArrayLike) -> Any:
    # numpy would turn [1, "a"] into the strings "1" and "a", and [1, None] is no number array.
    return np.array(values, dtype=object) if isinstance(values, list | tuple) else values


def _numeric_or_none(values: NDArray[Any]) -> NDArray[np.float64] | None:
    """The values as floats (missing as NaN), or None when they are not all numbers."""
    if values.dtype.kind in "iuf":
        return values.astype(np.float64)
    if values.dtype.kind != "O":
        return None  # strings, booleans, dates: categorical
    out = np.empty(values.size, dtype=np.float64)
    for i, value in enumerate(values):
        if value is None:
            out[i] = math.nan
        elif isinstance(value, Real) and not isinstance(value, bool | np.bool_):
            out[i] = float(value)
        else:
            return None
    return out


def _numeric_counts(
    expected: NDArray[np.float64], actual: NDArray[np.float64], bins: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    if np.isinf(expected).any() or np.isinf(actual).any():
        raise InvalidRequest("expected", "must hold finite numbers or missing values (no infinity)")
    present = expected[~np.isnan(expected)]
    if present.size:
        inner = np.quantile(present, np.arange(1, bins) / bins)
        edges = np.unique(inner)
    else:
        edges = np.empty(0)

    def counts(values: NDArray[np.float64]) -> NDArray[np.float64]:
        missing = np.isnan(values)
        # Bin i holds (edges[i-1], edges[i]]; the last holds everything above.
        index = np.searchsorted(edges, values[~missing], side="left")
        binned = np.bincount(index, minlength=edges.size + 1).astype(np.float64)
        return np.append(binned, float(missing.sum()))

    return counts(expected), counts(actual)


def _categorical_counts(
    expected: NDArray[Any], actual: NDArray[Any]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    e_counts = Counter(_category(v) for v in expected.tolist())
    a_counts = Counter(_category(v) for v in actual.tolist())
    levels = sorted(set(e_counts) | set(a_counts), key=repr)
    return (
        np.array([e_counts[level] for level in levels], dtype=np.float64),
        np.array([a_counts[level] for level in levels], dtype=np.float64),
    )


def _category(value: Any) -> Hashable:
    # NaN is not equal to itself, so each would be its own category; None stands for all.
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, Hashable) else repr(value)


def _binary(field: str, values: ArrayLike) -> NDArray[np.float64]:
    array = one_dimensional(field, values, length=None)
    try:
        numbers = array.astype(np.float64)
    except (TypeError, ValueError):
        raise InvalidRequest(field, "must contain only 0 and 1", f"dtype {array.dtype}") from None
    if not np.isin(numbers, (0.0, 1.0)).all():
        raise InvalidRequest(field, "must contain only 0 and 1 (no missing values)")
    return numbers


def _boolean(field: str, values: ArrayLike, n: int) -> NDArray[np.bool_]:
    array = one_dimensional(field, values, length=n, length_of="`y`")
    if array.dtype == np.bool_:
        return array
    return _binary(field, array).astype(np.bool_)


def _finite(field: str, values: ArrayLike, n: int) -> NDArray[np.float64]:
    return finite_numbers(field, values, length=n, length_of="`y`")
