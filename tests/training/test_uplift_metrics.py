"""Uplift and Qini curves, their coefficients, and uplift@k, against values worked out by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from features import InvalidRequest
from training import (
    qini_coefficient,
    qini_curve,
    uplift_at_k,
    uplift_coefficient,
    uplift_curve,
)

# Seven customers, 4 treated and 3 control: unequal groups on purpose.
Y = [1, 1, 0, 1, 0, 0, 1]
TREATED = [True, True, False, True, False, True, False]
DISTINCT = [7, 6, 5, 4, 3, 2, 1]
# The same order, with customers 2-3 and 5-6 (1-based) tied.
TIED = [7, 5, 5, 4, 3, 3, 1]


def test_qini_curve_with_unequal_groups() -> None:
    curve = qini_curve(Y, TREATED, DISTINCT)
    # gain(k) = (Y_t(k) - Y_c(k) * N_t(k) / N_c(k)) / N_t, with N_t = 4:
    # k=1, 2: no control yet → 0;  k=3: (2 - 0) / 4 = 0.5;  k=4..6: 3 / 4 = 0.75;
    # k=7: (3 - 1 * 4/3) / 4 = 5/12, the average effect 3/4 - 1/3.
    assert curve.fraction.tolist() == pytest.approx([k / 7 for k in range(8)])
    assert curve.gain.tolist() == pytest.approx([0, 0, 0, 0.5, 0.75, 0.75, 0.75, 5 / 12])
    # Trapezoids of width 1/7: (0 + 0 + 0.25 + 0.625 + 0.75 + 0.75 + 7/12) / 7 = 71/168,
    # less the random line's 5/24 = 35/168: 36/168 = 3/14.
    assert qini_coefficient(curve) == pytest.approx(3 / 14)


def test_tied_scores_form_one_step() -> None:
    curve = qini_curve(Y, TREATED, TIED)
    # Points only where a block of ties ends: after customers 1, 3, 4, 6 and 7.
    assert curve.fraction.tolist() == pytest.approx([0, 1 / 7, 3 / 7, 4 / 7, 6 / 7, 1])
    assert curve.gain.tolist() == pytest.approx([0, 0, 0.5, 0.75, 0.75, 5 / 12])
    # Trapezoids of widths 1, 2, 1, 2, 1 (sevenths):
    # (0 + (0 + 0.5)/2·2 + (0.5 + 0.75)/2 + 0.75·2 + (0.75 + 5/12)/2) / 7 = 11/24; less 5/24.
    assert qini_coefficient(curve) == pytest.approx(0.25)


@pytest.mark.parametrize("seed", range(5))
def test_no_result_depends_on_the_row_order(seed: int) -> None:
    order = np.random.default_rng(seed).permutation(len(Y))
    y, treated, score = (np.asarray(v)[order] for v in (Y, TREATED, TIED))
    for curve_of in (qini_curve, uplift_curve):
        expected, shuffled = curve_of(Y, TREATED, TIED), curve_of(y, treated, score)
        np.testing.assert_array_equal(shuffled.fraction, expected.fraction)
        np.testing.assert_array_equal(shuffled.gain, expected.gain)
    assert uplift_at_k(y, treated, score, 5 / 7) == uplift_at_k(Y, TREATED, TIED, 5 / 7)


def test_a_larger_control_group_changes_no_gain() -> None:
    """Control outcomes enter through rates only: doubling each control customer changes nothing."""
    control = ~np.asarray(TREATED)
    y = np.concatenate([Y, np.asarray(Y)[control]])
    treated = np.concatenate([TREATED, np.zeros(control.sum(), dtype=bool)])
    score = np.concatenate([DISTINCT, np.asarray(DISTINCT)[control]])
    assert qini_curve(y, treated, score).gain.tolist() == pytest.approx(
        [0, 0, 0, 0.5, 0.75, 0.75, 0.75, 5 / 12]
    )


def test_uplift_curve_by_hand() -> None:
    curve = uplift_curve(Y, TREATED, DISTINCT)
    # gain(k) = (mean_t(k) - mean_c(k)) * k / 7: k=1, 2 no control → 0; k=3..5 (1 - 0) k/7;
    # k=6: (3/4 - 0) 6/7 = 9/14; k=7: 3/4 - 1/3 = 5/12.
    expected = [0, 0, 0, 3 / 7, 4 / 7, 5 / 7, 9 / 14, 5 / 12]
    assert curve.gain.tolist() == pytest.approx(expected)
    # Trapezoid sum 431/168 over width 1/7 = 431/1176, less 5/24 = 245/1176: 186/1176.
    assert uplift_coefficient(curve) == pytest.approx(186 / 1176)


def test_real_valued_outcomes() -> None:
    # Spend: k=2: (10 - 0·1/1) / 2 = 5; k=3: 15 / 2 = 7.5; k=4: the same, the average effect.
    curve = qini_curve([10.0, 0.0, 5.0, 0.0], [1, 0, 1, 0], [4, 3, 2, 1])
    assert curve.gain.tolist() == [0.0, 0.0, 5.0, 7.5, 7.5]
    assert uplift_at_k([10.0, 0.0, 5.0, 0.0], [1, 0, 1, 0], [4, 3, 2, 1], 1.0) == 7.5


def test_uplift_at_k_by_hand() -> None:
    # Top 3 of DISTINCT: treated outcomes 1, 1, control 0.
    assert uplift_at_k(Y, TREATED, DISTINCT, 3 / 7) == pytest.approx(1.0)
    # Top 5 of TIED: customers 1-4 whole (T1, T1, C0, T1), then half of the tied
    # pair 5-6 (C0, T0): treated (1 + 1 + 1 + 0.5·0) / 3.5 = 6/7, control 0 / 1.5 = 0.
    assert uplift_at_k(Y, TREATED, TIED, 5 / 7) == pytest.approx(6 / 7)
    # Everyone: the difference of the arms' means.
    assert uplift_at_k(Y, TREATED, TIED, 1.0) == pytest.approx(3 / 4 - 1 / 3)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: qini_curve(Y, [True] * 7, DISTINCT), r"`treated` must contain both treated"),
        (lambda: uplift_curve(Y, [False] * 7, DISTINCT), r"`treated` must contain both treated"),
        (
            lambda: uplift_curve(Y, [0, 1, 2, 0, 1, 0, 1], DISTINCT),
            r"`treated` must contain only 0",
        ),
        (lambda: uplift_curve([np.nan, *Y[1:]], TREATED, DISTINCT), r"`y` must be finite"),
        (
            lambda: uplift_curve(Y, TREATED, DISTINCT[:6]),
            r"`score` must have the same length as `y` \(7\), got 6",
        ),
        (
            lambda: uplift_at_k(Y, TREATED, DISTINCT, 0),
            r"`k` must be a share of the customers in \(0, 1\], got 0",
        ),
        (lambda: uplift_at_k(Y, TREATED, DISTINCT, 1.5), r"`k` must be a share"),
        (lambda: uplift_at_k(Y, TREATED, DISTINCT, True), r"`k` must be a share"),
        (
            lambda: uplift_at_k(Y, TREATED, DISTINCT, 2 / 7),
            r"`k` must leave treated and control customers",
        ),
    ],
)
def test_bad_inputs(call: Any, match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        call()


def test_a_good_ranking_scores_above_a_random_one() -> None:
    """Simulated: the treatment helps only half the customers, and the score knows which."""
    rng = np.random.default_rng(0)
    n = 20_000
    helped = rng.random(n) < 0.5
    treated = rng.random(n) < 0.3  # unequal groups
    y = (rng.random(n) < 0.1 + 0.2 * (helped & treated)).astype(int)
    good, noise = helped + rng.normal(0, 0.1, n), rng.normal(0, 1, n)
    # A perfect ranking gains 0.2 on the first half: area 0.025 + 0.05, less the line's 0.05.
    assert qini_coefficient(qini_curve(y, treated, good)) == pytest.approx(0.025, abs=0.006)
    assert abs(qini_coefficient(qini_curve(y, treated, noise))) < 0.006
    assert uplift_at_k(y, treated, good, 0.5) == pytest.approx(0.2, abs=0.02)
    assert uplift_at_k(y, treated, good, 1.0) == pytest.approx(0.1, abs=0.015)
