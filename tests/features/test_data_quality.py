"""Data quality: freshness, null and duplicate rates, schema drift, and ``nudge data check``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from features.data_quality import Thresholds, check_data, check_stream, check_table
from features.errors import InvalidRequest
from features.event_log import EventLog
from features.event_stream import CustomerEvent, EventStream
from features.sql import SQLiteDatabase
from serving.cli import main

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def outcomes(rows: int = 100, *, missing_spend: int = 0, repeated: int = 0) -> pd.DataFrame:
    ids = [f"c{i}" for i in range(rows - repeated)] + [f"c{i}" for i in range(repeated)]
    spend = [None] * missing_spend + [1.0] * (rows - missing_spend)
    return pd.DataFrame(
        {
            "customer_id": ids,
            "spend": spend,
            "event_timestamp": pd.Timestamp(NOW - timedelta(hours=30)),
        }
    )


def test_a_clean_table_passes_and_its_age_is_measured() -> None:
    check = check_table(
        "outcomes", outcomes(), key=("customer_id",), now=NOW, thresholds=Thresholds(max_age=None)
    )
    assert check.ok
    assert check.age_s == pytest.approx(30 * 3600)
    assert check.null_rates == {"customer_id": 0.0, "spend": 0.0, "event_timestamp": 0.0}


def test_thresholds_name_what_broke() -> None:
    check = check_table(
        "outcomes",
        outcomes(missing_spend=7, repeated=2),
        key=("customer_id",),
        now=NOW,
        thresholds=Thresholds(max_age=timedelta(hours=24), max_null_rate=0.05),
    )
    assert check.duplicate_rate == pytest.approx(0.02)
    assert check.null_rates["spend"] == pytest.approx(0.07)
    assert check.problems == [
        "newest row 1.2 d old, over 1.0 d",
        "duplicate rate 0.020 over 0.01",
        "null rate of spend 0.070 over 0.05",
    ]


@pytest.mark.parametrize("rate", [-0.1, 1.5, True, "0.1"])
def test_bad_thresholds_are_refused_by_name(rate: object) -> None:
    with pytest.raises(InvalidRequest, match="`max_null_rate` must be a number in"):
        Thresholds(max_null_rate=rate)  # type: ignore[arg-type]


def test_schema_drift_is_reported_against_the_first_check(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events")
    log.write("outcomes", outcomes())
    schema = tmp_path / "schema.json"
    first = check_data(
        event_log=log, stream=None, now=NOW, thresholds=Thresholds(max_age=None), schema_file=schema
    )
    assert first.ok
    assert json.loads(schema.read_text())["outcomes"]["spend"] == "float64"

    changed = outcomes().drop(columns=["spend"]).assign(spend=["1"] * 100, channel="email")
    log.write("outcomes", changed)
    second = check_data(
        event_log=log, stream=None, now=NOW, thresholds=Thresholds(max_age=None), schema_file=schema
    )
    (source,) = second.sources
    assert source.schema_changes == ["channel added (object)", "spend float64 → object"]
    assert not second.ok


def test_stream_retries_without_their_id_count_as_duplicates(tmp_path: Path) -> None:
    stream = EventStream(SQLiteDatabase(tmp_path / "stream.db"))
    at = NOW - timedelta(minutes=5)
    stream.append(
        [
            CustomerEvent("e1", "c1", "purchase", at, {"value": 20}),
            CustomerEvent("e2", "c1", "purchase", at, {"value": 20}),  # same purchase, new id
            CustomerEvent("e3", "c2", "purchase", at, {}),  # no value
            CustomerEvent("e4", "c3", "purchase", at, {"value": 5}),
            CustomerEvent("e5", "c3", "page_view", at, {}),
        ],
        now=at,
    )
    checks = {c.source: c for c in check_stream(stream, now=NOW, thresholds=Thresholds())}
    purchase = checks["stream:purchase"]
    assert purchase.rows == 4
    assert purchase.duplicate_rate == pytest.approx(0.25)
    assert purchase.null_rates == {"payload.value": pytest.approx(0.25)}
    assert purchase.age_s == pytest.approx(300)
    assert checks["stream:page_view"].ok


def test_the_command_exits_1_on_a_problem_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, reports = tmp_path / "state", tmp_path / "reports"
    monkeypatch.setenv("NUDGE_REPORTS_DIR", str(reports))
    EventLog(state / "events").write("outcomes", outcomes(missing_spend=10))
    args = ["data", "check", "--state-dir", str(state), "--max-age", "none"]
    assert main([*args, "--max-null-rate", "0.2"]) == 0
    assert main(args) == 1
    printed = capsys.readouterr().out
    assert "null rate of spend 0.100 over 0.05" in printed
    report = json.loads((reports / "data_quality.json").read_text())
    assert report["ok"] is False
    assert report["sources"][0]["null_rates"]["spend"] == pytest.approx(0.1)
    assert main([*args, "--max-age", "soon"]) == 2
    assert "`--max-age` must be a duration" in capsys.readouterr().err
