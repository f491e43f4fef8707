"""The HTTP API over a demo run's real state: Feast online store, MLflow champion, SQLite log."""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from demo_support import DemoRun
from fastapi.testclient import TestClient

from features import PROFILE_FEATURES
from serving.app import create_app
from serving.settings import Settings


@pytest.fixture(scope="module")
def api_settings(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A copy of the demo's state, so these tests leave the demo's own evidence untouched."""
    state_dir = tmp_path_factory.mktemp("api") / "state"
    shutil.copytree(demo_run.settings.state_dir, state_dir)
    return demo_run.settings.model_copy(update={"state_dir": state_dir})


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings)) as test_client:
        yield test_client


def known_customer(demo_run: DemoRun) -> str:
    from features import EventLog

    decisions = EventLog(demo_run.settings.events_dir).read("decisions")
    return str(decisions["customer_id"].iloc[0])


def test_decide_returns_an_action_with_its_exact_propensity(
    client: TestClient, demo_run: DemoRun
) -> None:
    response = client.post("/v1/decide", json={"customer_id": known_customer(demo_run)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["action"] in {"mens_email", "womens_email", "no_email"}
    assert body["propensity"] == body["scores"][body["action"]]["probability"]
    assert math.isclose(sum(s["probability"] for s in body["scores"].values()), 1.0)
    assert body["model_version"] == str(demo_run.result.summary["model"]["version"])
    assert body["missing_features"] == []
    for score in body["scores"].values():
        assert 0.0 < score["prior"] < 1.0


def test_unknown_customer_gets_a_decision_and_is_told_what_was_missing(client: TestClient) -> None:
    response = client.post("/v1/decide", json={"customer_id": "nobody-we-know"})
    assert response.status_code == 200, response.text
    assert sorted(response.json()["missing_features"]) == sorted(PROFILE_FEATURES)


def test_context_fills_in_what_the_store_lacks(client: TestClient) -> None:
    context = {"recency": 1, "history": 500.0, "mens": 1, "womens": 0}
    response = client.post("/v1/decide", json={"customer_id": "new-visitor", "context": context})
    assert response.status_code == 200
    assert sorted(response.json()["missing_features"]) == ["channel", "newbie", "zip_code"]


def test_candidates_restrict_the_choice(client: TestClient, demo_run: DemoRun) -> None:
    customer = known_customer(demo_run)
    for _ in range(20):
        body = client.post(
            "/v1/decide", json={"customer_id": customer, "candidates": ["womens_email"]}
        ).json()
        assert body["action"] == "womens_email"
        assert body["propensity"] == pytest.approx(1.0)
        assert list(body["scores"]) == ["womens_email"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "customer_id"),
        ({"customer_id": ""}, "customer_id"),
        ({"customer_id": "c", "candidates": []}, "candidates"),
        ({"customer_id": "c", "candidates": ["sms_blast"]}, "candidates"),
        ({"customer_id": "c", "candidates": ["no_email", "no_email"]}, "candidates"),
        ({"customer_id": "c", "surprise": 1}, "surprise"),
        ({"customer_id": "c", "context": {"recency": [1, 2]}}, "context"),
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
        content=b'{"customer_id": "c", "context": {"history": NaN}}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert "context.history" in response.text or "history" in response.text


def test_outcome_is_accepted_once(client: TestClient, demo_run: DemoRun) -> None:
    decision = client.post("/v1/decide", json={"customer_id": known_customer(demo_run)}).json()
    outcome = {
        "decision_id": decision["decision_id"],
        "event": "visit",
        "value": 1.0,
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    first = client.post("/v1/outcomes", json=outcome)
    second = client.post("/v1/outcomes", json=outcome)
    assert first.status_code == second.status_code == 202
    assert first.json()["new"] is True
    assert first.json()["learned"] is True
    assert second.json()["new"] is False
    assert second.json()["learned"] is False


T = "2026-01-01T00:00:00Z"
BAD_OUTCOMES = [
    ({"decision_id": "no-such-decision", "reward": 1.0, "occurred_at": T}, 404, "no-such-decision"),
    ({"decision_id": "d", "occurred_at": T}, 422, "reward"),
    ({"decision_id": "d", "reward": 1, "event": "visit", "occurred_at": T}, 422, "reward"),
    ({"decision_id": "d", "reward": 1, "occurred_at": "2026-01-01T00:00:00"}, 422, "occurred_at"),
    ({"decision_id": "d", "reward": 1}, 422, "occurred_at"),
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
        decision = first.post("/v1/decide", json={"customer_id": known_customer(demo_run)}).json()
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
                "reward": 1.0,
                "occurred_at": datetime.now(UTC).isoformat(),
            },
        )
        assert response.status_code == 202
        assert response.json()["learned"] is True


def decisions_counted(client: TestClient) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in client.get("/metrics").text.splitlines()
        if line.startswith("nudge_decisions_total{")
    )


def test_metrics_count_decisions(client: TestClient, demo_run: DemoRun) -> None:
    assert decisions_counted(client) == 0  # a new app counts from zero
    for _ in range(3):
        client.post("/v1/decide", json={"customer_id": known_customer(demo_run)})
    client.post("/v1/decide", json={"customer_id": "c", "candidates": []})  # rejected: not counted
    assert decisions_counted(client) == 3
    text = client.get("/metrics").text
    assert "nudge_decision_latency_seconds_bucket" in text
    assert f'version="{demo_run.result.summary["model"]["version"]}"' in text


AT = '"occurred_at": "2026-01-01T00:00:00Z"'
RAW_BAD_BODIES = [
    ('{"decision_id": "d", "reward": NaN, %s}', "reward"),
    ('{"decision_id": "d", "reward": Infinity, %s}', "reward"),
    ('{"decision_id": "d", "reward": 1e400, %s}', "reward"),
    ('{"decision_id": "d", "event": "visit", "value": NaN, %s}', "value"),
    ('{"decision_id": "\\ud800", "reward": 1, %s}', "decision_id"),
    ('{"decision_id": "d", "reward": "1", %s}', "reward"),
    ('{"decision_id": "d", "reward": true, %s}', "reward"),
    ('{"decision_id": "d", "reward": 1, "value": 2, %s}', "value"),
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
    response = client.post("/v1/decide", json={"customer_id": "c", "context": {"note": padding}})
    assert response.status_code == 413
    assert str(api_settings.max_body_bytes) in response.text


def test_a_negative_reward_is_recorded_and_counted(client: TestClient, demo_run: DemoRun) -> None:
    decision = client.post("/v1/decide", json={"customer_id": known_customer(demo_run)}).json()
    response = client.post(
        "/v1/outcomes",
        json={
            "decision_id": decision["decision_id"],
            "reward": -3.0,
            "occurred_at": datetime.now(UTC).isoformat(),
        },
    )
    assert response.status_code == 202, response.text
    assert response.json()["learned"] is True
    assert "nudge_learned_reward_sum -3.0" in client.get("/metrics").text
