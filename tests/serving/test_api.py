"""The HTTP API over a demo run's real state: Feast online store, MLflow champion, SQLite stores."""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from demo_support import DemoRun
from fastapi.testclient import TestClient

from features import PROFILE_FEATURES
from serving.app import create_app
from serving.settings import Settings

# No quiet hours, so that what is eligible does not depend on when the tests run.
API_CONFIG = {
    "channels": {"email": {"cost": 0.0}, "sms": {"cost": 0.05}},
    "messages": {
        "mens": {"channels": ["email", "sms"], "model_arm": "mens_email"},
        "womens": {"channels": ["email"], "model_arm": "womens_email"},
    },
    "control_arm": "no_email",
    "slots": ["now", "+1h"],
    "default_time_zone": "America/New_York",
    "caps": [{"channel": "email", "limit": 1, "window": "1d"}],
    "holdout": {"percent": 0, "salt": "api-tests"},
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
def api_settings(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A copy of the demo's state, so these tests leave the demo's own evidence untouched."""
    root = tmp_path_factory.mktemp("api")
    state_dir = root / "state"
    shutil.copytree(demo_run.settings.state_dir, state_dir)
    config = root / "decisions.yaml"
    config.write_text(yaml.safe_dump(API_CONFIG), encoding="utf-8")
    return demo_run.settings.model_copy(update={"state_dir": state_dir, "decision_config": config})


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings)) as test_client:
        yield test_client


def known_customers(demo_run: DemoRun) -> list[str]:
    from features import EventLog

    decisions = EventLog(demo_run.settings.events_dir).read("decisions")
    return [str(c) for c in decisions["customer_id"]]


def known_customer(demo_run: DemoRun, index: int = 0) -> str:
    return known_customers(demo_run)[index]


def decide(client: TestClient, customer_id: str, **extra: object) -> dict[str, object]:
    body: dict[str, object] = {"customer_id": customer_id, "candidates": MENS_AND_WOMENS}
    body.update(extra)
    response = client.post("/v1/decide", json=body)
    assert response.status_code == 200, response.text
    payload: dict[str, object] = response.json()
    return payload


def test_decide_returns_a_joint_action_with_its_probability_and_explanation(
    client: TestClient, demo_run: DemoRun
) -> None:
    body = decide(client, known_customer(demo_run), journey="spring", step="first")
    action = body["action"]
    assert isinstance(action, dict)
    eligible = body["eligible"]
    assert isinstance(eligible, list)
    assert set(eligible) == {
        "mens/email/now",
        "mens/email/+1h",
        "womens/email/now",
        "womens/email/+1h",
        "no_send",
    }
    assert action["key"] in eligible
    scores = body["scores"]
    assert isinstance(scores, dict)
    assert body["propensity"] == scores[action["key"]]["probability"]
    assert math.isclose(sum(s["probability"] for s in scores.values()), 1.0, abs_tol=1e-9)
    # SMS is in the catalogue, but nobody in the demo consented to it.
    excluded = body["excluded"]
    assert isinstance(excluded, list)
    assert {e["action"]: e["rule"] for e in excluded} == {
        "mens/sms/now": "consent",
        "mens/sms/+1h": "consent",
    }
    assert body["model_version"] == str(demo_run.result.summary["model"]["version"])
    assert body["missing_features"] == []
    assert (body["journey"], body["step"], body["time_zone"]) == (
        "spring",
        "first",
        "America/New_York",
    )
    logged = client.get(f"/v1/decisions/{body['decision_id']}")
    assert logged.json() == body


def test_priors_come_from_the_champion_model(client: TestClient, demo_run: DemoRun) -> None:
    body = decide(client, known_customer(demo_run, 7))
    scores = body["scores"]
    assert isinstance(scores, dict)
    for key, score in scores.items():
        assert 0.0 < score["prior"] < 1.0, key
        assert score["uncertainty"] > 0.0
    assert scores["mens/email/now"]["prior"] == scores["mens/email/+1h"]["prior"]


def test_the_email_cap_holds_across_requests(client: TestClient, demo_run: DemoRun) -> None:
    customer = known_customer(demo_run, 1)
    first = decide(client, customer, allow_no_send=False)
    assert isinstance(first["action"], dict)
    assert first["action"]["channel"] == "email"
    response = client.post(
        "/v1/decide",
        json={"customer_id": customer, "candidates": MENS_AND_WOMENS, "allow_no_send": False},
    )
    assert response.status_code == 409
    assert "frequency_cap" in response.text
    second = decide(client, customer)
    assert second["eligible"] == ["no_send"]
    excluded = second["excluded"]
    assert isinstance(excluded, list)
    assert {e["rule"] for e in excluded} == {"frequency_cap", "consent"}


def test_unknown_customers_are_not_contacted(client: TestClient) -> None:
    body = decide(client, "nobody-we-know")
    assert sorted(body["missing_features"]) == sorted(PROFILE_FEATURES)  # type: ignore[type-var]
    assert body["eligible"] == ["no_send"]


def test_context_fills_in_what_the_store_lacks(client: TestClient) -> None:
    context = {"recency": 1, "history": 500.0, "mens": 1, "womens": 0}
    body = decide(client, "new-visitor", context=context)
    assert sorted(body["missing_features"]) == ["channel", "newbie", "zip_code"]  # type: ignore[type-var]


def test_idempotency_key_returns_the_same_decision(client: TestClient, demo_run: DemoRun) -> None:
    customer = known_customer(demo_run, 2)
    before = client.get("/healthz").json()["decisions_logged"]
    first = decide(client, customer, idempotency_key="api-test-key")
    again = decide(client, customer, idempotency_key="api-test-key")
    assert again == first
    assert client.get("/healthz").json()["decisions_logged"] == before + 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "customer_id"),
        ({"customer_id": "", "candidates": MENS_AND_WOMENS}, "customer_id"),
        ({"customer_id": "c", "candidates": []}, "candidates"),
        ({"customer_id": "c"}, "candidates"),
        ({"customer_id": "c", "candidates": [{"message": "sms_blast"}]}, "candidates.0.message"),
        (
            {"customer_id": "c", "candidates": [{"message": "womens", "channels": ["sms"]}]},
            "candidates.0.channels.0",
        ),
        (
            {"customer_id": "c", "candidates": MENS_AND_WOMENS, "time_zone": "Mars/Base"},
            "time_zone",
        ),
        (
            {"customer_id": "c", "candidates": MENS_AND_WOMENS, "slots": ["2020-01-01T00:00:00Z"]},
            "slots.0",
        ),
        ({"customer_id": "c", "candidates": MENS_AND_WOMENS, "surprise": 1}, "surprise"),
        (
            {"customer_id": "c", "candidates": MENS_AND_WOMENS, "context": {"recency": [1, 2]}},
            "context",
        ),
    ],
)
def test_bad_decide_requests_get_422_naming_the_field(
    client: TestClient, body: dict[str, object], field: str
) -> None:
    before = client.get("/healthz").json()["decisions_logged"]
    response = client.post("/v1/decide", json=body)
    assert response.status_code == 422, response.text
    locations = [".".join(map(str, d["loc"])) for d in response.json()["detail"]]
    assert any(field in loc for loc in locations), locations
    assert client.get("/healthz").json()["decisions_logged"] == before


def test_nan_in_context_is_rejected_by_name(client: TestClient) -> None:
    response = client.post(
        "/v1/decide",
        content=b'{"customer_id": "c", "candidates": [{"message": "mens"}], '
        b'"context": {"history": NaN}}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert "history" in response.text


def test_an_outcome_is_credited_once(client: TestClient, demo_run: DemoRun) -> None:
    # A send, so that the visit is credited to it (a no-send is not a treatment).
    decision = decide(client, known_customer(demo_run, 3), allow_no_send=False)
    outcome = {
        "decision_id": decision["decision_id"],
        "event": "visit",
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    first = client.post("/v1/outcomes", json=outcome)
    second = client.post("/v1/outcomes", json=outcome)
    assert first.status_code == second.status_code == 202
    assert (first.json()["new"], first.json()["credited"], first.json()["learned"]) == (
        True,
        True,
        True,
    )
    assert (second.json()["new"], second.json()["credited"]) == (False, False)


def test_an_unsubscribe_suppresses_email_for_the_next_decision(
    client: TestClient, demo_run: DemoRun
) -> None:
    customer = known_customer(demo_run, 4)
    decision = decide(client, customer, allow_no_send=False)
    response = client.post(
        "/v1/outcomes",
        json={
            "decision_id": decision["decision_id"],
            "event": "unsubscribe",
            "occurred_at": datetime.now(UTC).isoformat(),
        },
    )
    assert response.status_code == 202
    profile = client.get(f"/v1/customers/{customer}/contact").json()
    assert profile["channels"]["email"]["suppressed"] == "unsubscribe"
    after = decide(client, customer)
    excluded = after["excluded"]
    assert isinstance(excluded, list)
    assert {e["rule"] for e in excluded if "/email/" in e["action"]} == {"suppression"}


def test_consent_changes_apply_at_once_also_to_scheduled_sends(
    client: TestClient, demo_run: DemoRun
) -> None:
    customer = known_customer(demo_run, 5)
    decision = decide(client, customer, allow_no_send=False, slots=["+1h"])
    check = client.post(f"/v1/decisions/{decision['decision_id']}/send-check")
    assert check.json()["allowed"] is True
    revoked = client.put(
        f"/v1/customers/{customer}/contact",
        json={"channels": {"email": {"consent": "opted_out"}}},
    )
    assert revoked.status_code == 200
    assert revoked.json()["channels"]["email"]["consent"] == "opted_out"
    check = client.post(f"/v1/decisions/{decision['decision_id']}/send-check")
    assert check.json() == {
        "decision_id": decision["decision_id"],
        "allowed": False,
        "rule": "consent",
        "detail": check.json()["detail"],
    }
    assert 'nudge_sends_blocked_total{rule="consent"} 1.0' in client.get("/metrics").text


def test_contact_updates_are_checked(client: TestClient) -> None:
    bad_channel = client.put("/v1/customers/c/contact", json={"channels": {"fax": {}}})
    assert bad_channel.status_code == 422
    assert "fax" in bad_channel.text
    bad_zone = client.put("/v1/customers/c/contact", json={"time_zone": "Nowhere/Land"})
    assert bad_zone.status_code == 422
    assert "time_zone" in bad_zone.text


T = "2026-01-01T00:00:00Z"
BAD_OUTCOMES = [
    (
        {"decision_id": "no-such-decision", "event": "visit", "occurred_at": T},
        404,
        "no-such-decision",
    ),
    ({"decision_id": "d", "occurred_at": T}, 422, "event"),
    (
        {"decision_id": "d", "event": "visit", "occurred_at": "2026-01-01T00:00:00"},
        422,
        "occurred_at",
    ),
    ({"decision_id": "d", "event": "visit"}, 422, "occurred_at"),
]


@pytest.mark.parametrize(("body", "status", "needle"), BAD_OUTCOMES)
def test_bad_outcomes_are_rejected(
    client: TestClient, body: dict[str, object], status: int, needle: str
) -> None:
    response = client.post("/v1/outcomes", json=body)
    assert response.status_code == status, response.text
    assert needle in response.text


def test_state_survives_a_restart(api_settings: Settings, demo_run: DemoRun) -> None:
    with TestClient(create_app(api_settings)) as first:
        decision = decide(first, known_customer(demo_run, 6), allow_no_send=False)
        logged = first.get("/healthz").json()["decisions_logged"]
        policy_version = first.get("/healthz").json()["policy_version"]
    with TestClient(create_app(api_settings)) as second:
        health = second.get("/healthz").json()
        assert health["decisions_logged"] == logged
        assert health["policy_version"] == policy_version
        response = second.post(
            "/v1/outcomes",
            json={
                "decision_id": decision["decision_id"],
                "event": "visit",
                "occurred_at": datetime.now(UTC).isoformat(),
            },
        )
        assert response.status_code == 202
        assert response.json()["learned"] is True


def counted(client: TestClient, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in client.get("/metrics").text.splitlines()
        if line.startswith(f"{name}{{")
    )


def test_metrics_count_decisions_by_part_and_exclusions_by_rule(
    client: TestClient, demo_run: DemoRun
) -> None:
    assert counted(client, "nudge_decisions_total") == 0  # a new app counts from zero
    for i in range(3):
        decide(client, known_customer(demo_run, 10 + i))
    client.post("/v1/decide", json={"customer_id": "c", "candidates": []})  # rejected
    assert counted(client, "nudge_decisions_total") == 3
    # Each of the three saw mens/sms excluded for consent in both slots.
    assert counted(client, "nudge_exclusions_total") >= 6
    text = client.get("/metrics").text
    assert "nudge_decision_latency_seconds_bucket" in text
    assert f'version="{demo_run.result.summary["model"]["version"]}"' in text


AT = '"occurred_at": "2026-01-01T00:00:00Z"'
RAW_BAD_BODIES = [
    ('{"decision_id": "d", "event": "visit", "value": NaN, %s}', "value"),
    ('{"decision_id": "d", "event": "visit", "value": Infinity, %s}', "value"),
    ('{"decision_id": "d", "event": "visit", "value": 1e400, %s}', "value"),
    ('{"decision_id": "\\ud800", "event": "visit", %s}', "decision_id"),
    ('{"decision_id": "d", "event": "visit", "value": "1", %s}', "value"),
    ('{"decision_id": "d", "event": "visit", "value": true, %s}', "value"),
    ('{"decision_id": "d", "reward": 1, %s}', "reward"),
]


@pytest.mark.parametrize(("raw", "needle"), RAW_BAD_BODIES)
def test_unencodable_or_mistyped_outcomes_get_422_not_500(
    client: TestClient, raw: str, needle: str
) -> None:
    body = (raw % AT).encode()
    response = client.post(
        "/v1/outcomes", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert needle in response.text


def test_a_body_over_the_limit_gets_413(client: TestClient, api_settings: Settings) -> None:
    padding = "x" * (api_settings.max_body_bytes + 1)
    response = client.post(
        "/v1/decide",
        json={"customer_id": "c", "candidates": MENS_AND_WOMENS, "context": {"note": padding}},
    )
    assert response.status_code == 413
    assert str(api_settings.max_body_bytes) in response.text


def test_the_config_file_is_checked_at_start(api_settings: Settings, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({**API_CONFIG, "caps": [{"limit": 1, "window": "soon"}]}))
    from features import InvalidRequest

    app = create_app(api_settings.model_copy(update={"decision_config": broken}))
    with pytest.raises(InvalidRequest, match=r"caps\[0\]\.window"), TestClient(app):
        pass


def test_an_outcome_batch_reports_each_item(client: TestClient, demo_run: DemoRun) -> None:
    decision = decide(client, known_customer(demo_run, 20))
    now = datetime.now(UTC).isoformat()
    response = client.post(
        "/v1/outcomes/batch",
        json={
            "outcomes": [
                {"decision_id": decision["decision_id"], "event": "visit", "occurred_at": now},
                {"decision_id": "missing", "event": "visit", "occurred_at": now},
                {"decision_id": decision["decision_id"], "event": "visit", "occurred_at": now},
            ]
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["refused"]) == (2, 1)
    assert [item["status"] for item in body["results"]] == [202, 404, 202]
    assert [item["new"] for item in body["results"]] == [True, None, False]
    assert "missing" in body["results"][1]["error"]


@pytest.mark.parametrize("value", ["no", 0, "false"])
def test_allow_no_send_must_be_a_real_boolean(client: TestClient, value: object) -> None:
    response = client.post(
        "/v1/decide",
        json={"customer_id": "c", "candidates": MENS_AND_WOMENS, "allow_no_send": value},
    )
    assert response.status_code == 422
    assert "allow_no_send" in response.text
