"""The plots logged with each trained model: calibration, Qini curves, feature importance.

Each function takes numbers computed elsewhere (the evaluation lives in library
functions) and returns a ``matplotlib.figure.Figure`` built without pyplot: no
global figure state, no GUI backend, nothing to close. ``Figure.savefig`` (and
``mlflow.log_figure``) render it with Agg.

>>> figure = importance_figure({"recency": 3.0, "history": 5.0})
>>> figure.axes[0].get_title()
'Feature importance (total gain)'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from features import InvalidRequest
from training.metrics import QiniCurve

__all__ = ["calibration_figure", "importance_figure", "qini_figure"]

_SIZE = (6.0, 4.5)


def calibration_figure(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str = "Calibration on held-out rows",
    xlabel: str = "mean predicted",
    ylabel: str = "observed",
) -> Figure:
    """One line per name through its bins' (predicted, observed) points, and the diagonal.

    >>> figure = calibration_figure({"mens_email": ([0.1, 0.2], [0.12, 0.19])})
    >>> [line.get_label() for line in figure.axes[0].get_lines()]
    ['perfectly calibrated', 'mens_email']
    """
    if not curves:
        raise InvalidRequest("curves", "must have at least one curve")
    figure = Figure(figsize=_SIZE)
    axes = figure.add_subplot()
    points = [np.asarray(values, dtype=float) for pair in curves.values() for values in pair]
    finite = np.concatenate(points)
    finite = finite[np.isfinite(finite)]
    low = float(min(0.0, finite.min())) if finite.size else 0.0
    high = float(finite.max()) if finite.size else 1.0
    axes.plot([low, high], [low, high], linestyle="--", color="grey", label="perfectly calibrated")
    for name, (predicted, observed) in curves.items():
        axes.plot(predicted, observed, marker="o", label=name)
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axes.legend()
    figure.tight_layout()
    return figure


def qini_figure(curves: Mapping[str, QiniCurve], *, ylabel: str = "incremental visits") -> Figure:
    """Each treatment's Qini curve against the straight line of a random ranking.

    >>> curve = QiniCurve(fraction=np.array([0.0, 0.5, 1.0]), gain=np.array([0.0, 0.04, 0.05]))
    >>> len(qini_figure({"mens_email": curve}).axes[0].get_lines())
    2
    """
    if not curves:
        raise InvalidRequest("curves", "must have at least one curve")
    figure = Figure(figsize=_SIZE)
    axes = figure.add_subplot()
    for name, curve in curves.items():
        (line,) = axes.plot(curve.fraction, curve.gain, label=name)
        axes.plot(
            [0.0, 1.0],
            [0.0, float(curve.gain[-1])],
            linestyle="--",
            color=line.get_color(),
            alpha=0.6,
        )
    axes.set(
        title="Qini curves on held-out rows (dashed: random ranking)",
        xlabel="share of customers targeted, best first",
        ylabel=f"{ylabel} per customer",
    )
    axes.legend()
    figure.tight_layout()
    return figure


def importance_figure(importance: Mapping[str, float]) -> Figure:
    """A horizontal bar per feature, largest on top."""
    if not importance:
        raise InvalidRequest("importance", "must have at least one feature")
    ordered = sorted(importance.items(), key=lambda item: item[1])
    figure = Figure(figsize=_SIZE)
    axes = figure.add_subplot()
    axes.barh([name for name, _ in ordered], [value for _, value in ordered])
    axes.set(title="Feature importance (total gain)", xlabel="gain summed over boosters")
    figure.tight_layout()
    return figure
