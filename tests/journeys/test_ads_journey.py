"""A journey reaches a customer who refused e-mail through the ads channel: the runner's send
joins the audience, the sync ships the hash, and the purchase (the goal) takes them out."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from ad_network import FakeAdNetwork
from journey_harness import CART_JOURNEY, DECISIONS, Clock, Features, Priors

from channels import (
    AdsChannel,
    AudienceApiChannel,
    AudienceRules,
    AudienceSpec,
    AudienceStore,
    AudienceSync,
    RetryingChannel,
    TemplateRenderer,
    TrackingLinks,
)
from decisioning import DecisionEngine, LinearThompson, SQLiteDecisionLog, SQLitePolicyStateStore
from decisioning.config import parse_decision_config
from decisioning.contact_store import ChannelState, ContactProfile
from decisioning.sqlite_contact import SQLiteContactStore
from features.event_stream import CustomerEvent, EventStream
from features.sql import SQLiteDatabase
from journeys import parse_journey
from journeys.decisions import EngineDecisions
from journeys.runner import JourneyRunner
from journeys.store import JourneyStore

WITH_ADS: dict[str, Any] = {
    **DECISIONS,
    "channels": {"email": {"cost": 0.01}, "ads": {"cost": 0.08, "quiet_hours": False}},
    "messages": {
        "cart_reminder": {"channels": ["email", "ads"], "model_arm": "reminder"},
        "discount_10": {"channels": ["email", "ads"], "model_arm": "discount"},
    },
}


@pytest.fixture
def network() -> Iterator[FakeAdNetwork]:
    server = FakeAdNetwork().start()
    yield server
    server.stop()


def test_a_customer_without_email_consent_is_retargeted_then_removed_on_purchase(
    tmp_path: Path, network: FakeAdNetwork
) -> None:
    clock = Clock()
    contacts = SQLiteContactStore(tmp_path / "contacts.db")
    log = SQLiteDecisionLog(tmp_path / "decisions.db")
    state = SQLitePolicyStateStore(tmp_path / "decisions.db")
    engine = DecisionEngine(
        config=parse_decision_config(WITH_ADS),
        features=Features({}),
        model=Priors(),
        model_version="v1",
        policy=LinearThompson(seed=0),
        log=log,
        state=state,
        contacts=contacts,
        clock=clock,
        seed=0,
    )
    stream = EventStream(SQLiteDatabase(tmp_path / "events.db"))
    journeys = JourneyStore(SQLiteDatabase(tmp_path / "journeys.db"))
    audiences = AudienceStore(SQLiteDatabase(tmp_path / "audiences.db"))
    journey = parse_journey(CART_JOURNEY, "cart.yaml")
    runner = JourneyRunner(
        journeys={journey.name: journey},
        store=journeys,
        stream=stream,
        decisions=EngineDecisions(engine),
        channels={"ads": AdsChannel(audiences, default_audience="carts")},
        renderer=TemplateRenderer(),
        links=TrackingLinks("test-secret", "http://nudge.test"),
        features=Features({}),
        clock=clock,
    )
    api = RetryingChannel(AudienceApiChannel(network.url), sleep=lambda _: None)
    sync = AudienceSync(
        audiences,
        AudienceRules(audiences, [AudienceSpec("carts", "501")]),
        api,
        contacts=contacts,
        stream=stream,
        clock=clock,
    )
    try:
        contacts.load_profiles(
            [ContactProfile("c1", {"email": ChannelState("opted_out", reachable=True)})]
        )
        events = [
            ("identify", {"email": "C1@Example.com"}),
            ("consent_update", {"channel": "ads", "consent": "opted_in"}),
            ("add_to_cart", {"sku": "s", "quantity": 1, "price": 30.0, "cart_value": 30.0}),
        ]
        for i, (kind, payload) in enumerate(events):
            stream.append([CustomerEvent(f"e{i}", "c1", kind, clock.now, payload)])
        runner.run_once()
        clock.advance(timedelta(hours=1, minutes=1))
        runner.run_once()
        assert contacts.profile("c1").channel("ads").reachable
        assert audiences.desired("carts") == {"c1"}
        sync.run()
        assert network.members("501") == {hashlib.sha256(b"c1@example.com").hexdigest()}

        clock.advance(timedelta(minutes=5))
        stream.append([CustomerEvent("buy", "c1", "purchase", clock.now, {"value": 30.0})])
        runner.run_once()
        result = sync.run()
        assert result.counts["carts"].removes == 1
        assert network.members("501") == set()
    finally:
        api.close()
        engine.close()
        journeys.close()
        stream.close()
        audiences.close()
        contacts.close()
        state.close()
        log.close()
