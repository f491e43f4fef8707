"""Fit the arm propensity model on a training frame and evaluate it on held-out rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from features import InvalidRequest
from models import ArmPropensityModel
from training.metrics import QiniCurve, auc, log_loss, qini_coefficient, qini_curve
from training.split import stratified_split

__all__ = ["PropensityTrainingResult", "train_propensity"]


@dataclass(frozen=True)
class PropensityTrainingResult:
    """A fitted model, the split it was fitted and judged on, and how it did.

    ``metrics`` holds ``auc_<action>`` and ``log_loss_<action>`` on the held-out
    rows of each action, and ``qini_<action>`` for each action other than the
    control (see :func:`train_propensity`). ``test_scores`` are the held-out
    predictions, one column per action, indexed like ``test``.
    """

    model: ArmPropensityModel
    train: pd.DataFrame
    test: pd.DataFrame
    metrics: dict[str, float]
    qini_curves: dict[str, QiniCurve]
    test_scores: pd.DataFrame


def train_propensity(
    frame: pd.DataFrame,
    *,
    features: Sequence[str],
    action_col: str = "arm",
    reward_col: str = "visit",
    control_action: str = "no_email",
    seed: int = 0,
    test_size: float = 0.3,
    model: ArmPropensityModel | None = None,
    test_mask: Sequence[bool] | NDArray[np.bool_] | None = None,
) -> PropensityTrainingResult:
    """Split ``frame`` (stratified on action × reward), fit on train, evaluate on test.

    ``test_mask`` (one flag per row of ``frame``) names the held-out rows instead
    of the seeded split: the model lifecycle's fixed holdout, so that a later
    challenger is judged on customers this model never saw.

    ``model`` supplies the hyper-parameters; a clone of it is fitted, so the
    argument itself stays unfitted. By default the model is seeded with ``seed``.
    Each non-control action's Qini curve is computed on the held-out rows of
    that action and of the control, ranking by ``p_action - p_control``: the
    model's estimate of the action's uplift.

    >>> frame = pd.DataFrame({
    ...     "recency": list(range(1, 13)) * 30,
    ...     "arm": ["email", "email", "none"] * 120,
    ...     "visit": ([1, 0, 0, 0, 1, 1] * 60),
    ... })
    >>> result = train_propensity(
    ...     frame, features=["recency"], control_action="none",
    ...     model=ArmPropensityModel(num_boost_round=5, min_data_in_leaf=10),
    ... )
    >>> sorted(result.metrics), len(result.test)
    (['auc_email', 'auc_none', 'log_loss_email', 'log_loss_none', 'qini_email'], 108)
    """
    _check_columns(frame, features, action_col, reward_col)
    actions = sorted(frame[action_col].dropna().unique())
    if control_action not in actions:
        raise InvalidRequest(
            "control_action", f"must be one of the actions {actions}", control_action
        )
    if test_mask is None:
        train, test = stratified_split(
            frame, test_size=test_size, seed=seed, by=(action_col, reward_col)
        )
    else:
        held_out = np.asarray(test_mask, dtype=bool)
        if held_out.shape != (len(frame),) or held_out.all() or not held_out.any():
            raise InvalidRequest(
                "test_mask", f"must flag some but not all of the {len(frame)} rows of `frame`"
            )
        train, test = frame[~held_out], frame[held_out]
    fitted = (model.clone() if model is not None else ArmPropensityModel(seed=seed)).fit(
        train[list(features)], train[action_col], train[reward_col]
    )
    scores = fitted.predict_frame(test[list(features)])

    metrics: dict[str, float] = {}
    curves: dict[str, QiniCurve] = {}
    test_actions = test[action_col].to_numpy()
    rewards = test[reward_col].to_numpy()
    for action in fitted.actions:
        rows = test_actions == action
        metrics[f"auc_{action}"] = auc(rewards[rows], scores[action].to_numpy()[rows])
        metrics[f"log_loss_{action}"] = log_loss(rewards[rows], scores[action].to_numpy()[rows])
    for action in fitted.actions:
        if action == control_action:
            continue
        rows = (test_actions == action) | (test_actions == control_action)
        uplift = (scores[action] - scores[control_action]).to_numpy()
        curves[action] = qini_curve(rewards[rows], test_actions[rows] == action, uplift[rows])
        metrics[f"qini_{action}"] = qini_coefficient(curves[action])
    return PropensityTrainingResult(
        model=fitted,
        train=train,
        test=test,
        metrics=metrics,
        qini_curves=curves,
        test_scores=scores,
    )


def _check_columns(
    frame: pd.DataFrame, features: Sequence[str], action_col: str, reward_col: str
) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise InvalidRequest("frame", "must be a pandas DataFrame", type(frame).__name__)
    if isinstance(features, str) or not features:
        raise InvalidRequest("features", "must be a non-empty sequence of column names", features)
    missing = [column for column in features if column not in frame.columns]
    if missing:
        raise InvalidRequest("features", "must name columns of `frame`", missing)
    for field, column in (("action_col", action_col), ("reward_col", reward_col)):
        if column not in frame.columns:
            raise InvalidRequest(field, "must name a column of `frame`", column)
        if column in features:
            raise InvalidRequest("features", f"must not include the {field} column", column)
