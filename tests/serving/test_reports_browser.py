"""The uplift report page in a real headless Chromium, served by a real API process.

A marketer reads the page, so the page is what is tested: it renders with no
console or page errors, its four Plotly charts are drawn, every number it shows
is the number ``/reports/data.json`` holds, and its CSV links download the tables.

Needs Debian's Chromium (``apt-get install -y chromium``) and Playwright for Python
(a dev dependency). Playwright's own browser download does not work here: the test
drives /usr/bin/chromium. Without them the test is skipped, except in CI (CI=true),
where it fails: CI must run it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from demo_support import DemoRun

from serving.api_process import ApiProcess, free_port
from serving.pipeline import HILLSTROM_DECISIONS
from serving.settings import Settings
from training.uplift_report import TABLE_COLUMNS
from training.uplift_report_html import CHART_IDS, cell_text

CHROMIUM = Path("/usr/bin/chromium")
# Chromium as this machine runs it headless: no sandbox as root, no GPU, and none of
# the background connections that a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = (
    "install Debian's Chromium with `apt-get install -y chromium` and the dev extras "
    "(Playwright) with `make test` or `pip install -e '.[dev]'`"
)
ADMIN_KEY = "browser-test-admin-key"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
SINCE = "2000-01-01"  # keeps every demo decision; the CSV links must carry it along


def _require_chromium() -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append(str(CHROMIUM))
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package")
    if not missing:
        return
    reason = f"{' and '.join(missing)} not installed: {INSTALL_HINT}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the browser test, but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def api(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    """``nudge serve`` (real uvicorn) over a copy of the demo's state, with an admin key."""
    _require_chromium()  # before the server starts, when the browser cannot
    state_dir = tmp_path_factory.mktemp("reports-browser") / "state"
    shutil.copytree(demo_run.settings.state_dir, state_dir)
    settings: Settings = demo_run.settings.model_copy(
        update={
            "state_dir": state_dir,
            "decision_config": HILLSTROM_DECISIONS,
            "admin_key": ADMIN_KEY,
            "port": free_port(),
        }
    )
    with ApiProcess(settings) as process:
        yield process


