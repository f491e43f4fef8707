"""The ``ads`` channel in the shipped decision configuration: its cost, its cap, no quiet hours,
and a customer who refused e-mail but allowed ads is still reached, on ads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from decisioning import CandidateMessage, DecisionRequest, load_decision_config
from decisioning.config import DEFAULT_CONFIG, parse_decision_config
from decisioning.contact_store import ChannelState, ContactProfile
from decisioning.sqlite_contact import SQLiteContactStore
from features.errors import InvalidRequest

if TYPE_CHECKING:  # only for annotations: the fixtures come from conftest
    from conftest import EngineFactory, TickingClock

ADS_ONLY = ContactProfile(
    "ads_only",
    {
        "email": ChannelState("opted_out", reachable=True),
        "sms": ChannelState("unknown", reachable=True),
        "ads": ChannelState("opted_in", reachable=True),
    },
)


def test_the_default_config_has_ads_with_its_cost_a_cap_and_no_quiet_hours() -> None:
    config = load_decision_config(DEFAULT_CONFIG)
    assert config.channels["ads"].cost > config.channels["email"].cost
    assert "ads" in config.messages["cart_reminder"].channels
    assert "ads" in config.contact.quiet_exempt
    assert "email" not in config.contact.quiet_exempt
    assert any(cap.channel == "ads" and cap.limit for cap in config.contact.caps)


def test_a_customer_without_email_consent_is_reached_on_ads(
    make_engine: EngineFactory, contacts: SQLiteContactStore
) -> None:
    # A second such customer for the forced decision: the first may hold the weekly ads cap.
    contacts.load_profiles([ADS_ONLY, ContactProfile("ads_only_2", ADS_ONLY.channels)])
    engine = make_engine(config=load_decision_config(DEFAULT_CONFIG))
    request = DecisionRequest(
        "ads_only", [CandidateMessage("cart_reminder")], journey="cart_abandonment"
    )
    decision = engine.decide(request)
    sends = [a for a in decision.eligible if a.message is not None]
    assert sends
    assert {a.channel for a in sends} == {"ads"}
    assert {e.rule for e in decision.excluded if e.action.split("/")[1] == "email"} == {"consent"}
    forced = engine.decide(
        DecisionRequest(
            "ads_only_2",
            [CandidateMessage("cart_reminder")],
            journey="cart_abandonment",
            allow_no_send=False,
        )
    )
    assert forced.action.channel == "ads"
    assert forced.action.message == "cart_reminder"


def test_quiet_hours_do_not_hold_back_an_ads_audience(
    make_engine: EngineFactory, contacts: SQLiteContactStore, clock: TickingClock
) -> None:
    contacts.load_profiles([ADS_ONLY])
    clock.now = datetime(2024, 5, 1, 21, 30, tzinfo=UTC)  # 22:30 in London
    engine = make_engine(config=load_decision_config(DEFAULT_CONFIG))
    decision = engine.decide(DecisionRequest("ads_only", [CandidateMessage("cart_reminder")]))
    assert "cart_reminder/ads/now" in {a.key for a in decision.eligible}
    # e-mail at the same time would have been quiet-hours (and is refused consent first).
    quiet = parse_decision_config(
        {
            "channels": {"email": {}, "ads": {"quiet_hours": False}},
            "messages": {"m": {}},
            "quiet_hours": {"start": "21:00", "end": "08:00"},
        }
    )
    assert quiet.contact.quiet_exempt == frozenset({"ads"})


def test_quiet_hours_of_a_channel_must_be_a_boolean() -> None:
    with pytest.raises(InvalidRequest, match=r"`channels.ads.quiet_hours` must be true or false"):
        parse_decision_config({"channels": {"ads": {"quiet_hours": "no"}}, "messages": {"m": {}}})
