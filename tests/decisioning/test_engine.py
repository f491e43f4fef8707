"""DecisionEngine over the real SQLite log and state store, with in-test features and model."""

from __future__ import annotations

import math
import pickle
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from decisioning import DecisionEngine, EpsilonGreedy, UniformRandom
from features.errors import Conflict, InvalidRequest, NotFound
from models import OnlineRecalibrator

if TYPE_CHECKING:  # only for annotations: the fixtures come from conftest
    from conftest import EngineFactory, TableModel, TickingClock

HOUR = timedelta(hours=1)


def test_a_decision_is_logged_as_returned(make_engine: EngineFactory) -> None:
    engine = make_engine()
    decision = engine.decide("c1")
    assert engine.log.count_decisions() == 1
    assert engine.log.get_decision(decision.decision_id) == decision
    assert decision.candidates == ("email", "sms", "push")
    assert decision.model_version == "v1"
    assert decision.policy_version == "epsilon-greedy(epsilon=0.1,learning_rate=0.05)+0"
    assert decision.decided_at == datetime(2024, 5, 1, 9, 0, 0, 1000, tzinfo=UTC)
    assert decision.features == {"recency": 3, "channel": "web", "vip": 0}
    assert decision.missing_features == ()
    assert {a: s.prior for a, s in decision.scores.items()} == {
        "email": 0.30,
        "sms": 0.20,
        "push": 0.10,
    }
    assert decision.propensity == decision.scores[decision.action].probability


def test_candidates_restrict_the_choice_and_the_priors(make_engine: EngineFactory) -> None:
    engine = make_engine()
    for _ in range(30):
        decision = engine.decide("c1", candidates=["push", "sms"])
        assert decision.action in {"push", "sms"}
        assert decision.candidates == ("push", "sms")
        assert set(decision.scores) == {"push", "sms"}


def test_context_overrides_and_extends_the_store(make_engine: EngineFactory) -> None:
    engine = make_engine()
    decision = engine.decide("c3", context={"vip": 1, "channel": "app", "page": "cart"})
    assert decision.features == {"recency": 7, "channel": "app", "vip": 1, "page": "cart"}
    assert decision.missing_features == ()  # the store lacked channel; the request gave it
    assert decision.scores["email"].prior == pytest.approx(0.35, abs=1e-12)  # vip lift


def test_an_unknown_customer_gets_a_decision_with_every_feature_missing(
    make_engine: EngineFactory,
) -> None:
    decision = make_engine().decide("stranger")
    assert decision.missing_features == ("recency", "channel", "vip")
    assert decision.features == {"recency": None, "channel": None, "vip": None}


BAD_DECISIONS: list[tuple[dict[str, Any], str]] = [
    ({"customer_id": ""}, r"`customer_id` must be a non-empty string, got ''"),
    ({"customer_id": "   "}, r"`customer_id` must be a non-empty string"),
    ({"customer_id": None}, r"`customer_id` must be a non-empty string, got None"),
    ({"candidates": []}, r"`candidates` must be a non-empty list of distinct actions"),
    ({"candidates": ["sms", "sms"]}, r"`candidates` .*distinct.*got \['sms', 'sms'\]"),
    ({"candidates": ["fax"]}, r"`candidates` .*one of \['email', 'push', 'sms'\], got \['fax'\]"),
    ({"candidates": "email"}, r"`candidates` must be a non-empty list"),
    ({"context": {"spend": math.nan}}, r"`context.spend` must be a finite number, got nan"),
    ({"context": {"spend": math.inf}}, r"`context.spend` must be a finite number, got inf"),
    ({"context": {"tags": ["a"]}}, r"`context.tags` must be a number, a string or null"),
    ({"context": "vip"}, r"`context` must be a mapping"),
]


@pytest.mark.parametrize(("kwargs", "match"), BAD_DECISIONS)
def test_a_rejected_decision_names_the_field_and_logs_nothing(
    make_engine: EngineFactory, kwargs: dict[str, Any], match: str
) -> None:
    engine = make_engine()
    engine.decide("c1")
    version = engine.policy.version
    with pytest.raises(InvalidRequest, match=match):
        engine.decide(**{"customer_id": "c1", **kwargs})
    assert engine.log.count_decisions() == 1
    assert engine.policy.version == version


