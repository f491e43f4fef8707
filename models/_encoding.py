"""Input checks and the feature encoding shared by the LightGBM models of this package.

Every model here turns a pandas frame into one float64 matrix in training
order, and one customer's feature dict into one numpy row of the same matrix,
so that ``predict_one`` and the batch prediction agree to the last bit:

- numeric columns (including nullable ``Int64`` and ``boolean``) become float64,
  missing values NaN;
- string and categorical columns become integer codes into the sorted levels
  seen in training and are passed to LightGBM as categorical features; a
  missing or unseen level is NaN;
- columns are matched by name, an absent column is all NaN and extra columns
  are ignored.

>>> frame = pd.DataFrame({"recency": [3, None], "channel": ["Web", "Phone"]})
>>> encoding = FeatureEncoding.fit(frame)
>>> encoding.categories, encoding.categorical_indices
({'channel': ['Phone', 'Web']}, [1])
>>> encoding.encode(frame[["channel", "recency"]]).tolist()
[[3.0, 1.0], [nan, 0.0]]
>>> encoding.encode_one({"recency": 3, "channel": "Mars"}).tolist()
[[3.0, nan]]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pandas.api import types as ptypes

from features import FeatureValue, InvalidRequest

__all__ = [
    "FeatureEncoding",
    "as_actions",
    "as_binary_labels",
    "as_outcomes",
    "check_frame",
    "check_int",
    "check_learning_rate",
    "codes",
    "encode",
    "encode_row",
    "levels",
    "lgb_params",
    "predict",
]

_NUMERIC_KINDS = {"integer", "floating", "mixed-integer-float", "decimal", "boolean", "empty"}

RowPlan = tuple[tuple[str, dict[str, float] | None], ...]
"""Per feature in training order: its name and, for a categorical one, its level codes."""


@dataclass(frozen=True)
class FeatureEncoding:
    """The encoding learned from a training frame: feature order and categorical levels."""

    names: tuple[str, ...]
    categories: dict[str, list[str]]
    row_plan: RowPlan = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        level_codes = codes(self.categories)
        # Precomputed once so that encode_one does only dict look-ups.
        plan = tuple((name, level_codes.get(name)) for name in self.names)
        object.__setattr__(self, "row_plan", plan)

    @classmethod
    def fit(cls, X: pd.DataFrame) -> FeatureEncoding:  # noqa: N803 - scikit-learn's name
        """The encoding of a checked training frame (see :func:`check_frame`)."""
        names = tuple(str(name) for name in X.columns)
        categories = {name: found for name in names if (found := levels(X[name])) is not None}
        return cls(names=names, categories=categories)

    @property
    def categorical_indices(self) -> list[int]:
        """Positions of the categorical features, as LightGBM's ``categorical_feature``."""
        return [j for j, name in enumerate(self.names) if name in self.categories]

    def encode(self, X: pd.DataFrame) -> NDArray[np.float64]:  # noqa: N803 - as in fit
        """The float64 matrix of ``X`` in training order."""
        if not isinstance(X, pd.DataFrame):
            raise InvalidRequest("X", "must be a pandas DataFrame", type(X).__name__)
        return encode(X, self.names, codes(self.categories))

    def encode_one(self, features: Mapping[str, FeatureValue]) -> NDArray[np.float64]:
        """One customer as a 1 × d matrix: the numpy hot path."""
        return encode_row(self.row_plan, features)


def check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidRequest(name, f"must be an integer >= {minimum}", value)


def check_learning_rate(value: object, *, field: str = "learning_rate") -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise InvalidRequest(field, "must be a number in (0, 1]", value)


def check_frame(X: Any) -> None:  # noqa: N803 - scikit-learn's name for the feature matrix
    """``X`` is a non-empty DataFrame with unique string column names."""
    if not isinstance(X, pd.DataFrame):
        raise InvalidRequest("X", "must be a pandas DataFrame", type(X).__name__)
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise InvalidRequest("X", "must have at least one row and one column", X.shape)
    if not all(isinstance(name, str) for name in X.columns):
        raise InvalidRequest("X", "must have string column names", list(X.columns))
    if X.columns.has_duplicates:
        duplicated = sorted(set(X.columns[X.columns.duplicated()]))
        raise InvalidRequest("X", "must not repeat a column name", duplicated)


def as_actions(
    actions: pd.Series | Sequence[str], n: int, *, field: str = "actions"
) -> tuple[NDArray[Any], list[str]]:
    """The actions as an object array, and the sorted action set; errors name ``field``."""
    if isinstance(actions, str):
        raise InvalidRequest(field, "must be a sequence of action names", actions)
    series = actions if isinstance(actions, pd.Series) else pd.Series(list(actions), dtype=object)
    if len(series) != n:
        raise InvalidRequest(field, f"must have one entry per row of `X` ({n})", len(series))
    if series.isna().any():
        raise InvalidRequest(field, "must not contain missing values")
    if isinstance(series.dtype, pd.CategoricalDtype):
        declared = list(series.cat.categories)
    else:
        declared = list(pd.unique(series.to_numpy(dtype=object)))
    not_str = [action for action in declared if not isinstance(action, str)]
    if not_str:
        raise InvalidRequest(field, "must be strings", not_str[0])
    # str(): numpy's np.str_ names would leak into the models' action tuples and reprs.
    return series.to_numpy(dtype=object), sorted(str(action) for action in declared)


