"""API keys: the store (SQLite and the real Postgres), the CLI, and every route of a real app."""

from __future__ import annotations

import base64
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from demo_support import DemoRun
from fastapi.testclient import TestClient

from features import InvalidRequest, NotFound
from features.sql import PostgresDatabase, SQLiteDatabase
from serving.api_keys import ApiKeyStore
from serving.app import create_app
from serving.auth import open_api_keys
from serving.cli import main
from serving.settings import Settings

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DECIDE = {"customer_id": "h00001", "candidates": [{"message": "welcome"}]}
EVENT = {
    "event_id": "keys-event-1",
    "customer_id": "h00001",
    "type": "page_view",
    "occurred_at": "2026-12-01T09:00:00Z",
}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ApiKeyStore]:
    schema = f"nudge_test_{uuid.uuid4().hex[:8]}"
    keys = ApiKeyStore(
        SQLiteDatabase(tmp_path / "keys.db")
        if request.param == "sqlite"
        else PostgresDatabase(POSTGRES_DSN, schema)
    )
    yield keys
    keys.close()
    if request.param == "postgres":
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_keys_are_stored_hashed_and_checked_in_full(store: ApiKeyStore) -> None:
    created = store.create("journeys", "decide,ingest")
    stored = store._db.query("SELECT secret_sha256 FROM api_keys")
    assert created.secret not in str(stored)
    secret_part = created.secret.rsplit("_", 1)[1]
    assert secret_part not in str(stored)
    assert store.authenticate(created.secret) == {"decide", "ingest"}
    assert store.authenticate(created.secret + "x") is None
    assert store.authenticate(f"nk_{created.key_id}_guess") is None
    assert store.authenticate("nk_unknown_" + secret_part) is None


def test_a_revoked_key_stops_working(store: ApiKeyStore) -> None:
    created = store.create("crm", ["ingest"])
    assert store.any_active()
    store.revoke(created.key_id)
    assert store.authenticate(created.secret) is None
    assert not store.any_active()
    (listed,) = store.list()
    assert listed.revoked_at is not None
    with pytest.raises(NotFound):
        store.revoke("nope")


@pytest.mark.parametrize("scopes", ["", "read", "decide,root"])
def test_unknown_scopes_are_refused_by_name(tmp_path: Path, scopes: str) -> None:
    keys = ApiKeyStore(SQLiteDatabase(tmp_path / "keys.db"))
    with pytest.raises(InvalidRequest, match="`scopes` must be one or more of ingest"):
        keys.create("x", scopes)


# -- a real app ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def settings(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    state_dir = tmp_path_factory.mktemp("keys") / "state"
    shutil.copytree(demo_run.settings.state_dir, state_dir)
    return demo_run.settings.model_copy(
        update={"state_dir": state_dir, "admin_key": "admin-secret"}
    )


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def keys(settings: Settings, client: TestClient) -> dict[str, str]:
    """Keys made while the app runs: the app must see them (auth: auto) within its cache."""
    # Before any key exists the embedded default is open (auth: auto).
    first = client.post("/v1/decide", json=DECIDE)
    assert first.status_code == 200, first.text
    store = open_api_keys(settings)
    try:
        made = {
            "decide": store.create("journeys", "decide").secret,
            "ingest": store.create("web", "ingest").secret,
            "admin": store.create("ops", "admin").secret,
        }
    finally:
        store.close()
    _forget_cache(client)
    return made


