"""Customer events in, and what comes back from sent messages, through the real HTTP API.

The app runs over a copy of the demo's state (Feast online store, MLflow
champion, SQLite stores); tracked links are built the way the journey runner
builds them, and provider callbacks are signed the way a provider signs them.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from demo_support import DemoRun
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from channels import TrackingLinks
from channels.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_payload
from decisioning.engine import DecisionEngine
from features.event_stream import StoredEvent
from features.identity import IdentityGraph
from serving.app import create_app
from serving.events_api import MAX_BATCH
from serving.journey_wiring import identity_key, open_event_stream, tracking_secret
from serving.settings import Settings

CALLBACK_SECRET = "callback-test-secret"
PUBLIC_URL = "https://t.nudge.test"
TARGET = "https://shop.example.com/cart?ref=mail&items=1%2C2"
# No quiet hours, so that what is eligible does not depend on when the tests run.
CONFIG = {
    "channels": {"email": {"cost": 0.0}, "sms": {"cost": 0.05}},
    "messages": {
        "mens": {"channels": ["email", "sms"], "model_arm": "mens_email"},
        "womens": {"channels": ["email"], "model_arm": "womens_email"},
    },
    "control_arm": "no_email",
    "slots": ["now", "+1h"],
    "default_time_zone": "America/New_York",
    "caps": [{"channel": "email", "limit": 1, "window": "1d"}],
    "holdout": {"percent": 0, "salt": "tracking-tests"},
    "exploration": 0.1,
    "rewards": {
        "default": {
            "attribution_window": "72h",
            "conversions": {"visit": 1.0},
            "penalties": {"unsubscribe": 2.0},
        }
    },
}
MENS_AND_WOMENS = [{"message": "mens"}, {"message": "womens"}]


@pytest.fixture(scope="module")
def settings(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A copy of the demo's state, so these tests leave the demo's own evidence untouched."""
    root = tmp_path_factory.mktemp("tracking")
    state_dir = root / "state"
    shutil.copytree(demo_run.settings.state_dir, state_dir)
    config = root / "decisions.yaml"
    config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    return demo_run.settings.model_copy(
        update={
            "state_dir": state_dir,
            "decision_config": config,
            "callback_secret": CALLBACK_SECRET,
            "public_url": PUBLIC_URL,
        }
    )


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    # One app for the module: each test works on customers of its own.
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def customers(client: TestClient, demo_run: DemoRun) -> Iterator[str]:
    """Customers the demo opted in to e-mail, each handed out once.

    The demo's replay already sent some of them an e-mail today; the daily cap
    would refuse those another, so they are left out.
    """
    from features import EventLog

    contacts = engine_of(client).contacts
    decisions = EventLog(demo_run.settings.events_dir).read("decisions")
    everyone = dict.fromkeys(str(c) for c in decisions["customer_id"])
    return (customer for customer in everyone if not contacts.sends(customer))


@pytest.fixture
def links(client: TestClient, settings: Settings) -> TrackingLinks:
    # The app (already started) made the key; the runner reads the same file.
    return TrackingLinks(tracking_secret(settings), settings.public_url)


def engine_of(client: TestClient) -> DecisionEngine:
    engine: DecisionEngine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    return engine


def path_of(url: str) -> str:
    assert url.startswith(PUBLIC_URL + "/")
    return urlsplit(url).path


