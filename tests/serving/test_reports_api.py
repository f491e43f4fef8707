"""The uplift report routes over a demo run's real decision log, behind the admin key."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
import shutil
from collections.abc import Iterator

import pytest
from demo_support import DemoRun
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.pipeline import HILLSTROM_DECISIONS
from serving.settings import Settings
from training.uplift_report import TABLE_COLUMNS, report_from_log

ADMIN_KEY = "reports-test-key-\u00e9"  # not ASCII: sent as UTF-8, it must still match
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}".encode()}


@pytest.fixture(scope="module")
def report_settings(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A copy of the demo's state with the config its decisions were made under."""
    state_dir = tmp_path_factory.mktemp("reports-api") / "state"
    shutil.copytree(demo_run.settings.state_dir, state_dir)
    settings: Settings = demo_run.settings.model_copy(
        update={
            "state_dir": state_dir,
            "decision_config": HILLSTROM_DECISIONS,
            "admin_key": ADMIN_KEY,
        }
    )
    return settings


@pytest.fixture(scope="module")
def client(report_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(report_settings)) as test_client:
        yield test_client


def test_reports_are_disabled_until_an_admin_key_is_configured(
    report_settings: Settings,
) -> None:
    settings = report_settings.model_copy(update={"admin_key": None})
    with TestClient(create_app(settings)) as no_key:
        for path in ("/reports", "/reports/data.json", "/reports/journeys.csv"):
            response = no_key.get(path, headers=AUTH)
            assert response.status_code == 403, path
            assert "NUDGE_ADMIN_KEY" in response.json()["detail"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": b"Bearer not-the-key"},
        {"Authorization": f"Bearer {ADMIN_KEY}x".encode()},
        {"Authorization": f"Basic {ADMIN_KEY}".encode()},
        {"Authorization": b"Basic " + base64.b64encode(b"anna:not-the-key")},
        {"Authorization": b"Basic " + base64.b64encode(ADMIN_KEY.encode())},
    ],
    ids=["missing", "wrong", "longer", "basic-not-encoded", "basic-wrong", "basic-no-user"],
)
def test_a_missing_or_wrong_key_is_challenged(
    client: TestClient, headers: dict[str, bytes]
) -> None:
    for path in ("/reports", "/reports/data.json", "/reports/journeys.csv?since=junk"):
        response = client.get(path, headers=headers)
        assert response.status_code == 401, path
        assert response.headers.get_list("www-authenticate") == [
            "Bearer",
            'Basic realm="Nudge reports"',
        ]
        assert "Bearer" in response.json()["detail"]


def test_the_admin_key_gets_the_page_with_the_report_embedded(client: TestClient) -> None:
    page = client.get("/reports", headers=AUTH)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store, private"
    for chart in ("chart-lift", "chart-trend", "chart-qini", "chart-policy"):
        assert f'id="{chart}"' in page.text
    embedded = re.search(
        r'<script type="application/json" id="report-data">(.*?)</script>', page.text, re.S
    )
    assert embedded is not None
    data = client.get("/reports/data.json", headers=AUTH)
    assert data.status_code == 200
    assert _same_report(json.loads(html.unescape(embedded.group(1))), data.json())
    # The page links each table's CSV export, through these routes.
    for table in TABLE_COLUMNS:
        assert f'href="/reports/{table}.csv"' in page.text


def test_the_json_is_the_report_of_the_log(client: TestClient) -> None:
    engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    report = report_from_log(engine.log, engine.config, uplift_score=engine.uplift_score)
    expected = json.loads(json.dumps(report.to_json()))
    served = client.get("/reports/data.json", headers=AUTH).json()
    assert _same_report(served, expected)
    assert served["summary"]["holdout"] > 0, "the demo holds customers out"
    assert served["journeys"], "so the report compares treated with holdout"
    assert served["qini"], "the champion scores holdout and treated decisions alike"


def test_a_browser_may_send_the_key_as_its_password(client: TestClient) -> None:
    """Browsers cannot send a Bearer token; they ask for a password once and send it along."""
    basic = b"Basic " + base64.b64encode(f"anyone:{ADMIN_KEY}".encode())
    response = client.get("/reports/journeys.csv", headers={"Authorization": basic})
    assert response.status_code == 200
    assert response.text.splitlines()[0].split(",")[:2] == ["journey", "n_treated"]


@pytest.mark.parametrize("since", ["yesterday", "2024-13-01", "2024-03-01T25:00"])
def test_a_bad_since_is_refused_naming_the_parameter(client: TestClient, since: str) -> None:
    for path in ("/reports", "/reports/data.json", "/reports/journeys.csv"):
        response = client.get(path, params={"since": since}, headers=AUTH)
        assert response.status_code == 422, path
        (detail,) = response.json()["detail"]
        assert detail["loc"] == ["query", "since"]
        assert since in detail["msg"]


def test_since_and_journey_filter_what_is_counted(client: TestClient) -> None:
    everything = _csv_rows(client, "journeys")
    assert everything, "the demo's log gives the report at least one journey"
    journey = everything[0]["journey"]
    assert _csv_rows(client, "journeys", journey=journey) == [everything[0]]
    assert _csv_rows(client, "journeys", journey="no-such-journey") == []
    # Every demo decision was made before the year 3000 and after 2000 (date or date-time).
    assert _csv_rows(client, "journeys", since="3000-01-01") == []
    assert _csv_rows(client, "journeys", since="2000-01-01T00:00:00+05:00") == everything


def test_an_unknown_table_is_not_found_and_the_known_ones_are_named(client: TestClient) -> None:
    response = client.get("/reports/customers.csv", headers=AUTH)
    assert response.status_code == 404
    message = response.json()["detail"][0]["msg"]
    assert "customers" in message
    assert message.endswith("the tables are: " + ", ".join(TABLE_COLUMNS))


def test_each_csv_is_its_table(client: TestClient) -> None:
    engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    tables = report_from_log(engine.log, engine.config, uplift_score=engine.uplift_score).tables()
    assert set(tables) == {"journeys", "actions", "trends", "policy_values", "qini", "qini_summary"}
    for name, frame in tables.items():
        response = client.get(f"/reports/{name}.csv", headers=AUTH)
        assert response.status_code == 200, name
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert f'filename="uplift-{name}.csv"' in response.headers["content-disposition"]
        header, *rows = list(csv.reader(io.StringIO(response.text)))
        assert header == [str(column) for column in frame.columns] == list(TABLE_COLUMNS[name])
        assert len(rows) == len(frame), name
        assert rows == list(csv.reader(io.StringIO(frame.to_csv(index=False))))[1:], name


def _same_report(one: dict[str, object], other: dict[str, object]) -> bool:
    """The same report, but for the moment each was generated at."""
    return {k: v for k, v in one.items() if k != "generated_at"} == {
        k: v for k, v in other.items() if k != "generated_at"
    }


def _csv_rows(client: TestClient, table: str, **params: str) -> list[dict[str, str]]:
    response = client.get(f"/reports/{table}.csv", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.text)))
