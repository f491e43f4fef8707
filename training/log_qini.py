"""The Qini curve of the live model, from the decision log alone.

A decision's *uplift score* is what the model expected a send to add: the best
prior among the send candidates it scored, minus the prior of not sending. The
curve ranks decisions by it and compares those that sent (treated) with the
holdout (control) at every cut. The holdout is random; the sends are not (the
policy chose them), but it chose them on these scores, so comparing treated and
control of similar scores is what the curve does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from decisioning.types import NO_SEND, Decision
from training.holdout_lift import Row
from training.metrics import qini_coefficient, qini_curve

__all__ = [
    "QINI_COLUMNS",
    "QINI_POINTS",
    "QINI_SUMMARY_COLUMNS",
    "logged_uplift_score",
    "qini_rows",
]

QINI_COLUMNS: tuple[str, ...] = ("journey", "fraction", "gain", "random_gain")
"""The curve: share of decisions targeted (best scored first), incremental conversions
per decision found by then, and what a random order would find."""

QINI_SUMMARY_COLUMNS: tuple[str, ...] = (
    "journey",
    "model_version",
    "n_treated",
    "n_control",
    "qini_coefficient",
    "average_effect",
    "warning",
)
"""One row per journey: the model the curve is of, the groups, the area between the curve
and random targeting (above 0: the model finds who the message helps), and the
average effect the curve ends at."""

QINI_POINTS = 101
"""The curve is read at this many evenly spaced shares (0, 1 %, ..., 100 %)."""


def logged_uplift_score(decision: Decision) -> float | None:
    """The best send candidate's prior minus the no-send prior, or None when not logged.

    A holdout decision logs only its no-send score, so it has none unless the
    engine logs the send candidates' priors for it as well.

    >>> from datetime import UTC, datetime
    >>> from decisioning.types import ActionScore, JointAction
    >>> at = datetime(2024, 5, 1, tzinfo=UTC)
    >>> scores = {
    ...     "a/email/now": ActionScore(0.30, 0, 0, 0.5),
    ...     "b/sms/now": ActionScore(0.20, 0, 0, 0.2),
    ...     NO_SEND: ActionScore(0.05, 0, 0, 0.3),
    ... }
    >>> skip = JointAction.no_send()
    >>> d = Decision("d", "c", at, "j", "s", "policy", skip, 0.3, 0.0, (skip,), (), scores, False,
    ...              "p", "m", {})
    >>> round(logged_uplift_score(d), 6)
    0.25
    """
    base = decision.scores.get(NO_SEND)
    sends = [score.prior for key, score in decision.scores.items() if key != NO_SEND]
    if base is None or not sends:
        return None
    return max(sends) - base.prior


def qini_rows(
    journey: str,
    model_version: str | None,
    converted: Sequence[float],
    treated: Sequence[bool],
    scores: Sequence[float],
    *,
    min_group: int,
) -> tuple[Row, list[Row]]:
    """The summary row and the curve's rows of one journey.

    ``treated`` is True for a decision that sent and False for a holdout one.
    Without both groups there is no curve, and the summary says why; with fewer
    than ``min_group`` in either, the summary warns that the curve is noise.
    """
    y = np.asarray(converted, dtype=np.float64)
    arm = np.asarray(treated, dtype=bool)
    n_treated, n_control = int(arm.sum()), int((~arm).sum())
    summary: Row = {
        "journey": journey,
        "model_version": model_version,
        "n_treated": n_treated,
        "n_control": n_control,
        "qini_coefficient": None,
        "average_effect": None,
        "warning": None,
    }
    if n_treated == 0 or n_control == 0:
        missing = "holdout decisions with an uplift score" if n_control == 0 else "sends"
        summary["warning"] = (
            f"No Qini curve: the log holds no {missing} of the current model in this journey."
        )
        return summary, []
    if min(n_treated, n_control) < min_group:
        summary["warning"] = (
            f"Too small to conclude: {n_treated:,} sends and {n_control:,} holdout decisions; "
            f"at least {min_group:,} of each are needed for a curve that is not noise."
        )
    curve = qini_curve(y, arm, np.asarray(scores, dtype=np.float64))
    # The curve is linear between its points, so reading it on a grid loses nothing
    # a chart could show, and keeps the JSON small however long the log.
    grid = np.linspace(0.0, 1.0, QINI_POINTS)
    gain = np.interp(grid, curve.fraction, curve.gain)
    end = float(curve.gain[-1])
    summary["qini_coefficient"] = qini_coefficient(curve)
    summary["average_effect"] = end
    points: list[Row] = [
        {"journey": journey, "fraction": float(f), "gain": float(g), "random_gain": float(f) * end}
        for f, g in zip(grid, gain, strict=True)
    ]
    return summary, points
