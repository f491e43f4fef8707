"""AUC, log loss, and the Qini curve against simulated ground truth."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from features import InvalidRequest
from training import QiniCurve, auc, log_loss, qini_coefficient, qini_curve

# The simulation: x ~ U(0, 1), visit rate 0.1 untreated, and the treatment adds
# tau(x) = 0.2 x - 0.05 (it hurts a quarter of the customers). Ranking by tau, the
# expected gain after targeting the top fraction f is the integral of tau over
# [1 - f, 1]: 0.15 f - 0.1 f^2. Its area above the chord to (1, 0.05) is 1/60.
PERFECT_QINI = 1 / 60


def expected_gain(fraction: np.ndarray) -> np.ndarray:
    return 0.15 * fraction - 0.1 * fraction**2


def simulate(n: int, treated_share: float, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = rng.random(n)
    treated = rng.random(n) < treated_share
    y = (rng.random(n) < 0.1 + treated * (0.2 * x - 0.05)).astype(int)
    return x, treated, y


def test_auc_and_log_loss_values() -> None:
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert auc(np.array([1, 0]), np.array([0.9, 0.1])) == 1.0
    assert log_loss([1, 0], [0.8, 0.2]) == pytest.approx(-np.log(0.8), abs=1e-12)
    assert log_loss([1, 1], [1.0, 1.0]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("function", "y", "p", "match"),
    [
        (auc, [0, 1], [0.5], r"`p` must have the same length as `y` \(2\), got 1"),
        (auc, [], [], r"`y` must not be empty"),
        (auc, [1, 1], [0.2, 0.3], r"`y` must contain both 0 and 1 for an AUC"),
        (auc, [0, 2], [0.2, 0.3], r"`y` must contain only 0 and 1"),
        (auc, [0, np.nan], [0.2, 0.3], r"`y` must contain only 0 and 1 \(no missing values\)"),
        (auc, [0, 1], [0.2, np.nan], r"`p` must be finite"),
        (log_loss, [0, 1], [0.2, 1.3], r"`p` must be probabilities in \[0, 1\]"),
        (log_loss, [[0, 1]], [[0.2, 0.3]], r"`y` must be one-dimensional"),
    ],
)
def test_bad_metric_input(function: Any, y: Any, p: Any, match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        function(y, p)


def test_perfect_ranking_reaches_the_expected_coefficient() -> None:
    x, treated, y = simulate(40_000, 0.5, seed=0)
    # Over 200 seeds: mean 0.01675, standard deviation 0.0009; seed 0 gives 0.01644.
    assert qini_coefficient(qini_curve(y, treated, x)) == pytest.approx(PERFECT_QINI, abs=0.004)


def test_random_ranking_scores_about_zero() -> None:
    x, treated, y = simulate(40_000, 0.5, seed=0)
    noise = np.random.default_rng(1).random(len(x))
    # Over 200 seeds: mean 0.0001, standard deviation 0.001 (seed 0: 0.0003).
    assert qini_coefficient(qini_curve(y, treated, noise)) == pytest.approx(0.0, abs=0.004)


def test_reversing_the_ranking_flips_the_sign() -> None:
    x, treated, y = simulate(40_000, 0.5, seed=0)
    forward = qini_coefficient(qini_curve(y, treated, x))
    backward = qini_coefficient(qini_curve(y, treated, -x))
    assert forward > 0.01
    assert backward < -0.01
    assert backward == pytest.approx(-forward, abs=0.002)


def test_a_constant_score_is_the_random_line() -> None:
    x, treated, y = simulate(2_000, 0.5, seed=3)
    curve = qini_curve(y, treated, np.zeros_like(x))
    assert curve.fraction.tolist() == [0.0, 1.0]
    assert curve.gain[1] == pytest.approx(y[treated].mean() - y[~treated].mean(), abs=1e-12)
    assert qini_coefficient(curve) == pytest.approx(0.0, abs=1e-15)


def test_order_within_tied_scores_does_not_matter() -> None:
    x, treated, y = simulate(5_000, 0.5, seed=4)
    tied = np.round(x, 1)  # 11 distinct scores
    curve = qini_curve(y, treated, tied)
    assert len(curve.fraction) == 12
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(len(x))
        shuffled = qini_curve(y[order], treated[order], tied[order])
        np.testing.assert_array_equal(shuffled.fraction, curve.fraction)
        np.testing.assert_array_equal(shuffled.gain, curve.gain)


@pytest.mark.parametrize("treated_share", [0.5, 0.8])
def test_the_curve_does_not_depend_on_the_treated_share(treated_share: float) -> None:
    x, treated, y = simulate(200_000, treated_share, seed=5)
    curve = qini_curve(y, treated, x)
    fractions = np.linspace(0.1, 1.0, 10)
    gain = np.interp(fractions, curve.fraction, curve.gain)
    # Over 20 seeds the largest error at these points averaged 0.0017 (50/50) and
    # 0.0019 (80/20), at most 0.0033. Dividing by n instead of the treated count
    # would be off by 0.01 at f = 1 for the 80/20 split.
    np.testing.assert_allclose(gain, expected_gain(fractions), rtol=0, atol=0.006)


def test_the_curve_starts_at_the_origin_and_ends_at_the_average_effect() -> None:
    x, treated, y = simulate(1_000, 0.3, seed=6)
    curve = qini_curve(y, treated, x)
    assert (curve.fraction[0], curve.gain[0]) == (0.0, 0.0)
    assert curve.fraction[-1] == 1.0
    assert curve.gain[-1] == pytest.approx(y[treated].mean() - y[~treated].mean(), abs=1e-12)
    assert np.all(np.diff(curve.fraction) > 0)


@pytest.mark.parametrize(
    ("y", "treated", "score", "match"),
    [
        ([0, 1], [True, True], [0.1, 0.2], r"`treated` must contain both treated and control"),
        ([0, 1], [True], [0.1, 0.2], r"`treated` must have the same length as `y` \(2\), got 1"),
        ([0, 1], [True, False], [0.1, np.inf], r"`score` must be finite"),
        ([0, 1], [True, False], ["a", "b"], r"`score` must be numbers"),
        ([0, 1], [1, 2], [0.1, 0.2], r"`treated` must contain only 0 and 1"),
    ],
)
def test_bad_qini_input(y: Any, treated: Any, score: Any, match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        qini_curve(y, treated, score)


def test_bad_qini_curve() -> None:
    with pytest.raises(InvalidRequest, match=r"`curve` must have matching fraction and gain"):
        qini_coefficient(QiniCurve(fraction=np.array([0.0, 1.0]), gain=np.array([0.0])))
