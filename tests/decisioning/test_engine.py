"""DecisionEngine over the real SQLite log and state store, with in-test features and model."""

from __future__ import annotations

import math
import pickle
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from decisioning import DEFAULT_REWARD_BY_EVENT, DecisionEngine, EpsilonGreedy, UniformRandom
from features import FeatureRow
from features.errors import Conflict, InvalidRequest, NotFound
from models import ArmPropensityModel, OnlineRecalibrator

if TYPE_CHECKING:  # only for annotations: the fixtures come from conftest
    from conftest import EngineFactory, TableModel, TickingClock

HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)
EVENTS = r"\['click', 'complaint', 'conversion', 'open', 'unsubscribe', 'visit'\]"


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
    (
        {"context": {f"k{i}": i for i in range(257)}},
        r"`context` must have at most 256 keys, got 257",
    ),
    ({"context": {"": 1}}, r"`context` keys must be strings of 1 to 128 characters, got ''"),
    (
        {"context": {"k" * 129: 1}},
        r"`context` keys must be .*, got 'k{20}\.\.\. \(129 characters\)'",
    ),
    ({"context": {7: 1}}, r"`context` keys must be strings of 1 to 128 characters, got 7"),
    (
        {"context": {"note": "x" * 1025}},
        r"`context.note` must be a string of at most 1024 characters, got 'x{20}\.\.\. \(1025",
    ),
    # The model cannot use it: the error names the caller's field, not the model's.
    ({"context": {"recency": "abc"}}, r"`context.recency` must be a number or None, got 'abc'"),
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


def test_the_largest_context_allowed_is_accepted(make_engine: EngineFactory) -> None:
    context = {f"k{i:03d}".ljust(128, "_"): "x" * 1024 for i in range(256)}
    assert make_engine().decide("c1", context=context).features.keys() >= context.keys()


def test_a_stored_feature_the_model_cannot_use_is_not_blamed_on_the_context(
    make_engine: EngineFactory,
) -> None:
    class OddFeatures:
        def get(self, customer_id: str) -> FeatureRow:
            return FeatureRow(customer_id, {"recency": "abc", "vip": None}, ("vip",))

    engine = make_engine(features=OddFeatures())
    with pytest.raises(InvalidRequest, match=r"`features\['recency'\]` must be a number"):
        engine.decide("odd", context={"vip": 1})
    assert engine.decide("odd", context={"recency": 4}).features["recency"] == 4
    assert engine.log.count_decisions() == 1


def test_a_context_value_the_real_model_cannot_use_names_the_context_field(
    make_engine: EngineFactory,
) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"recency": rng.integers(1, 13, 300), "vip": rng.integers(0, 2, 300)})
    arm = pd.Series(rng.choice(["email", "sms"], 300))
    model = ArmPropensityModel(num_boost_round=2, min_data_in_leaf=10).fit(
        frame, arm, rng.integers(0, 2, 300)
    )
    engine = make_engine(model=model)
    with pytest.raises(InvalidRequest, match=r"`context.recency` must be a number or None") as err:
        engine.decide("c1", context={"recency": "abc"})
    assert (err.value.field, err.value.got) == ("context.recency", "abc")
    assert engine.log.count_decisions() == 0


def test_the_same_outcome_twice_counts_and_teaches_once(
    make_engine: EngineFactory, clock: TickingClock
) -> None:
    engine = make_engine()
    decision = engine.decide("c1")
    clock.advance(HOUR)
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


def test_a_second_outcome_is_logged_but_not_learned(
    make_engine: EngineFactory, clock: TickingClock
) -> None:
    engine = make_engine()
    decision = engine.decide("c1")
    clock.advance(HOUR)
    click = engine.record_outcome(
        decision.decision_id, event="click", occurred_at=decision.decided_at + HOUR
    )
    buy = engine.record_outcome(
        decision.decision_id, event="conversion", value=49.9, occurred_at=decision.decided_at + HOUR
    )
    assert (click.learned, buy.new, buy.learned) == (True, True, False)
    assert [o.event for o in engine.log.outcomes(decision.decision_id)] == ["click", "conversion"]
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
        engine.record_outcome("nope", reward=1.0, occurred_at=datetime(2024, 5, 1, tzinfo=UTC))


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
        r"`occurred_at` must not be before the decision at 2024-05-01T09:00:00.001000\+00:00 "
        r"\(by more than 2 seconds\), got '2024-05-01T08:59:00\+00:00'",
    ),
    (  # 2.002 seconds early: past the clock-skew tolerance
        {"reward": 1.0, "occurred_at": datetime(2024, 5, 1, 8, 59, 57, 999000, tzinfo=UTC)},
        r"`occurred_at` must not be before the decision .* \(by more than 2 seconds\)",
    ),
    (  # the engine's clock reads 10:00:00.002 when the outcome is posted
        {"reward": 1.0, "occurred_at": datetime(2024, 5, 1, 10, 5, 1, tzinfo=UTC)},
        r"`occurred_at` must not be in the future \(more than 5 minutes past now\), "
        r"got '2024-05-01T10:05:01\+00:00'",
    ),
    (
        {
            "reward": 1.0,
            "occurred_at": datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(-14 * HOUR)),
        },
        r"`occurred_at` must be a moment that exists in UTC, between 0001-01-01 and 9999-12-31, "
        r"got '9999-12-31T23:59:59-14:00'",
    ),
    (
        {"event": "click", "occurred_at": datetime(1, 1, 1, tzinfo=timezone(14 * HOUR))},
        r"`occurred_at` must be a moment that exists in UTC, .*, got '0001-01-01T00:00:00\+14:00'",
    ),
    ({"event": "purchase"}, rf"`event` must be one of {EVENTS}, got 'purchase'"),
    ({"event": "reward", "value": 1.0}, rf"`event` must be one of {EVENTS}, got 'reward'"),
    ({"event": "Click"}, rf"`event` must be one of {EVENTS}, got 'Click'"),
]


