"""IPS and SNIPS for any target policy, doubly robust, and bootstrap intervals, against a simulated
bandit whose true values are known."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from features import InvalidRequest
from training.policy_value import (
    bootstrap_ci,
    bootstrap_intervals,
    doubly_robust_value,
    importance_weights,
    ips_value,
    mean_with_ci,
    snips_value,
    weighted_ips_value,
    weighted_snips_value,
)

K = 3


def rates(x: np.ndarray) -> np.ndarray:
    """True reward probability of each of three actions in contexts ``x`` (a column each)."""
    return np.column_stack([0.05 + 0.2 * x, 0.25 - 0.1 * x, np.full_like(x, 0.1)])


def logging_policy(x: np.ndarray) -> np.ndarray:
    """A non-uniform logging policy: action 0 likelier for high x, never below 0.15."""
    p0 = 0.15 + 0.5 * x
    return np.column_stack([p0, (1 - p0) * 0.6, (1 - p0) * 0.4])


def logs(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random(n)
    policy = logging_policy(x)
    logged = (rng.random(n)[:, None] > np.cumsum(policy, axis=1)).sum(axis=1)
    logged = np.minimum(logged, K - 1)
    rewards = (rng.random(n) < rates(x)[np.arange(n), logged]).astype(float)
    return {"x": x, "logged": logged, "rewards": rewards, "mu": policy[np.arange(n), logged]}


# The uniform random policy's true value: E[mean of the three rates] over x ~ U(0, 1).
TRUE_UNIFORM = ((0.05 + 0.1) + (0.25 - 0.05) + 0.1) / 3
# "Action 0 when x > 0.5, else action 1": ∫_.5^1 (0.05 + 0.2x) + ∫_0^.5 (0.25 - 0.1x).
TRUE_SPLIT = (0.05 * 0.5 + 0.1 * 0.75) + (0.25 * 0.5 - 0.05 * 0.25)


def split_policy(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0.5, 0, 1)


def standard_error(ci: tuple[float, float]) -> float:
    return (ci[1] - ci[0]) / (2 * 1.96)


def test_weighted_ips_with_a_deterministic_target_is_ips() -> None:
    data = logs(5_000, seed=0)
    target = split_policy(data["x"])
    agrees = (target == data["logged"]).astype(float)
    assert weighted_ips_value(data["rewards"], data["mu"], agrees) == ips_value(
        data["logged"], data["rewards"], data["mu"], target
    )
    assert weighted_snips_value(data["rewards"], data["mu"], agrees) == snips_value(
        data["logged"], data["rewards"], data["mu"], target
    )


def test_ips_and_snips_of_a_stochastic_target_recover_its_true_value() -> None:
    data = logs(40_000, seed=1)
    uniform = np.full(data["mu"].size, 1 / K)
    ips = weighted_ips_value(data["rewards"], data["mu"], uniform)
    snips = weighted_snips_value(data["rewards"], data["mu"], uniform)
    # Seen: IPS 0.1474, SNIPS 0.1472 (standard errors 0.0018); true 0.15.
    assert abs(ips.mean - TRUE_UNIFORM) < 3 * standard_error(ips.ci95)
    assert abs(snips.mean - TRUE_UNIFORM) < 3 * standard_error(snips.ci95)


def test_doubly_robust_is_right_with_a_wrong_reward_model_when_propensities_are_right() -> None:
    data = logs(40_000, seed=2)
    target = split_policy(data["x"])
    agrees = (target == data["logged"]).astype(float)
    zeros = np.zeros_like(data["rewards"])  # a reward model that is simply wrong
    dr = doubly_robust_value(data["rewards"], data["mu"], agrees, zeros, zeros)
    ips = weighted_ips_value(data["rewards"], data["mu"], agrees)
    # With q̂ = 0 the DR terms are the IPS terms.
    assert dr == ips
    assert abs(dr.mean - TRUE_SPLIT) < 3 * standard_error(dr.ci95)


def test_doubly_robust_is_right_with_wrong_propensities_when_the_reward_model_is_right() -> None:
    data = logs(40_000, seed=3)
    n = data["x"].size
    target = split_policy(data["x"])
    agrees = (target == data["logged"]).astype(float)
    true = rates(data["x"])
    wrong_mu = np.full(n, 0.9)  # what a broken logger might have written
    dr = doubly_robust_value(
        data["rewards"],
        wrong_mu,
        agrees,
        true[np.arange(n), data["logged"]],
        true[np.arange(n), target],
    )
    ips = weighted_ips_value(data["rewards"], wrong_mu, agrees)
    assert abs(dr.mean - TRUE_SPLIT) < 3 * standard_error(dr.ci95)
    # IPS with those propensities is far off (seen: 0.113 against 0.2125): DR's model saves it.
    assert abs(ips.mean - TRUE_SPLIT) > 10 * standard_error(ips.ci95)


def test_a_good_reward_model_narrows_the_doubly_robust_interval() -> None:
    # A reward the model explains almost wholly (little noise around the true rate): the
    # residuals DR reweights are small, while IPS reweights the whole reward.
    data = logs(20_000, seed=4)
    n = data["x"].size
    target = split_policy(data["x"])
    agrees = (target == data["logged"]).astype(float)
    true = rates(data["x"])
    noise = np.random.default_rng(40).normal(0.0, 0.02, n)
    rewards = true[np.arange(n), data["logged"]] + noise
    dr = doubly_robust_value(
        rewards, data["mu"], agrees, true[np.arange(n), data["logged"]], true[np.arange(n), target]
    )
    ips = weighted_ips_value(rewards, data["mu"], agrees)
    assert abs(dr.mean - TRUE_SPLIT) < 3 * standard_error(dr.ci95)
    assert abs(ips.mean - TRUE_SPLIT) < 3 * standard_error(ips.ci95)
    # Seen: DR's interval 0.17 of IPS's width.
    assert standard_error(dr.ci95) < 0.3 * standard_error(ips.ci95)


def test_importance_weights_are_target_over_logging_probability() -> None:
    assert importance_weights([0.5, 0.25, 1.0], [1.0, 0.5, 0.0]).tolist() == [2.0, 2.0, 0.0]


# -- bootstrap ---------------------------------------------------------------------------------


def test_bootstrap_is_seeded_and_close_to_the_normal_interval_for_a_mean() -> None:
    values = np.random.default_rng(5).random(4_000)
    first = bootstrap_ci(values, seed=7)
    assert bootstrap_ci(values, seed=7) == first
    assert bootstrap_ci(values, seed=8) != first
    normal = mean_with_ci(values).ci95
    assert first[0] < values.mean() < first[1]
    # Both are ±1.96 standard errors for a smooth mean; 500 resamples agree to a few %.
    assert standard_error(first) == pytest.approx(standard_error(normal), rel=0.1)
    assert (first[0] + first[1]) / 2 == pytest.approx(
        values.mean(), abs=0.5 * standard_error(first)
    )


def test_bootstrap_of_a_ratio_resamples_numerator_and_denominator_together() -> None:
    # SNIPS of a target that agrees on half the rows: Σ w·r / Σ w over the same resampled rows.
    rng = np.random.default_rng(6)
    weights = np.where(rng.random(3_000) < 0.5, 2.0, 0.0)
    rewards = (rng.random(3_000) < 0.3).astype(float)
    low, high = bootstrap_ci(weights * rewards, weights, seed=1)
    snips = weighted_snips_value(rewards, np.full(3_000, 0.5), weights / 2)
    assert low < snips.mean < high
    # The delta-method interval of SNIPS is the same width to within the bootstrap's noise.
    assert standard_error((low, high)) == pytest.approx(standard_error(snips.ci95), rel=0.12)


def test_bootstrap_intervals_share_resamples_across_columns() -> None:
    values = np.random.default_rng(7).random(1_000)
    both = bootstrap_intervals(np.column_stack([values, values + 1.0]), seed=3)
    assert both[0] == pytest.approx(bootstrap_ci(values, seed=3), rel=1e-12)
    assert both[1][0] == pytest.approx(both[0][0] + 1.0, abs=1e-12)
    assert both[1][1] == pytest.approx(both[0][1] + 1.0, abs=1e-12)


def test_bootstrap_percentile_interval_covers_the_mean_about_95_percent_of_the_time() -> None:
    covered = 0
    for seed in range(100):
        values = (np.random.default_rng(100 + seed).random(400) < 0.3).astype(float)
        low, high = bootstrap_ci(values, seed=seed, resamples=300)
        covered += low <= 0.3 <= high
    # 100 runs at 95 %: 95 expected, standard deviation ~2.2.
    assert 88 <= covered <= 100


def test_bootstrap_of_one_row_or_a_zero_denominator_is_nan() -> None:
    assert all(math.isnan(b) for b in bootstrap_ci([1.0]))
    assert all(math.isnan(b) for b in bootstrap_ci([1.0, 2.0], [0.0, 0.0]))


@pytest.mark.parametrize(
    ("function", "args", "kwargs", "match"),
    [
        (
            importance_weights,
            ([0.5], [1.5]),
            {},
            r"`target_propensities` must be in \[0, 1\], got 1.5",
        ),
        (
            importance_weights,
            ([0.0], [1.0]),
            {},
            r"`logging_propensities` must be in \(0, 1\], got 0.0",
        ),
        (
            importance_weights,
            ([0.5, 0.5], [1.0]),
            {},
            r"`target_propensities` must have one entry per reward \(2\), got 1",
        ),
        (
            weighted_snips_value,
            ([1.0, 0.0], [0.5, 0.5], [0.0, 0.0]),
            {},
            r"`target_propensities` must agree with the logged action in at least one row",
        ),
        (
            doubly_robust_value,
            ([1.0, 0.0], [0.5, 0.5], [1.0, 0.0], [0.1], [0.1, 0.1]),
            {},
            r"`logged_estimates` must have one entry per reward \(2\), got 1",
        ),
        (bootstrap_ci, ([1.0, np.nan],), {}, r"`numerators` must be finite"),
        (bootstrap_ci, ([1.0, 2.0],), {"resamples": 0}, r"`resamples` must be a whole number"),
        (bootstrap_ci, ([1.0, 2.0],), {"level": 1.5}, r"`level` must be a number between 0 and 1"),
        (
            bootstrap_intervals,
            (np.ones((3, 2)), np.ones((3, 1))),
            {},
            r"`denominators` must have the shape of numerators \(3, 2\)",
        ),
        (bootstrap_intervals, (np.ones(3),), {}, r"`numerators` must be a non-empty 2-D array"),
    ],
)
def test_bad_estimator_input(
    function: Any, args: tuple[Any, ...], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidRequest, match=match):
        function(*args, **kwargs)
