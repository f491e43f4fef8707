"""stratified_split keeps each arm's share and response rate in both halves."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from features import InvalidRequest
from training import stratified_split


def test_strata_keep_their_shares(hillstrom: pd.DataFrame) -> None:
    train, test = stratified_split(hillstrom, test_size=0.3, seed=0)
    assert len(train) + len(test) == len(hillstrom)
    assert len(test) == 19_200
    assert set(train.index).isdisjoint(test.index)
    whole = hillstrom.groupby(["arm", "visit"]).size() / len(hillstrom)
    held_out = test.groupby(["arm", "visit"]).size() / len(test)
    # Stratified: each arm × visit share is the same to within one row.
    pd.testing.assert_series_equal(held_out, whole, atol=1 / len(test), check_exact=False)


def test_same_seed_same_split(hillstrom: pd.DataFrame) -> None:
    sample = hillstrom.head(3_000)
    first = stratified_split(sample, seed=3)[1].index
    assert first.equals(stratified_split(sample, seed=3)[1].index)
    assert not first.equals(stratified_split(sample, seed=4)[1].index)


FRAME = pd.DataFrame({"arm": ["a", "b"] * 10, "visit": [0, 0, 1, 1] * 5})


@pytest.mark.parametrize(
    ("frame", "kwargs", "match"),
    [
        (FRAME.head(0), {}, r"`frame` must be a non-empty pandas DataFrame"),
        (FRAME, {"test_size": 0}, r"`test_size` must be a number in \(0, 1\), got 0"),
        (FRAME, {"test_size": 1.0}, r"`test_size` must be a number in \(0, 1\), got 1.0"),
        (FRAME, {"by": ("arm", "spend")}, r"`by` must name columns of `frame`, got \['spend'\]"),
        (FRAME.head(5), {}, r"`by` must give at least 2 rows in every stratum, got 1"),
        (FRAME, {"test_size": 0.05}, r"`test_size` does not fit the strata"),
    ],
)
def test_bad_split_input(frame: pd.DataFrame, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        stratified_split(frame, **kwargs)
