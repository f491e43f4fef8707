"""Cart events posted to the API update the real-time cart features (Feast push source)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from demo_support import DemoRun
from fastapi.testclient import TestClient
from feast_support import NOW, write_tables

from features import EventLog
from features.definitions import BEHAVIOUR_SERVICE
from features.feast_repo import FeatureRepo
from serving.app import create_app
from serving.settings import Settings


@pytest.fixture(scope="module")
def settings(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The demo's state with the behaviour views applied beside its profile view."""
    root = tmp_path_factory.mktemp("push-api")
    shutil.copytree(demo_run.settings.state_dir, root / "state")
    settings = demo_run.settings.model_copy(update={"state_dir": root / "state"})
    tables = write_tables(root, [NOW])
    FeatureRepo(settings.state_dir).apply(
        EventLog(settings.events_dir).path("profiles"), tables.behaviour
    )
    return settings


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def cart_of(settings: Settings, customer: str) -> tuple[object, object]:
    row = FeatureRepo(settings.state_dir).online(BEHAVIOUR_SERVICE).get(customer)
    return row.values["cart_value"], row.values["cart_open"]


def test_an_accepted_add_to_cart_is_online_within_a_second(
    client: TestClient, settings: Settings
) -> None:
    now = datetime.now(UTC)
    body = {
        "event_id": "push-api-1",
        "customer_id": "h00007",
        "type": "add_to_cart",
        "occurred_at": now.isoformat(),
        "payload": {"cart_value": 64.5},
    }
    started = time.perf_counter()
    assert client.post("/v1/events", json=body).json()["status"] == "accepted"
    assert cart_of(settings, "h00007") == (64.5, 1)
    assert time.perf_counter() - started < 1.0
    # A purchase in a batch closes the cart; a duplicate is not pushed again.
    buy = {**body, "event_id": "push-api-2", "type": "purchase", "payload": {"value": 64.5}}
    response = client.post("/v1/events", json={"events": [buy, body]}).json()
    assert [r["status"] for r in response["results"]] == ["accepted", "duplicate"]
    assert cart_of(settings, "h00007") == (0.0, 0)


def test_a_stitched_visitors_cart_lands_on_the_customer(
    client: TestClient, settings: Settings
) -> None:
    now = datetime.now(UTC).isoformat()
    login = {
        "event_id": "push-api-login",
        "customer_id": "h00008",
        "type": "login",
        "occurred_at": now,
        "payload": {"anonymous_id": "anon-push-8"},
    }
    cart = {
        "event_id": "push-api-cart",
        "customer_id": "anon-push-8",
        "type": "add_to_cart",
        "occurred_at": now,
        "payload": {"cart_value": 12.0},
    }
    assert client.post("/v1/events", json={"events": [login, cart]}).json()["accepted"] == 2
    assert cart_of(settings, "h00008") == (12.0, 1)
    assert cart_of(settings, "anon-push-8") == (None, None)
