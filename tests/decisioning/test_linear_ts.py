"""LinearThompson: what it learns, how learning adds up across processes, and its probabilities."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from scipy.stats import norm

from decisioning import Context, JointAction, LinearThompson
from decisioning.joint_features import FIXED_FEATURES, JointFeaturizer
from decisioning.linear_ts import thompson_probabilities
from features.errors import InvalidRequest

AT = datetime(2024, 5, 1, 9, tzinfo=UTC)
EMAIL = JointAction("promo", "email", "now", AT)
SMS = JointAction("promo", "sms", "now", AT)
PUSH = JointAction("promo", "push", "evening", AT)
NO_SEND = JointAction.no_send()
ARMS = (EMAIL, SMS, PUSH, NO_SEND)


def context(engagement: dict[str, float] | None = None, priors: float = 0.2) -> Context:
    features = {f"engagement_{c}": v for c, v in (engagement or {}).items()}
    return Context(
        "c1",
        features,
        {a.key: (priors if a.is_send else 0.0) for a in ARMS},
        {a.key: 33 for a in ARMS if a.is_send},
    )


def random_stream(n: int, seed: int) -> list[tuple[Context, JointAction, float, bool]]:
    """Updates over varied contexts and actions, some of them later changes of a reward."""
    rng = np.random.default_rng(seed)
    stream = []
    for _ in range(n):
        ctx = Context(
            "c",
            {"engagement_email": float(rng.random()), "activity_hour_9": float(rng.random())},
            {a.key: float(rng.uniform(-0.1, 0.5)) for a in ARMS},
            {a.key: 33 for a in ARMS if a.is_send},
        )
        action = ARMS[int(rng.integers(len(ARMS)))]
        stream.append((ctx, action, float(rng.random() < 0.3), True))
        if rng.random() < 0.3:
            stream.append((ctx, action, float(rng.random()), False))
    return stream


def estimates(policy: LinearThompson, contexts: list[Context]) -> np.ndarray:
    return np.array([policy.predict(c, ARMS)[0] for c in contexts])


# -- learning ------------------------------------------------------------------------------


def test_untrained_means_are_the_priors_and_rank_like_the_model() -> None:
    policy = LinearThompson(seed=0)
    ctx = Context("c1", {}, {EMAIL.key: 0.3, SMS.key: -0.05, PUSH.key: 0.1, NO_SEND.key: 0.0})
    pick = policy.select(ctx, ARMS)
    assert {k: s.mean for k, s in pick.scores.items()} == pytest.approx(dict(ctx.priors), abs=1e-12)
    assert {k: s.prior for k, s in pick.scores.items()} == dict(ctx.priors)


def test_learns_the_channel_the_customer_engages_with() -> None:
    # The model's prior prefers sms; the world pays email to engaged customers
    # (0.1 + 0.5 x engagement) and sms a flat 0.15. Engagement varies, so the policy
    # must learn the weight of engagement, shared by every channel.
    rng = np.random.default_rng(3)
    policy = LinearThompson(noise=0.5, seed=4)

    def truth(key: str, e: float) -> float:
        return 0.1 + 0.5 * e if key == EMAIL.key else 0.15

    arms = (EMAIL, SMS)
    late_right = late_clear = 0
    for n in range(3_000):
        e = float(rng.random())
        ctx = Context(
            "c",
            {"engagement_email": e, "engagement_sms": 0.1},
            {EMAIL.key: 0.1, SMS.key: 0.3},
            {},
        )
        pick = policy.select(ctx, arms)
        action = EMAIL if pick.action == EMAIL.key else SMS
        p = truth(action.key, e)
        policy.update(ctx, action, float(rng.random() < p), first=True)
        best = EMAIL.key if truth(EMAIL.key, e) > 0.15 else SMS.key
        if n >= 2_000 and abs(truth(EMAIL.key, e) - 0.15) > 0.1:  # clear cases: e > 0.3
            late_clear += 1
            late_right += pick.action == best
    assert late_clear > 600
    assert late_right > 0.9 * late_clear
    engaged = Context("c", {"engagement_email": 0.9}, {EMAIL.key: 0.1, SMS.key: 0.3}, {})
    means, _ = policy.predict(engaged, arms)
    assert means[0] == pytest.approx(0.55, abs=0.1)
    assert means[1] == pytest.approx(0.15, abs=0.1)


def test_uncertainty_shrinks_where_it_learned() -> None:
    policy = LinearThompson(seed=0)
    ctx = context()
    _, before = policy.predict(ctx, ARMS)
    for _ in range(100):
        policy.update(ctx, EMAIL, 0.2, first=True)
    _, after = policy.predict(ctx, ARMS)
    assert after[0] < 0.2 * before[0]
    # Sms shares the bias, the message and the slot with email, so it is surer too,
    # but less so: its channel weights were never observed.
    assert after[0] < after[1] < before[1]


def test_a_name_never_seen_has_prior_uncertainty_and_no_mean_of_its_own() -> None:
    policy = LinearThompson(prior_precision=4.0, seed=0)
    novel = JointAction("new", "fax", "dawn", AT)
    ctx = Context("c1", {}, {novel.key: 0.25})
    mean, sd = policy.predict(ctx, (novel,))
    # bias, prior (x = 0.25), 4 one-hot columns, both missing flags: each weight N(mu0, 1/4).
    assert mean[0] == pytest.approx(0.25, abs=1e-12)
    assert sd[0] == pytest.approx(math.sqrt((1 + 0.25**2 + 4 + 2) / 4.0), abs=1e-12)
    assert "message=new" not in policy.coef_  # select did not add it


# -- rewards that change later and learning shared across processes --------------------------


def test_a_later_reward_change_adds_only_to_the_target() -> None:
    once, twice = LinearThompson(seed=0), LinearThompson(seed=0)
    ctx = context({"email": 0.4})
    once.update(ctx, EMAIL, 1.0, first=True)
    twice.update(ctx, EMAIL, 0.25, first=True)
    probe = [context({"email": e}) for e in (0.0, 0.4, 1.0)]
    mean_before = estimates(twice, probe)
    sd_before = np.array([twice.predict(c, ARMS)[1] for c in probe])
    twice.update(ctx, EMAIL, 0.75, first=False)
    # Not a second observation: the posterior spread (from Σxxᵀ alone) is unchanged ...
    sd_after = np.array([twice.predict(c, ARMS)[1] for c in probe])
    np.testing.assert_array_equal(sd_after, sd_before)
    # ... and the mean is that of one observation of the total reward, 0.25 + 0.75.
    assert not np.allclose(estimates(twice, probe), mean_before)
    np.testing.assert_allclose(estimates(twice, probe), estimates(once, probe), atol=1e-12)
    assert twice.version.endswith("+2")


def test_additive_sharing_equals_learning_everything_in_one_process() -> None:
    stream = random_stream(600, seed=1)
    alone = LinearThompson(seed=0)
    for ctx, action, reward, first in stream:
        alone.update(ctx, action, reward, first=first)
    # Three workers see different parts, and so meet the names in different orders.
    workers = [LinearThompson(seed=w) for w in range(3)]
    for n, (ctx, action, reward, first) in enumerate(reversed(stream)):
        workers[(n // 7) % 3].update(ctx, action, reward, first=first)
    assert list(workers[0].coef_) != list(workers[1].coef_)  # columns in different orders
    snapshots = [w.snapshot() for w in workers]
    for w, worker in enumerate(workers):
        worker.absorb([s for v, s in enumerate(snapshots) if v != w])
        # Absorbing again replaces, it never double counts.
        worker.absorb([s for v, s in enumerate(snapshots) if v != w])
    # A restarted process starts from everyone's snapshots.
    restarted = LinearThompson(seed=9)
    restarted.absorb(snapshots)
    probe = [ctx for ctx, *_ in stream[:25]]
    expected = estimates(alone, probe)
    for policy in (*workers, restarted):
        assert policy.version == alone.version
        np.testing.assert_allclose(estimates(policy, probe), expected, rtol=0, atol=1e-9)
        _, sd = policy.predict(probe[0], ARMS)
        np.testing.assert_allclose(sd, alone.predict(probe[0], ARMS)[1], rtol=0, atol=1e-9)


def test_own_learning_after_absorbing_is_still_counted_once() -> None:
    stream = random_stream(200, seed=2)
    alone, a, b = LinearThompson(), LinearThompson(), LinearThompson()
    for n, (ctx, action, reward, first) in enumerate(stream):
        alone.update(ctx, action, reward, first=first)
        (a if n % 2 else b).update(ctx, action, reward, first=first)
        if n % 50 == 0:  # periodic syncs in between
            a.absorb([b.snapshot()])
            b.absorb([a.snapshot()])
    a.absorb([b.snapshot()])
    probe = [ctx for ctx, *_ in stream[:10]]
    np.testing.assert_allclose(estimates(a, probe), estimates(alone, probe), atol=1e-9)


@pytest.mark.parametrize(
    ("blob", "match"),
    [
        (b"not a snapshot", r"`snapshots\[0\]` must be a LinearThompson snapshot"),
        (b"nudge-linear-thompson/1\n{}\n", r"`snapshots\[0\]` must be a LinearThompson snapshot"),
        (
            b'nudge-linear-thompson/1\n{"names": ["bias"], "updates": 1}\n' + b"\0" * 8,
            r"`snapshots\[0\]` must be a LinearThompson snapshot",
        ),
    ],
)
def test_a_foreign_snapshot_is_refused_by_position(blob: bytes, match: str) -> None:
    policy = LinearThompson()
    policy.update(context(), EMAIL, 1.0, first=True)
    before = policy.snapshot()
    with pytest.raises(InvalidRequest, match=match):
        policy.absorb([blob])
    assert policy.snapshot() == before


# -- probabilities -----------------------------------------------------------------------


def trained_policy(seed: int = 0) -> LinearThompson:
    policy = LinearThompson(seed=seed)
    for ctx, action, reward, first in random_stream(300, seed=7):
        policy.update(ctx, action, reward, first=first)
    return policy


def test_probabilities_are_those_of_independent_draws_from_the_marginals() -> None:
    # 400,000 simulated Thompson draws per context: each reported probability
    # within 5e-3 (the Monte-Carlo standard error is at most 8e-4).
    policy = trained_policy()
    rng = np.random.default_rng(0)
    for ctx, *_ in random_stream(5, seed=11):
        pick = policy.select(ctx, ARMS)
        mean, sd = policy.predict(ctx, ARMS)
        draws = mean + sd * rng.standard_normal((400_000, len(ARMS)))
        frequency = np.bincount(draws.argmax(axis=1), minlength=len(ARMS)) / 400_000
        reported = np.array([pick.scores[a.key].probability for a in ARMS])
        np.testing.assert_allclose(reported, frequency, atol=5e-3)


def test_the_draw_follows_the_reported_probabilities() -> None:
    policy = trained_policy(seed=5)
    ctx = random_stream(1, seed=12)[0][0]
    n = 20_000
    picks = [policy.select(ctx, ARMS) for _ in range(n)]
    for action in ARMS:
        p = picks[0].scores[action.key].probability
        share = sum(pick.action == action.key for pick in picks) / n
        assert share == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / n) + 1e-12)
    mean = {key: score.mean for key, score in picks[0].scores.items()}
    best = max(mean, key=lambda key: mean[key])
    assert all(pick.explored == (pick.action != best) for pick in picks)


def test_zero_exploration_is_greedy_on_the_posterior_mean() -> None:
    policy = LinearThompson(exploration=0.0)
    ctx = Context("c1", {}, {EMAIL.key: 0.1, SMS.key: 0.4, PUSH.key: 0.4, NO_SEND.key: 0.0})
    pick = policy.select(ctx, ARMS)
    assert {k: s.probability for k, s in pick.scores.items()} == {
        EMAIL.key: 0.0,
        SMS.key: 0.5,
        PUSH.key: 0.5,
        NO_SEND.key: 0.0,
    }
    assert pick.scores[EMAIL.key].uncertainty > 0  # reported, though not used to choose


@pytest.mark.parametrize(
    ("mean", "sd"),
    [
        ((0.1, 0.0), (0.1, 0.2)),
        ((0.1, 0.1001), (0.01, 0.0001)),
        ((0.0, 3.0), (1.0, 1.0)),
        ((5.0, 0.0), (1.0, 1.0)),
    ],
)
def test_two_candidates_match_the_closed_form(
    mean: tuple[float, float], sd: tuple[float, float]
) -> None:
    p = thompson_probabilities(np.array(mean), np.array(sd))
    exact = norm.cdf((mean[0] - mean[1]) / math.hypot(*sd))
    assert p[0] == pytest.approx(exact, abs=1e-3)
    assert p.sum() == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("case", ["untrained", "mixed", "narrow-best", "close"])
def test_fifty_five_candidates_match_a_fine_grid(case: str) -> None:
    rng = np.random.default_rng(1)
    mean, sd = {
        "untrained": (rng.normal(0.05, 0.02, 55), rng.uniform(1.5, 2.5, 55)),
        "mixed": (
            rng.normal(0.05, 0.05, 55),
            np.r_[rng.uniform(0.005, 0.02, 10), rng.uniform(0.02, 0.2, 45)],
        ),
        "narrow-best": (
            np.r_[0.2, rng.normal(0.05, 0.05, 54)],
            np.r_[0.001, rng.uniform(0.01, 0.1, 54)],
        ),
        "close": (rng.normal(0.1, 0.01, 55), rng.uniform(0.005, 0.03, 55)),
    }[case]
    p = thompson_probabilities(mean, sd)
    reference = thompson_probabilities(mean, sd, nodes=10_000)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(p >= 0)
    np.testing.assert_allclose(p, reference, atol=1.5e-3)


def test_a_candidate_far_behind_gets_exactly_zero_and_is_never_chosen() -> None:
    p = thompson_probabilities(np.array([1.0, 0.0]), np.array([0.01, 0.01]))
    assert p.tolist() == [1.0, 0.0]


# -- features --------------------------------------------------------------------------------


def test_features_read_the_channel_engagement_and_the_send_hour_activity() -> None:
    featurizer = JointFeaturizer()
    ctx = Context(
        "c1",
        {
            "engagement_email": 0.7,
            "engagement_sms": "high",  # not a number: missing
            "activity_how_33": 0.9,  # Tuesday 09:00 itself ...
            "activity_hour_9": 0.1,  # ... wins over 09:00 on any day
            "activity_hour_19": 0.4,
        },
        {EMAIL.key: 0.2, SMS.key: 0.1, PUSH.key: 0.05, NO_SEND.key: 0.0},
        {EMAIL.key: 33, SMS.key: 43, PUSH.key: 200},  # 43 = Tuesday 19:00; 200 is no hour
    )
    x = featurizer.transform(ctx, ARMS)
    column = {name: i for i, name in enumerate(featurizer.names)}
    assert featurizer.names[: len(FIXED_FEATURES)] == FIXED_FEATURES
    assert x[:, column["engagement"]].tolist() == [0.7, 0.0, 0.0, 0.0]
    assert x[:, column["engagement_missing"]].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert x[:, column["activity"]].tolist() == [0.9, 0.4, 0.0, 0.0]
    assert x[:, column["activity_missing"]].tolist() == [0.0, 0.0, 1.0, 0.0]
    assert x[:, column["no_send"]].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert x[:, column["prior"]].tolist() == [0.2, 0.1, 0.05, 0.0]
    assert x[:, column["message×channel=promo/sms"]].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert x[:, column["slot=evening"]].tolist() == [0.0, 0.0, 1.0, 0.0]
    # prior_lift: the prior minus the no-send prior (0.0 here, a candidate).
    assert x[:, column["prior_lift"]].tolist() == [0.2, 0.1, 0.05, 0.0]
    assert x.sum(axis=1).tolist() == pytest.approx(
        [1 + 0.4 + 0.7 + 0.9 + 4, 1 + 0.2 + 1 + 0.4 + 4, 1 + 0.1 + 2 + 4, 2]
    )


def test_the_vocabulary_grows_only_when_asked() -> None:
    featurizer = JointFeaturizer()
    ctx = context()
    x = featurizer.transform(ctx, (EMAIL, SMS), grow=False)
    assert featurizer.dimension == len(FIXED_FEATURES)
    # promo, email, now, promo/email, then sms and promo/sms: columns for this call only.
    assert x.shape == (2, len(FIXED_FEATURES) + 6)
    grown = featurizer.transform(ctx, (EMAIL, SMS))
    assert featurizer.names[len(FIXED_FEATURES) :] == (
        "message=promo",
        "channel=email",
        "slot=now",
        "message×channel=promo/email",
        "channel=sms",
        "message×channel=promo/sms",
    )
    assert np.array_equal(grown, x)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prior_precision": 0.0}, r"`prior_precision` must be a finite number > 0, got 0.0"),
        ({"noise": -1}, r"`noise` must be a finite number > 0, got -1"),
        ({"noise": float("inf")}, r"`noise` must be a finite number > 0, got inf"),
        ({"exploration": -0.5}, r"`exploration` must be a finite number >= 0, got -0.5"),
        ({"seed": -1}, r"`seed` must be a non-negative integer, got -1"),
        ({"nodes": 4}, r"`nodes` must be an integer in \[8, 10000\], got 4"),
    ],
)
def test_bad_parameters_name_the_field(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        LinearThompson(**kwargs)  # type: ignore[arg-type]


def test_forget_takes_back_exactly_what_a_first_update_taught() -> None:
    from decisioning.linear_ts import LinearThompson
    from decisioning.types import Context, JointAction

    policy = LinearThompson(seed=1)
    action = JointAction("welcome", "email", "now", None)
    other = JointAction("news", "sms", "now", None)
    context = Context("c1", {"engagement_email": 0.4}, {action.key: 0.2, other.key: 0.1})
    policy.update(context, other, 1.0, first=True)
    before = policy.snapshot()
    policy.update(context, action, -0.05, first=True)
    assert policy.snapshot() != before
    policy.forget(context, action, -0.05)
    after = LinearThompson(seed=1)
    after.absorb([policy.snapshot()])
    reference = LinearThompson(seed=1)
    reference.absorb([before])
    # The forgotten action's columns remain, at their prior weight of zero.
    expected = {name: reference.coef_.get(name, 0.0) for name in after.coef_}
    assert after.coef_ == pytest.approx(expected, abs=1e-12)
    assert after.n_updates_ == reference.n_updates_ == 1
