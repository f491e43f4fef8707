"""The decision engine: joint actions under the contact policy, the holdout, and learning."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from decisioning import CandidateMessage, DecisionRequest, NoEligibleAction
from decisioning.holdout import Holdout
from features.errors import Conflict, InvalidRequest, NotFound

if TYPE_CHECKING:  # only for annotations: the fixtures come from conftest
    from conftest import EngineFactory, TickingClock

from conftest import TableModel, make_config, opted_in_everywhere, with_holdout

ALL = [CandidateMessage("welcome"), CandidateMessage("discount"), CandidateMessage("news")]


def ask(customer_id: str = "c1", **changes: object) -> DecisionRequest:
    fields: dict[str, object] = {"customer_id": customer_id, "candidates": ALL}
    fields.update(changes)
    return DecisionRequest(**fields)  # type: ignore[arg-type]


def test_a_decision_is_one_eligible_joint_action_with_its_exact_probability(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    decision = engine.decide(ask())
    keys = [a.key for a in decision.eligible]
    # welcome on 2 channels, discount and news on 3, × 4 slots, minus quiet hours, + no send.
    assert "no_send" in keys
    assert decision.action.key in keys
    assert set(decision.scores) == set(keys)
    assert math.isclose(sum(s.probability for s in decision.scores.values()), 1.0, abs_tol=1e-9)
    assert decision.propensity == decision.scores[decision.action.key].probability
    # The exploration slice alone gives every eligible action at least 0.1 / K.
    assert decision.propensity >= 0.1 / len(keys) - 1e-12
    assert decision.group in {"policy", "explore"}
    assert engine.log.get_decision(decision.decision_id) == decision


def test_slots_resolve_in_the_customers_zone_and_quiet_hours_exclude_without_moving(
    make_engine: EngineFactory, clock: TickingClock
) -> None:
    engine = make_engine()
    clock.now = datetime(2024, 5, 1, 19, 30, tzinfo=UTC)  # 21:30 in Paris: quiet hours
    decision = engine.decide(ask("c1"))
    paris = ZoneInfo("Europe/Paris")
    quiet = {e.action for e in decision.excluded if e.rule == "quiet_hours"}
    assert "welcome/email/now" in quiet
    assert "welcome/email/+1h" in quiet
    eligible = {a.key: a for a in decision.eligible}
    nine = eligible["welcome/email/09:00"]
    assert nine.send_at is not None
    assert nine.send_at.astimezone(paris).replace(tzinfo=None) == datetime(2024, 5, 2, 9, 0)
    # 20:00 in Paris has passed today; tomorrow's is 22.5 h away, inside the 24 h horizon.
    assert eligible["discount/sms/20:00"].send_at == datetime(2024, 5, 2, 18, 0, tzinfo=UTC)
    for action in decision.eligible:
        if action.send_at is not None:
            local = action.send_at.astimezone(paris).time()
            assert not (local.hour >= 21)
            assert not (local.hour < 8)


def test_another_zone_gives_other_send_times(make_engine: EngineFactory) -> None:
    decision = make_engine().decide(ask("c2"))  # profile zone America/New_York, 05:00 there
    assert decision.time_zone == "America/New_York"
    eligible = {a.key for a in decision.eligible}
    assert "welcome/email/now" not in eligible  # 05:00 is inside quiet hours in New York
    assert "welcome/email/09:00" in eligible


def test_consent_suppression_and_reachability_exclude_with_their_rules(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    at = datetime(2024, 5, 1, 8, tzinfo=UTC)
    engine.contacts.set_consent("c1", "sms", False, at)
    engine.contacts.suppress("c1", "email", "unsubscribe", at)
    engine.contacts.set_reachable("c1", "push", False)
    decision = engine.decide(ask("c1"))
    rules = {e.action: e.rule for e in decision.excluded}
    assert rules["discount/sms/now"] == "consent"
    assert rules["welcome/email/now"] == "suppression"  # suppression wins over opted_in
    assert rules["news/push/+1h"] == "reachability"
    assert [a.key for a in decision.eligible] == ["no_send"]
    assert decision.action.key == "no_send"
    assert decision.propensity == 1.0


def test_a_cap_of_zero_means_no_cap_and_caps_count_per_channel(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    push_only = [CandidateMessage("news", ("push",))]
    # push has limit 0: no cap, only the overall cap of 4 per 7 days applies.
    sent = [engine.decide(ask("c1", candidates=push_only, allow_no_send=False)) for _ in range(4)]
    assert all(d.action.channel == "push" for d in sent)
    with pytest.raises(NoEligibleAction, match="frequency_cap"):
        engine.decide(ask("c1", candidates=push_only, allow_no_send=False))


def test_transactional_messages_are_neither_capped_nor_counted(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    receipt = [CandidateMessage("receipt", ("email",))]
    for _ in range(5):
        decision = engine.decide(ask("c1", candidates=receipt, allow_no_send=False))
        assert decision.action.transactional
    assert engine.contacts.sends("c1") == []
    email = [CandidateMessage("welcome", ("email",))]
    sent = [engine.decide(ask("c1", candidates=email, allow_no_send=False)) for _ in range(2)]
    assert len(engine.contacts.sends("c1")) == 2
    with pytest.raises(NoEligibleAction):
        engine.decide(ask("c1", candidates=email, allow_no_send=False))
    assert {d.action.channel for d in sent} == {"email"}


def test_holdout_customers_get_no_send_logged_as_holdout(make_engine: EngineFactory) -> None:
    holdout = Holdout(50.0, "test-salt")
    inside = next(c for c in ("c1", "c2", "c3") if holdout.contains(c))
    engine = make_engine(config=with_holdout(make_config(), 50.0))
    decision = engine.decide(ask(inside))
    assert (decision.group, decision.action.key, decision.propensity) == ("holdout", "no_send", 1.0)
    assert engine.contacts.sends(inside) == []
    # A step that must send is not held out.
    must = engine.decide(ask(inside, allow_no_send=False))
    assert must.group != "holdout"
    assert must.action.is_send


def test_holdout_share_changes_are_recorded_once_with_their_date(
    make_engine: EngineFactory,
) -> None:
    make_engine(config=with_holdout(make_config(), 5.0))
    make_engine(config=with_holdout(make_config(), 5.0))
    engine = make_engine(config=with_holdout(make_config(), 3.0))
    assert [percent for _, percent in engine.log.holdout_changes()] == [5.0, 3.0]


def test_the_exploration_slice_is_uniform_and_logged_as_such(make_engine: EngineFactory) -> None:
    engine = make_engine(config=make_config(exploration=1.0, caps=[]))
    decisions = [engine.decide(ask("c1")) for _ in range(30)]
    assert {d.group for d in decisions} == {"explore"}
    for d in decisions:
        assert d.explored
        assert d.propensity == pytest.approx(1.0 / len(d.eligible))
    assert len({d.action.key for d in decisions}) > 5


def test_same_seed_same_decisions(make_engine: EngineFactory, tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    uncapped = make_config(caps=[])
    first = make_engine(db=tmp_path / "a.db", seed=4, worker_id="w", config=uncapped)
    second = make_engine(db=tmp_path / "b.db", seed=4, worker_id="w", config=uncapped)
    keys_a = [first.decide(ask(c)).action.key for c in ("c1", "c3") * 10]
    keys_b = [second.decide(ask(c)).action.key for c in ("c1", "c3") * 10]
    assert keys_a == keys_b


def test_an_idempotency_key_returns_the_same_decision_logged_once(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    first = engine.decide(ask("c1", idempotency_key="cart-1"))
    again = engine.decide(ask("c1", idempotency_key="cart-1"))
    assert again == first
    assert engine.log.count_decisions() == 1
    with pytest.raises(Conflict, match="another customer"):
        engine.decide(ask("c2", idempotency_key="cart-1"))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"candidates": []}, "candidates"),
        ({"candidates": [CandidateMessage("nope")]}, "candidates[0].message"),
        ({"candidates": [CandidateMessage("welcome", ("sms",))]}, "candidates[0].channels[0]"),
        ({"candidates": [CandidateMessage("welcome", ("fax",))]}, "candidates[0].channels[0]"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"slots": ["2024-05-01T08:00:00+00:00"]}, "slots[0]"),
        ({"slots": ["2024-05-01T12:00:00"]}, "slots[0]"),
        ({"slots": ["tea-time"]}, "slots[0]"),
        ({"context": {"recency": float("nan")}}, "context.recency"),
        ({"context": {"recency": "soon"}}, "context.recency"),
        ({"customer_id": " "}, "customer_id"),
    ],
)
def test_bad_requests_name_the_field_and_log_nothing(
    make_engine: EngineFactory, changes: dict[str, object], field: str
) -> None:
    engine = make_engine()
    with pytest.raises(InvalidRequest) as caught:
        engine.decide(ask(**changes))  # type: ignore[arg-type]
    assert caught.value.field == field
    assert engine.log.count_decisions() == 0
    assert engine.contacts.sends("c1") == []


def test_an_explicit_future_send_time_is_a_slot(make_engine: EngineFactory) -> None:
    engine = make_engine()
    decision = engine.decide(
        ask(
            "c1",
            candidates=[CandidateMessage("welcome", ("email",))],
            slots=["2024-05-01T15:00:00+00:00"],
            allow_no_send=False,
        )
    )
    assert decision.action.send_at == datetime(2024, 5, 1, 15, tzinfo=UTC)


def test_conversions_in_the_window_credit_and_teach_as_they_arrive(
    make_engine: EngineFactory, clock: TickingClock
) -> None:
    engine = make_engine()
    decision = engine.decide(
        ask(
            "c1",
            candidates=[CandidateMessage("welcome", ("email",))],
            slots=["now"],
            allow_no_send=False,
        )
    )
    before = engine.policy.version
    clock.advance(timedelta(hours=1))
    first = engine.record_outcome(
        decision.decision_id, event="purchase", value=30.0, occurred_at=clock.now
    )
    assert (first.new, first.credited, first.learned) == (True, True, True)
    clock.advance(timedelta(hours=2))
    second = engine.record_outcome(
        decision.decision_id, event="purchase", value=12.5, occurred_at=clock.now
    )
    assert second.credited
    assert second.learned
    assert engine.log.credited_reward(decision.decision_id) == pytest.approx(42.5)
    assert engine.policy.version != before
    # Posted late but it happened inside the window: it still counts.
    clock.advance(timedelta(hours=80))
    late = engine.record_outcome(
        decision.decision_id,
        event="purchase",
        value=99.0,
        occurred_at=decision.decided_at + timedelta(hours=70),
    )
    assert late.credited
    outside = engine.record_outcome(
        decision.decision_id, event="purchase", value=5.0, occurred_at=clock.now
    )
    assert (outside.new, outside.credited, outside.learned) == (True, False, False)
    assert engine.log.credited_reward(decision.decision_id) == pytest.approx(141.5)


def test_a_decision_counts_as_no_conversion_at_once_and_conversions_correct_it(
    make_engine: EngineFactory, clock: TickingClock
) -> None:
    # Linear Thompson sampling learns before windows close: a pending decision
    # is a zero now (so non-responders count without waiting), each conversion a
    # correction when it comes, and the closing window only makes the zero final.
    engine = make_engine()
    assert engine.policy.learns_before_close
    start = engine.policy.version
    quiet = engine.decide(ask("c1", slots=["now"]))
    converted = engine.decide(ask("c3", slots=["now"]))
    after_decisions = engine.policy.version
    assert after_decisions != start
    receipt = engine.record_outcome(
        converted.decision_id, event="conversion", occurred_at=clock.now
    )
    assert receipt.learned
    after_conversion = engine.policy.version
    assert after_conversion != after_decisions
    assert engine.finalise_due() == 0  # no window has closed yet
    clock.advance(timedelta(hours=73, minutes=5))
    assert engine.finalise_due() == 2
    assert engine.finalise_due() == 0
    assert engine.log.credited_reward(quiet.decision_id) == 0.0
    assert engine.log.credited_reward(converted.decision_id) == 1.0
    assert engine.policy.version == after_conversion  # nothing was waiting for the close


def test_a_policy_that_learns_at_the_close_gets_the_whole_reward_then(
    make_engine: EngineFactory, clock: TickingClock
) -> None:
    from decisioning import EpsilonGreedy

    engine = make_engine(policy=EpsilonGreedy(epsilon=0.1, seed=0), config=make_config(caps=[]))
    quiet = engine.decide(ask("c1", slots=["now"]))
    converted = engine.decide(ask("c3", slots=["now"]))
    receipt = engine.record_outcome(
        converted.decision_id, event="purchase", value=2.0, occurred_at=clock.now
    )
    assert receipt.credited
    assert not receipt.learned
    assert engine.policy.version.endswith("+0")
    clock.advance(timedelta(hours=73, minutes=5))
    assert engine.finalise_due() == 2
    assert engine.policy.version.endswith("+2")  # both decisions, each once
    assert engine.log.credited_reward(quiet.decision_id) == 0.0


def test_a_cancelled_decision_frees_its_cap_and_teaches_nothing(
    make_engine: EngineFactory, clock: TickingClock
) -> None:
    engine = make_engine()
    email = [CandidateMessage("welcome", ("email",))]
    untaught = engine.policy.snapshot()
    decision = engine.decide(ask("c1", candidates=email, allow_no_send=False))
    assert len(engine.contacts.sends("c1")) == 1
    assert engine.policy.snapshot() != untaught  # the pending zero
    assert engine.cancel(decision.decision_id)
    assert engine.policy.version.endswith("+0")
    assert engine.contacts.sends("c1") == []
    assert not engine.cancel(decision.decision_id)
    clock.advance(timedelta(days=4))
    before = engine.policy.version
    assert engine.finalise_due() == 0
    assert engine.log.credited_reward(decision.decision_id) is None
    assert engine.policy.version == before


def test_an_unsubscribe_penalises_and_suppresses_the_channel(
    make_engine: EngineFactory, clock: TickingClock
) -> None:
    engine = make_engine()
    email = [CandidateMessage("welcome", ("email",))]
    decision = engine.decide(ask("c1", candidates=email, slots=["now"], allow_no_send=False))
    receipt = engine.record_outcome(
        decision.decision_id, event="unsubscribe", occurred_at=clock.now
    )
    assert receipt.outcome.reward == -1.0
    assert receipt.learned
    assert engine.contacts.profile("c1").channel("email").suppressed == "unsubscribe"
    after = engine.decide(ask("c1"))
    assert {e.rule for e in after.excluded if "/email/" in e.action} == {"suppression"}


def test_a_revoked_consent_stops_a_scheduled_send_at_send_time(
    make_engine: EngineFactory, clock: TickingClock
) -> None:
    engine = make_engine()
    email = [CandidateMessage("welcome", ("email",))]
    decision = engine.decide(ask("c1", candidates=email, slots=["+1h"], allow_no_send=False))
    assert engine.check_send(decision.decision_id).allowed
    engine.contacts.set_consent("c1", "email", False, clock.now)
    check = engine.check_send(decision.decision_id)
    assert not check.allowed
    assert check.exclusion is not None
    assert check.exclusion.rule == "consent"
    assert engine.contacts.sends("c1") == []
    assert [o.event for o in engine.log.outcomes(decision.decision_id)] == ["cancelled"]


def test_outcome_checks(make_engine: EngineFactory, clock: TickingClock) -> None:
    engine = make_engine()
    decision = engine.decide(ask("c1", slots=["now"]))
    with pytest.raises(InvalidRequest) as caught:
        engine.record_outcome(decision.decision_id, event="teleport", occurred_at=clock.now)
    assert caught.value.field == "event"
    with pytest.raises(InvalidRequest) as caught:
        engine.record_outcome(
            decision.decision_id, event="purchase", occurred_at=clock.now + timedelta(hours=1)
        )
    assert caught.value.field == "occurred_at"
    with pytest.raises(NotFound):
        engine.record_outcome("no-such-decision", event="purchase", occurred_at=clock.now)
    engine.record_outcome(
        decision.decision_id, event="purchase", value=3.0, occurred_at=clock.now, outcome_id="o1"
    )
    repeat = engine.record_outcome(
        decision.decision_id, event="purchase", value=3.0, occurred_at=clock.now, outcome_id="o1"
    )
    assert not repeat.new
    assert not repeat.credited
    with pytest.raises(Conflict):
        engine.record_outcome(
            decision.decision_id,
            event="purchase",
            value=4.0,
            occurred_at=clock.now,
            outcome_id="o1",
        )
    assert engine.log.credited_reward(decision.decision_id) == 3.0


def test_workers_share_what_they_learn_and_a_restart_keeps_it(
    make_engine: EngineFactory, clock: TickingClock
) -> None:
    uncapped = make_config(caps=[])
    one = make_engine(worker_id="one", config=uncapped)
    two = make_engine(worker_id="two", config=uncapped)
    email = [CandidateMessage("welcome", ("email",))]
    for customer in ("c1", "c2", "c3"):
        decision = one.decide(ask(customer, candidates=email, slots=["09:00"]))
        one.record_outcome(decision.decision_id, event="conversion", occurred_at=clock.now)
    probe = ask("c1", candidates=email, slots=["09:00"])
    assert one.policy.version != two.policy.version
    one.sync()
    two.sync()
    # Each probe is read before the probing decision itself is learned.
    means_one = {k: s.mean for k, s in one.decide(probe).scores.items()}
    means_two = {k: s.mean for k, s in two.decide(probe).scores.items()}
    assert means_two == pytest.approx(means_one, abs=1e-9)
    restarted = make_engine(worker_id="three", config=uncapped)
    means_three = {k: s.mean for k, s in restarted.decide(probe).scores.items()}
    assert means_three == pytest.approx(means_one, abs=1e-9)


def test_decisions_of_another_model_version_are_credited_but_not_learned(
    make_engine: EngineFactory, clock: TickingClock
) -> None:
    old = make_engine(model_version="v1")
    decision = old.decide(ask("c1", slots=["now"]))
    new = make_engine(model_version="v2")
    receipt = new.record_outcome(decision.decision_id, event="conversion", occurred_at=clock.now)
    assert receipt.credited
    assert not receipt.learned


def test_unknown_customers_are_decided_with_missing_features_and_no_contact(
    make_engine: EngineFactory,
) -> None:
    decision = make_engine().decide(ask("stranger"))
    assert set(decision.missing_features) == {
        "recency",
        "vip",
        "engagement_email",
        "engagement_sms",
    }
    # Nobody has recorded consent for a stranger: nothing may be sent.
    assert decision.action.key == "no_send"
    assert {e.rule for e in decision.excluded} == {"consent"}


def test_profiles_without_a_zone_use_the_default(make_engine: EngineFactory) -> None:
    engine = make_engine()
    engine.contacts.load_profiles([opted_in_everywhere("c4")])
    assert engine.decide(ask("c4")).time_zone == "Europe/Paris"


def test_a_batch_of_outcomes_keeps_the_good_ones_and_reports_the_bad_by_place(
    make_engine: EngineFactory, clock: TickingClock
) -> None:
    from decisioning import OutcomeReport

    engine = make_engine(config=make_config(caps=[]))
    decisions = [engine.decide(ask("c1", slots=["now"])) for _ in range(3)]
    results = engine.record_outcomes(
        [
            OutcomeReport(decisions[0].decision_id, "purchase", clock.now, 10.0),
            OutcomeReport("no-such-decision", "purchase", clock.now, 1.0),
            OutcomeReport(decisions[1].decision_id, "teleport", clock.now),
            OutcomeReport(decisions[2].decision_id, "conversion", clock.now),
        ]
    )
    assert [type(r).__name__ for r in results] == [
        "OutcomeReceipt",
        "NotFound",
        "InvalidRequest",
        "OutcomeReceipt",
    ]
    assert engine.log.credited_reward(decisions[0].decision_id) == 10.0
    assert engine.log.credited_reward(decisions[1].decision_id) is None
    assert engine.log.credited_reward(decisions[2].decision_id) == 1.0


def test_the_uplift_score_is_the_models_best_gain_over_no_contact(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(config=with_holdout(make_config(), 100.0))
    held_out = engine.decide(ask("c2"))
    assert held_out.group == "holdout"
    # welcome 0.30 and discount 0.20 against none 0.05, each + 0.05 for a VIP.
    assert engine.uplift_score(held_out) == pytest.approx(0.25)


def test_a_challenger_model_chooses_greedily_among_the_eligible(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    decision = engine.decide(ask("c1", slots=["now"]))
    challenger = TableModel({"welcome": 0.01, "discount": 0.60, "none": 0.05})
    # discount (0.60 - cost) beats every other eligible action; the cheapest channel wins ties.
    assert engine.greedy_choice(decision, challenger) == "discount/push/now"


def test_cancelling_is_too_late_once_the_window_has_closed(
    make_engine: EngineFactory, clock: TickingClock
) -> None:
    engine = make_engine(config=make_config(caps=[]))
    decision = engine.decide(ask("c1", slots=["now"]))
    clock.advance(timedelta(hours=73))
    assert engine.finalise_due() == 1
    assert not engine.cancel(decision.decision_id)
    assert engine.log.outcomes(decision.decision_id) == []  # nothing written


def test_a_cancelled_send_stays_cancelled_at_send_time(
    make_engine: EngineFactory, clock: TickingClock
) -> None:
    engine = make_engine()
    email = [CandidateMessage("welcome", ("email",))]
    decision = engine.decide(ask("c1", candidates=email, slots=["+1h"], allow_no_send=False))
    assert engine.cancel(decision.decision_id)
    check = engine.check_send(decision.decision_id)
    assert not check.allowed
    assert check.exclusion is not None
    assert check.exclusion.rule == "cancelled"


def test_send_time_rechecks_quiet_hours_in_the_customers_zone_now(
    make_engine: EngineFactory, clock: TickingClock
) -> None:
    engine = make_engine()
    email = [CandidateMessage("welcome", ("email",))]
    # 10:00 in Paris, one hour before the send at 11:00 Paris (09:00 UTC).
    clock.now = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    decision = engine.decide(ask("c1", candidates=email, slots=["+1h"], allow_no_send=False))
    assert engine.check_send(decision.decision_id).allowed
    engine.contacts.set_time_zone("c1", "Asia/Tokyo")  # 18:00 there: still fine
    assert engine.check_send(decision.decision_id).allowed
    engine.contacts.set_time_zone("c1", "Pacific/Kiritimati")  # 23:00 there: quiet
    check = engine.check_send(decision.decision_id)
    assert check.exclusion is not None
    assert check.exclusion.rule == "quiet_hours"


def test_a_conversion_before_the_send_is_not_the_messages_doing(
    make_engine: EngineFactory, clock: TickingClock
) -> None:
    engine = make_engine()
    email = [CandidateMessage("welcome", ("email",))]
    decision = engine.decide(ask("c1", candidates=email, slots=["+1h"], allow_no_send=False))
    early = engine.record_outcome(decision.decision_id, event="conversion", occurred_at=clock.now)
    assert early.new
    assert not early.credited
    clock.advance(timedelta(hours=2))
    late = engine.record_outcome(decision.decision_id, event="conversion", occurred_at=clock.now)
    assert late.credited


def test_an_idempotency_key_belongs_to_one_request(make_engine: EngineFactory) -> None:
    engine = make_engine()
    engine.decide(ask("c1", idempotency_key="k", journey="spring"))
    with pytest.raises(Conflict, match="journey"):
        engine.decide(ask("c1", idempotency_key="k", journey="autumn"))


def test_a_repeated_slot_is_named(make_engine: EngineFactory) -> None:
    with pytest.raises(InvalidRequest) as caught:
        make_engine().decide(ask("c1", slots=["now", "now"]))
    assert caught.value.field == "slots[1]"
