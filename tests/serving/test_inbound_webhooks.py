"""Inbound webhooks: a signed request's events are stored; a bad, stale or replayed one is a 401.

The router runs in an app of its own over a real event stream and identity
graph in SQLite, with a fixed clock, signed the way a sender signs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from channels.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_payload
from features.event_stream import EventStream
from features.identity import IdentityGraph
from features.sql import SQLiteDatabase
from features.stitching import StitchingStream
from serving.errors import install_error_handlers
from serving.settings import Settings
from serving.webhooks_api import webhooks_router

SECRET = "crm-secret-0123456789"
NOW = 1_775_000_000  # 2026-03-31T23:33:20Z
AT = "2026-03-31T23:00:00Z"


class Harness:
    def __init__(self, client: TestClient, stream: EventStream) -> None:
        self.client = client
        self.stream = stream

    def post(
        self,
        body: dict[str, Any],
        *,
        source: str = "crm",
        secret: str = SECRET,
        timestamp: int = NOW,
        signature: str | None = None,
    ) -> Any:
        raw = json.dumps(body).encode()
        headers = {
            "content-type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature or sign_payload(secret, timestamp, raw),
        }
        return self.client.post(f"/v1/webhooks/{source}", content=raw, headers=headers)


def make_harness(tmp_path: Path, secrets: dict[str, str]) -> tuple[Harness, SQLiteDatabase]:
    db = SQLiteDatabase(tmp_path / "stream.db")
    stream = EventStream(db)
    stitching = StitchingStream(stream, IdentityGraph(db, b"k" * 32, listeners=[stream]))
    settings = Settings(state_dir=tmp_path, webhook_secrets=secrets)
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(webhooks_router(settings, lambda _: stitching, clock=lambda: float(NOW)))
    return Harness(TestClient(app), stream), db


@pytest.fixture
def hooks(tmp_path: Path) -> Iterator[Harness]:
    harness, db = make_harness(tmp_path, {"crm": SECRET, "shop": "shop-secret-0123456789"})
    yield harness
    db.close()


def event(ident: str = "e1", **change: Any) -> dict[str, Any]:
    return {
        "id": ident,
        "customer_id": "c1",
        "type": "purchase",
        "occurred_at": AT,
        "payload": {"value": 12.5},
        **change,
    }


def test_a_signed_request_is_stored(hooks: Harness) -> None:
    answer = hooks.post({"events": [event()]})
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == 1
    (stored,) = hooks.stream.read(after=0)
    assert (stored.event_id, stored.customer_id, stored.type) == ("crm:e1", "c1", "purchase")
    assert stored.payload == {"value": 12.5}
    assert stored.occurred_at.isoformat() == "2026-03-31T23:00:00+00:00"


def test_a_crm_contact_update_becomes_profile_and_consent_events(hooks: Harness) -> None:
    contact = {
        "id": "chg-7",
        "customer_id": "c1",
        "updated_at": AT,
        "email": "ann@example.com",
        "time_zone": "Europe/Paris",
        "attributes": {"first_name": "Ann"},
        "consent": {"email": "opted_in", "sms": "opted_out"},
    }
    answer = hooks.post({"contacts": [contact]})
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == 2
    stored = {e.event_id: e for e in hooks.stream.read(after=0)}
    profile, consent = stored["crm:chg-7:profile"], stored["crm:chg-7:consent"]
    assert profile.type == "profile_update"
    assert profile.payload == {
        "email": "ann@example.com",
        "time_zone": "Europe/Paris",
        "first_name": "Ann",
    }
    assert consent.type == "consent_update"
    assert consent.payload == {"channels": {"email": "opted_in", "sms": "opted_out"}}


@pytest.mark.parametrize(
    "attack",
    [
        {"signature": "sha256=" + "0" * 64},  # forged
        {"secret": "shop-secret-0123456789"},  # another source's secret
        {"timestamp": NOW - 301},  # stale
        {"timestamp": NOW + 301},  # from the future
        {"source": "erp"},  # a source without a secret
    ],
    ids=["bad-signature", "other-secret", "stale", "future", "unknown-source"],
)
def test_a_bad_signature_stale_timestamp_or_unknown_source_is_401(
    hooks: Harness, attack: dict[str, Any]
) -> None:
    answer = hooks.post({"events": [event()]}, **attack)
    assert answer.status_code == 401
    assert answer.json()["detail"] == "the webhook's source, signature or timestamp is not valid"
    assert hooks.stream.count() == 0


def test_a_replay_is_401_and_stores_nothing_more(hooks: Harness) -> None:
    assert hooks.post({"events": [event()]}).status_code == 202
    replayed = hooks.post({"events": [event()]})
    assert replayed.status_code == 401
    assert hooks.stream.count() == 1


def test_a_resend_with_a_new_signature_is_stored_once(hooks: Harness) -> None:
    hooks.post({"events": [event()]})
    again = hooks.post({"events": [event()]}, timestamp=NOW - 5)
    assert again.status_code == 202
    assert again.json()["duplicate"] == 1
    changed = hooks.post({"events": [event(type="refund")]}, timestamp=NOW - 6)
    (result,) = changed.json()["results"]
    assert result["status"] == "refused"
    assert result["field"] == "events[0].id"
    assert "other type" in result["error"]
    assert hooks.stream.count() == 1


def test_sources_do_not_share_ids(hooks: Harness) -> None:
    hooks.post({"events": [event()]})
    shop = hooks.post({"events": [event()]}, source="shop", secret="shop-secret-0123456789")
    assert shop.json()["accepted"] == 1
    assert sorted(e.event_id for e in hooks.stream.read(after=0)) == ["crm:e1", "shop:e1"]


def test_bad_items_are_refused_one_by_one_and_the_good_stored(hooks: Harness) -> None:
    items = [
        event("ok"),
        event("naive", occurred_at="2026-03-31T23:00:00"),
        event("ahead", occurred_at="2026-04-01T00:00:00Z"),
        {"id": "x", "customer_id": "c1"},
        event("extra", colour="red"),
    ]
    answer = hooks.post({"events": items})
    assert answer.status_code == 202
    body = answer.json()
    assert (body["accepted"], body["refused"]) == (1, 4)
    fields = {r["index"]: r.get("field") for r in body["results"]}
    assert fields == {
        0: None,
        1: "events[1].occurred_at",
        2: "events[2].occurred_at",
        3: "events[3].type",
        4: "events[4].colour",
    }
    assert [e.event_id for e in hooks.stream.read(after=0)] == ["crm:ok"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"contacts": [{"id": "c", "customer_id": "c1", "updated_at": AT}]}, "contacts[0]"),
        (
            {
                "contacts": [
                    {
                        "id": "c",
                        "customer_id": "c1",
                        "updated_at": AT,
                        "attributes": {"email": "x@example.com"},
                    }
                ]
            },
            "contacts[0].attributes.email",
        ),
        (
            {
                "contacts": [
                    {"id": "c", "customer_id": "c1", "updated_at": AT, "consent": {"sms": "yes"}}
                ]
            },
            "contacts[0].consent.sms",
        ),
    ],
)
def test_contact_updates_that_change_nothing_or_are_wrong_are_refused(
    hooks: Harness, body: dict[str, Any], field: str
) -> None:
    (result,) = hooks.post(body).json()["results"]
    assert (result["status"], result["field"]) == ("refused", field)
    assert hooks.stream.count() == 0


def test_a_signed_body_that_is_not_a_batch_is_422(hooks: Harness) -> None:
    answer = hooks.post({"rows": []})
    assert answer.status_code == 422
    assert "body" in answer.text
    assert hooks.stream.count() == 0


def test_without_secrets_the_route_is_off(tmp_path: Path) -> None:
    harness, db = make_harness(tmp_path, {})
    answer = harness.post({"events": [event()]})
    assert answer.status_code == 403
    assert "NUDGE_WEBHOOK_SECRETS" in answer.text
    assert harness.stream.count() == 0
    db.close()


def test_secrets_travel_to_worker_processes_as_json() -> None:
    settings = Settings(webhook_secrets={"crm": SECRET})
    assert json.loads(settings.as_env()["NUDGE_WEBHOOK_SECRETS"]) == {"crm": SECRET}
