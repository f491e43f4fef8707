"""EpsilonGreedy: exact probabilities, the draw matches them, and rewards move the greedy choice."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from decisioning import Context, EpsilonGreedy, JointAction, UniformRandom
from features.errors import InvalidRequest

A = JointAction("promo", "email", "now", None)
B = JointAction("promo", "sms", "now", None)
C = JointAction("promo", "push", "now", None)
ARMS = (A, B, C)
CONTEXT = Context("c1", {"recency": 3}, {A.key: 0.3, B.key: 0.3, C.key: 0.1})


@pytest.mark.parametrize(
    ("epsilon", "expected"),
    [
        (0.0, {A.key: 0.5, B.key: 0.5, C.key: 0.0}),
        (0.1, {A.key: 0.45 + 0.1 / 3, B.key: 0.45 + 0.1 / 3, C.key: 0.1 / 3}),
        (1.0, {A.key: 1 / 3, B.key: 1 / 3, C.key: 1 / 3}),
    ],
)
def test_probabilities_are_exact_and_ties_share(epsilon: float, expected: dict[str, float]) -> None:
    pick = EpsilonGreedy(epsilon=epsilon).select(CONTEXT, ARMS)
    for key, probability in expected.items():
        assert pick.scores[key].probability == pytest.approx(probability, abs=1e-15)
        assert pick.scores[key].prior == CONTEXT.priors[key]
        assert pick.scores[key].mean == CONTEXT.priors[key]  # untrained
        assert pick.scores[key].uncertainty == 0.0


def test_the_draw_follows_the_stated_probabilities() -> None:
    # 20,000 draws: each frequency within 4 binomial standard deviations.
    policy = EpsilonGreedy(epsilon=0.3, seed=3)
    n = 20_000
    picks = [policy.select(CONTEXT, ARMS) for _ in range(n)]
    expected = picks[0].scores
    for action in ARMS:
        p = expected[action.key].probability
        share = sum(pick.action == action.key for pick in picks) / n
        assert share == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / n))
    explored = sum(pick.explored for pick in picks) / n
    assert explored == pytest.approx(0.3, abs=4 * np.sqrt(0.3 * 0.7 / n))


@pytest.mark.parametrize(("epsilon", "explored"), [(0.0, False), (1.0, True)])
def test_extreme_epsilons_always_or_never_explore(epsilon: float, explored: bool) -> None:
    policy = EpsilonGreedy(epsilon=epsilon, seed=1)
    assert {policy.select(CONTEXT, ARMS).explored for _ in range(200)} == {explored}


def test_rewards_move_the_greedy_choice() -> None:
    policy = EpsilonGreedy(epsilon=0.0, learning_rate=0.05)
    assert policy.select(CONTEXT, ARMS).action in {A.key, B.key}
    for _ in range(300):
        policy.update(CONTEXT, A, 0.0, first=True)
        policy.update(CONTEXT, B, 0.0, first=True)
        policy.update(CONTEXT, C, 1.0, first=True)
    pick = policy.select(CONTEXT, ARMS)
    assert pick.action == C.key
    assert pick.propensity == 1.0
    assert pick.scores[C.key].mean > 0.9
    assert pick.scores[A.key].mean < 0.05


def test_update_changes_learned_state_and_version() -> None:
    policy = EpsilonGreedy(epsilon=0.1, learning_rate=0.05)
    before = pickle.dumps(policy.recalibrator_)
    assert policy.version == "epsilon-greedy(epsilon=0.1,learning_rate=0.05)+0"
    policy.update(CONTEXT, C, 1.0, first=True)
    policy.update(CONTEXT, C, 0.0, first=True)
    assert pickle.dumps(policy.recalibrator_) != before
    assert policy.recalibrator_.n_updates(C.key) == 2
    assert policy.version == "epsilon-greedy(epsilon=0.1,learning_rate=0.05)+2"


def test_only_the_first_reward_of_a_decision_teaches() -> None:
    policy = EpsilonGreedy()
    policy.update(CONTEXT, C, 1.0, first=True)
    learned = policy.snapshot()
    policy.update(CONTEXT, C, 1.0, first=False)
    assert policy.snapshot() == learned
    assert policy.version.endswith("+1")


def test_priors_outside_the_unit_interval_pass_through_and_teach_nothing() -> None:
    # A prior is an expected reward: a value minus a cost may be negative or above 1.
    context = Context("c1", {}, {A.key: -0.02, B.key: 2.5, C.key: 0.4})
    policy = EpsilonGreedy(epsilon=0.0)
    for _ in range(50):
        policy.update(context, A, 1.0, first=True)
        policy.update(context, B, 0.0, first=True)
    pick = policy.select(context, ARMS)
    assert {k: s.mean for k, s in pick.scores.items()} == {A.key: -0.02, B.key: 2.5, C.key: 0.4}
    assert pick.action == B.key
    assert policy.version.endswith("+0")


def test_a_fresh_worker_adopts_the_most_experienced_snapshot() -> None:
    novice, expert = EpsilonGreedy(), EpsilonGreedy()
    novice.update(CONTEXT, A, 1.0, first=True)
    for _ in range(40):
        expert.update(CONTEXT, C, 1.0, first=True)
    fresh = EpsilonGreedy()
    fresh.absorb([novice.snapshot(), b"", expert.snapshot()])
    assert fresh.version.endswith("+40")
    assert fresh.select(CONTEXT, ARMS).scores[C.key].mean == pytest.approx(
        expert.select(CONTEXT, ARMS).scores[C.key].mean, abs=1e-15
    )
    # Once it has learned something itself, it keeps its own (river models cannot be merged).
    novice.absorb([expert.snapshot()])
    assert novice.version.endswith("+1")


def test_a_foreign_snapshot_is_refused_by_position() -> None:
    with pytest.raises(InvalidRequest, match=r"`snapshots\[1\]` must be an EpsilonGreedy snapshot"):
        EpsilonGreedy().absorb([b"", pickle.dumps({"not": "a recalibrator"})])


def test_uniform_random_is_uniform_and_learns_nothing() -> None:
    policy = UniformRandom(seed=4)
    n = 9_000
    picks = [policy.select(CONTEXT, ARMS) for _ in range(n)]
    assert all(p.propensity == pytest.approx(1 / 3, abs=1e-15) for p in picks)
    for action in ARMS:
        share = sum(p.action == action.key for p in picks) / n
        assert share == pytest.approx(1 / 3, abs=4 * np.sqrt(2 / 9 / n))
    policy.update(CONTEXT, A, 1.0, first=True)
    assert policy.version == "uniform-random"
    assert policy.snapshot() == b""
    assert {k: s.mean for k, s in picks[0].scores.items()} == dict(CONTEXT.priors)


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


def test_update_of_an_action_without_a_prior_names_the_field() -> None:
    other = JointAction("promo", "fax", "now", None)
    with pytest.raises(InvalidRequest, match=r"`priors.promo/fax/now` must be given"):
        EpsilonGreedy().update(CONTEXT, other, 1.0, first=True)