def test_the_same_outcome_twice_counts_and_teaches_once(make_engine: EngineFactory) -> None:
    engine = make_engine()
    decision = engine.decide("c1")
    when = decision.decided_at + HOUR
    first = engine.record_outcome(decision.decision_id, event="click", occurred_at=when)
    # The same instant written with another offset is the same outcome.
    again = engine.record_outcome(
        decision.decision_id, event="click", occurred_at=when.astimezone(timezone(-5 * HOUR))
    )
    assert (first.new, first.learned) == (True, True)
    assert (again.new, again.learned) == (False, False)
    assert again.outcome.outcome_id == first.outcome.outcome_id
    assert first.outcome.outcome_id == f"{decision.decision_id}:click:{when.isoformat()}"
    assert engine.log.outcomes(decision.decision_id) == [first.outcome]
    assert engine.policy.version.endswith("+1")


def test_a_second_outcome_is_logged_but_not_learned(make_engine: EngineFactory) -> None:
    engine = make_engine()
    decision = engine.decide("c1")
    click = engine.record_outcome(
        decision.decision_id, event="click", occurred_at=decision.decided_at + HOUR
    )
    buy = engine.record_outcome(
        decision.decision_id, event="purchase", value=49.9, occurred_at=decision.decided_at + HOUR
    )
    assert (click.learned, buy.new, buy.learned) == (True, True, False)
    assert [o.event for o in engine.log.outcomes(decision.decision_id)] == ["click", "purchase"]
    assert (buy.outcome.value, buy.outcome.reward) == (49.9, 49.9)
    assert engine.policy.version.endswith("+1")


def test_a_reward_is_logged_as_event_reward(make_engine: EngineFactory) -> None:
    engine = make_engine()
    decision = engine.decide("c1")
    receipt = engine.record_outcome(
        decision.decision_id, reward=0.0, occurred_at=decision.decided_at, outcome_id="crm-17"
    )
    assert receipt.outcome.outcome_id == "crm-17"
    assert (receipt.outcome.event, receipt.outcome.value, receipt.outcome.reward) == (
        "reward",
        0.0,
        0.0,
    )
    assert receipt.learned


def test_learning_uses_the_decision_time_priors_and_clips_the_reward(
    make_engine: EngineFactory, model: TableModel
) -> None:
    engine = make_engine(policy=EpsilonGreedy(epsilon=0.0))
    decision = engine.decide("c2")  # a VIP: every prior is lifted by 0.05
    model.priors = {"email": 0.9, "sms": 0.9, "push": 0.9}  # a new day, a different model
    engine.record_outcome(decision.decision_id, reward=7.5, occurred_at=decision.decided_at)

    expected = OnlineRecalibrator(learning_rate=0.05)
    expected.learn_one("email", 0.35, 1.0)
    learned = engine.policy.recalibrator_  # type: ignore[attr-defined]
    assert decision.action == "email"
    assert learned.predict_one("email", 0.35) == expected.predict_one("email", 0.35)
    assert engine.log.outcomes(decision.decision_id)[0].reward == 7.5  # logged as given


def test_outcomes_of_another_model_version_are_logged_not_learned(
    make_engine: EngineFactory,
) -> None:
    old = make_engine(model_version="v1").decide("c1")
    engine = make_engine(model_version="v2")
    receipt = engine.record_outcome(old.decision_id, reward=1.0, occurred_at=old.decided_at)
    assert (receipt.new, receipt.learned) == (True, False)
    assert engine.policy.version.endswith("+0")


def test_an_unknown_decision_is_not_found(make_engine: EngineFactory) -> None:
    engine = make_engine()
    with pytest.raises(NotFound, match="decision 'nope' not found"):
        engine.record_outcome("nope", reward=1.0, occurred_at=datetime(2024, 6, 1, tzinfo=UTC))


