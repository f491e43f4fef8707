"""The contract every Policy keeps, run over each implementation and setting."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable

import numpy as np
import pytest

from decisioning import Context, EpsilonGreedy, Policy, UniformRandom
from features.errors import InvalidRequest

ACTIONS = ("a", "b", "c", "d")

POLICIES: list[Callable[[], Policy]] = [
    lambda: EpsilonGreedy(epsilon=0.0, seed=11),
    lambda: EpsilonGreedy(epsilon=0.1, seed=11),
    lambda: EpsilonGreedy(epsilon=1.0, seed=11),
    lambda: UniformRandom(seed=11),
]
IDS = ["epsilon-greedy-0", "epsilon-greedy-0.1", "epsilon-greedy-1", "uniform"]


@pytest.fixture(params=POLICIES, ids=IDS)
def make_policy(request: pytest.FixtureRequest) -> Callable[[], Policy]:
    factory: Callable[[], Policy] = request.param
    return factory


def contexts(n: int, seed: int = 0) -> list[Context]:
    rng = np.random.default_rng(seed)
    return [
        Context(
            customer_id=f"c{i}",
            features={"recency": int(rng.integers(0, 90)), "channel": "web", "score": None},
            priors={a: float(rng.uniform(0.01, 0.6)) for a in ACTIONS},
        )
        for i in range(n)
    ]


def trained(make: Callable[[], Policy], n: int = 200) -> Policy:
    """A policy that has learned something, so that 'unchanged' means something."""
    policy = make()
    rng = np.random.default_rng(5)
    for context in contexts(n, seed=1):
        action = ACTIONS[int(rng.integers(len(ACTIONS)))]
        policy.update(context, action, float(rng.random() < 0.4))
    return policy


def learned_state(policy: Policy) -> dict[str, bytes]:
    """Everything a policy has learned: its public attributes ending in ``_`` (sklearn's rule)."""
    return {
        name: pickle.dumps(getattr(policy, name))
        for name in dir(policy)
        if name.endswith("_") and not name.startswith("_")
    }


def decisions(policy: Policy, n: int = 100) -> list[tuple[str, float, bool]]:
    picks = [policy.select(c, ACTIONS) for c in contexts(n, seed=2)]
    return [(p.action, p.propensity, p.explored) for p in picks]


def test_probabilities_sum_to_one_over_the_candidates(make_policy: Callable[[], Policy]) -> None:
    policy = trained(make_policy)
    for context in contexts(200):
        pick = policy.select(context, ACTIONS)
        assert set(pick.scores) == set(ACTIONS)
        assert sum(s.probability for s in pick.scores.values()) == pytest.approx(1.0, abs=1e-12)
        assert all(0.0 <= s.probability <= 1.0 for s in pick.scores.values())


def test_propensity_is_the_chosen_candidates_probability(
    make_policy: Callable[[], Policy],
) -> None:
    policy = trained(make_policy)
    for context in contexts(200):
        pick = policy.select(context, ACTIONS)
        assert 0.0 < pick.propensity <= 1.0
        assert pick.propensity == pick.scores[pick.action].probability


def test_never_chooses_outside_the_candidates(make_policy: Callable[[], Policy]) -> None:
    policy = trained(make_policy)
    subset = ("b", "d")
    for context in contexts(300):
        # The best prior is outside the subset, so a leak would show.
        priors = {**context.priors, "a": 0.99}
        pick = policy.select(Context(context.customer_id, context.features, priors), subset)
        assert pick.action in subset
        assert set(pick.scores) == set(subset)


def test_same_seed_same_decisions(make_policy: Callable[[], Policy]) -> None:
    first, second = trained(make_policy), trained(make_policy)
    assert decisions(first, 300) == decisions(second, 300)


def test_inputs_are_not_mutated(make_policy: Callable[[], Policy]) -> None:
    policy = make_policy()
    for context in contexts(50):
        features, priors = dict(context.features), dict(context.priors)
        candidates = ("a", "c", "d")
        pick = policy.select(context, candidates)
        policy.update(context, pick.action, 1.0)
        assert dict(context.features) == features
        assert dict(context.priors) == priors
        assert candidates == ("a", "c", "d")


def test_select_never_changes_learned_state(make_policy: Callable[[], Policy]) -> None:
    policy = trained(make_policy)
    before, version = learned_state(policy), policy.version
    means = [policy.select(c, ACTIONS).scores["a"].mean for c in contexts(20)]
    decisions(policy, 500)
    assert learned_state(policy) == before
    assert policy.version == version
    assert [policy.select(c, ACTIONS).scores["a"].mean for c in contexts(20)] == means


def test_clone_is_untrained_with_the_same_parameters(make_policy: Callable[[], Policy]) -> None:
    policy = trained(make_policy)
    decisions(policy, 50)
    fresh = policy.clone()
    assert type(fresh) is type(policy)
    assert repr(fresh) == repr(make_policy())
    assert fresh.version == make_policy().version
    assert learned_state(fresh) == learned_state(make_policy())
    assert decisions(fresh) == decisions(make_policy())


def test_pickle_round_trip_gives_the_same_next_decisions(
    make_policy: Callable[[], Policy],
) -> None:
    policy = trained(make_policy)
    decisions(policy, 37)
    restored = pickle.loads(pickle.dumps(policy))
    assert restored.version == policy.version
    assert learned_state(restored) == learned_state(policy)
    assert decisions(restored) == decisions(policy)


def test_feature_order_and_missing_features_do_not_matter(
    make_policy: Callable[[], Policy],
) -> None:
    forward, backward = trained(make_policy), trained(make_policy)
    for context in contexts(100):
        reordered = Context(
            context.customer_id,
            dict(reversed(list({**context.features, "extra": None}.items()))),
            dict(reversed(list(context.priors.items()))),
        )
        assert forward.select(context, ACTIONS) == backward.select(reordered, ACTIONS)


@pytest.mark.parametrize(
    ("candidates", "priors", "match"),
    [
        ((), {"a": 0.1}, r"`candidates` must be a non-empty list"),
        (("a", "a"), {"a": 0.1}, r"`candidates` must be .*distinct"),
        (("a", "z"), {"a": 0.1}, r"`candidates` .* one of \['a'\], got \['a', 'z'\]"),
        ("a", {"a": 0.1}, r"`candidates` must be a non-empty list"),
        (("a",), {"a": 1.5}, r"`priors.a` must be a number in \[0, 1\], got 1.5"),
        (("a",), {"a": float("nan")}, r"`priors.a` must be a number in \[0, 1\]"),
    ],
)
def test_bad_selections_name_the_field(
    make_policy: Callable[[], Policy],
    candidates: tuple[str, ...],
    priors: dict[str, float],
    match: str,
) -> None:
    policy = make_policy()
    state = copy.deepcopy(learned_state(policy))
    with pytest.raises(InvalidRequest, match=match):
        policy.select(Context("c1", {}, priors), candidates)
    assert learned_state(policy) == state