@dataclass
class LoadedPage:
    page: Any  # playwright.sync_api.Page; typed loosely so this module imports without it
    console_errors: list[str]
    page_errors: list[str]
    failed_requests: list[str]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, started by Playwright with a fresh, empty profile."""
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def open_report(browser: Any, url: str, **context_options: Any) -> LoadedPage:
    """``url`` in a new browser context, with every error the page logs kept."""
    context = browser.new_context(accept_downloads=True, **context_options)
    page = context.new_page()
    loaded = LoadedPage(page, [], [], [])
    page.on(
        "console",
        lambda m: (
            loaded.console_errors.append(f"{m.text} ({m.location.get('url')})")
            if m.type == "error"
            else None
        ),
    )
    page.on("pageerror", lambda error: loaded.page_errors.append(str(error)))
    page.on(
        "response",
        lambda r: loaded.failed_requests.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )
    page.on("requestfailed", lambda r: loaded.failed_requests.append(f"failed {r.url}"))
    return loaded


@pytest.fixture(scope="module")
def report_page(api: ApiProcess, chromium: Any) -> Iterator[LoadedPage]:
    """/reports as an API client opens it: the admin key as a Bearer token on every request."""
    loaded = open_report(chromium, api.base_url)
    loaded.page.set_extra_http_headers(AUTH)
    response = loaded.page.goto(f"{api.base_url}/reports?since={SINCE}", wait_until="load")
    assert response is not None
    assert response.status == 200
    yield loaded
    loaded.page.context.close()


def fetch_json(api: ApiProcess, path: str) -> dict[str, Any]:
    """Over HTTP, as any client of the API would, with the admin key."""
    request = urllib.request.Request(f"{api.base_url}{path}", headers=AUTH)
    with urllib.request.urlopen(request, timeout=60) as response:
        payload: dict[str, Any] = json.load(response)
        return payload


def test_the_page_renders_its_charts_without_errors(report_page: LoadedPage) -> None:
    page = report_page.page
    for chart in CHART_IDS:
        # Plotly has drawn the chart: an SVG of its own inside the chart's element.
        page.wait_for_selector(f"#{chart} .main-svg", state="attached", timeout=30_000)
        assert page.locator(f"#{chart} .main-svg").count() >= 1, chart
        assert page.locator(f"#{chart} .plot-container").count() == 1, chart
    # The lift chart has a bar per journey compared; the policy chart a bar per policy.
    assert page.locator("#chart-lift .bars .point").count() >= 1
    assert page.locator("#chart-policy .bars .point").count() >= 4
    assert page.title() == "Nudge uplift report"
    assert report_page.failed_requests == []
    assert report_page.console_errors == []
    assert report_page.page_errors == []


def test_every_number_shown_is_the_number_in_the_json(
    report_page: LoadedPage, api: ApiProcess
) -> None:
    data = fetch_json(api, f"/reports/data.json?since={SINCE}")
    assert data["summary"]["holdout"] > 0, "the demo holds customers out, so there is a report"
    cells = report_page.page.eval_on_selector_all(
        "[data-key]",
        "els => els.map(e => [e.dataset.key, e.dataset.format, e.textContent])",
    )
    shown: dict[str, tuple[str, str]] = {}
    for key, kind, text in cells:
        assert key not in shown, f"{key} is shown twice"
        shown[key] = (kind, text)
    rows_shown: dict[str, set[int]] = {}
    for key, (kind, text) in shown.items():
        table, row, column = key.split(".")
        value = data[table][int(row)][column]
        assert text == cell_text(kind, value), key
        assert _reads_back(kind, text, value), f"{key}: {text!r} does not show {value!r}"
        rows_shown.setdefault(table, set()).add(int(row))
    # Every row of every table the page shows is there, and no row the JSON lacks.
    for table in ("journeys", "actions", "policy_values", "qini_summary"):
        assert rows_shown.get(table, set()) == set(range(len(data[table]))), table
    assert data["journeys"], "the demo's report has rows to show"
    assert data["policy_values"]
    # The page embeds the very JSON it was drawn from.
    embedded = json.loads(report_page.page.text_content("#report-data") or "")
    assert {k: v for k, v in embedded.items() if k != "generated_at"} == {
        k: v for k, v in data.items() if k != "generated_at"
    }


@pytest.mark.parametrize("table", ["journeys", "policy_values"])
def test_a_csv_link_downloads_the_table(api: ApiProcess, chromium: Any, table: str) -> None:
    """As a marketer downloads it: a browser cannot send a Bearer token, so it answers the
    server's password challenge with the admin key, and sends it with the download too."""
    browser_user = {"username": "marketer", "password": ADMIN_KEY}
    loaded = open_report(chromium, api.base_url, http_credentials=browser_user)
    page = loaded.page
    try:
        page.goto(f"{api.base_url}/reports?since={SINCE}", wait_until="load")
        link = page.locator("#csv-links a", has_text=f"{table}.csv")
        assert link.get_attribute("href") == f"/reports/{table}.csv?since={SINCE}"
        with page.expect_download() as download_info:
            link.click()
        download = download_info.value
        assert download.failure() is None
        assert download.suggested_filename == f"uplift-{table}.csv"
        text = Path(download.path()).read_text(encoding="utf-8")
    finally:
        page.context.close()
    assert loaded.console_errors == []
    header, *rows = list(csv.reader(io.StringIO(text)))
    assert header == list(TABLE_COLUMNS[table])
    expected = fetch_json(api, f"/reports/data.json?since={SINCE}")[table]
    assert len(rows) == len(expected) > 0
    for row, want in zip(rows, expected, strict=True):
        for column, cell in zip(header, row, strict=True):
            assert _csv_equals(cell, want[column]), (
                f"{table}.{column}: {cell!r} != {want[column]!r}"
            )


# How many decimals each numeric format shows, after scaling by 100 for rates.
_DECIMALS = {
    "percent": (100, 2),
    "points": (100, 2),
    "relative": (100, 1),
    "probability": (100, 1),
    "count": (1, 0),
    "signed_count": (1, 0),
    "money": (1, 2),
    "signed_money": (1, 2),
    "value": (1, 4),
}


def _reads_back(kind: str, text: str, value: Any) -> bool:
    """Read the number back off the page: it is ``value``, rounded as its format rounds.

    Independent of the page's formatter, so a wrong format (a rate shown as a count,
    a sign dropped) is caught even where both sides agree on the text.
    """
    if kind == "text":
        return text == ("n/a" if value is None else str(value))
    if kind not in _DECIMALS:  # a name for a code, such as an estimator's
        return bool(text)
    if value is None:
        return text == "n/a"
    scale, decimals = _DECIMALS[kind]
    number = re.sub(r"[^0-9.+\-]", "", text.replace("\u2212", "-"))
    return abs(float(number) - float(value) * scale) <= 0.5 * 10.0**-decimals + 1e-9


def _csv_equals(cell: str, value: Any) -> bool:
    if value is None:
        return cell == ""
    if isinstance(value, bool):
        return cell == str(value)
    if isinstance(value, int | float):
        return float(cell) == float(value)
    return cell == str(value)