BAD_OUTCOMES: list[tuple[dict[str, Any], str]] = [
    ({}, r"`reward` or `event` must be given"),
    ({"reward": 1.0, "event": "click"}, r"`event` must not be given together with `reward`"),
    ({"reward": math.nan}, r"`reward` must be a finite number, got nan"),
    ({"reward": "1"}, r"`reward` must be a finite number, got '1'"),
    ({"event": ""}, r"`event` must be a non-empty string of at most 64 characters"),
    ({"event": "x" * 65}, r"`event` must be a non-empty string of at most 64 characters"),
    ({"event": "buy", "value": math.inf}, r"`value` must be a finite number, got inf"),
    ({"reward": 1.0, "occurred_at": datetime(2024, 5, 2)}, r"`occurred_at` must include a time"),
    ({"reward": 1.0, "occurred_at": "2024-05-02"}, r"`occurred_at` must be a datetime"),
    ({"reward": 1.0, "outcome_id": ""}, r"`outcome_id` must be a non-empty string"),
    (
        {"reward": 1.0, "occurred_at": datetime(2024, 5, 1, 8, 59, tzinfo=UTC)},
        r"`occurred_at` must not be before the decision at 2024-05-01T09:00:00.001000\+00:00",
    ),
]


@pytest.mark.parametrize(("kwargs", "match"), BAD_OUTCOMES)
def test_a_rejected_outcome_names_the_field_and_changes_nothing(
    make_engine: EngineFactory, kwargs: dict[str, Any], match: str
) -> None:
    engine = make_engine()
    decision = engine.decide("c1")
    arguments = {"occurred_at": decision.decided_at + HOUR, **kwargs}
    with pytest.raises(InvalidRequest, match=match):
        engine.record_outcome(decision.decision_id, **arguments)
    assert engine.log.outcomes(decision.decision_id) == []
    assert engine.policy.version.endswith("+0")


def test_a_restart_keeps_the_decisions_and_what_the_policy_learned(
    make_engine: EngineFactory, clock: TickingClock
) -> None:
    engine = make_engine()
    made = [engine.decide(f"c{1 + i % 3}") for i in range(40)]
    for i, decision in enumerate(made):
        engine.record_outcome(
            decision.decision_id, reward=float(i % 4 == 0), occurred_at=decision.decided_at
        )

    restarted = make_engine(policy=EpsilonGreedy(epsilon=0.1, seed=0))
    assert restarted.log.count_decisions() == 40
    assert [restarted.log.get_decision(d.decision_id) for d in made] == made
    assert restarted.policy.version == engine.policy.version
    assert restarted.policy.version.endswith("+40")
    before = engine.policy.recalibrator_  # type: ignore[attr-defined]
    after = restarted.policy.recalibrator_  # type: ignore[attr-defined]
    for action in ("email", "sms", "push"):
        assert after.n_updates(action) == before.n_updates(action)
        assert after.predict_one(action, 0.2) == before.predict_one(action, 0.2)
    assert pickle.dumps(after) == pickle.dumps(before)


def test_stored_state_of_a_differently_configured_policy_is_a_conflict(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    decision = engine.decide("c1")
    engine.record_outcome(decision.decision_id, reward=1.0, occurred_at=decision.decided_at)
    with pytest.raises(Conflict, match=r"stored under 'policy' is for epsilon-greedy\(epsilon=0.1"):
        make_engine(policy=EpsilonGreedy(epsilon=0.2))
    with pytest.raises(Conflict, match="is for epsilon-greedy"):
        make_engine(policy=UniformRandom())
    assert make_engine(policy=UniformRandom(), state_key="uniform").policy.version == (
        "uniform-random"
    )


def test_actions_must_be_ones_the_model_scores(make_engine: EngineFactory) -> None:
    assert make_engine(actions=["sms", "email"]).decide("c1").candidates == ("sms", "email")
    with pytest.raises(InvalidRequest, match=r"`actions` must be .* \['email', 'push', 'sms'\]"):
        make_engine(actions=["fax"])


def test_a_naive_clock_is_a_programming_error(make_engine: EngineFactory) -> None:
    engine = make_engine(clock=lambda: datetime(2024, 5, 1, 9))
    with pytest.raises(ValueError, match="clock must return a time-zone-aware datetime"):
        engine.decide("c1")
    assert engine.log.count_decisions() == 0


def test_a_policy_that_learns_nothing_still_gets_its_outcomes_logged(
    make_engine: EngineFactory,
) -> None:
    engine: DecisionEngine = make_engine(policy=UniformRandom(seed=2), state_key="uniform")
    decision = engine.decide("c1")
    receipt = engine.record_outcome(
        decision.decision_id, reward=1.0, occurred_at=decision.decided_at
    )
    assert (decision.propensity, decision.explored) == (pytest.approx(1 / 3, abs=1e-15), True)
    assert (receipt.new, receipt.learned) == (True, True)
    assert engine.policy.version == "uniform-random"
