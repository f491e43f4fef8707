"""The protocol of a multi-treatment uplift model, and the behaviour its LightGBM learners share.

An uplift model is fitted on randomised data, ``fit(X, arms, y)``, where one of
the arms is the control (no contact). It predicts, for every other arm (a
*treatment*), the incremental outcome of that treatment against the control:
``E[y | x, treatment] - E[y | x, control]``. ``y`` is binary (a visit: the
uplift is a difference of probabilities) or a real value (spend: a difference
of expected amounts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Self

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from features import FeatureValue, InvalidRequest, Unavailable
from models._encoding import (
    FeatureEncoding,
    as_actions,
    as_binary_labels,
    as_outcomes,
    check_frame,
    encode_row,
)

__all__ = ["Outcome", "UpliftModel"]

Outcome = Literal["auto", "binary", "continuous"]
"""``binary``: y in {0, 1}; ``continuous``: any real y; ``auto``: binary if y holds only 0 and 1."""

_OUTCOMES = ("auto", "binary", "continuous")


class UpliftModel(Protocol):
    """Incremental outcome of each treatment against the control, per customer."""

    @property
    def treatments(self) -> tuple[str, ...]:
        """The arms other than the control, sorted: the columns of :meth:`predict_uplift`."""
        ...

    def fit(
        self,
        X: pd.DataFrame,  # noqa: N803 - scikit-learn's name for the feature matrix
        arms: pd.Series | Sequence[str],
        y: pd.Series | NDArray[Any],
    ) -> Self:
        """Learn from randomised data: the arm each customer got and their outcome."""
        ...

    def predict_uplift(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803 - as in fit
        """One column per treatment: the predicted incremental outcome against the control."""
        ...

    def predict_one(self, features: Mapping[str, FeatureValue]) -> dict[str, float]:
        """:meth:`predict_uplift` of one customer, numpy only; equal to the batch result."""
        ...

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments."""
        ...

    def clone(self) -> Self:
        """An unfitted copy with the same parameters."""
        ...


@dataclass(frozen=True)
class UpliftData:
    """Checked training data: the encoded matrix, arms and outcomes, and what was found in them."""

    encoding: FeatureEncoding
    matrix: NDArray[np.float64]
    arms: NDArray[Any]
    y: NDArray[np.float64]
    arm_set: tuple[str, ...]
    treatments: tuple[str, ...]
    outcome: Literal["binary", "continuous"]


def check_control(control: object) -> None:
    if not isinstance(control, str) or not control:
        raise InvalidRequest("control", "must be the name of the control arm", control)


def check_outcome(outcome: object) -> None:
    if outcome not in _OUTCOMES:
        raise InvalidRequest("outcome", f"must be one of {list(_OUTCOMES)}", outcome)


def uplift_data(
    X: pd.DataFrame,  # noqa: N803 - scikit-learn's name for the feature matrix
    arms: pd.Series | Sequence[str],
    y: pd.Series | NDArray[Any],
    *,
    control: str,
    outcome: Outcome,
) -> UpliftData:
    """Check the training data once, for every learner, and encode it.

    Every arm must have rows (a categorical ``arms`` declares its arms), the
    control must be one of them with at least one treatment besides, and a
    binary outcome must have both classes in every arm: a booster fitted on one
    class only would predict it with certainty, which no uplift is made of.
    """
    check_frame(X)
    arm_values, arm_set = as_actions(arms, len(X), field="arms")
    values = as_outcomes(y, len(X))
    kind: Literal["binary", "continuous"]
    if outcome == "binary" or (outcome == "auto" and np.isin(values, (0.0, 1.0)).all()):
        values = as_binary_labels(y, len(X))
        kind = "binary"
    else:
        kind = "continuous"
    if control not in arm_set:
        raise InvalidRequest("control", f"must be one of the arms {arm_set}", control)
    if len(arm_set) < 2:
        raise InvalidRequest("arms", "must contain at least one treatment besides the control")
    for arm in arm_set:
        rows = arm_values == arm
        if not rows.any():
            raise InvalidRequest("arms", f"must have at least one row for arm {arm!r}")
        if kind == "binary" and values[rows].min() == values[rows].max():
            raise InvalidRequest("y", f"must contain both 0 and 1 for arm {arm!r}")
    encoding = FeatureEncoding.fit(X)
    return UpliftData(
        encoding=encoding,
        matrix=encoding.encode(X),
        arms=arm_values,
        y=values,
        arm_set=tuple(arm_set),
        treatments=tuple(arm for arm in arm_set if arm != control),
        outcome=kind,
    )


class LightGBMUplift:
    """What the LightGBM uplift learners share once fitted: the prediction paths.

    A subclass sets ``encoding_``, ``treatments_`` and ``outcome_`` in ``fit`` and implements
    :meth:`_uplift_matrix`; both prediction paths end in that one method, so a
    row scored alone and the same row in a batch get the same numbers.
    """

    _PARAMS: tuple[str, ...] = ()
    encoding_: FeatureEncoding
    treatments_: tuple[str, ...]
    outcome_: Literal["binary", "continuous"]

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, so that ``type(model)(**get_params())`` clones."""
        return {name: getattr(self, name) for name in self._PARAMS}

    def clone(self) -> Self:
        """An unfitted copy with the same parameters (nested models cloned too)."""
        params = {
            name: value.clone() if hasattr(value, "clone") else value
            for name, value in self.get_params().items()
        }
        return type(self)(**params)

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    def treatments(self) -> tuple[str, ...]:
        """The arms other than the control, sorted: the columns of :meth:`predict_uplift`."""
        self._check_fitted()
        return self.treatments_

    @property
    def feature_names_(self) -> tuple[str, ...]:
        """The training columns, in the order the boosters see them."""
        self._check_fitted()
        return self.encoding_.names

    @property
    def categories_(self) -> dict[str, list[str]]:
        """The sorted levels of each categorical training column."""
        self._check_fitted()
        return self.encoding_.categories

    def predict_uplift(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803 - as in fit
        """The incremental outcome of each treatment against the control, one column each.

        Columns of ``X`` are matched by name, so their order does not matter; a
        missing column is all NaN, an unseen category is NaN (LightGBM's missing
        branch), and extra columns are ignored.
        """
        self._check_fitted()
        matrix = self.encoding_.encode(X)
        uplift = self._uplift_matrix(matrix)
        return pd.DataFrame(uplift, index=X.index, columns=list(self.treatments_))

    def predict_one(self, features: Mapping[str, FeatureValue]) -> dict[str, float]:
        """:meth:`predict_uplift` for one customer: one numpy row, no pandas.

        None, NaN, an absent feature and an unseen category all count as missing.
        """
        try:
            plan = self.encoding_.row_plan
        except AttributeError:
            raise self._unfitted() from None
        uplift = self._uplift_matrix(encode_row(plan, features))[0]
        return {treatment: float(uplift[k]) for k, treatment in enumerate(self.treatments_)}

    def _uplift_matrix(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        """n × treatments incremental outcomes of the encoded rows."""
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not hasattr(self, "encoding_"):
            raise self._unfitted()

    def _unfitted(self) -> Unavailable:
        return Unavailable(f"{type(self).__name__} is not fitted; call fit() first")
