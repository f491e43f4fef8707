"""Train/test splits that keep every arm's response rate in both halves."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sklearn.model_selection import train_test_split

from features import InvalidRequest

__all__ = ["stratified_split"]


def stratified_split(
    frame: pd.DataFrame,
    *,
    test_size: float = 0.3,
    seed: int = 0,
    by: Sequence[str] = ("arm", "visit"),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``frame`` into (train, test), stratified on the combination of the ``by`` columns.

    Stratifying on arm × outcome keeps each arm's share and response rate the
    same in both halves, so held-out metrics per arm are not at the mercy of a
    lucky draw. Rows keep their index labels.

    >>> frame = pd.DataFrame({"arm": ["a", "b"] * 10, "visit": [0, 0, 1, 1] * 5})
    >>> train, test = stratified_split(frame, test_size=0.4, seed=0)
    >>> len(train), len(test), test.groupby(["arm", "visit"]).size().tolist()
    (12, 8, [2, 2, 2, 2])
    """
    if not isinstance(frame, pd.DataFrame) or frame.empty:
        raise InvalidRequest("frame", "must be a non-empty pandas DataFrame")
    if isinstance(test_size, bool) or not isinstance(test_size, int | float):
        raise InvalidRequest("test_size", "must be a number in (0, 1)", test_size)
    if not 0 < test_size < 1:
        raise InvalidRequest("test_size", "must be a number in (0, 1)", test_size)
    columns = [by] if isinstance(by, str) else list(by)
    missing = [column for column in columns if column not in frame.columns]
    if not columns or missing:
        raise InvalidRequest("by", "must name columns of `frame`", missing or columns)
    strata = frame.groupby(columns, sort=True, dropna=False).ngroup()
    smallest = int(strata.value_counts().min())
    if smallest < 2:
        raise InvalidRequest("by", "must give at least 2 rows in every stratum", smallest)
    try:
        train, test = train_test_split(
            frame, test_size=test_size, random_state=seed, stratify=strata
        )
    except ValueError as error:
        # sklearn's own check: each half needs room for one row of every stratum.
        raise InvalidRequest("test_size", f"does not fit the strata ({error})", test_size) from None
    return train, test
