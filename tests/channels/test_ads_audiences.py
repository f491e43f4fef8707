"""Ad audiences: hashed identifiers, incremental batched syncs against a loopback ad network,
retries, crash-safe resends, removal on conversion and consent, buyer suppression, the report."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from ad_network import FakeAdNetwork

from channels import (
    AdsChannel,
    AudienceApiChannel,
    AudienceRules,
    AudienceSpec,
    AudienceStore,
    AudienceSync,
    OutboundMessage,
    Receipt,
    RetryingChannel,
    hash_email,
    hash_phone,
    write_report,
)
from decisioning.contact_store import ChannelState, ContactProfile
from decisioning.sqlite_contact import SQLiteContactStore
from features.errors import InvalidRequest
from features.event_stream import CustomerEvent, EventStream
from features.sql import PostgresDatabase, SqlDatabase, SQLiteDatabase

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
AUDIENCES = (
    AudienceSpec("cart_retargeting", "1001", "retargeting"),
    AudienceSpec("prospects", "2002", "acquisition"),
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Crash(Exception):
    """The process dies after the network accepted the batch, before we wrote it down."""


class CrashAfterSend:
    def __init__(self, inner: AudienceApiChannel) -> None:
        self.inner = inner
        self.name = inner.name

    def send(self, message: OutboundMessage) -> Receipt:
        self.inner.send(message)
        raise Crash

    def close(self) -> None:
        self.inner.close()


class World:
    """A state folder: audience store, contact store, event stream, the network and a sync."""

    def __init__(
        self,
        tmp: Path,
        network: FakeAdNetwork,
        batch_size: int = 500,
        db: SqlDatabase | None = None,
    ) -> None:
        self.clock = Clock()
        self.store = AudienceStore(db or SQLiteDatabase(tmp / "audiences.db"))
        self.contacts = SQLiteContactStore(tmp / "contacts.db")
        self.stream = EventStream(SQLiteDatabase(tmp / "events.db"))
        self.network = network
        self.rules = AudienceRules(self.store, AUDIENCES, buyer_window=timedelta(days=30))
        self.sleeps: list[float] = []
        self.raw_api = AudienceApiChannel(network.url, token="t")
        self.api = RetryingChannel(self.raw_api, attempts=3, sleep=self.sleeps.append)
        self.ads = AdsChannel(self.store, default_audience="cart_retargeting")
        self.batch_size = batch_size
        self.events = 0

    def sync(self, api: object | None = None) -> AudienceSync:
        return AudienceSync(
            self.store,
            self.rules,
            api or self.api,  # type: ignore[arg-type]
            contacts=self.contacts,
            stream=self.stream,
            batch_size=self.batch_size,
            clock=self.clock,
        )

    def consent(self, customer: str, consent: str = "opted_in") -> None:
        state = ChannelState(consent, reachable=True)  # type: ignore[arg-type]
        self.contacts.load_profiles([ContactProfile(customer, {"ads": state})])

    def event(self, customer: str, kind: str, **payload: object) -> None:
        self.events += 1
        event = CustomerEvent(f"e{self.events}", customer, kind, self.clock.now, payload)
        self.stream.append([event])

    def send(self, customer: str, to: str = "", message_id: str = "") -> None:
        self.ads.send(
            OutboundMessage(message_id or f"d-{customer}", customer, "ads", to, "", metadata={})
        )

    def close(self) -> None:
        self.raw_api.close()
        self.store.close()
        self.contacts.close()
        self.stream.close()


@pytest.fixture
def network() -> Iterator[FakeAdNetwork]:
    server = FakeAdNetwork().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def world(
    request: pytest.FixtureRequest, tmp_path: Path, network: FakeAdNetwork
) -> Iterator[World]:
    """The audience store embedded (SQLite) or in scale mode (Postgres)."""
    schema = f"nudge_audiences_test_{uuid.uuid4().hex[:8]}"
    db = PostgresDatabase(POSTGRES_DSN, schema) if request.param == "postgres" else None
    built = World(tmp_path, network, db=db)
    yield built
    built.close()
    if db is not None:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_identifiers_are_normalised_then_sha256_hex_unsalted() -> None:
    assert hash_email("  Ann.Lee+shop@Example.COM ") == sha("ann.lee+shop@example.com")
    assert hash_phone("07911 123456", "GB") == sha("+447911123456")
    assert hash_phone("+44 (0)7911-123456") == sha("+447911123456")


@pytest.mark.parametrize(
    ("raw", "field"), [("not-an-address", "email"), ("12", "phone"), (None, "email")]
)
def test_a_malformed_identifier_is_refused_by_name(raw: object, field: str) -> None:
    hasher = hash_email if field == "email" else hash_phone
    with pytest.raises(InvalidRequest, match=f"`{field}` must"):
        hasher(raw)


def test_a_send_joins_the_audience_and_the_sync_ships_only_hashes(world: World) -> None:
    world.consent("c1")
    world.send("c1", to="Ann@Example.com")
    result = world.sync().run()
    assert result.counts["cart_retargeting"].adds == 1
    assert world.network.members("1001") == {sha("ann@example.com")}
    body = world.network.requests[0]["json"]
    assert world.network.requests[0]["path"] == "/audiences/1001/members:add"
    assert world.network.requests[0]["headers"]["idempotency-key"] == body["batch_id"]
    assert "c1" not in json.dumps(body)
    assert "ann@" not in json.dumps(body)
    # Incremental: nothing changed, nothing is sent.
    again = world.sync().run()
    assert again.counts["cart_retargeting"].adds == 0
    assert len(world.network.requests) == 1
    assert world.store.confirmed("cart_retargeting") == world.store.desired("cart_retargeting")


def test_identifiers_from_identify_events_are_used_for_a_send_without_an_address(
    world: World,
) -> None:
    world.consent("c2")
    world.event("c2", "identify", email="bo@example.com", phone="+33612345678")
    world.send("c2")
    world.sync().run()
    body = world.network.requests[0]["json"]
    assert body["members"] == [{"em": sha("bo@example.com"), "ph": sha("+33612345678")}]


def test_only_customers_with_ads_consent_go_out(world: World) -> None:
    world.consent("yes")
    world.consent("no", "opted_out")
    for customer in ("yes", "no", "unknown"):
        world.send(customer, to=f"{customer}@example.com")
    world.sync().run()
    assert world.network.members("1001") == {sha("yes@example.com")}
    assert world.store.desired("cart_retargeting") == {"yes"}


def test_a_purchase_removes_at_the_next_sync_and_keeps_buyers_out_of_acquisition(
    world: World,
) -> None:
    for customer in ("c1", "c2"):
        world.consent(customer)
        world.send(customer, to=f"{customer}@example.com")
        world.rules.add("prospects", customer, T0, "segment:lapsed")
    world.sync().run()
    assert len(world.network.members("1001")) == 2
    assert len(world.network.members("2002")) == 2
    world.clock.now = T0 + timedelta(minutes=3)
    world.event("c1", "purchase", value=30.0, currency="EUR", order_id="o1")
    result = world.sync().run()
    assert result.counts["cart_retargeting"].removes == 1
    assert result.counts["prospects"].removes == 1
    assert world.network.members("1001") == {sha("c2@example.com")}
    assert world.network.members("2002") == {sha("c2@example.com")}
    # A recent buyer is not put back into acquisition, until the buyer window has passed.
    assert not world.rules.add("prospects", "c1", world.clock.now, "segment:lapsed")
    later = T0 + timedelta(days=31)
    assert world.rules.add("prospects", "c1", later, "segment:lapsed")


def test_a_send_into_an_acquisition_audience_does_not_ship_a_recent_buyer(world: World) -> None:
    world.consent("c1")
    world.event("c1", "purchase", value=3.0, currency="EUR", order_id="o1")
    world.sync().run()
    prospecting = AdsChannel(world.store, default_audience="prospects")
    prospecting.send(OutboundMessage("d1", "c1", "ads", "c1@example.com", ""))
    world.sync().run()
    assert world.network.members("2002") == set()
    assert world.store.desired("prospects") == set()


@pytest.mark.parametrize("how", ["event", "contact_store", "channels_payload"])
def test_an_ads_opt_out_removes_the_customer_everywhere(world: World, how: str) -> None:
    world.consent("c1")
    world.send("c1", to="c1@example.com")
    world.rules.add("prospects", "c1", T0, "segment")
    world.sync().run()
    if how == "event":
        world.event("c1", "consent_update", channel="ads", consent="opted_out")
    elif how == "channels_payload":
        world.event("c1", "consent_update", channels={"ads": "opted_out"})
    else:
        world.contacts.set_consent("c1", "ads", False, T0 + timedelta(minutes=1))
    result = world.sync().run()
    assert result.counts["cart_retargeting"].removes == 1
    assert world.network.members("1001") == set()
    assert world.network.members("2002") == set()
    assert world.store.confirmed("cart_retargeting") == set()


def test_a_transient_failure_is_retried_with_the_same_batch_id(world: World) -> None:
    world.consent("c1")
    world.send("c1", to="c1@example.com")
    world.network.fail(1, status=503)
    result = world.sync().run()
    assert result.failures == 0
    assert result.counts["cart_retargeting"].adds == 1
    keys = [r["headers"]["idempotency-key"] for r in world.network.requests]
    assert len(keys) == 2
    assert len(set(keys)) == 1
    assert len(world.sleeps) == 1
    assert world.network.members("1001") == {sha("c1@example.com")}


def test_retries_exhausted_leave_the_batch_open_for_the_next_sync(world: World) -> None:
    world.consent("c1")
    world.send("c1", to="c1@example.com")
    world.network.fail(3, status=503)
    first = world.sync().run()
    assert first.counts["cart_retargeting"].failures == 1
    assert world.store.confirmed("cart_retargeting") == set()
    second = world.sync().run()
    assert second.counts["cart_retargeting"].adds == 1
    keys = {r["headers"]["idempotency-key"] for r in world.network.requests}
    assert len(keys) == 1  # the same batch, never a second one for the same members


def test_a_permanent_failure_closes_the_batch_and_the_members_are_planned_again(
    world: World,
) -> None:
    world.consent("c1")
    world.send("c1", to="c1@example.com")
    world.network.fail(1, status=400)
    first = world.sync().run()
    assert first.failures == 1
    assert [b["status"] for b in world.store.batches()] == ["failed"]
    second = world.sync().run()
    assert second.counts["cart_retargeting"].adds == 1
    assert [b["status"] for b in world.store.batches()] == ["failed", "sent"]


def test_a_crash_after_the_network_accepted_resends_the_same_batch_once(world: World) -> None:
    world.consent("c1")
    world.send("c1", to="c1@example.com")
    with pytest.raises(Crash):
        world.sync(CrashAfterSend(world.raw_api)).run()
    assert world.store.confirmed("cart_retargeting") == set()
    result = world.sync().run()
    assert result.counts["cart_retargeting"].adds == 1
    ids = [r["json"]["batch_id"] for r in world.network.requests]
    assert len(ids) == 2
    assert len(set(ids)) == 1
    assert len(world.network.applied) == 1
    assert world.store.confirmed("cart_retargeting") == {"c1"}


def test_syncs_are_batched(tmp_path: Path, network: FakeAdNetwork) -> None:
    world = World(tmp_path, network, batch_size=2)
    try:
        for i in range(5):
            world.consent(f"c{i}")
            world.send(f"c{i}", to=f"c{i}@example.com")
        result = world.sync().run()
        assert result.counts["cart_retargeting"].adds == 5
        assert [len(r["json"]["members"]) for r in network.requests] == [2, 2, 1]
        assert len(network.members("1001")) == 5
    finally:
        world.close()


def test_a_customer_without_identifiers_is_skipped_and_counted(world: World) -> None:
    world.consent("c9")
    world.send("c9")
    result = world.sync().run()
    assert result.counts["cart_retargeting"].skipped == 1
    assert not world.network.requests
    world.event("c9", "profile_update", email="c9@example.com")
    assert world.sync().run().counts["cart_retargeting"].adds == 1


def test_the_report_shows_sizes_adds_removes_and_failures(world: World, tmp_path: Path) -> None:
    for customer in ("c1", "c2"):
        world.consent(customer)
        world.send(customer, to=f"{customer}@example.com")
    world.network.fail(3)
    world.sync().run()
    world.sync().run()
    world.event("c1", "purchase", value=5.0, currency="EUR", order_id="o")
    world.sync().run()
    path, table = write_report(world.store, tmp_path / "reports")
    report = json.loads(path.read_text())
    assert report["audiences"] == [
        {"audience": "cart_retargeting", "desired": 1, "confirmed": 1, "to_add": 0, "to_remove": 0}
    ]
    per_sync = [
        (s["sync_id"], s["adds"], s["removes"], s["failures"])
        for s in report["syncs"]
        if s["audience"] == "cart_retargeting"
    ]
    assert per_sync == [(1, 0, 0, 1), (2, 2, 0, 0), (3, 0, 1, 0)]
    assert "cart_retargeting" in table
    assert "failures" in table


def test_an_unknown_audience_is_refused_by_name(world: World) -> None:
    with pytest.raises(InvalidRequest, match="`audience` must be one of"):
        world.rules.add("nope", "c1", T0, "x")
