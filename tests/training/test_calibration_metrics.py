"""The calibration curve and expected calibration error, by hand and on simulated probabilities."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from features import InvalidRequest
from training import calibration_curve, expected_calibration_error

Y = [0, 1, 0, 1, 1, 0, 1, 1]
P = [0.05, 0.15, 0.35, 0.45, 0.55, 0.65, 0.85, 0.95]


def test_uniform_bins_by_hand() -> None:
    curve = calibration_curve(Y, P, bins=4)
    # Bins [0, .25), [.25, .5), [.5, .75), [.75, 1], two customers each.
    assert curve.mean_predicted.tolist() == pytest.approx([0.1, 0.4, 0.6, 0.9])
    assert curve.observed_rate.tolist() == [0.5, 0.5, 0.5, 1.0]
    assert curve.count.tolist() == [2, 2, 2, 2]
    # Gaps 0.4, 0.1, 0.1, 0.1, each bin a quarter of the customers: 0.7 / 4.
    assert expected_calibration_error(Y, P, bins=4) == pytest.approx(0.175)


def test_bin_edges_and_empty_bins() -> None:
    # 0.25 opens the second bin; 1.0 closes the last; the third bin is empty and left out.
    curve = calibration_curve([0, 1, 1], [0.25, 0.3, 1.0], bins=4)
    assert curve.count.tolist() == [2, 1]
    assert curve.mean_predicted.tolist() == pytest.approx([0.275, 1.0])
    assert curve.observed_rate.tolist() == [0.5, 1.0]
    # Gaps 0.225 (two customers) and 0: 0.45 / 3.
    assert expected_calibration_error([0, 1, 1], [0.25, 0.3, 1.0], bins=4) == pytest.approx(0.15)


def test_quantile_bins() -> None:
    curve = calibration_curve([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], bins=2, strategy="quantile")
    # Median 0.25 splits them in two: predicted 0.15 and 0.35, observed 0 and 1.
    assert curve.count.tolist() == [2, 2]
    assert curve.mean_predicted.tolist() == pytest.approx([0.15, 0.35])
    assert curve.observed_rate.tolist() == [0.0, 1.0]
    # All predictions equal: the repeated quantiles merge into one bin.
    same = calibration_curve([0, 1, 1, 0], [0.3] * 4, bins=10, strategy="quantile")
    assert same.count.tolist() == [4]
    assert expected_calibration_error([0, 1, 1, 0], [0.5] * 4) == 0.0


def test_simulated_calibrated_and_overconfident_probabilities() -> None:
    rng = np.random.default_rng(0)
    logit = rng.normal(-1.0, 1.0, 50_000)
    truth = 1 / (1 + np.exp(-logit))
    y = (rng.random(truth.size) < truth).astype(int)
    overconfident = 1 / (1 + np.exp(-3 * logit))
    # ~5,000 customers a bin: sampling noise alone gives gaps of about 0.006.
    assert expected_calibration_error(y, truth) < 0.015
    assert expected_calibration_error(y, truth, strategy="quantile") < 0.015
    assert expected_calibration_error(y, overconfident) > 0.05


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (([0, 2], [0.1, 0.2]), {}, r"`y` must contain only 0 and 1"),
        (([0, 1], [0.1, 1.2]), {}, r"`p` must be probabilities in \[0, 1\]"),
        (([0, 1], [0.1, np.nan]), {}, r"`p` must be finite"),
        (([0, 1], [0.1]), {}, r"`p` must have the same length as `y` \(2\), got 1"),
        (([], []), {}, r"`y` must not be empty"),
        (([0, 1], [0.1, 0.2]), {"bins": 0}, r"`bins` must be an integer of at least 1, got 0"),
        (([0, 1], [0.1, 0.2]), {"strategy": "kmeans"}, r"`strategy` must be one of"),
    ],
)
def test_bad_inputs(args: tuple[Any, Any], kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        calibration_curve(*args, **kwargs)
    with pytest.raises(InvalidRequest, match=match):
        expected_calibration_error(*args, **kwargs)
