"""Whether predicted probabilities mean what they say: the calibration curve and its error.

A model is calibrated when, of the customers it gives a probability ``p``,
a share ``p`` respond. The curve bins the predictions and compares each bin's
mean prediction with its observed response rate; the expected calibration
error (ECE) is the mean gap, weighted by the bins' sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from features import InvalidRequest
from training.arrays import finite_numbers

__all__ = ["CalibrationCurve", "calibration_curve", "expected_calibration_error"]

Strategy = Literal["uniform", "quantile"]
_STRATEGIES = ("uniform", "quantile")


@dataclass(frozen=True)
class CalibrationCurve:
    """One entry per non-empty bin, in increasing order of prediction."""

    mean_predicted: NDArray[np.float64]
    """The mean predicted probability of the bin's customers."""
    observed_rate: NDArray[np.float64]
    """The share of the bin's customers who responded."""
    count: NDArray[np.int64]
    """How many customers fell in the bin."""


def calibration_curve(
    y: Any, p: Any, bins: int = 10, *, strategy: Strategy = "uniform"
) -> CalibrationCurve:
    """Mean prediction against observed rate in each of ``bins`` bins of ``p``.

    ``uniform`` bins split [0, 1] into equal widths, ``[0, 0.1), ... [0.9, 1]``;
    ``quantile`` bins hold about equally many customers each (repeated
    quantiles merge), which suits probabilities crowded into a small range.
    Empty bins are left out.

    >>> curve = calibration_curve([0, 0, 1, 1, 1], [0.1, 0.15, 0.15, 0.8, 0.9], bins=2)
    >>> curve.mean_predicted.round(4).tolist(), curve.observed_rate.tolist(), curve.count.tolist()
    ([0.1333, 0.85], [0.3333333333333333, 1.0], [3, 2])
    """
    labels, probabilities = _checked(y, p)
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise InvalidRequest("bins", "must be an integer of at least 1", bins)
    if strategy not in _STRATEGIES:
        raise InvalidRequest("strategy", f"must be one of {list(_STRATEGIES)}", strategy)
    if strategy == "uniform":
        inner = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    else:
        inner = np.unique(np.quantile(probabilities, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    # Bin i holds [inner[i-1], inner[i]); the last one includes 1.
    index = np.searchsorted(inner, probabilities, side="right")
    count = np.bincount(index, minlength=inner.size + 1)
    predicted = np.bincount(index, weights=probabilities, minlength=inner.size + 1)
    observed = np.bincount(index, weights=labels, minlength=inner.size + 1)
    kept = count > 0
    return CalibrationCurve(
        mean_predicted=predicted[kept] / count[kept],
        observed_rate=observed[kept] / count[kept],
        count=count[kept].astype(np.int64),
    )


def expected_calibration_error(
    y: Any, p: Any, bins: int = 10, *, strategy: Strategy = "uniform"
) -> float:
    """The size-weighted mean gap between prediction and outcome over the bins.

    ``Σ_b (count_b / n) · |observed_rate_b − mean_predicted_b|`` over the bins
    of :func:`calibration_curve`: 0 for a model whose every bin is right on average; at most 1.

    >>> # Bin [0, 0.5): predicted 0.1333, observed 1/3; bin [0.5, 1]: 0.85 and 1.
    >>> round(expected_calibration_error([0, 0, 1, 1, 1], [0.1, 0.15, 0.15, 0.8, 0.9], bins=2), 4)
    0.18
    """
    curve = calibration_curve(y, p, bins, strategy=strategy)
    gaps = np.abs(curve.observed_rate - curve.mean_predicted)
    return float(np.sum(curve.count * gaps) / np.sum(curve.count))


def _checked(y: Any, p: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    labels = finite_numbers("y", y, length=None)
    if not np.isin(labels, (0.0, 1.0)).all():
        raise InvalidRequest("y", "must contain only 0 and 1")
    probabilities = finite_numbers("p", p, length=labels.size, length_of="`y`")
    if ((probabilities < 0) | (probabilities > 1)).any():
        raise InvalidRequest("p", "must be probabilities in [0, 1]")
    return labels, probabilities
