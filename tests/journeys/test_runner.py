"""The runner over a real engine and stores: triggers, waits, sends, goals, crashes."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest
from journey_harness import Harness, build_runner

from channels import FileOutbox
from features import InvalidRequest
from journeys import Journey
from journeys.runner import JourneyRunner


def test_a_small_cart_does_not_trigger_and_a_big_one_does(harness: Harness) -> None:
    harness.customer("c1")
    harness.customer("c2")
    harness.event("c1", "add_to_cart", cart_value=5.0)
    harness.event("c2", "add_to_cart", cart_value=50.0)
    harness.run()
    assert [i.customer_id for i in harness.store.instances_of("c1")] == []
    [instance] = harness.store.instances_of("c2")
    assert (instance.journey, instance.step_id, instance.status) == ("cart", "settle", "active")
    assert instance.wake_at == harness.clock.now + timedelta(hours=1)


def test_after_the_wait_the_chosen_message_goes_out_personalised_and_tracked(
    harness: Harness,
) -> None:
    harness.customer("c1")
    harness.event("c1", "add_to_cart", cart_value=50.0)
    harness.run()
    assert harness.sent() == []
    harness.run(timedelta(minutes=59))
    assert harness.sent() == []
    harness.run(timedelta(minutes=1))
    [message] = harness.sent()
    [record] = harness.store.sends_of(harness.store.instances_of("c1")[0].instance_id)
    assert record.status == "sent"
    assert record.step_id == "first"
    assert message["message_id"] == record.decision_id
    assert message["to"] == {"email": "c1@example.com", "sms": "+447700900123"}[record.channel]
    decision = harness.engine.log.get_decision(record.decision_id)
    assert (decision.journey, decision.step, decision.customer_id) == ("cart", "first", "c1")
    assert decision.action.message == record.message
    # The template saw the profile, and the links in it are signed and tracked.
    assert "C1" in message["body_text"]
    assert harness.links.unsubscribe_url(record.decision_id) in message["body_text"]
    delivered = harness.engine.log.get_outcome(f"{record.decision_id}:delivered")
    assert delivered is not None
    assert delivered.event == "delivered"


def test_the_goal_ends_the_journey_credits_the_send_and_cancels_what_is_pending(
    harness: Harness,
) -> None:
    harness.customer("c1")
    harness.event("c1", "add_to_cart", cart_value=50.0)
    harness.run()
    harness.run(timedelta(hours=1))  # first message sent; now waiting for a purchase
    [instance] = harness.store.instances_of("c1")
    assert (instance.step_id, instance.waiting_for) == ("wait_purchase", "purchase")
    harness.clock.advance(timedelta(hours=2))
    harness.event("c1", "purchase", value=80.0)
    harness.run()
    [instance] = harness.store.instances_of("c1")
    assert (instance.status, instance.end_reason) == ("goal", "goal:purchase")
    [record] = harness.store.sends_of(instance.instance_id)
    assert harness.engine.log.credited_reward(record.decision_id) == 80.0
    harness.run(timedelta(days=2))
    assert len(harness.sent()) == 1  # no second message after the goal


def test_timeout_leads_to_the_second_decision_on_sms(harness: Harness) -> None:
    harness.customer("c1")
    harness.event("c1", "add_to_cart", cart_value=50.0)
    harness.run()
    harness.run(timedelta(hours=1))
    harness.run(timedelta(days=1))
    messages = harness.sent()
    assert len(messages) == 2
    assert messages[1]["channel"] == "sms"
    assert messages[1]["to"] == "+447700900123"
    [instance] = harness.store.instances_of("c1")
    assert (instance.status, instance.end_reason) == ("completed", "completed")


def test_reentry_waits_for_the_journey_to_end_and_for_reentry_after(harness: Harness) -> None:
    harness.customer("c1")
    harness.event("c1", "add_to_cart", cart_value=50.0)
    harness.run()
    harness.event("c1", "add_to_cart", cart_value=60.0)  # already in the journey
    harness.run()
    assert len(harness.store.instances_of("c1")) == 1
    harness.run(timedelta(hours=1))
    harness.run(timedelta(days=1))  # completed, 1 day 1 hour after entry
    harness.event("c1", "add_to_cart", cart_value=60.0)
    harness.run()
    assert len(harness.store.instances_of("c1")) == 1  # reentry_after is 2 days
    harness.clock.advance(timedelta(days=1))
    harness.event("c1", "add_to_cart", cart_value=60.0)
    harness.run()
    assert [i.status for i in harness.store.instances_of("c1")] == ["completed", "active"]


def test_nobody_is_contacted_in_their_quiet_hours(harness: Harness) -> None:
    harness.customer("c1", zone="Pacific/Auckland")  # 23:00 there when it is 10:00 in London
    harness.event("c1", "add_to_cart", cart_value=50.0)
    harness.run()
    harness.run(timedelta(hours=1))
    assert harness.sent() == []
    [instance] = harness.store.instances_of("c1")
    chosen = instance.state["decisions"]["first"]
    assert chosen["message"] is None
    assert "quiet_hours" in chosen["excluded_rules"]


LATER_JOURNEY = """
journey: cart
trigger: {event: add_to_cart}
goal: purchase
steps:
  - id: first
    decide:
      candidates: [{message: cart_reminder, channels: [email]}]
      slots: ["+1h"]
      allow_no_send: false
  - id: send_first
    send: {}
