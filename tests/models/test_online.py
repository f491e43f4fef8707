"""OnlineRecalibrator: starts at the prior, moves toward the observed reward rate."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from river import linear_model, optim

from features.errors import InvalidRequest
from models import OnlineRecalibrator


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


@pytest.mark.parametrize("prior", [0.0, 1e-9, 0.1, 0.5, 0.97, 1.0])
def test_untrained_returns_the_prior_exactly(prior: float) -> None:
    recal = OnlineRecalibrator()
    assert recal.predict_one("email", prior) == prior
    assert recal.n_updates("email") == 0


def test_one_update_moves_only_its_own_action() -> None:
    recal = OnlineRecalibrator(learning_rate=0.05)
    recal.learn_one("email", 0.1, reward=1.0)
    assert recal.predict_one("email", 0.1) > 0.1
    assert recal.predict_one("sms", 0.1) == 0.1
    assert (recal.n_updates("email"), recal.n_updates("sms"), recal.total_updates) == (1, 0, 1)


def test_first_update_is_one_sgd_step_from_weight_one_intercept_zero() -> None:
    # Pins the initialisation: gradient of the log loss at z = logit(0.1) with y = 1
    # is (0.1 - 1), so a = 1 - lr * (0.1 - 1) * logit(0.1) and b = 0 - lr * (0.1 - 1).
    lr = 0.05
    recal = OnlineRecalibrator(learning_rate=lr)
    recal.learn_one("email", 0.1, reward=1.0)
    z = _logit(0.1)
    a, b = 1.0 - lr * (0.1 - 1.0) * z, -lr * (0.1 - 1.0)
    assert recal.predict_one("email", 0.1) == pytest.approx(_sigmoid(a * z + b), abs=1e-12)


def test_binary_rewards_learn_exactly_as_a_river_logistic_regression_would() -> None:
    # Pins the initialisation (weight 1, intercept 0) and the prediction shortcut
    # against river's own model on the prior's logit.
    river_model = linear_model.LogisticRegression(
        optimizer=optim.SGD(0.05),
        intercept_init=0.0,
        intercept_lr=0.05,
        initializer=optim.initializers.Constant(1.0),
    )
    recal = OnlineRecalibrator(learning_rate=0.05)
    rng = np.random.default_rng(3)
    for _ in range(500):
        prior = float(rng.uniform(0.01, 0.9))
        reward = float(rng.random() < 0.4)
        river_model.learn_one({"prior_logit": _logit(prior)}, reward)
        recal.learn_one("email", prior, reward)
    for prior in (0.01, 0.1, 0.5, 0.9):
        expected = river_model.predict_proba_one({"prior_logit": _logit(prior)})[True]
        assert recal.predict_one("email", prior) == pytest.approx(expected, abs=1e-15)


def test_fractional_rewards_are_learned_as_soft_labels() -> None:
    # river's own Log loss would truncate 0.3 to 0 and never move.
    recal = OnlineRecalibrator(learning_rate=0.05)
    for _ in range(3000):
        recal.learn_one("email", 0.1, reward=0.3)
    assert recal.predict_one("email", 0.1) == pytest.approx(0.3, abs=1e-3)


def test_bernoulli_rewards_pull_a_miscalibrated_prior_toward_the_truth() -> None:
    # The model says 0.1, the world pays 0.3; constant-rate SGD keeps some noise,
    # so the tolerance is about three of its standard deviations at this rate.
    rng = np.random.default_rng(0)
    recal = OnlineRecalibrator(learning_rate=0.01)
    for _ in range(4000):
        recal.learn_one("email", 0.1, reward=float(rng.random() < 0.3))
    assert recal.predict_one("email", 0.1) == pytest.approx(0.3, abs=0.1)


def test_learns_a_correction_that_depends_on_the_prior() -> None:
    # Truth: the model is too pessimistic by one unit of log-odds at every prior.
    rng = np.random.default_rng(1)
    recal = OnlineRecalibrator(learning_rate=0.01)
    for _ in range(8000):
        prior = float(rng.uniform(0.02, 0.5))
        truth = _sigmoid(_logit(prior) + 1.0)
        recal.learn_one("email", prior, reward=float(rng.random() < truth))
    grid = np.linspace(0.05, 0.45, 9)
    truth = np.array([_sigmoid(_logit(p) + 1.0) for p in grid])
    learned = np.array([recal.predict_one("email", float(p)) for p in grid])
    before = np.abs(grid - truth).mean()
    after = np.abs(learned - truth).mean()
    # Over seeds 0-14 the error after learning ranged 0.002-0.078: at least halved.
    assert before == pytest.approx(0.198, abs=0.001)
    assert after < before / 2


def test_rewards_outside_the_unit_interval_are_clipped_for_learning() -> None:
    clipped, big = OnlineRecalibrator(), OnlineRecalibrator()
    for _ in range(50):
        clipped.learn_one("email", 0.2, reward=1.0)
        big.learn_one("email", 0.2, reward=42.0)
    assert big.predict_one("email", 0.2) == clipped.predict_one("email", 0.2)


def test_extreme_priors_are_clipped_before_the_logit() -> None:
    recal = OnlineRecalibrator()
    recal.learn_one("email", 0.0, reward=0.0)
    recal.learn_one("email", 1.0, reward=1.0)
    assert 0.0 <= recal.predict_one("email", 0.0) < 1e-3
    assert 1.0 - 1e-3 < recal.predict_one("email", 1.0) <= 1.0


def test_pickle_round_trip_keeps_what_was_learned() -> None:
    recal = OnlineRecalibrator(learning_rate=0.02)
    rng = np.random.default_rng(2)
    for _ in range(300):
        recal.learn_one("email", 0.2, reward=float(rng.random() < 0.5))
    copy = pickle.loads(pickle.dumps(recal))
    assert copy.predict_one("email", 0.2) == recal.predict_one("email", 0.2)
    assert copy.n_updates("email") == 300
    copy.learn_one("email", 0.2, reward=1.0)
    recal.learn_one("email", 0.2, reward=1.0)
    assert copy.predict_one("email", 0.2) == recal.predict_one("email", 0.2)


def test_clone_is_untrained_with_the_same_learning_rate() -> None:
    recal = OnlineRecalibrator(learning_rate=0.02)
    recal.learn_one("email", 0.2, reward=1.0)
    fresh = recal.clone()
    assert fresh.learning_rate == 0.02
    assert fresh.total_updates == 0
    assert fresh.predict_one("email", 0.2) == 0.2


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: OnlineRecalibrator(learning_rate=0.0), r"`learning_rate` must be .* > 0"),
        (lambda: OnlineRecalibrator(learning_rate=float("nan")), r"`learning_rate`"),
        (lambda: OnlineRecalibrator().predict_one("", 0.1), r"`action` must be a non-empty"),
        (lambda: OnlineRecalibrator().predict_one("a", 1.5), r"`prior` must be .* \[0, 1\]"),
        (lambda: OnlineRecalibrator().predict_one("a", float("nan")), r"`prior`"),
        (lambda: OnlineRecalibrator().learn_one("a", 0.1, float("inf")), r"`reward` must be"),
    ],
)
def test_bad_input_names_the_field(call: object, match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        call()  # type: ignore[operator]