def _forget_cache(client: TestClient) -> None:
    """Drop the middleware's 5-second view of whether keys exist, as time would."""
    app = client.app.middleware_stack  # type: ignore[attr-defined]
    while app is not None:
        if type(app).__name__ == "ApiKeyAuth":
            app.keys._active = None
            return
        app = getattr(app, "app", None)
    raise AssertionError("ApiKeyAuth is not in the middleware stack")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_without_a_key_every_route_but_health_is_401(
    client: TestClient, keys: dict[str, str]
) -> None:
    assert client.get("/healthz").status_code == 200
    for method, path, body in [
        ("POST", "/v1/decide", DECIDE),
        ("POST", "/v1/events", EVENT),
        ("GET", "/metrics", None),
        ("GET", "/reports/data.json", None),
        ("GET", "/docs", None),
        ("GET", "/openapi.json", None),
    ]:
        response = client.request(method, path, json=body)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_missing_wrong_and_unknown_keys_look_the_same(
    client: TestClient, keys: dict[str, str]
) -> None:
    decide_key = keys["decide"]
    answers = {
        client.post("/v1/decide", json=DECIDE, headers=headers).text
        for headers in [
            {},
            bearer(decide_key[:-2] + "zz"),
            bearer("nk_000000000000_" + decide_key.rsplit("_", 1)[1]),
            bearer("not-a-key"),
        ]
    }
    assert len(answers) == 1


def test_each_scope_opens_its_routes_only(client: TestClient, keys: dict[str, str]) -> None:
    assert client.post("/v1/decide", json=DECIDE, headers=bearer(keys["decide"])).status_code == 200
    assert client.post("/v1/events", json=EVENT, headers=bearer(keys["decide"])).status_code == 403
    assert client.post("/v1/events", json=EVENT, headers=bearer(keys["ingest"])).status_code == 202
    assert client.post("/v1/decide", json=DECIDE, headers=bearer(keys["ingest"])).status_code == 403
    assert client.get("/metrics", headers=bearer(keys["ingest"])).status_code == 403
    # admin implies every scope; X-API-Key works as well as Bearer.
    assert client.get("/metrics", headers={"X-API-Key": keys["admin"]}).status_code == 200
    assert client.post("/v1/decide", json=DECIDE, headers=bearer(keys["admin"])).status_code == 200


def test_reports_take_an_admin_key_from_a_browser(client: TestClient, keys: dict[str, str]) -> None:
    basic = base64.b64encode(f"anyone:{keys['admin']}".encode()).decode()
    response = client.get("/reports/data.json", headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 200
    # The configured admin key still works as a key with every scope.
    assert client.get("/reports/data.json", headers=bearer("admin-secret")).status_code == 200


def test_a_non_ascii_admin_key_works_as_bearer_and_basic(
    settings: Settings, keys: dict[str, str]
) -> None:
    accented = settings.model_copy(update={"admin_key": "clé-admin-secret"})
    with TestClient(create_app(accented)) as other:
        utf8 = "Bearer clé-admin-secret".encode()
        assert other.get("/metrics", headers={"Authorization": utf8}).status_code == 200
        basic = base64.b64encode("x:clé-admin-secret".encode()).decode()
        assert other.get("/metrics", headers={"Authorization": f"Basic {basic}"}).status_code == 200
        assert (
            other.get("/metrics", headers={"Authorization": "Basic not base64!"}).status_code == 401
        )


def test_signed_links_stay_public(client: TestClient, keys: dict[str, str]) -> None:
    # A forged tracking token is refused by its signature (404), not by a missing key.
    assert client.get("/t/c/forged").status_code == 404


def test_the_cli_creates_lists_and_revokes(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = ["--state-dir", str(tmp_path / "state")]
    assert main(["keys", "create", "crm", "--scopes", "ingest", *state]) == 0
    printed = capsys.readouterr().out.splitlines()
    secret = printed[1]
    key_id = printed[0].split()[1]
    assert secret.startswith(f"nk_{key_id}_")
    assert main(["keys", "list", *state]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing
    assert "active" in listing
    assert secret not in listing
    assert main(["keys", "revoke", key_id, *state]) == 0
    assert main(["keys", "list", *state]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["keys", "create", "x", "--scopes", "root", *state]) == 2
    assert "`scopes` must be one or more of" in capsys.readouterr().err