@pytest.mark.parametrize(("kwargs", "match"), BAD_OUTCOMES)
def test_a_rejected_outcome_names_the_field_and_changes_nothing(
    make_engine: EngineFactory, clock: TickingClock, kwargs: dict[str, Any], match: str
) -> None:
    engine = make_engine()
    decision = engine.decide("c1")
    clock.advance(HOUR)
    arguments = {"occurred_at": decision.decided_at + HOUR, **kwargs}
    with pytest.raises(InvalidRequest, match=match):
        engine.record_outcome(decision.decision_id, **arguments)
    assert engine.log.outcomes(decision.decision_id) == []
    assert engine.log.count_decisions() == 1
    assert engine.policy.version.endswith("+0")


@pytest.mark.parametrize(
    "early",
    [SECOND, 2 * SECOND, timedelta(microseconds=1)],
    ids=["1s", "2s", "1us"],
)
def test_an_outcome_a_little_before_its_decision_is_clock_skew_and_accepted(
    make_engine: EngineFactory, early: timedelta
) -> None:
    engine = make_engine()
    decision = engine.decide("c1")
    receipt = engine.record_outcome(
        decision.decision_id, event="click", occurred_at=decision.decided_at - early
    )
    assert (receipt.new, receipt.learned) == (True, True)
    assert engine.log.outcomes(decision.decision_id) == [receipt.outcome]
    assert receipt.outcome.occurred_at == decision.decided_at - early  # logged as given


def test_an_outcome_up_to_the_future_tolerance_is_accepted(make_engine: EngineFactory) -> None:
    engine = make_engine()
    decision = engine.decide("c1")
    receipt = engine.record_outcome(
        decision.decision_id,
        reward=1.0,
        occurred_at=decision.decided_at + timedelta(minutes=4, seconds=59),
    )
    assert receipt.new


def test_the_tolerances_are_configurable(make_engine: EngineFactory, clock: TickingClock) -> None:
    engine = make_engine(future_tolerance=timedelta(0), skew_tolerance=timedelta(0))
    decision = engine.decide("c1")
    with pytest.raises(InvalidRequest, match=r"`occurred_at` must not be before .* 0 seconds"):
        engine.record_outcome(
            decision.decision_id, reward=1.0, occurred_at=decision.decided_at - SECOND / 1000
        )
    with pytest.raises(InvalidRequest, match=r"in the future \(more than 0 seconds past now\)"):
        engine.record_outcome(
            decision.decision_id, reward=1.0, occurred_at=clock.now + timedelta(minutes=1)
        )
    lenient = make_engine(future_tolerance=timedelta(days=2), skew_tolerance=timedelta(minutes=1))
    assert lenient.record_outcome(
        decision.decision_id, reward=1.0, occurred_at=decision.decided_at - 30 * SECOND
    ).new
    assert lenient.record_outcome(
        decision.decision_id, event="click", occurred_at=clock.now + timedelta(days=1)
    ).new


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"future_tolerance": timedelta(seconds=-1)}, r"`future_tolerance` must be a non-negative"),
        (
            {"future_tolerance": 300},
            r"`future_tolerance` must be a non-negative timedelta, got 300",
        ),
        ({"skew_tolerance": timedelta(days=-1)}, r"`skew_tolerance` must be a non-negative"),
        ({"reward_by_event": ["click"]}, r"`reward_by_event` must be a mapping of event names"),
        ({"reward_by_event": {"": 1.0}}, r"`event` must be a non-empty string"),
        ({"reward_by_event": {"x": math.nan}}, r"`reward_by_event\['x'\]` must be a finite number"),
        ({"reward_by_event": {"x": True}}, r"`reward_by_event\['x'\]` must be a finite number"),
    ],
)
def test_bad_engine_settings_are_rejected(
    make_engine: EngineFactory, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidRequest, match=match):
        make_engine(**kwargs)


