"""The uplift report page: self-contained, each table number the JSON's, written for people."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta
from html import escape as html_escape
from html.parser import HTMLParser
from typing import Any

import pytest
from uplift_samples import CONFIG, EFFECT, NO_EFFECT, START, synthetic_log

from training.holdout_lift import LIFT_COLUMNS
from training.uplift_report import TABLE_COLUMNS, UpliftReport, build_uplift_report
from training.uplift_report_html import CHART_IDS, cell_text, render_uplift_html

LATER = START + timedelta(days=60)
VOID = {"br", "meta", "img", "input", "hr", "link", "wbr", "col", "area", "base", "source"}


class Page(HTMLParser):
    """What a test reads from the page: keyed values, cell text outside them, ids, scripts."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.keyed: list[dict[str, str]] = []
        self.loose_cell_text: list[str] = []
        self.ids: set[str] = set()
        self.scripts: list[tuple[dict[str, str], str]] = []
        self._stack: list[tuple[str, dict[str, str]]] = []
        self._keyed_open: list[dict[str, str]] = []
        self._cells: list[list[str]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if "id" in attributes:
            self.ids.add(attributes["id"])
        if tag in VOID:
            return
        self._stack.append((tag, attributes))
        if "data-key" in attributes:
            self._keyed_open.append(
                {"key": attributes["data-key"], "format": attributes["data-format"], "text": ""}
            )
        elif tag == "td":
            self._cells.append([])
        if tag == "script":
            self.scripts.append((attributes, ""))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        open_tag, attributes = self._stack.pop()
        assert open_tag == tag, (open_tag, tag)
        if "data-key" in attributes:
            self.keyed.append(self._keyed_open.pop())
        elif tag == "td":
            self.loose_cell_text.append("".join(self._cells.pop()))

    def handle_data(self, data: str) -> None:
        if self._stack and self._stack[-1][0] == "script":
            attributes, text = self.scripts[-1]
            self.scripts[-1] = (attributes, text + data)
        elif self._keyed_open:
            self._keyed_open[-1]["text"] += data
        elif self._cells:
            self._cells[-1].append(data)


def lookup(data: dict[str, Any], key: str) -> Any:
    table, row, column = key.split(".")
    return data[table][int(row)][column]


@pytest.fixture(scope="module")
def report() -> UpliftReport:
    log = synthetic_log({"welcome": (EFFECT, 3_000), "winback": (NO_EFFECT, 3_000)}, seed=5)
    return build_uplift_report(
        log.decisions, log.outcomes, CONFIG, now=LATER, min_group=100, resamples=100
    )


@pytest.fixture(scope="module")
def html(report: UpliftReport) -> str:
    links = {name: f"/reports/{name}.csv?journey=welcome" for name in report.tables()}
    return render_uplift_html(report, csv_links=links)


@pytest.fixture(scope="module")
def page(html: str) -> Page:
    return Page(html)


def test_the_page_has_its_four_charts_and_plotly_once_inline(html: str, page: Page) -> None:
    assert set(CHART_IDS) <= page.ids
    assert CHART_IDS == ("chart-lift", "chart-trend", "chart-qini", "chart-policy")
    assert len(re.findall(r"plotly\.js v\d", html)) == 1  # the library's banner, once
    # Nothing is fetched: no script from elsewhere, no stylesheet, no CDN.
    assert all("src" not in attributes for attributes, _ in page.scripts)
    assert not re.search(r"<script[^>]*\bsrc=", html)
    # The one link is the empty inline icon, so a browser asks the server for no favicon.
    assert re.findall(r"<link[^>]*>", html) == ['<link rel="icon" href="data:,">']


def test_the_embedded_json_is_the_reports_json(report: UpliftReport, page: Page) -> None:
    (embedded,) = [text for attrs, text in page.scripts if attrs.get("id") == "report-data"]
    assert [attrs.get("type") for attrs, _ in page.scripts if attrs.get("id") == "report-data"] == [
        "application/json"
    ]
    assert json.loads(embedded) == report.to_json()


def test_every_keyed_value_shows_the_jsons_value_as_formatted(
    report: UpliftReport, page: Page
) -> None:
    data = report.to_json()
    assert len(page.keyed) > 100
    for element in page.keyed:
        value = lookup(data, element["key"])
        assert element["text"] == cell_text(element["format"], value), element


def test_every_lift_number_of_every_shown_row_is_keyed(report: UpliftReport, page: Page) -> None:
    keys = {element["key"] for element in page.keyed}
    # The revenue difference per customer is in the JSON and the CSV only: the page shows
    # both groups' revenue per customer and the incremental revenue (that times n treated).
    numbers = [c for c in LIFT_COLUMNS if c != "warning" and not c.startswith("revenue_lift")]
    for table in ("journeys", "actions"):
        rows = getattr(report, table)
        assert rows
        for i, row in enumerate(rows):
            assert {f"{table}.{i}.{c}" for c in numbers} <= keys
            assert (f"{table}.{i}.warning" in keys) == (row["warning"] is not None)
    for i in range(len(report.policy_values)):
        for column in ("value", "ci_low", "ci_high", "effective_n", "label", "estimator"):
            assert f"policy_values.{i}.{column}" in keys


def test_no_number_in_a_table_cell_escapes_its_key(page: Page) -> None:
    # Outside keyed elements a cell holds only separators: " / ", " to ", ": ".
    assert page.loose_cell_text
    for text in page.loose_cell_text:
        assert not re.search(r"\d", text), text


def test_numbers_are_written_for_people(report: UpliftReport, page: Page) -> None:
    shown = {element["key"]: element["text"] for element in page.keyed}
    welcome = next(i for i, r in enumerate(report.journeys) if r["journey"] == "welcome")
    assert re.fullmatch(r"\d{1,2}\.\d\d %", shown[f"journeys.{welcome}.conversion_rate_treated"])
    assert re.fullmatch(r"[+−]\d+\.\d\d pts", shown[f"journeys.{welcome}.lift"])
    assert re.fullmatch(r"\d{1,3},\d{3}", shown[f"journeys.{welcome}.n_treated"])
    assert re.fullmatch(r"[+−][\d,]+", shown[f"journeys.{welcome}.incremental_conversions"])
    assert "nan" not in " ".join(shown.values()).lower()


def test_warnings_and_explanations_are_on_the_page(report: UpliftReport, html: str) -> None:
    winback = next(r for r in report.journeys if r["journey"] == "winback")
    assert str(winback["warning"]).startswith("No evidence of an effect yet")
    assert html_escape(str(winback["warning"])) in html
    for words in ("holdout", "intention to treat", "IPS", "SNIPS", "doubly robust", "descriptive"):
        assert words in html
    assert "Filters: all journeys" in html
    assert LATER.isoformat() in html  # generated at


def test_csv_links_point_where_the_caller_said(report: UpliftReport, page: Page, html: str) -> None:
    assert "csv-links" in page.ids
    for name in TABLE_COLUMNS:
        assert f'href="/reports/{name}.csv?journey=welcome"' in html


def test_names_cannot_break_out_of_the_page(report: UpliftReport) -> None:
    evil = "</script><img src=x onerror=alert(1)>&amp;"
    rows = tuple(replace_journey(row, evil) for row in report.journeys)
    hostile = replace(report, journeys=rows, warnings=(evil,))
    text = render_uplift_html(hostile)
    assert "<img src=x" not in text
    parsed = Page(text)
    (embedded,) = [t for attrs, t in parsed.scripts if attrs.get("id") == "report-data"]
    assert json.loads(embedded) == hostile.to_json()
    shown = [e["text"] for e in parsed.keyed if e["key"].endswith(".journey")]
    assert evil in shown


def test_an_empty_report_renders_with_its_charts() -> None:
    empty = build_uplift_report([], [], CONFIG, now=LATER)
    parsed = Page(render_uplift_html(empty))
    assert set(CHART_IDS) <= parsed.ids
    assert parsed.keyed == []


def replace_journey(row: Any, name: str) -> dict[str, Any]:
    return {**row, "journey": name}