def as_outcomes(y: pd.Series | NDArray[Any], n: int) -> NDArray[np.float64]:
    """``y`` as a float64 array of finite numbers, one per row."""
    if isinstance(y, str) or np.ndim(y) != 1:
        raise InvalidRequest("y", "must be one-dimensional", f"{np.ndim(y)} dimensions")
    series = y if isinstance(y, pd.Series) else pd.Series(y)
    if len(series) != n:
        raise InvalidRequest("y", f"must have one entry per row of `X` ({n})", len(series))
    if series.isna().any():
        raise InvalidRequest("y", "must not contain missing values", int(series.isna().sum()))
    if ptypes.is_bool_dtype(series.dtype):
        series = series.astype(np.float64)
    if not ptypes.is_numeric_dtype(series.dtype):
        raise InvalidRequest("y", "must be numbers", f"dtype {series.dtype}")
    values: NDArray[np.float64] = series.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise InvalidRequest("y", "must be finite (no infinity)")
    return values


def as_binary_labels(y: pd.Series | NDArray[Any], n: int) -> NDArray[np.float64]:
    if isinstance(y, str) or np.ndim(y) != 1:
        raise InvalidRequest("y", "must be one-dimensional", f"{np.ndim(y)} dimensions")
    series = y if isinstance(y, pd.Series) else pd.Series(y)
    if len(series) != n:
        raise InvalidRequest("y", f"must have one entry per row of `X` ({n})", len(series))
    if series.isna().any():
        raise InvalidRequest("y", "must not contain missing values", int(series.isna().sum()))
    if not ptypes.is_numeric_dtype(series.dtype):
        raise InvalidRequest("y", "must contain only 0 and 1", f"dtype {series.dtype}")
    labels: NDArray[np.float64] = series.to_numpy(dtype=np.float64)
    other = np.unique(labels[(labels != 0) & (labels != 1)])
    if other.size:
        raise InvalidRequest("y", "must contain only 0 and 1", other[:5].tolist())
    return labels


def levels(column: pd.Series) -> list[str] | None:
    """The sorted levels of a categorical column, or None for a numeric one."""
    name = column.name
    dtype = column.dtype
    if ptypes.is_bool_dtype(dtype) or ptypes.is_numeric_dtype(dtype):
        return None
    if not (
        isinstance(dtype, pd.CategoricalDtype | pd.StringDtype) or ptypes.is_object_dtype(dtype)
    ):
        raise InvalidRequest(f"X[{name!r}]", "must be numeric or hold strings", str(dtype))
    if ptypes.is_object_dtype(dtype):
        kind = pd.api.types.infer_dtype(column, skipna=True)
        if kind in _NUMERIC_KINDS:
            return None
        if kind != "string":
            raise InvalidRequest(f"X[{name!r}]", "must hold only numbers or only strings", kind)
    found = list(pd.unique(column.dropna().to_numpy(dtype=object)))
    not_str = [level for level in found if not isinstance(level, str)]
    if not_str:
        raise InvalidRequest(f"X[{name!r}]", "must have string categories", not_str[0])
    return sorted(found)


def codes(categories: Mapping[str, list[str]]) -> dict[str, dict[str, float]]:
    return {
        name: {level: float(code) for code, level in enumerate(found)}
        for name, found in categories.items()
    }


def encode(
    frame: pd.DataFrame, names: Sequence[str], level_codes: Mapping[str, dict[str, float]]
) -> NDArray[np.float64]:
    """A float64 matrix with the columns in ``names`` order; absent columns are NaN."""
    matrix = np.full((len(frame), len(names)), np.nan)
    for j, name in enumerate(names):
        if name not in frame.columns:
            continue
        column = frame[name]
        column_codes = level_codes.get(name)
        if column_codes is None:
            matrix[:, j] = _numeric(column, name)
        else:
            mapped = column.astype(object).map(column_codes)
            matrix[:, j] = mapped.to_numpy(dtype=np.float64, na_value=np.nan)
    return matrix


def encode_row(plan: RowPlan, features: Mapping[str, FeatureValue]) -> NDArray[np.float64]:
    """One customer as a 1 × d matrix; None or unknown values count as missing."""
    row = np.empty((1, len(plan)))
    for j, (name, column_codes) in enumerate(plan):
        value = features.get(name)
        if column_codes is not None:
            row[0, j] = column_codes.get(value, math.nan) if isinstance(value, str) else math.nan
        elif value is None or value is pd.NA:  # pd.NA: a nullable column's row as a dict
            row[0, j] = math.nan
        elif isinstance(value, str):
            raise InvalidRequest(f"features[{name!r}]", "must be a number or None", value)
        else:
            row[0, j] = value
    return row


def lgb_params(
    *,
    objective: str,
    learning_rate: float,
    num_leaves: int,
    min_data_in_leaf: int,
    seed: int,
) -> dict[str, Any]:
    return {
        "objective": objective,
        "learning_rate": learning_rate,
        "num_leaves": num_leaves,
        "min_data_in_leaf": min_data_in_leaf,
        "seed": seed,
        # Same seed, same model, whatever the machine: one thread, and a fixed
        # histogram layout instead of LightGBM timing both and keeping the faster.
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbosity": -1,
    }


def predict(booster: lgb.Booster, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(booster.predict(matrix), dtype=np.float64)


def _numeric(column: pd.Series, name: str) -> NDArray[np.float64]:
    dtype = column.dtype
    numeric = ptypes.is_bool_dtype(dtype) or ptypes.is_numeric_dtype(dtype)
    if not numeric and not (
        ptypes.is_object_dtype(dtype)
        and pd.api.types.infer_dtype(column, skipna=True) in _NUMERIC_KINDS
    ):
        raise InvalidRequest(f"X[{name!r}]", "must be numeric", str(dtype))
    values: NDArray[np.float64] = np.asarray(
        pd.to_numeric(column).to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64
    )
    return values
