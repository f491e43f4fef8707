"""A propensity model whose probabilities are recalibrated per action on held-out rows.

Boosted trees rank well, but their probabilities drift from observed rates
when they overfit (too sure) or are stopped early (too timid). The cure here
is the classic one: hold part of the training rows out of the base model's
fit, and learn on them, per action, an isotonic (monotone, piecewise linear)
map from the base model's probability to the observed rate. Being monotone,
the map keeps each action's ranking of customers (ties aside).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import train_test_split

from features import FeatureValue, InvalidRequest, Unavailable
from models._encoding import as_actions, as_binary_labels, check_frame, check_int
from models.propensity import ArmPropensityModel

__all__ = ["CalibratedPropensityModel"]


class CalibratedPropensityModel:
    """An :class:`~models.ArmPropensityModel` followed by an isotonic map per action.

    ``fit`` splits the rows, stratified on action × outcome and seeded with
    ``seed``, into a part for the base model and a ``calibration_fraction``
    for the maps, so no map is learned on predictions of rows the base model
    saw. ``base`` supplies the base model's parameters (a clone is fitted; the
    default is ``ArmPropensityModel(seed=seed)``). It is a
    :class:`~models.PriorModel`: ``predict_one`` is the serving path, equal to
    :meth:`predict_frame` on the same row.

    Each map is sklearn's ``IsotonicRegression(out_of_bounds="clip")``, kept as
    its breakpoints and applied with ``numpy.interp``, which is what sklearn
    computes, without its per-call input checks on the hot path.

    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"x": rng.normal(size=4_000)})
    >>> actions = rng.choice(["email", "none"], 4_000)
    >>> y = (rng.random(4_000) < 1 / (1 + np.exp(-X["x"]))).astype(int)
    >>> base = ArmPropensityModel(num_boost_round=50, min_data_in_leaf=50)
    >>> model = CalibratedPropensityModel(base, seed=1).fit(X, actions, y)
    >>> model.actions, model.feature_names_
    (('email', 'none'), ('x',))
    >>> low, middle, high = (model.predict_one({"x": x})["email"] for x in (-2.0, 0.0, 2.0))
    >>> low < 0.25 < 0.35 < middle < 0.65 < 0.75 < high  # sigmoid(x): 0.12, 0.5, 0.88
    True
    """

    def __init__(
        self,
        base: ArmPropensityModel | None = None,
        *,
        calibration_fraction: float = 0.25,
        seed: int = 0,
    ) -> None:
        if base is not None and not isinstance(base, ArmPropensityModel):
            raise InvalidRequest("base", "must be an ArmPropensityModel", type(base).__name__)
        if (
            isinstance(calibration_fraction, bool)
            or not isinstance(calibration_fraction, int | float)
            or not 0 < calibration_fraction < 1
        ):
            raise InvalidRequest(
                "calibration_fraction", "must be a number in (0, 1)", calibration_fraction
            )
        check_int("seed", seed, minimum=0)
        self.base = base
        self.calibration_fraction = calibration_fraction
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments: ``CalibratedPropensityModel(**get_params())`` clones."""
        return {
            "base": self.base,
            "calibration_fraction": self.calibration_fraction,
            "seed": self.seed,
        }

    def clone(self) -> CalibratedPropensityModel:
        """An unfitted copy with the same parameters (the base cloned too)."""
        base = None if self.base is None else self.base.clone()
        return CalibratedPropensityModel(
            base, calibration_fraction=self.calibration_fraction, seed=self.seed
        )

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.get_params().items())
        return f"CalibratedPropensityModel({args})"

    @property
    def actions(self) -> tuple[str, ...]:
        """The actions the model scores, sorted."""
        return self._fitted_base().actions

    @property
    def feature_names_(self) -> tuple[str, ...]:
        """The training columns, in the order the base model sees them."""
        return self._fitted_base().feature_names_

    @property
    def categories_(self) -> dict[str, list[str]]:
        """The sorted levels of each categorical training column."""
        return self._fitted_base().categories_

    def fit(
        self,
        X: pd.DataFrame,  # noqa: N803 - scikit-learn's name for the feature matrix
        actions: pd.Series | Sequence[str],
        y: pd.Series | NDArray[Any],
    ) -> CalibratedPropensityModel:
        """Fit the base model on one part of the rows and each action's map on the other.

        Every action × outcome pair needs at least 2 rows, one for each part.
        """
        check_frame(X)
        action_values, action_set = as_actions(actions, len(X))
        labels = as_binary_labels(y, len(X))
        for action in action_set:
            if not (action_values == action).any():
                raise InvalidRequest("actions", f"must have at least one row for action {action!r}")
        strata = (
            pd.Series(action_values).astype(str) + "|" + pd.Series(labels.astype(int)).astype(str)
        )
        sizes = strata.value_counts()
        if int(sizes.min()) < 2:
            raise InvalidRequest(
                "y",
                "must have at least 2 rows of each outcome for every action, "
                "one to fit and one to calibrate",
                f"{sizes.idxmin()!r}: {int(sizes.min())}",
            )
        positions = np.arange(len(X))
        try:
            fit_rows, calibration_rows = train_test_split(
                positions,
                test_size=self.calibration_fraction,
                random_state=self.seed,
                stratify=strata.to_numpy(),
            )
        except ValueError as error:
            raise InvalidRequest(
                "calibration_fraction",
                f"does not fit the strata ({error})",
                self.calibration_fraction,
            ) from None
        fit_rows, calibration_rows = np.sort(fit_rows), np.sort(calibration_rows)
        base = self.base.clone() if self.base is not None else ArmPropensityModel(seed=self.seed)
        base.fit(X.iloc[fit_rows], _select(actions, fit_rows), labels[fit_rows])

        scores = base.predict_frame(X.iloc[calibration_rows])
        held_out_actions = action_values[calibration_rows]
        maps: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
        for action in base.actions:
            rows = held_out_actions == action
            isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            isotonic.fit(scores[action].to_numpy()[rows], labels[calibration_rows][rows])
            maps[action] = (
                np.asarray(isotonic.X_thresholds_, dtype=np.float64),
                np.asarray(isotonic.y_thresholds_, dtype=np.float64),
            )
        self.base_ = base
        self.maps_ = maps
        return self

    def predict_frame(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803 - as in fit
        """Calibrated P(reward | row, action) for every row of ``X``: one column per action.

        Columns are matched by name as in :meth:`ArmPropensityModel.predict_frame`.
        """
        raw = self._fitted_base().predict_frame(X)
        return pd.DataFrame(
            {action: self._calibrate(action, raw[action].to_numpy()) for action in raw.columns},
            index=raw.index,
            columns=raw.columns,
        )

    def predict_one(self, features: Mapping[str, FeatureValue]) -> dict[str, float]:
        """Calibrated P(reward | customer, action) for one customer: the serving path."""
        raw = self._fitted_base().predict_one(features)
        return {
            action: float(self._calibrate(action, np.array([p]))[0]) for action, p in raw.items()
        }

    def _calibrate(self, action: str, p: NDArray[np.float64]) -> NDArray[np.float64]:
        thresholds, values = self.maps_[action]
        # np.interp holds the end values beyond the breakpoints: out_of_bounds="clip".
        return np.asarray(np.interp(p, thresholds, values), dtype=np.float64)

    def _fitted_base(self) -> ArmPropensityModel:
        try:
            return self.base_
        except AttributeError:
            raise Unavailable("CalibratedPropensityModel is not fitted; call fit() first") from None


def _select(actions: pd.Series | Sequence[str], rows: NDArray[np.int64]) -> pd.Series:
    """The actions of ``rows``, keeping a categorical Series' declared categories."""
    if isinstance(actions, pd.Series):
        return actions.iloc[rows].reset_index(drop=True)
    return pd.Series(np.asarray(list(actions), dtype=object)[rows], dtype=object)
