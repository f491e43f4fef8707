"""EpsilonGreedy: exact probabilities, the draw matches them, and rewards move the greedy choice."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from decisioning import Context, EpsilonGreedy, UniformRandom
from features.errors import InvalidRequest

CONTEXT = Context("c1", {"recency": 3}, {"a": 0.3, "b": 0.3, "c": 0.1})
ARMS = ("a", "b", "c")


@pytest.mark.parametrize(
    ("epsilon", "expected"),
    [
        (0.0, {"a": 0.5, "b": 0.5, "c": 0.0}),
        (0.1, {"a": 0.45 + 0.1 / 3, "b": 0.45 + 0.1 / 3, "c": 0.1 / 3}),
        (1.0, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}),
    ],
)
def test_probabilities_are_exact_and_ties_share(epsilon: float, expected: dict[str, float]) -> None:
    pick = EpsilonGreedy(epsilon=epsilon).select(CONTEXT, ARMS)
    for action, probability in expected.items():
        assert pick.scores[action].probability == pytest.approx(probability, abs=1e-15)
        assert pick.scores[action].prior == CONTEXT.priors[action]
        assert pick.scores[action].mean == CONTEXT.priors[action]  # untrained


def test_the_draw_follows_the_stated_probabilities() -> None:
    # 20,000 draws: each frequency within 4 binomial standard deviations.
    policy = EpsilonGreedy(epsilon=0.3, seed=3)
    n = 20_000
    picks = [policy.select(CONTEXT, ARMS) for _ in range(n)]
    expected = picks[0].scores
    for action in ARMS:
        p = expected[action].probability
        share = sum(pick.action == action for pick in picks) / n
        assert share == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / n))
    explored = sum(pick.explored for pick in picks) / n
    assert explored == pytest.approx(0.3, abs=4 * np.sqrt(0.3 * 0.7 / n))


@pytest.mark.parametrize(("epsilon", "explored"), [(0.0, False), (1.0, True)])
def test_extreme_epsilons_always_or_never_explore(epsilon: float, explored: bool) -> None:
    policy = EpsilonGreedy(epsilon=epsilon, seed=1)
    assert {policy.select(CONTEXT, ARMS).explored for _ in range(200)} == {explored}


def test_rewards_move_the_greedy_choice() -> None:
    policy = EpsilonGreedy(epsilon=0.0, learning_rate=0.05)
    assert policy.select(CONTEXT, ARMS).action in {"a", "b"}
    for _ in range(300):
        policy.update(CONTEXT, "a", 0.0)
        policy.update(CONTEXT, "b", 0.0)
        policy.update(CONTEXT, "c", 1.0)
    pick = policy.select(CONTEXT, ARMS)
    assert pick.action == "c"
    assert pick.propensity == 1.0
    assert pick.scores["c"].mean > 0.9
    assert pick.scores["a"].mean < 0.05


def test_update_changes_learned_state_and_version() -> None:
    policy = EpsilonGreedy(epsilon=0.1, learning_rate=0.05)
    before = pickle.dumps(policy.recalibrator_)
    assert policy.version == "epsilon-greedy(epsilon=0.1,learning_rate=0.05)+0"
    policy.update(CONTEXT, "c", 1.0)
    policy.update(CONTEXT, "c", 0.0)
    assert pickle.dumps(policy.recalibrator_) != before
    assert policy.recalibrator_.n_updates("c") == 2
    assert policy.version == "epsilon-greedy(epsilon=0.1,learning_rate=0.05)+2"


def test_uniform_random_is_uniform_and_learns_nothing() -> None:
    policy = UniformRandom(seed=4)
    n = 9_000
    picks = [policy.select(CONTEXT, ARMS) for _ in range(n)]
    assert all(p.propensity == pytest.approx(1 / 3, abs=1e-15) for p in picks)
    for action in ARMS:
        share = sum(p.action == action for p in picks) / n
        assert share == pytest.approx(1 / 3, abs=4 * np.sqrt(2 / 9 / n))
    policy.update(CONTEXT, "a", 1.0)
    assert policy.version == "uniform-random"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epsilon": -0.1}, r"`epsilon` must be a number in \[0, 1\], got -0.1"),
        ({"epsilon": 1.2}, r"`epsilon` must be a number in \[0, 1\], got 1.2"),
        ({"epsilon": float("nan")}, r"`epsilon` must be a number in \[0, 1\]"),
        ({"epsilon": "0.1"}, r"`epsilon` must be a number in \[0, 1\], got '0.1'"),
        ({"learning_rate": 0.0}, r"`learning_rate` must be a finite number > 0, got 0.0"),
        ({"learning_rate": -1}, r"`learning_rate` must be a finite number > 0, got -1"),
        ({"seed": -1}, r"`seed` must be a non-negative integer, got -1"),
        ({"seed": 1.5}, r"`seed` must be a non-negative integer, got 1.5"),
    ],
)
def test_bad_parameters_name_the_field(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        EpsilonGreedy(**kwargs)  # type: ignore[arg-type]


def test_update_of_an_unknown_action_names_the_field() -> None:
    with pytest.raises(InvalidRequest, match=r"`action` must be one of \['a', 'b', 'c'\]"):
        EpsilonGreedy().update(CONTEXT, "z", 1.0)
