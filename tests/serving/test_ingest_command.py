"""``nudge ingest``: what it prints, where rows go, and its exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from features import EventLog
from serving.cli import main
from serving.journey_wiring import open_event_stream
from serving.settings import Settings

EVENTS_MAPPING = {
    "target": "events",
    "timezone": "Europe/London",
    "fields": {
        "event_id": "order_id",
        "customer_id": "customer",
        "type": {"value": "purchase"},
        "occurred_at": "ordered_at",
    },
    "payload": {"value": {"column": "total", "type": "float"}},
}


def files(folder: Path) -> tuple[Path, Path]:
    data = folder / "orders.csv"
    data.write_text(
        "order_id,customer,ordered_at,total\n"
        "o1,c1,2026-01-05 09:00:00,12.5\n"
        "o2,c2,2026-01-05 10:00:00,abc\n",
        encoding="utf-8",
    )
    mapping = folder / "orders.yaml"
    mapping.write_text(yaml.safe_dump(EVENTS_MAPPING), encoding="utf-8")
    return data, mapping


def test_ingest_events_prints_counts_and_quarantines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, mapping = files(tmp_path)
    state = tmp_path / "state"
    argv = ["ingest", str(data), "--source", "shop", "--mapping", str(mapping)]
    code = main([*argv, "--state-dir", str(state), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1  # a row was rejected
    assert "2 rows read" in out
    assert "accepted  1  (1 stored, 0 already stored)" in out
    assert "not_a_number" in out
    (quarantine,) = (state / "quarantine").glob("shop-*.jsonl")
    assert json.loads(quarantine.read_text())["data"]["order_id"] == "o2"
    stream = open_event_stream(Settings(state_dir=state))
    (stored,) = stream.read(after=0)
    stream.close()
    assert stored.occurred_at.isoformat() == "2026-01-05T09:00:00+00:00"  # London in winter
    again = main([*argv, "--state-dir", str(state), "--no-progress", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert (again, report["stored"], report["duplicate"], report["rejected"]) == (1, 0, 1, 1)


def test_ingest_profiles_into_the_event_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "profiles.jsonl"
    row = {
        "customer_id": "p1",
        "recency": 2,
        "history": 120.5,
        "mens": 1,
        "womens": 0,
        "newbie": 1,
        "zip_code": "Urban",
        "channel": "Web",
        "event_timestamp": "2026-01-01T00:00:00Z",
        "created_at": "2026-01-01T00:00:00Z",
    }
    data.write_text(json.dumps(row) + "\n", encoding="utf-8")
    mapping = Path(__file__).parents[2] / "features" / "mappings" / "hillstrom.yaml"
    state = tmp_path / "state"
    argv = ["ingest", str(data), "--source", "crm", "--mapping", str(mapping)]
    assert main([*argv, "--state-dir", str(state), "--no-progress"]) == 0
    table = EventLog(state / "events").read("profiles")
    assert table["customer_id"].tolist() == ["p1"]
    assert "accepted  1  (1 stored" in capsys.readouterr().out


def test_a_bad_mapping_is_exit_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, mapping = files(tmp_path)
    mapping.write_text(
        yaml.safe_dump({**EVENTS_MAPPING, "fields": {"customer_id": "customer"}}), encoding="utf-8"
    )
    state = tmp_path / "state"
    argv = ["ingest", str(data), "--source", "shop", "--mapping", str(mapping)]
    assert main([*argv, "--state-dir", str(state)]) == 2
    assert "`fields.type` must be mapped" in capsys.readouterr().err
    assert not (state / "event_stream.db").exists()
