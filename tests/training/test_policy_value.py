"""Policy values: on-policy means and IPS / SNIPS against a simulated bandit's true value."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from features import InvalidRequest
from training import PolicyValue, ips_value, mean_with_ci, snips_value

ACTIONS = np.array(["mens_email", "womens_email", "no_email"])


def reward_rates(x: np.ndarray) -> np.ndarray:
    """Each action's true reward probability for contexts ``x`` (one column per action)."""
    return np.column_stack([0.05 + 0.2 * x, 0.25 - 0.1 * x, np.full_like(x, 0.1)])


def target_policy(x: np.ndarray) -> np.ndarray:
    """Mens e-mail for high x, womens for low: close to, not exactly, the best policy."""
    return np.where(x > 0.6, 0, 1)


def uniform_logs(n: int, seed: int) -> tuple[np.ndarray, ...]:
    """Logged feedback of a uniform-random policy: (contexts, actions, rewards, propensities)."""
    rng = np.random.default_rng(seed)
    x = rng.random(n)
    logged = rng.integers(0, len(ACTIONS), n)
    rewards = (rng.random(n) < reward_rates(x)[np.arange(n), logged]).astype(float)
    return x, logged, rewards, np.full(n, 1 / len(ACTIONS))


# E over x ~ U(0, 1) of the target's reward rate: womens on [0, 0.6], mens on (0.6, 1];
# 0.132 + 0.084 = 0.216.
TRUE_TARGET_VALUE = (0.25 * 0.6 - 0.05 * 0.6**2) + (0.05 * 0.4 + 0.1 * (1 - 0.6**2))


def standard_error(value: PolicyValue) -> float:
    return (value.ci95[1] - value.ci95[0]) / (2 * 1.96)


def test_mean_with_ci_values() -> None:
    value = mean_with_ci([1.0, 0.0, 1.0, 1.0, 0.0])
    half = 1.96 * math.sqrt(0.3) / math.sqrt(5)  # sample variance 0.3
    assert value.mean == pytest.approx(0.6, abs=1e-12)
    assert value.ci95 == pytest.approx((0.6 - half, 0.6 + half), abs=1e-12)
    assert value.n == 5
    assert value.to_dict() == {"mean": value.mean, "ci95": list(value.ci95), "n": 5}


def test_one_value_has_no_interval() -> None:
    value = mean_with_ci([0.4])
    assert (value.mean, value.n) == (0.4, 1)
    assert all(math.isnan(bound) for bound in value.ci95)


def test_ips_matches_the_true_value_of_the_target_policy() -> None:
    x, logged, rewards, propensities = uniform_logs(30_000, seed=0)
    target = target_policy(x)
    ips = ips_value(ACTIONS[logged], rewards, propensities, ACTIONS[target])
    snips = snips_value(ACTIONS[logged], rewards, propensities, ACTIONS[target])
    assert ips.n == snips.n == 30_000
    # Seen: IPS 0.2174 (standard error 0.0045), SNIPS 0.2157 (0.0041); true value 0.216.
    assert abs(ips.mean - TRUE_TARGET_VALUE) < 3 * standard_error(ips)
    assert abs(snips.mean - TRUE_TARGET_VALUE) < 3 * standard_error(snips)
    # Each IPS term is 3·reward on the third of rows where the target agrees, so its
    # variance is 3V - V^2; the reported standard error should match it.
    expected = math.sqrt(3 * TRUE_TARGET_VALUE - TRUE_TARGET_VALUE**2) / math.sqrt(30_000)
    assert standard_error(ips) == pytest.approx(expected, rel=0.05)


def test_ips_interval_covers_the_truth_about_95_percent_of_the_time() -> None:
    covered = 0
    for seed in range(200):
        x, logged, rewards, propensities = uniform_logs(3_000, seed=seed)
        value = ips_value(logged, rewards, propensities, target_policy(x))
        covered += value.ci95[0] <= TRUE_TARGET_VALUE <= value.ci95[1]
    # 200 runs at 95 %: 190 expected, standard deviation ~3.1.
    assert 180 <= covered <= 199


def test_target_equal_to_logged_is_the_on_policy_mean() -> None:
    _, logged, rewards, propensities = uniform_logs(2_000, seed=1)
    # A deterministic logging policy (propensity 1) evaluated on itself.
    assert ips_value(logged, rewards, np.ones_like(rewards), logged) == mean_with_ci(rewards)
    # Self-normalising cancels any constant propensity.
    assert snips_value(logged, rewards, propensities, logged).mean == pytest.approx(
        rewards.mean(), abs=1e-12
    )


@pytest.mark.parametrize(
    ("function", "args", "match"),
    [
        (mean_with_ci, ([],), r"`rewards` must not be empty"),
        (mean_with_ci, ([0.1, np.nan],), r"`rewards` must be finite"),
        (mean_with_ci, ([[1.0]],), r"`rewards` must be one-dimensional"),
        (
            ips_value,
            (["a"], [1.0], [0.0], ["a"]),
            r"`logging_propensities` must be in \(0, 1\], got 0.0",
        ),
        (
            ips_value,
            (["a"], [1.0], [1.5], ["a"]),
            r"`logging_propensities` must be in \(0, 1\], got 1.5",
        ),
        (ips_value, (["a"], [1.0], [np.nan], ["a"]), r"`logging_propensities` must be finite"),
        (
            ips_value,
            (["a", "b"], [1.0, 0.0], [0.5], ["a", "b"]),
            r"`logging_propensities` must have one entry per reward \(2\), got 1",
        ),
        (
            ips_value,
            (["a"], [1.0, 0.0], [0.5, 0.5], ["a", "b"]),
            r"`logged_actions` must have one entry per reward \(2\), got 1",
        ),
        (
            snips_value,
            (["a", "b"], [1.0, 0.0], [0.5, 0.5], ["a", "b", "c"]),
            r"`target_actions` must have one entry per reward \(2\), got 3",
        ),
        (
            snips_value,
            (["a", "b"], [1.0, 0.0], [0.5, 0.5], ["c", "c"]),
            r"`target_actions` must agree with the logged action in at least one row",
        ),
    ],
)
def test_bad_policy_value_input(function: Any, args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        function(*args)