"""


def later_harness(harness: Harness, tmp_path: Path) -> Harness:
    """The same engine and customers, with a journey whose message goes out an hour later."""
    runner, stream, store, links = build_runner(
        tmp_path / "later", harness.engine, harness.clock, LATER_JOURNEY
    )
    return dataclasses.replace(
        harness,
        runner=runner,
        stream=stream,
        store=store,
        links=links,
        outbox=tmp_path / "later" / "outbox",
    )


def test_consent_revoked_before_the_send_time_blocks_it_and_frees_the_cap(
    harness: Harness, tmp_path: Path
) -> None:
    later = later_harness(harness, tmp_path)
    later.customer("c1", sms=False)
    later.event("c1", "add_to_cart", cart_value=50.0)
    later.run()
    [instance] = later.store.instances_of("c1")
    [record] = later.store.sends_of(instance.instance_id)
    assert (record.status, record.send_at) == ("scheduled", later.clock.now + timedelta(hours=1))
    assert len(later.contacts.sends("c1")) == 1  # the cap is reserved at the decision
    later.contacts.set_consent("c1", "email", False, later.clock.now)
    later.run(timedelta(hours=1))
    assert later.sent() == []
    [record] = later.store.sends_of(instance.instance_id)
    assert (record.status, record.detail) == ("blocked", "consent")
    assert later.contacts.sends("c1") == []  # and given back when the send was blocked


def test_a_purchase_before_the_send_time_cancels_the_send(harness: Harness, tmp_path: Path) -> None:
    later = later_harness(harness, tmp_path)
    later.customer("c1")
    later.event("c1", "add_to_cart", cart_value=50.0)
    later.run()
    later.clock.advance(timedelta(minutes=30))
    later.event("c1", "purchase", value=20.0)
    later.run(timedelta(hours=1))
    assert later.sent() == []
    [instance] = later.store.instances_of("c1")
    [record] = later.store.sends_of(instance.instance_id)
    assert (instance.status, record.status, record.detail) == ("goal", "cancelled", "goal:purchase")
    assert later.contacts.sends("c1") == []
    assert later.engine.log.get_outcome(f"{record.decision_id}:cancelled") is not None


def test_a_step_run_again_after_a_crash_decides_and_sends_once(harness: Harness) -> None:
    harness.customer("c1")
    harness.event("c1", "add_to_cart", cart_value=50.0)
    harness.run()
    harness.clock.advance(timedelta(hours=1))
    [before] = harness.store.due(harness.clock.now)
    harness.run()
    # The process died before it saved the instance: its row is as it was.
    harness.store.db.execute(
        "UPDATE journey_instances SET step_id = ?, wake_at = ?, state = ?, version = ? "
        "WHERE instance_id = ?",
        (
            before.step_id,
            before.wake_at.timestamp() if before.wake_at else None,
            json.dumps(before.state),
            before.version + 1,
            before.instance_id,
        ),
    )
    harness.run()
    assert len(harness.sent()) == 1
    decisions = [
        d
        for d in harness.engine.log.iter_decisions()
        if d.customer_id == "c1" and d.step == "first"
    ]
    assert len(decisions) == 1


def test_a_send_left_claimed_by_a_dead_runner_is_sent_again_with_the_same_id(
    harness: Harness,
) -> None:
    harness.customer("c1")
    harness.event("c1", "add_to_cart", cart_value=50.0)
    harness.run()
    harness.clock.advance(timedelta(hours=1))
    [instance] = harness.store.due(harness.clock.now)
    # A runner decided and claimed the send, then died before confirming it.
    dead = copy.copy(harness.runner)  # another process over the same stores
    dead.runner_id = "dead"
    dead.channels = {"email": _Unplugged(), "sms": _Unplugged()}  # type: ignore[dict-item]
    with contextlib.suppress(_Died):
        dead.run_once()
    [record] = harness.store.sends_of(instance.instance_id)
    assert record.status == "sending"
    assert record.claimed_by == "dead"
    harness.clock.advance(timedelta(seconds=31))  # past the send lease
    harness.run()
    [record] = harness.store.sends_of(instance.instance_id)
    assert (record.status, record.in_doubt, record.attempts) == ("sent", 1, 2)
    assert len(harness.sent()) == 1


class _Died(Exception):
    pass


class _Unplugged(FileOutbox):
    """The process dies inside the channel call, after the claim was committed."""

    def __init__(self) -> None:
        pass

    def send(self, message):  # type: ignore[no-untyped-def, override]
        raise _Died


def test_identify_and_consent_events_fill_the_contact_profile(harness: Harness) -> None:
    harness.event(
        "c9",
        "identify",
        email=" Zoe@Example.COM ",
        phone="+44 7700 900999",
        time_zone="Europe/Berlin",
        first_name="Zoe",
    )
    harness.event("c9", "consent_update", channel="email", consent="opted_in")
    harness.run()
    profile = harness.contacts.profile("c9")
    assert profile.time_zone == "Europe/Berlin"
    assert (profile.channel("email").consent, profile.channel("email").reachable) == (
        "opted_in",
        True,
    )
    assert (profile.channel("sms").consent, profile.channel("sms").reachable) == ("unknown", True)
    assert harness.store.address("c9", "email") == "Zoe@example.com"
    assert harness.store.address("c9", "sms") == "+447700900999"
    assert harness.store.attributes("c9") == {"first_name": "Zoe"}
    harness.event("c9", "add_to_cart", cart_value=50.0)
    harness.run()
    harness.run(timedelta(hours=1))
    [message] = harness.sent()
    assert (message["channel"], message["to"]) == ("email", "Zoe@example.com")


def test_an_address_that_is_not_one_is_not_kept(harness: Harness) -> None:
    # A header-injecting address never reaches the runner: the stream's schema refuses it.
    with pytest.raises(InvalidRequest, match=r"payload\.email"):
        harness.event("c9", "identify", email="x@y.org\r\nBcc: z@w.org")
    # A national number passes the schema (the stitching may know its country); the
    # runner keeps only numbers it can send to, in E.164.
    harness.event("c9", "identify", phone="07700 900999")
    harness.run()
    assert harness.store.address("c9", "email") is None
    assert harness.store.address("c9", "sms") is None
    assert harness.contacts.profile("c9").channel("email").reachable is False


def test_an_old_event_starts_no_journey(harness: Harness) -> None:
    harness.customer("c1")
    harness.clock.advance(-timedelta(days=3))
    harness.event("c1", "add_to_cart", cart_value=50.0)  # happened three days ago
    harness.clock.advance(timedelta(days=3))
    harness.run()
    assert harness.store.instances_of("c1") == []


def test_a_step_removed_from_a_journey_ends_who_was_at_it_and_nobody_else(
    harness: Harness,
) -> None:
    harness.customer("c1")
    harness.customer("c2")
    harness.event("c1", "add_to_cart", cart_value=50.0)
    harness.run()
    harness.event("c2", "add_to_cart", cart_value=50.0)
    harness.clock.advance(timedelta(minutes=30))
    harness.run()
    # The new version of the journey has no `settle` step: c1 and c2 are both at it.
    journey = harness.runner.journeys["cart"]
    harness.runner = restarted(
        harness.runner, dataclasses.replace(journey, steps=journey.steps[1:])
    )
    harness.run(timedelta(minutes=40))
    [c1] = harness.store.instances_of("c1")
    assert (c1.status, c1.end_reason) == ("exited", "step_removed:settle")
    assert harness.store.instances_of("c2")[0].status == "active"  # its timer has not come
    harness.clock.advance(timedelta(days=3))
    harness.event("c1", "add_to_cart", cart_value=50.0)  # c1 may enter the new version
    harness.run()
    [c2] = harness.store.instances_of("c2")
    assert (c2.status, c2.end_reason) == ("exited", "step_removed:settle")
    [_, again] = harness.store.instances_of("c1")
    assert (again.status, again.step_id) == ("active", "wait_purchase")


def test_customers_of_a_journey_the_runner_lacks_wait_untouched(harness: Harness) -> None:
    harness.customer("c1")
    harness.event("c1", "add_to_cart", cart_value=50.0)
    harness.run()
    [before] = harness.store.instances_of("c1")
    other = restarted(harness.runner)  # a runner started with another journeys folder
    harness.clock.advance(timedelta(days=2))
    other.run_once()
    assert harness.store.instances_of("c1") == [before]
    harness.run()  # the runner that has the journey takes them on
    assert harness.store.instances_of("c1")[0].step_id != "settle"


def restarted(runner: JourneyRunner, *journeys: Journey) -> JourneyRunner:
    """The runner as a new process over the same stores would be, with ``journeys`` loaded."""
    return JourneyRunner(
        journeys={journey.name: journey for journey in journeys},
        store=runner.store,
        stream=runner.stream,
        decisions=runner.decisions,
        channels=runner.channels,
        renderer=runner.renderer,
        links=runner.links,
        features=runner.features,
        clock=runner.clock,
    )
