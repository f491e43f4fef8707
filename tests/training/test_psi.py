"""The population stability index against values worked out by hand and from theory."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from features import InvalidRequest
from training.metrics import PSI_FLOOR, population_stability_index


def binned_normal_psi(shift: float, bins: int = 10) -> float:
    """PSI of N(0, 1) against N(shift, 1), cut at the deciles of N(0, 1): the large-sample value."""
    edges = stats.norm.ppf(np.linspace(0, 1, bins + 1))
    expected = np.diff(stats.norm.cdf(edges))
    actual = np.diff(stats.norm.cdf(edges, loc=shift))
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def test_identical_samples_have_zero_psi() -> None:
    sample = np.random.default_rng(0).normal(size=5000)
    assert population_stability_index(sample, sample) == 0.0
    assert population_stability_index(sample, sample[::-1].copy()) == 0.0


def test_two_samples_of_one_distribution_stay_near_zero() -> None:
    rng = np.random.default_rng(1)
    psi = population_stability_index(rng.normal(size=50_000), rng.normal(size=50_000))
    # Sampling alone gives about (bins - 1) × (1/n + 1/m) = 3.6e-4 on average.
    assert 0.0 <= psi < 0.002


@pytest.mark.parametrize(("shift", "tolerance"), [(0.1, 0.004), (0.5, 0.015), (1.0, 0.04)])
def test_a_shifted_normal_matches_the_binned_theory(shift: float, tolerance: float) -> None:
    rng = np.random.default_rng(2)
    psi = population_stability_index(rng.normal(size=100_000), rng.normal(shift, 1, 100_000))
    assert psi == pytest.approx(binned_normal_psi(shift), abs=tolerance)
    # Half a standard deviation: 0.238, past the 0.2 "significant shift" line; 0.1 is not.
    assert (psi > 0.2) == (shift >= 0.5)


def test_categorical_psi_by_hand() -> None:
    before = ["Web"] * 50 + ["Phone"] * 30 + ["Multichannel"] * 20
    after = ["Web"] * 20 + ["Phone"] * 30 + ["Multichannel"] * 50
    expected = (0.2 - 0.5) * math.log(0.2 / 0.5) + (0.5 - 0.2) * math.log(0.5 / 0.2)
    assert population_stability_index(before, after) == pytest.approx(expected, rel=1e-12)
    # Booleans are categories too, and order of the samples does not matter.
    flags = population_stability_index([True, False] * 50, [True] * 75 + [False] * 25)
    assert flags == pytest.approx(0.25 * math.log(3), rel=1e-12)


def test_a_new_category_costs_the_floor_share() -> None:
    psi = population_stability_index(["a"] * 100, ["a"] * 90 + ["b"] * 10)
    # a: 1.0 → 0.9; b: 0 (counted as the floor) → 0.1.
    expected = (0.9 - 1.0) * math.log(0.9) + (0.1 - PSI_FLOOR) * math.log(0.1 / PSI_FLOOR)
    assert psi == pytest.approx(expected, rel=1e-12)


def test_missing_values_are_a_bin_of_their_own() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=1000)
    half_missing: list[Any] = [None if i % 2 else float(v) for i, v in enumerate(values)]
    psi = population_stability_index(values, half_missing)
    # Present values keep their shape (about half of each bin); the missing bin goes 0 → 0.5.
    assert psi > 2.0
    nan_missing = np.where(np.arange(1000) % 2, np.nan, values)
    assert population_stability_index(values, nan_missing) == pytest.approx(psi)


def test_a_discrete_numeric_feature_gets_one_bin_per_value() -> None:
    # A 0/1 feature has deciles 0 and 1 only: two bins, like a categorical of two values.
    numeric = population_stability_index([0] * 70 + [1] * 30, [0] * 40 + [1] * 60)
    categorical = population_stability_index(["0"] * 70 + ["1"] * 30, ["0"] * 40 + ["1"] * 60)
    assert numeric == pytest.approx(categorical, rel=1e-12)


def test_numeric_values_outside_the_reference_range_fall_in_the_end_bins() -> None:
    # Everything above the reference's top decile lands in the last bin: 0.1 → 1.0.
    psi = population_stability_index(np.arange(100.0), np.full(100, 1000.0))
    expected = 9 * (PSI_FLOOR - 0.1) * math.log(PSI_FLOOR / 0.1) + 0.9 * math.log(10)
    assert psi == pytest.approx(expected, rel=1e-9)


def test_pandas_series_and_mixed_lists_are_accepted() -> None:
    series = pd.Series(["x", "y"] * 10)
    assert population_stability_index(series, series) == 0.0
    mixed = population_stability_index([1, "a"] * 10, [1, "a"] * 10)
    assert mixed == 0.0


@pytest.mark.parametrize(
    ("expected", "actual", "bins", "match"),
    [
        ([1.0, 2.0], [1.0], 1, "`bins` must be an integer of at least 2"),
        ([1.0, 2.0], [1.0], True, "`bins` must be an integer of at least 2"),
        ([], [1.0], 10, "`expected` must not be empty"),
        ([1.0], [], 10, "`actual` must not be empty"),
        ([[1.0, 2.0]], [1.0], 10, "`expected` must be one-dimensional"),
        ([1.0, math.inf], [1.0], 10, "must hold finite numbers or missing values"),
    ],
)
def test_bad_inputs_are_named(expected: Any, actual: Any, bins: Any, match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        population_stability_index(expected, actual, bins=bins)