def email_decision(client: TestClient, customer_id: str) -> str:
    """The id of a fresh decision that sends ``customer_id`` an e-mail now."""
    response = client.post(
        "/v1/decide",
        json={
            "customer_id": customer_id,
            "candidates": MENS_AND_WOMENS,
            "allow_no_send": False,
            "slots": ["now"],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["action"]["channel"] == "email", body
    assert body["customer_id"] == customer_id
    return str(body["decision_id"])


def token_of(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[1]


def streamed(settings: Settings, event_ids: list[str]) -> dict[str, StoredEvent]:
    """What the event stream holds under ``event_ids``, read as the journey runner would."""
    stream = open_event_stream(settings)
    try:
        return stream.get(event_ids)
    finally:
        stream.close()


def streamed_for(settings: Settings, decision_id: str) -> list[StoredEvent]:
    stream = open_event_stream(settings)
    try:
        everything = stream.read(after=0, limit=1_000_000)
    finally:
        stream.close()
    return [e for e in everything if e.payload.get("decision_id") == decision_id]


def metric(client: TestClient, name: str, **labels: str) -> float:
    """One sample of ``GET /metrics``, 0 when it is not there yet."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def outcome_events(client: TestClient, decision_id: str) -> list[str]:
    return [o.event for o in engine_of(client).log.outcomes(decision_id)]


def event_body(event_id: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": event_id,
        "customer_id": "h00042",
        "type": "add_to_cart",
        "occurred_at": "2026-12-01T09:00:00Z",
        "payload": {"cart_value": 42.5, "items": [{"sku": "A-1", "qty": 2}]},
    }
    body.update(changes)
    return body


def first_error(response: Any) -> dict[str, Any]:
    detail = response.json()["detail"]
    assert isinstance(detail, list), response.text
    assert detail, response.text
    error: dict[str, Any] = detail[0]
    return error


# -- POST /v1/events --------------------------------------------------------------------


def test_one_event_is_accepted_and_its_repeat_is_a_duplicate(
    client: TestClient, settings: Settings
) -> None:
    body = event_body("api-single-1")
    first = client.post("/v1/events", json=body)
    assert first.status_code == 202, first.text
    assert first.json() == {"status": "accepted", "event_id": "api-single-1"}
    again = client.post("/v1/events", json=body)
    assert again.status_code == 202
    assert again.json() == {"status": "duplicate", "event_id": "api-single-1"}
    # The same instant written in another zone is the same event.
    same = client.post("/v1/events", json={**body, "occurred_at": "2026-12-01T10:00:00+01:00"})
    assert same.json() == {"status": "duplicate", "event_id": "api-single-1"}
    stream = open_event_stream(settings)
    try:
        stored = [e for e in stream.read(after=0, limit=100_000) if e.event_id == "api-single-1"]
    finally:
        stream.close()
    assert len(stored) == 1
    (event,) = stored
    assert (event.customer_id, event.type) == ("h00042", "add_to_cart")
    assert event.occurred_at == datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert event.payload == body["payload"]  # the first one stands


def test_an_event_without_an_id_is_refused(client: TestClient, settings: Settings) -> None:
    body = event_body("unused", customer_id="no-id-customer")
    del body["event_id"]
    response = client.post("/v1/events", json=body)
    assert response.status_code == 422, response.text
    error = first_error(response)
    assert error["loc"] == ["body", "event_id"]
    assert error["msg"] == "`event_id` is not valid: `event_id` field required"
    batch = client.post("/v1/events", json={"events": [event_body("with-id-0"), body]}).json()
    assert (batch["accepted"], batch["duplicate"], batch["refused"]) == (1, 0, 1)
    assert batch["results"][1] == {
        "index": 1,
        "status": "refused",
        "field": "events[1].event_id",
        "error": "`events[1].event_id` field required",
    }
    stream = open_event_stream(settings)
    try:
        stored = [
            e for e in stream.read(after=0, limit=100_000) if e.customer_id == body["customer_id"]
        ]
    finally:
        stream.close()
    assert stored == []


@pytest.mark.parametrize(
    ("changes", "differs"),
    [
        ({"customer_id": "h00043"}, "customer_id"),
        ({"type": "purchase"}, "type"),
        ({"occurred_at": "2026-12-01T09:00:01Z"}, "occurred_at"),
        ({"payload": {"cart_value": 1.0}}, "payload"),
        ({"type": "purchase", "payload": {}}, "type, payload"),
    ],
)
def test_an_event_id_reused_for_another_event_is_refused(
    client: TestClient, settings: Settings, changes: dict[str, Any], differs: str
) -> None:
    event_id = f"reused-{differs.replace(', ', '-')}"
    assert client.post("/v1/events", json=event_body(event_id)).json()["status"] == "accepted"
    other = event_body(event_id, **changes)
    single = client.post("/v1/events", json=other)
    assert single.status_code == 409, single.text
    assert single.json()["detail"][0]["msg"] == (
        f"`event_id` {event_id!r} was already used for another event (other {differs}); "
        "a retry must repeat the event unchanged"
    )
    batch = client.post("/v1/events", json={"events": [event_body(event_id), other]}).json()
    assert (batch["accepted"], batch["duplicate"], batch["refused"]) == (0, 1, 1)
    assert batch["results"][0] == {"index": 0, "status": "duplicate", "event_id": event_id}
    assert batch["results"][1] == {
        "index": 1,
        "status": "refused",
        "field": "events[1].event_id",
        "error": f"`events[1].event_id` {event_id!r} was already used for another event "
        f"(other {differs}); a retry must repeat the event unchanged",
    }
    stream = open_event_stream(settings)
    try:
        stored = stream.get([event_id])[event_id]
    finally:
        stream.close()
    assert (stored.customer_id, stored.type, stored.payload) == (
        "h00042",
        "add_to_cart",
        event_body(event_id)["payload"],
    )


def test_one_batch_reusing_an_id_for_two_events_keeps_the_first(client: TestClient) -> None:
    batch = [event_body("twice-in-one"), event_body("twice-in-one", type="purchase")]
    body = client.post("/v1/events", json={"events": batch}).json()
    assert [r["status"] for r in body["results"]] == ["accepted", "refused"]
    assert body["results"][1]["field"] == "events[1].event_id"
    assert "(other type)" in body["results"][1]["error"]


def test_a_batch_with_event_fields_beside_events_is_refused(
    client: TestClient, settings: Settings
) -> None:
    stream = open_event_stream(settings)
    try:
        before = stream.last_offset()
        body = {"events": [event_body("beside-0")], **event_body("beside-1")}
        response = client.post("/v1/events", json=body)
        assert response.status_code == 422, response.text
        error = first_error(response)
        assert error["loc"] == ["body", "customer_id"]
        assert error["msg"] == (
            "`customer_id` must not be next to `events`: a batch holds only `events`"
        )
        assert stream.read(after=before) == []
    finally:
        stream.close()


def test_an_event_more_than_five_minutes_ahead_is_refused(client: TestClient) -> None:
    ahead = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    response = client.post("/v1/events", json=event_body("ahead-10min", occurred_at=ahead))
    assert response.status_code == 422, response.text
    error = first_error(response)
    assert error["loc"] == ["body", "occurred_at"]
    assert (
        error["msg"]
        == f"`occurred_at` must not be more than 5 minutes in the future, got {ahead!r}"
    )
    # A clock a minute fast is skew, not the future.
    skewed = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    accepted = client.post("/v1/events", json=event_body("ahead-1min", occurred_at=skewed))
    assert accepted.json() == {"status": "accepted", "event_id": "ahead-1min"}
    batch = client.post(
        "/v1/events", json={"events": [event_body("ahead-batch", occurred_at=ahead)]}
    ).json()
    assert batch["results"] == [
        {
            "index": 0,
            "status": "refused",
            "field": "events[0].occurred_at",
            "error": "`events[0].occurred_at` must not be more than 5 minutes in the future, "
            f"got {ahead!r}",
        }
    ]


def test_a_body_nested_too_deep_is_a_422(client: TestClient) -> None:
    response = client.post(
        "/v1/events", content="[" * 3000, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    error = first_error(response)
    assert error["loc"] == ["body", "body"]
    assert error["msg"] == "`body` must be a JSON object, not nested this deep"


@pytest.mark.parametrize(
    ("event_id", "changes", "field"),
    [
        ("bad-naive", {"occurred_at": "2026-12-01T09:00:00"}, "occurred_at"),
        ("bad-words", {"occurred_at": "yesterday"}, "occurred_at"),
        ("bad-customer", {"customer_id": ""}, "customer_id"),
        ("bad-type", {"type": " "}, "type"),
        ("bad-payload", {"payload": [1, 2]}, "payload"),
        ("bad-extra", {"surprise": 1}, "surprise"),
    ],
)
def test_a_bad_event_is_a_422_naming_the_field(
    client: TestClient, settings: Settings, event_id: str, changes: dict[str, Any], field: str
) -> None:
    response = client.post("/v1/events", json=event_body(event_id, **changes))
    assert response.status_code == 422, response.text
    error = first_error(response)
    assert error["loc"] == ["body", field]
    assert error["msg"].startswith(f"`{field}` ")
    stream = open_event_stream(settings)
    try:
        assert event_id not in {e.event_id for e in stream.read(after=0, limit=100_000)}
    finally:
        stream.close()


def test_a_naive_time_is_refused_by_name(client: TestClient) -> None:
    response = client.post(
        "/v1/events", json=event_body("api-naive", occurred_at="2026-12-01T09:00:00")
    )
    assert response.status_code == 422
    assert first_error(response)["msg"] == (
        "`occurred_at` must carry a time zone, got '2026-12-01T09:00:00'"
    )


def test_a_batch_stores_the_good_events_and_names_the_bad_ones(
    client: TestClient, settings: Settings
) -> None:
    stream = open_event_stream(settings)
    try:
        before = stream.last_offset()
        batch = [
            event_body("batch-0"),
            event_body("batch-1", occurred_at="2026-12-01T09:00:00"),  # naive
            event_body("batch-2", type="purchase", payload={"value": 19.99}),
            {k: v for k, v in event_body("batch-3").items() if k != "customer_id"},
            event_body("batch-4", occurred_at="2026-12-01T10:00:00+01:00"),
        ]
        response = client.post("/v1/events", json={"events": batch})
        assert response.status_code == 202, response.text
        body = response.json()
        assert (body["accepted"], body["duplicate"], body["refused"]) == (3, 0, 2)
        results = body["results"]
        assert [(r["index"], r["status"]) for r in results] == [
            (0, "accepted"),
            (1, "refused"),
            (2, "accepted"),
            (3, "refused"),
            (4, "accepted"),
        ]
        assert [r["event_id"] for r in results if r["status"] == "accepted"] == [
            "batch-0",
            "batch-2",
            "batch-4",
        ]
        assert results[1]["field"] == "events[1].occurred_at"
        assert results[1]["error"].startswith("`events[1].occurred_at` must carry a time zone")
        assert results[3]["field"] == "events[3].customer_id"
        assert results[3]["error"].startswith("`events[3].customer_id` ")
        stored = stream.read(after=before)
    finally:
        stream.close()
    assert [(e.event_id, e.type) for e in stored] == [
        ("batch-0", "add_to_cart"),
        ("batch-2", "purchase"),
        ("batch-4", "add_to_cart"),
    ]
    assert stored[1].payload == {"value": 19.99}
    assert stored[2].occurred_at == datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert len({e.received_at for e in stored}) == 1  # one commit


def test_a_login_stitches_the_anonymous_visitor_and_later_events_follow(
    client: TestClient, settings: Settings
) -> None:
    browsing = event_body("stitch-view", customer_id="anon-stitch-1", type="page_view", payload={})
    login = event_body(
        "stitch-login",
        customer_id="c-stitch-1",
        type="login",
        payload={"anonymous_id": "anon-stitch-1", "email": " Ann.Stitch+shop@Example.COM "},
    )
    # The cart event is listed before the login in the batch, yet it was the same person.
    cart = event_body("stitch-cart", customer_id="anon-stitch-1", type="add_to_cart")
    response = client.post("/v1/events", json={"events": [browsing, cart, login]})
    assert response.json()["accepted"] == 3
    late = event_body("stitch-late", customer_id="anon-stitch-1", type="product_view", payload={})
    assert client.post("/v1/events", json=late).json()["status"] == "accepted"
    # A retry of an event stored before the merge is still its duplicate.
    assert client.post("/v1/events", json=browsing).json()["status"] == "duplicate"

    stream = open_event_stream(settings)
    try:
        history = [e.event_id for e in stream.history("c-stitch-1")]
        assert stream.history("anon-stitch-1") == []
        graph = IdentityGraph(stream.db, identity_key(settings))
        assert graph.resolve("email", "ann.stitch+shop@example.com") == "c-stitch-1"
        hashes = [row[0] for row in stream.db.query("SELECT value_hash FROM identity_links")]
    finally:
        stream.close()
    assert history == ["stitch-view", "stitch-cart", "stitch-login", "stitch-late"]
    assert not any("stitch" in value for value in hashes)  # no raw identifier stored


def test_a_merged_visitors_opt_out_follows_them(client: TestClient) -> None:
    opt_out = {
        "channels": {"email": {"consent": "opted_out"}},
        "at": "2026-12-01T10:00:00Z",
    }
    response = client.put("/v1/customers/anon-merge-3/contact", json=opt_out)
    assert response.status_code == 200, response.text
    opt_in = {"channels": {"email": {"consent": "opted_in"}}, "at": "2026-12-01T09:00:00Z"}
    assert client.put("/v1/customers/c-merge-3/contact", json=opt_in).status_code == 200
    login = event_body(
        "merge-login-3",
        customer_id="c-merge-3",
        type="login",
        payload={"anonymous_id": "anon-merge-3"},
    )
    assert client.post("/v1/events", json=login).json()["status"] == "accepted"
    profile = client.get("/v1/customers/c-merge-3/contact").json()
    # The visitor's opt-out came after the customer's opt-in: the latest statement wins.
    assert profile["channels"]["email"]["consent"] == "opted_out"


def test_an_identify_with_a_bad_phone_is_refused_by_field_and_links_nothing(
    client: TestClient, settings: Settings
) -> None:
    bad = event_body(
        "stitch-bad",
        customer_id="c-stitch-2",
        type="identify",
        payload={"anonymous_id": "anon-stitch-2", "phone": "12"},
    )
    good = event_body("stitch-good", customer_id="anon-stitch-2", type="page_view", payload={})
    body = client.post("/v1/events", json={"events": [good, bad]}).json()
    assert [r["status"] for r in body["results"]] == ["accepted", "refused"]
    assert body["results"][1]["field"] == "events[1].payload.phone"
    one = client.post("/v1/events", json=bad)
    assert one.status_code == 422
    assert "payload.phone" in one.text
    stream = open_event_stream(settings)
    try:
        graph = IdentityGraph(stream.db, identity_key(settings))
        assert graph.resolve("anonymous_id", "anon-stitch-2") is None
        assert [e.event_id for e in stream.history("anon-stitch-2")] == ["stitch-good"]
    finally:
        stream.close()


def test_a_batch_reports_repeats_as_duplicates(client: TestClient) -> None:
    client.post("/v1/events", json=event_body("repeat-old"))
    batch = [event_body("repeat-old"), event_body("repeat-new"), event_body("repeat-new")]
    body = client.post("/v1/events", json={"events": batch}).json()
    assert (body["accepted"], body["duplicate"], body["refused"]) == (1, 2, 0)
    assert [r["status"] for r in body["results"]] == ["duplicate", "accepted", "duplicate"]


def test_a_batch_item_that_is_not_an_object_is_refused_by_its_index(client: TestClient) -> None:
    body = client.post("/v1/events", json={"events": [event_body("obj-0"), 42]}).json()
    assert (body["accepted"], body["refused"]) == (1, 1)
    assert body["results"][1]["field"] == "events[1]"


@pytest.mark.parametrize("events", [[], "not a list", None])
def test_a_batch_must_be_a_non_empty_list(client: TestClient, events: Any) -> None:
    response = client.post("/v1/events", json={"events": events})
    assert response.status_code == 422
    assert first_error(response)["loc"] == ["body", "events"]


def test_a_batch_over_the_limit_is_refused_whole(client: TestClient, settings: Settings) -> None:
    stream = open_event_stream(settings)
    try:
        before = stream.last_offset()
        # Small events, so that it is the count that is over, not the body size limit.
        small = {"customer_id": "c", "type": "t", "occurred_at": "2026-12-01T09:00Z"}
        too_many = [{**small, "event_id": f"o{i}"} for i in range(MAX_BATCH + 1)]
        assert len(json.dumps({"events": too_many})) < settings.max_body_bytes
        response = client.post("/v1/events", json={"events": too_many})
        assert response.status_code == 422, response.text
        error = first_error(response)
        assert error["loc"] == ["body", "events"]
        assert f"1 to {MAX_BATCH} events" in error["msg"]
        assert stream.read(after=before) == []
        exactly = client.post("/v1/events", json={"events": too_many[:MAX_BATCH]})
        assert exactly.status_code == 202
        assert exactly.json()["accepted"] == MAX_BATCH
    finally:
        stream.close()


# -- opens, clicks and unsubscribes -----------------------------------------------------


def test_an_open_is_recorded_once_and_a_forged_one_not_at_all(
    client: TestClient, links: TrackingLinks, customers: Iterator[str]
) -> None:
    decision_id = email_decision(client, next(customers))
    pixel = client.get(path_of(links.open_url(decision_id)))
    assert pixel.status_code == 200
    assert pixel.headers["content-type"] == "image/gif"
    assert pixel.content.startswith(b"GIF89a")
    assert "no-store" in pixel.headers["cache-control"]
    outcome = engine_of(client).log.get_outcome(f"{decision_id}:open")
    assert outcome is not None
    assert (outcome.decision_id, outcome.event, outcome.reward) == (decision_id, "open", 0.0)
    assert client.get(path_of(links.open_url(decision_id))).status_code == 200
    assert outcome_events(client, decision_id) == ["open"]

    other = email_decision(client, next(customers))
    forged = TrackingLinks("not-our-secret", PUBLIC_URL).open_url(other)
    tampered = links.open_url(other).replace(".gif", "x.gif")
    for url in (forged, tampered):
        answer = client.get(path_of(url))
        assert (answer.status_code, answer.headers["content-type"]) == (200, "image/gif")
        assert answer.content == pixel.content
    assert client.get("/t/o/garbage.gif").status_code == 200
    assert outcome_events(client, other) == []


def test_a_click_redirects_to_the_exact_target_and_is_recorded(
    client: TestClient, links: TrackingLinks, customers: Iterator[str]
) -> None:
    decision_id = email_decision(client, next(customers))
    response = client.get(path_of(links.click_url(decision_id, TARGET)), follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == TARGET
    outcome = engine_of(client).log.get_outcome(f"{decision_id}:click:{TARGET}")
    assert outcome is not None
    assert outcome.event == "click"
    # Another link of the same message is another click; the same link again is not.
    other_target = "https://shop.example.com/new"
    client.get(path_of(links.click_url(decision_id, other_target)), follow_redirects=False)
    client.get(path_of(links.click_url(decision_id, TARGET)), follow_redirects=False)
    assert outcome_events(client, decision_id) == ["click", "click"]


def test_a_forged_click_is_a_404_and_records_nothing(
    client: TestClient, links: TrackingLinks, customers: Iterator[str]
) -> None:
    decision_id = email_decision(client, next(customers))
    forged = TrackingLinks("not-our-secret", PUBLIC_URL).click_url(decision_id, TARGET)
    # A real open token is signed, but it is not a click: no redirect to anywhere.
    open_token = urlsplit(links.open_url(decision_id)).path.rsplit("/", 1)[1].removesuffix(".gif")
    for path in (path_of(forged), f"/t/c/{open_token}", "/t/c/garbage"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 404, path
        assert "location" not in response.headers
        assert "not valid" in response.text
    assert outcome_events(client, decision_id) == []


def test_a_click_for_an_unknown_decision_is_a_404(client: TestClient, links: TrackingLinks) -> None:
    response = client.get(path_of(links.click_url("no-such-decision", TARGET)))
    assert response.status_code == 404


def test_the_unsubscribe_page_asks_and_records_nothing(
    client: TestClient, links: TrackingLinks, customers: Iterator[str]
) -> None:
    customer = next(customers)
    decision_id = email_decision(client, customer)
    url = links.unsubscribe_url(decision_id)
    page = client.get(path_of(url))
    assert page.status_code == 200
    # Its own URL, whatever path prefix a proxy puts in front of the API.
    assert "<form method=post action=''>" in page.text
    assert "/u/" not in page.text
    assert outcome_events(client, decision_id) == []
    assert engine_of(client).contacts.profile(customer).channel("email").suppressed is None
    forged = TrackingLinks("not-our-secret", PUBLIC_URL).unsubscribe_url(decision_id)
    # A click or an open token is signed too, but it is not an unsubscribe link.
    click_token = token_of(links.click_url(decision_id, TARGET))
    open_token = token_of(links.open_url(decision_id)).removesuffix(".gif")
    for path in (path_of(forged), f"/u/{click_token}", f"/u/{open_token}"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "This link is not valid" in answer.text
        assert "<form" not in answer.text


def test_an_unsubscribe_suppresses_the_channel_for_later_decisions(
    client: TestClient, links: TrackingLinks, customers: Iterator[str]
) -> None:
    customer = next(customers)
    decision_id = email_decision(client, customer)
    path = path_of(links.unsubscribe_url(decision_id))
    response = client.post(path)
    assert response.status_code == 200
    assert "You are unsubscribed" in response.text
    engine = engine_of(client)
    outcome = engine.log.get_outcome(f"{decision_id}:unsubscribe")
    assert outcome is not None
    assert (outcome.event, outcome.reward) == ("unsubscribe", -2.0)
    assert engine.contacts.profile(customer).channel("email").suppressed == "unsubscribe"
    # The one-click POST again (a mail client retrying) adds nothing.
    assert client.post(path).status_code == 200
    assert outcome_events(client, decision_id) == ["unsubscribe"]

    later = client.post(
        "/v1/decide", json={"customer_id": customer, "candidates": MENS_AND_WOMENS}
    ).json()
    assert later["eligible"] == ["no_send"]
    email_rules = {e["action"]: e["rule"] for e in later["excluded"] if "/email/" in e["action"]}
    assert set(email_rules) == {"mens/email/now", "mens/email/+1h", "womens/email/now",
                                "womens/email/+1h"}  # fmt: skip
    assert set(email_rules.values()) == {"suppression"}


def test_a_forged_unsubscribe_changes_nothing(client: TestClient, customers: Iterator[str]) -> None:
    customer = next(customers)
    decision_id = email_decision(client, customer)
    forged = TrackingLinks("not-our-secret", PUBLIC_URL).unsubscribe_url(decision_id)
    assert client.post(path_of(forged)).status_code == 404
    assert outcome_events(client, decision_id) == []
    assert engine_of(client).contacts.profile(customer).channel("email").suppressed is None


def sms_decision(client: TestClient, customer_id: str) -> str:
    """The id of a fresh decision that texts ``customer_id`` now (opted in to SMS first)."""
    contact = client.put(
        f"/v1/customers/{customer_id}/contact",
        json={"channels": {"sms": {"consent": "opted_in", "reachable": True}}},
    )
    assert contact.status_code == 200, contact.text
    response = client.post(
        "/v1/decide",
        json={
            "customer_id": customer_id,
            "candidates": [{"message": "mens", "channels": ["sms"]}],
            "allow_no_send": False,
            "slots": ["now"],
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["action"]["channel"] == "sms", response.text
    return str(response.json()["decision_id"])


def test_tracked_opens_clicks_and_unsubscribes_reach_the_event_stream(
    client: TestClient, links: TrackingLinks, settings: Settings, customers: Iterator[str]
) -> None:
    customer = next(customers)
    decision_id = email_decision(client, customer)
    message = engine_of(client).log.get_decision(decision_id).action.message
    long_target = "https://shop.example.com/landing?" + "utm=x&" * 30
    before = datetime.now(UTC)
    for _ in range(2):  # a repeat of each is stored once
        client.get(path_of(links.open_url(decision_id)))
        client.get(path_of(links.click_url(decision_id, TARGET)), follow_redirects=False)
        client.get(path_of(links.click_url(decision_id, long_target)), follow_redirects=False)
        client.post(path_of(links.unsubscribe_url(decision_id)))
    after = datetime.now(UTC)
    sent = {"decision_id": decision_id, "channel": "email", "message": message}
    events = streamed_for(settings, decision_id)
    assert [(e.customer_id, e.type, e.payload) for e in events] == [
        (customer, "email_open", sent),
        (customer, "email_click", {**sent, "url": TARGET}),
        (customer, "email_click", {**sent, "url": long_target}),
        (customer, "unsubscribe", sent),
    ]
    # The event id is the outcome id (hashed when it is longer than an event id may be).
    assert [e.event_id for e in events[:2]] == [
        f"{decision_id}:open",
        f"{decision_id}:click:{TARGET}",
    ]
    assert events[2].event_id.startswith("outcome-")
    assert len(events[2].event_id) <= 128
    assert events[3].event_id == f"{decision_id}:unsubscribe"
    assert all(before <= e.occurred_at <= after for e in events)


def test_an_sms_click_reaches_the_event_stream_as_sms_click(
    client: TestClient, links: TrackingLinks, settings: Settings, customers: Iterator[str]
) -> None:
    customer = next(customers)
    decision_id = sms_decision(client, customer)
    client.get(path_of(links.click_url(decision_id, TARGET)), follow_redirects=False)
    (event,) = streamed_for(settings, decision_id)
    assert (event.customer_id, event.type, event.payload) == (
        customer,
        "sms_click",
        {"decision_id": decision_id, "channel": "sms", "message": "mens", "url": TARGET},
    )


def test_forged_or_unknown_tracking_reaches_no_event_stream(
    client: TestClient, links: TrackingLinks, settings: Settings, customers: Iterator[str]
) -> None:
    decision_id = email_decision(client, next(customers))
    forger = TrackingLinks("not-our-secret", PUBLIC_URL)
    client.get(path_of(forger.open_url(decision_id)))
    client.get(path_of(forger.click_url(decision_id, TARGET)), follow_redirects=False)
    client.post(path_of(forger.unsubscribe_url(decision_id)))
    client.post(path_of(links.click_url(decision_id, TARGET).replace("/t/c/", "/u/")))
    client.get(path_of(links.open_url("no-such-decision")))
    assert streamed_for(settings, decision_id) == []
    assert streamed(settings, ["no-such-decision:open"]) == {}


def test_tracked_outcomes_show_in_metrics(
    client: TestClient, links: TrackingLinks, customers: Iterator[str]
) -> None:
    decision_id = email_decision(client, next(customers))
    names = [("open", "true"), ("click", "true"), ("unsubscribe", "true")]
    before = {n: metric(client, "nudge_outcomes_total", event=n[0], new=n[1]) for n in names}
    client.get(path_of(links.open_url(decision_id)))
    client.get(path_of(links.click_url(decision_id, TARGET)), follow_redirects=False)
    client.get(path_of(links.click_url(decision_id, TARGET)), follow_redirects=False)  # once
    client.post(path_of(links.unsubscribe_url(decision_id)))
    after = {n: metric(client, "nudge_outcomes_total", event=n[0], new=n[1]) for n in names}
    assert {n: after[n] - before[n] for n in names} == dict.fromkeys(names, 1.0)


# -- provider callbacks -----------------------------------------------------------------


def signed(body: str, *, secret: str = CALLBACK_SECRET, at: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if at is None else at
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign_payload(secret, timestamp, body),
    }


def callback_body(*events: tuple[str, str, str]) -> str:
    """``(provider event id, message id, type)`` as the generic callback JSON."""
    now = datetime.now(UTC).isoformat()
    return json.dumps(
        {"events": [{"id": i, "message_id": m, "type": t, "timestamp": now} for i, m, t in events]}
    )


def test_a_signed_callback_records_its_events_and_refuses_a_replay(
    client: TestClient, customers: Iterator[str]
) -> None:
    customer = next(customers)
    decision_id = email_decision(client, customer)
    body = callback_body(
        ("evt-delivered", decision_id, "delivered"),
        ("evt-bounce", decision_id, "Hard bounce"),
        ("evt-unknown", "no-such-decision", "open"),
    )
    headers = signed(body)
    response = client.post("/v1/callbacks/acme", content=body, headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["accepted"], answer["refused"]) == (2, 1)
    results = {r["id"]: r for r in answer["results"]}
    assert results["evt-delivered"] == {"id": "evt-delivered", "status": "accepted", "new": True}
    assert results["evt-bounce"] == {"id": "evt-bounce", "status": "accepted", "new": True}
    assert results["evt-unknown"]["status"] == "refused"
    assert "no-such-decision" in results["evt-unknown"]["error"]
    engine = engine_of(client)
    delivered = engine.log.get_outcome(f"{decision_id}:delivered")
    bounced = engine.log.get_outcome(f"{decision_id}:hard_bounce")
    assert delivered is not None
    assert delivered.event == "delivered"
    assert bounced is not None
    assert bounced.event == "hard_bounce"
    assert sorted(outcome_events(client, decision_id)) == ["delivered", "hard_bounce"]
    assert engine.contacts.profile(customer).channel("email").suppressed == "hard_bounce"

    replay = client.post("/v1/callbacks/acme", content=body, headers=headers)
    assert replay.status_code == 401
    assert sorted(outcome_events(client, decision_id)) == ["delivered", "hard_bounce"]


def test_a_resent_event_in_a_new_callback_counts_once(
    client: TestClient, customers: Iterator[str]
) -> None:
    decision_id = email_decision(client, next(customers))
    first = callback_body(("evt-open-1", decision_id, "opened"))
    client.post("/v1/callbacks/acme", content=first, headers=signed(first))
    # The provider thought the first was lost: same event, new body, new signature.
    resent = callback_body(("evt-open-1", decision_id, "opened"))
    answer = client.post("/v1/callbacks/acme", content=resent, headers=signed(resent))
    assert answer.status_code == 200, answer.text
    assert outcome_events(client, decision_id) == ["open"]


@pytest.mark.parametrize("problem", ["bad signature", "other secret", "stale", "future", "none"])
def test_a_callback_not_signed_now_with_our_secret_is_a_401(
    client: TestClient, customers: Iterator[str], problem: str
) -> None:
    decision_id = email_decision(client, next(customers))
    body = callback_body((f"evt-{problem}", decision_id, "hard_bounce"))
    headers = {
        "bad signature": {**signed(body), SIGNATURE_HEADER: "sha256=" + "0" * 64},
        "other secret": signed(body, secret="not-our-secret"),
        "stale": signed(body, at=int(time.time()) - 600),
        "future": signed(body, at=int(time.time()) + 600),
        "none": {"Content-Type": "application/json"},
    }[problem]
    response = client.post("/v1/callbacks/acme", content=body, headers=headers)
    assert response.status_code == 401, response.text
    assert outcome_events(client, decision_id) == []


def test_a_signed_callback_that_is_not_the_callback_shape_is_a_422(client: TestClient) -> None:
    body = json.dumps({"events": [{"id": "x", "message_id": "d", "type": "teleported"}]})
    response = client.post("/v1/callbacks/acme", content=body, headers=signed(body))
    assert response.status_code == 422
    assert first_error(response)["loc"] == ["body", "events", 0, "type"]


def test_callbacks_are_refused_without_a_configured_secret(settings: Settings) -> None:
    closed = settings.model_copy(update={"callback_secret": None})
    body = callback_body(("evt-1", "d1", "delivered"))
    with TestClient(create_app(closed)) as other:
        response = other.post("/v1/callbacks/acme", content=body, headers=signed(body))
    assert response.status_code == 403
    assert "NUDGE_CALLBACK_SECRET" in response.text


def test_a_callback_event_time_may_be_unix_seconds(
    client: TestClient, customers: Iterator[str]
) -> None:
    decision_id = email_decision(client, next(customers))
    moment = datetime.now(UTC).timestamp()
    event = {"id": "evt-unix", "message_id": decision_id, "type": "delivered", "timestamp": moment}
    body = json.dumps({"events": [event]})
    response = client.post("/v1/callbacks/acme", content=body, headers=signed(body))
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    outcome = engine_of(client).log.get_outcome(f"{decision_id}:delivered")
    assert outcome is not None
    assert abs(outcome.occurred_at.timestamp() - moment) < 1e-3


def test_callback_events_a_journey_can_wait_for_reach_the_event_stream(
    client: TestClient, settings: Settings, customers: Iterator[str]
) -> None:
    customer = next(customers)
    decision_id = email_decision(client, customer)
    message = engine_of(client).log.get_decision(decision_id).action.message
    # The provider's own time for the events, a little ahead of ours.
    at = (datetime.now(UTC) + timedelta(minutes=2)).replace(microsecond=0)
    kinds = ["opened", "clicked", "delivered", "spam", "bounced"]
    events = [
        {"id": f"cb-{kind}", "message_id": decision_id, "type": kind, "timestamp": at.isoformat()}
        for kind in kinds
    ]
    events.append(
        {"id": "cb-x", "message_id": "no-such-decision", "type": "clicked", "timestamp": 1}
    )
    body = json.dumps({"events": events})
    answer = client.post("/v1/callbacks/acme", content=body, headers=signed(body)).json()
    assert (answer["accepted"], answer["refused"]) == (5, 1)
    sent = {"decision_id": decision_id, "channel": "email", "message": message}
    found = streamed_for(settings, decision_id)
    assert [(e.event_id, e.customer_id, e.type, e.payload, e.occurred_at) for e in found] == [
        (f"{decision_id}:open", customer, "email_open", sent, at),
        ("acme:cb-clicked", customer, "email_click", sent, at),
        (f"{decision_id}:complaint", customer, "complaint", sent, at),
        (f"{decision_id}:hard_bounce", customer, "hard_bounce", sent, at),
    ]
    assert streamed(settings, ["acme:cb-x"]) == {}


def test_callback_outcomes_show_in_metrics(client: TestClient, customers: Iterator[str]) -> None:
    decision_id = email_decision(client, next(customers))
    samples = [
        ("nudge_outcomes_total", {"event": "delivered", "new": "true"}),
        ("nudge_outcomes_total", {"event": "hard_bounce", "new": "true"}),
        ("nudge_sends_total", {"channel": "email", "status": "delivered"}),
        ("nudge_sends_total", {"channel": "email", "status": "failed"}),
    ]
    before = [metric(client, name, **labels) for name, labels in samples]
    body = callback_body(
        ("m-delivered", decision_id, "delivered"), ("m-bounce", decision_id, "hard_bounce")
    )
    assert client.post("/v1/callbacks/acme", content=body, headers=signed(body)).status_code == 200
    after = [metric(client, name, **labels) for name, labels in samples]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1.0, 1.0, 1.0, 1.0]


def test_a_signed_callback_nested_too_deep_is_a_422(client: TestClient) -> None:
    body = "[" * 3000
    response = client.post("/v1/callbacks/acme", content=body, headers=signed(body))
    assert response.status_code == 422, response.text
    error = first_error(response)
    assert error["loc"] == ["body", "payload"]
    assert error["msg"] == (
        "`payload` must be a JSON object with an `events` list, not nested this deep"
    )
