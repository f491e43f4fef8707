"""The T-learner: one LightGBM outcome model per arm; uplift is a treatment's minus the control."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from features import InvalidRequest
from models._encoding import check_int, check_learning_rate, lgb_params, predict
from models.uplift import (
    LightGBMUplift,
    Outcome,
    UpliftData,
    check_control,
    check_outcome,
    uplift_data,
)

__all__ = ["TLearner"]


class TLearner(LightGBMUplift):
    """Uplift as the difference of two arms' outcome models, ``μ_t(x) - μ_c(x)``.

    One booster per arm, fitted on that arm's rows only: the classic baseline.
    With a binary outcome each booster is exactly the one
    :class:`~models.ArmPropensityModel` fits with the same parameters (a
    logistic objective), so the uplift is the difference of its probabilities;
    with a real-valued outcome (spend) the boosters are least-squares
    regressions. The defaults are ArmPropensityModel's, tuned on Hillstrom.

    Its weakness is that each arm's model spends its capacity on the outcome
    (most of it the same in every arm) rather than on the difference, and the
    two models' errors do not cancel; see :class:`~models.DRLearner`.

    >>> X = pd.DataFrame({"mens": [0, 1] * 300})
    >>> arms = ["email"] * 300 + ["none"] * 300
    >>> spend = [0.0, 30.0] * 150 + [0.0, 10.0] * 150
    >>> model = TLearner(control="none", learning_rate=0.5, num_boost_round=50, min_data_in_leaf=20)
    >>> model = model.fit(X, arms, spend)
    >>> model.treatments, model.outcome_
    (('email',), 'continuous')
    >>> {mens: round(model.predict_one({"mens": mens})["email"], 1) for mens in (0, 1)}
    {0: 0.0, 1: 20.0}
    """

    _PARAMS = (
        "control",
        "outcome",
        "num_boost_round",
        "learning_rate",
        "num_leaves",
        "min_data_in_leaf",
        "seed",
    )

    def __init__(
        self,
        *,
        control: str = "no_email",
        outcome: Outcome = "auto",
        num_boost_round: int = 200,
        learning_rate: float = 0.05,
        num_leaves: int = 4,
        min_data_in_leaf: int = 300,
        seed: int = 0,
    ) -> None:
        check_control(control)
        check_outcome(outcome)
        check_int("num_boost_round", num_boost_round, minimum=1)
        check_learning_rate(learning_rate)
        check_int("num_leaves", num_leaves, minimum=2)
        check_int("min_data_in_leaf", min_data_in_leaf, minimum=1)
        check_int("seed", seed, minimum=0)
        self.control = control
        self.outcome = outcome
        self.num_boost_round = num_boost_round
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_data_in_leaf = min_data_in_leaf
        self.seed = seed

    def fit(
        self,
        X: pd.DataFrame,  # noqa: N803 - scikit-learn's name for the feature matrix
        arms: pd.Series | Sequence[str],
        y: pd.Series | NDArray[Any],
    ) -> TLearner:
        """Fit one booster per arm on that arm's rows (matched to ``X`` by position)."""
        data = uplift_data(X, arms, y, control=self.control, outcome=self.outcome)
        self.boosters_ = self.fit_arm_models(data, np.ones(len(data.y), dtype=np.bool_))
        self.outcome_ = data.outcome
        self.treatments_ = data.treatments
        self.encoding_ = data.encoding
        return self

    def fit_arm_models(self, data: UpliftData, rows: NDArray[np.bool_]) -> dict[str, lgb.Booster]:
        """One booster per arm on the selected ``rows`` of checked data (DRLearner's folds too)."""
        params = lgb_params(
            objective="binary" if data.outcome == "binary" else "regression",
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_data_in_leaf=self.min_data_in_leaf,
            seed=self.seed,
        )
        boosters: dict[str, lgb.Booster] = {}
        for arm in data.arm_set:
            selected = rows & (data.arms == arm)
            if not selected.any():
                raise InvalidRequest("arms", f"must have at least one row for arm {arm!r}")
            labels = data.y[selected]
            if data.outcome == "binary" and labels.min() == labels.max():
                raise InvalidRequest("y", f"must contain both 0 and 1 for arm {arm!r}")
            dataset = lgb.Dataset(
                data.matrix[selected],
                label=labels,
                categorical_feature=data.encoding.categorical_indices,
                params=params,
            )
            boosters[arm] = lgb.train(params, dataset, num_boost_round=self.num_boost_round)
        return boosters

    def predict_outcomes(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803 - as in fit
        """Each arm's predicted outcome (probability or amount), one column per arm."""
        self._check_fitted()
        matrix = self.encoding_.encode(X)
        return pd.DataFrame(
            {arm: predict(booster, matrix) for arm, booster in self.boosters_.items()},
            index=X.index,
        )

    def _uplift_matrix(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        control = predict(self.boosters_[self.control], matrix)
        return np.column_stack(
            [predict(self.boosters_[t], matrix) - control for t in self.treatments_]
        )