@pytest.mark.parametrize(
    ("event", "value", "reward"),
    [
        ("visit", None, 1.0),
        ("click", None, 1.0),
        ("conversion", None, 1.0),
        ("conversion", 49.9, 49.9),
        ("open", None, 0.0),
        ("unsubscribe", None, 0.0),
        ("complaint", None, 0.0),
        ("unsubscribe", 0.25, 0.25),  # a value given is the reward
    ],
)
def test_an_event_is_worth_its_mapped_reward_unless_a_value_is_given(
    make_engine: EngineFactory, event: str, value: float | None, reward: float
) -> None:
    engine = make_engine(policy=EpsilonGreedy(epsilon=0.0))
    decision = engine.decide("c1")
    receipt = engine.record_outcome(
        decision.decision_id, event=event, value=value, occurred_at=decision.decided_at
    )
    assert (receipt.outcome.event, receipt.outcome.value, receipt.outcome.reward) == (
        event,
        reward,
        reward,
    )
    assert receipt.learned
    expected = OnlineRecalibrator(learning_rate=0.05)
    expected.learn_one(decision.action, 0.30, min(reward, 1.0))
    learned = engine.policy.recalibrator_  # type: ignore[attr-defined]
    assert learned.predict_one(decision.action, 0.30) == expected.predict_one(decision.action, 0.30)


def test_an_unsubscribe_does_not_teach_the_policy_a_reward(make_engine: EngineFactory) -> None:
    engine = make_engine(policy=EpsilonGreedy(epsilon=0.0))
    decision = engine.decide("c1")
    engine.record_outcome(
        decision.decision_id, event="unsubscribe", occurred_at=decision.decided_at
    )
    learned = engine.policy.recalibrator_  # type: ignore[attr-defined]
    assert learned.predict_one(decision.action, 0.30) < 0.30


def test_the_event_mapping_is_configurable(make_engine: EngineFactory) -> None:
    engine = make_engine(reward_by_event={"purchase": 1.0, "bounce": 0.0})
    assert dict(engine.reward_by_event) == {"purchase": 1.0, "bounce": 0.0}
    assert dict(make_engine().reward_by_event) == dict(DEFAULT_REWARD_BY_EVENT)
    decision = engine.decide("c1")
    with pytest.raises(InvalidRequest, match=r"`event` must be one of \['bounce', 'purchase'\]"):
        engine.record_outcome(decision.decision_id, event="click", occurred_at=decision.decided_at)
    bounce = engine.record_outcome(
        decision.decision_id, event="bounce", occurred_at=decision.decided_at
    )
    assert (bounce.outcome.reward, bounce.learned) == (0.0, True)


CONFLICTING_REPEATS: list[tuple[dict[str, Any], str]] = [
    ({"event": "open"}, r"event 'click', not 'open'; value 1.0, not 0.0; reward 1.0, not 0.0"),
    (
        {"event": "click", "value": 0.5},
        r"different values: value 1.0, not 0.5; reward 1.0, not 0.5$",
    ),
    ({"reward": 1.0}, r"different values: event 'click', not 'reward'$"),
    ({"reward": 0.0}, r"event 'click', not 'reward'; value 1.0, not 0.0; reward 1.0, not 0.0$"),
    ({"event": "click", "decision_id": "other"}, r"decision_id '.+', not '.+'$"),
]


@pytest.mark.parametrize(("kwargs", "match"), CONFLICTING_REPEATS)
def test_an_outcome_id_repeated_with_other_values_is_a_conflict_and_changes_nothing(
    make_engine: EngineFactory, kwargs: dict[str, Any], match: str
) -> None:
    engine = make_engine()
    decision, other = engine.decide("c1"), engine.decide("c2")
    first = engine.record_outcome(
        decision.decision_id, event="click", occurred_at=decision.decided_at, outcome_id="crm-17"
    )
    version = engine.policy.version
    target = other.decision_id if kwargs.pop("decision_id", None) else decision.decision_id
    with pytest.raises(Conflict, match=r"outcome 'crm-17' was already recorded with different"):
        engine.record_outcome(target, occurred_at=other.decided_at, outcome_id="crm-17", **kwargs)
    with pytest.raises(Conflict, match=match):
        engine.record_outcome(target, occurred_at=other.decided_at, outcome_id="crm-17", **kwargs)
    assert engine.log.outcomes(decision.decision_id) == [first.outcome]
    assert engine.log.outcomes(other.decision_id) == []
    assert engine.policy.version == version
    # The other decision has not learned: its first outcome still teaches.
    assert engine.record_outcome(
        other.decision_id, reward=1.0, occurred_at=other.decided_at
    ).learned


def test_an_identical_repeat_of_an_outcome_id_is_not_new_and_returns_what_was_recorded(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    decision = engine.decide("c1")
    first = engine.record_outcome(
        decision.decision_id, reward=0.5, occurred_at=decision.decided_at, outcome_id="crm-17"
    )
    # A retry stamped a moment later is still the same outcome.
    again = engine.record_outcome(
        decision.decision_id,
        reward=0.5,
        occurred_at=decision.decided_at + SECOND,
        outcome_id="crm-17",
    )
    assert (again.new, again.learned, again.outcome) == (False, False, first.outcome)
    assert engine.log.outcomes(decision.decision_id) == [first.outcome]


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
