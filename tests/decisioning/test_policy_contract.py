"""The contract every Policy keeps, run over each implementation and setting."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest

from decisioning import Context, EpsilonGreedy, JointAction, LinearThompson, Policy, UniformRandom
from features.errors import InvalidRequest

AT = datetime(2024, 5, 1, 9, tzinfo=UTC)
SENDS = tuple(
    JointAction(message, channel, slot, AT)
    for message in ("welcome", "promo")
    for channel in ("email", "sms")
    for slot in ("now", "evening")
)
CANDIDATES = (*SENDS, JointAction.no_send())
KEYS = tuple(a.key for a in CANDIDATES)

POLICIES: list[Callable[[], Policy]] = [
    lambda: LinearThompson(seed=11),
    lambda: LinearThompson(prior_precision=10.0, noise=0.2, exploration=0.5, seed=11),
    lambda: EpsilonGreedy(epsilon=0.0, seed=11),
    lambda: EpsilonGreedy(epsilon=0.1, seed=11),
    lambda: EpsilonGreedy(epsilon=1.0, seed=11),
    lambda: UniformRandom(seed=11),
]
IDS = ["linear-ts", "linear-ts-tight", "epsilon-0", "epsilon-0.1", "epsilon-1", "uniform"]


@pytest.fixture(params=POLICIES, ids=IDS)
def make_policy(request: pytest.FixtureRequest) -> Callable[[], Policy]:
    factory: Callable[[], Policy] = request.param
    return factory


def contexts(n: int, seed: int = 0) -> list[Context]:
    rng = np.random.default_rng(seed)
    return [
        Context(
            customer_id=f"c{i}",
            features={
                "engagement_email": float(rng.random()),
                "engagement_sms": float(rng.random()),
                **{f"activity_hour_{h}": float(rng.random()) for h in range(24)},
                "recency": int(rng.integers(0, 90)),
                "segment": "web",
                "score": None,
            },
            priors={key: float(rng.uniform(0.01, 0.6)) for key in KEYS},
            local_hours={a.key: 9 if a.slot == "now" else 19 for a in SENDS},
        )
        for i in range(n)
    ]


def trained(make: Callable[[], Policy], n: int = 200) -> Policy:
    """A policy that has learned something, so that 'unchanged' means something."""
    policy = make()
    rng = np.random.default_rng(5)
    for context in contexts(n, seed=1):
        action = CANDIDATES[int(rng.integers(len(CANDIDATES)))]
        policy.update(context, action, float(rng.random() < 0.4), first=True)
        if rng.random() < 0.2:
            policy.update(context, action, 0.5, first=False)
    return policy


def decisions(policy: Policy, n: int = 100) -> list[tuple[str, float, bool]]:
    picks = [policy.select(c, CANDIDATES) for c in contexts(n, seed=2)]
    return [(p.action, p.propensity, p.explored) for p in picks]


def means(policy: Policy, n: int = 20) -> list[dict[str, float]]:
    picks = [policy.select(c, CANDIDATES) for c in contexts(n, seed=3)]
    return [{key: score.mean for key, score in pick.scores.items()} for pick in picks]


def test_probabilities_sum_to_one_over_the_candidates(make_policy: Callable[[], Policy]) -> None:
    policy = trained(make_policy)
    for context in contexts(200):
        pick = policy.select(context, CANDIDATES)
        assert set(pick.scores) == set(KEYS)
        # Exact for every policy: LinearThompson draws from the probabilities it reports.
        assert sum(s.probability for s in pick.scores.values()) == pytest.approx(1.0, abs=1e-12)
        assert all(0.0 <= s.probability <= 1.0 for s in pick.scores.values())
        assert pick.propensity_error == 0.0


def test_propensity_is_the_chosen_candidates_probability(
    make_policy: Callable[[], Policy],
) -> None:
    policy = trained(make_policy)
    for context in contexts(200):
        pick = policy.select(context, CANDIDATES)
        assert 0.0 < pick.propensity <= 1.0
        assert pick.propensity == pick.scores[pick.action].probability


def test_only_the_candidates_passed_are_scored_and_chosen(
    make_policy: Callable[[], Policy],
) -> None:
    policy = trained(make_policy)
    subset = (SENDS[1], SENDS[6], CANDIDATES[-1])
    keys = {a.key for a in subset}
    for context in contexts(300):
        # The best prior is outside the subset, so a leak would show.
        priors = {**context.priors, SENDS[0].key: 0.99}
        narrowed = Context(context.customer_id, context.features, priors, context.local_hours)
        pick = policy.select(narrowed, subset)
        assert pick.action in keys
        assert set(pick.scores) == keys
        assert sum(s.probability for s in pick.scores.values()) == pytest.approx(1.0, abs=1e-12)


def test_same_seed_same_decisions(make_policy: Callable[[], Policy]) -> None:
    first, second = trained(make_policy), trained(make_policy)
    assert decisions(first, 300) == decisions(second, 300)


def test_inputs_are_not_mutated(make_policy: Callable[[], Policy]) -> None:
    policy = make_policy()
    for context in contexts(50):
        features, priors = dict(context.features), dict(context.priors)
        hours = dict(context.local_hours)
        candidates = list(CANDIDATES[2:])
        pick = policy.select(context, candidates)
        action = next(a for a in candidates if a.key == pick.action)
        policy.update(context, action, 1.0, first=True)
        policy.update(context, action, 0.5, first=False)
        assert dict(context.features) == features
        assert dict(context.priors) == priors
        assert dict(context.local_hours) == hours
        assert candidates == list(CANDIDATES[2:])


def test_select_never_changes_learned_state(make_policy: Callable[[], Policy]) -> None:
    policy = trained(make_policy)
    before, version, estimates = policy.snapshot(), policy.version, means(policy)
    decisions(policy, 500)
    # A name never learned from only passes through select; it must not stick either.
    novel = JointAction("novel", "carrier-pigeon", "dawn", AT)
    context = contexts(1)[0]
    policy.select(Context("c1", {}, {**context.priors, novel.key: 0.2}), (*CANDIDATES, novel))
    assert policy.snapshot() == before
    assert policy.version == version
    assert means(policy) == estimates


def test_update_changes_what_is_learned(make_policy: Callable[[], Policy]) -> None:
    policy = make_policy()
    before = policy.snapshot()
    trained_policy = trained(make_policy)
    if isinstance(policy, UniformRandom):
        assert trained_policy.snapshot() == before == b""
        assert trained_policy.version == policy.version
    else:
        assert trained_policy.snapshot() != before
        assert trained_policy.version != policy.version
        assert means(trained_policy) != means(policy)


def test_clone_is_untrained_with_the_same_parameters(make_policy: Callable[[], Policy]) -> None:
    policy = trained(make_policy)
    decisions(policy, 50)
    fresh = policy.clone()
    assert type(fresh) is type(policy)
    assert repr(fresh) == repr(make_policy())
    assert fresh.version == make_policy().version
    assert fresh.snapshot() == make_policy().snapshot()
    assert decisions(fresh) == decisions(make_policy())


def test_pickle_round_trip_gives_the_same_next_decisions(
    make_policy: Callable[[], Policy],
) -> None:
    policy = trained(make_policy)
    decisions(policy, 37)
    restored = pickle.loads(pickle.dumps(policy))
    assert restored.version == policy.version
    assert restored.snapshot() == policy.snapshot()
    assert decisions(restored) == decisions(policy)


def test_a_fresh_policy_absorbing_a_snapshot_estimates_the_same(
    make_policy: Callable[[], Policy],
) -> None:
    teacher = trained(make_policy)
    pupil = make_policy()
    pupil.absorb([teacher.snapshot()])
    assert pupil.version == teacher.version
    for learned, taught in zip(means(teacher), means(pupil), strict=True):
        assert taught == pytest.approx(learned, abs=1e-9)
    # Absorbing replaces: taking in nothing forgets what was taken in before.
    pupil.absorb([])
    assert means(pupil) == means(make_policy())


def test_feature_order_and_missing_features_do_not_matter(
    make_policy: Callable[[], Policy],
) -> None:
    forward, backward = trained(make_policy), trained(make_policy)
    for context in contexts(100):
        reordered = Context(
            context.customer_id,
            dict(reversed(list({**context.features, "extra": None}.items()))),
            dict(reversed(list(context.priors.items()))),
            dict(reversed(list(context.local_hours.items()))),
        )
        assert forward.select(context, CANDIDATES) == backward.select(reordered, CANDIDATES)


def test_a_context_without_features_or_hours_is_still_scored(
    make_policy: Callable[[], Policy],
) -> None:
    policy = trained(make_policy)
    priors = contexts(1)[0].priors
    pick = policy.select(Context("c1", {}, priors), CANDIDATES)
    assert pick.action in KEYS
    assert sum(s.probability for s in pick.scores.values()) == pytest.approx(1.0, abs=1e-12)


EMAIL = SENDS[0]


@pytest.mark.parametrize(
    ("candidates", "priors", "match"),
    [
        ((), {}, r"`candidates` must be a non-empty sequence of JointActions"),
        ((EMAIL, EMAIL), {EMAIL.key: 0.1}, r"`candidates` must be .*distinct keys"),
        ("welcome/email/now", {}, r"`candidates` must be a non-empty sequence"),
        ((EMAIL.key,), {EMAIL.key: 0.1}, r"`candidates` must be a non-empty sequence"),
        ((EMAIL,), {}, r"`priors.welcome/email/now` must be given for every candidate"),
        ((EMAIL,), {EMAIL.key: float("nan")}, r"`priors.welcome/email/now` must be a finite"),
        ((EMAIL,), {EMAIL.key: float("inf")}, r"`priors.welcome/email/now` must be a finite"),
        ((EMAIL,), {EMAIL.key: "0.1"}, r"`priors.welcome/email/now` must be a finite number"),
    ],
)
def test_bad_selections_name_the_field(
    make_policy: Callable[[], Policy],
    candidates: tuple[JointAction, ...],
    priors: dict[str, object],
    match: str,
) -> None:
    policy = trained(make_policy)
    state = policy.snapshot()
    with pytest.raises(InvalidRequest, match=match):
        policy.select(Context("c1", {}, priors), candidates)  # type: ignore[arg-type]
    assert policy.snapshot() == state


@pytest.mark.parametrize(
    ("action", "reward", "match"),
    [
        (EMAIL, float("nan"), r"`reward` must be a finite number, got nan"),
        (EMAIL, "1", r"`reward` must be a finite number, got '1'"),
        (EMAIL.key, 1.0, r"`action` must be a JointAction, got 'welcome/email/now'"),
    ],
)
def test_bad_updates_name_the_field(
    make_policy: Callable[[], Policy], action: object, reward: object, match: str
) -> None:
    policy = trained(make_policy)
    state = policy.snapshot()
    with pytest.raises(InvalidRequest, match=match):
        policy.update(contexts(1)[0], action, reward, first=True)  # type: ignore[arg-type]
    assert policy.snapshot() == state
