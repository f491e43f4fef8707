"""Evaluation metrics for response models and uplift rankings.

Library functions: the CLI, reports and notebooks call these and only plot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn import metrics as skm

from features import InvalidRequest
from training.arrays import finite_numbers, one_dimensional

__all__ = ["QiniCurve", "auc", "log_loss", "qini_coefficient", "qini_curve"]

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
    labels = _binary("y", y)
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
