"""Batch import: every row accepted or quarantined with its reason, UTC times, idempotence.

The same rows go in as CSV, Parquet and JSON lines; every test checks that the
rows read are the rows accepted plus the rows rejected.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from features import EventLog, InvalidRequest
from features.batch_ingest import IngestReport, ingest_file, ingest_frame
from features.event_stream import EventStream
from features.hillstrom import build_hillstrom_log, load_hillstrom
from features.identity import IdentityGraph
from features.ingest import ingest_hillstrom
from features.ingest_mapping import load_mapping, parse_mapping
from features.sql import SQLiteDatabase
from features.stitching import StitchingStream

NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
ORDERS = [
    # order_id, customer, ordered_at, total
    ("o1", "c1", "2026-03-01T10:00:00+01:00", "12.5"),
    ("o2", "c2", "2026-03-01T08:00:00Z", "9.99"),
    ("o3", "", "2026-03-01T10:00:00Z", "1"),  # no customer
    ("o4", "c4", "2026-03-01 10:00:00", "3"),  # no offset, no zone in the mapping
    ("o5", "c5", "2026-03-02T10:00:00Z", "abc"),  # not a number
    ("o6", "c6", "2026-04-02T10:00:00Z", "4"),  # a day in the future
    ("o1", "c1", "2026-03-01T10:00:00+01:00", "12.5"),  # o1 again: a duplicate
    ("o1", "c9", "2026-03-01T10:00:00+01:00", "12.5"),  # o1 for someone else: refused
]
ORDER_MAPPING: dict[str, Any] = {
    "target": "events",
    "fields": {
        "event_id": "order_id",
        "customer_id": "customer",
        "type": {"value": "purchase"},
        "occurred_at": "ordered_at",
    },
    "payload": {"value": {"column": "total", "type": "float"}, "shop": {"value": "eu"}},
}
EXPECTED_REJECTIONS = {
    ("missing", "customer_id"): 1,
    ("naive_timestamp", "occurred_at"): 1,
    ("not_a_number", "payload.value"): 1,
    ("in_the_future", "occurred_at"): 1,
    ("event_id_reused", "event_id"): 1,
}


def write_rows(path: Path, columns: list[str], rows: list[tuple[Any, ...]]) -> Path:
    """``rows`` as the file ``path`` names: CSV or JSON lines as text, Parquet as text columns."""
    frame = pd.DataFrame(rows, columns=columns, dtype=object)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.astype("string").to_parquet(path, index=False)
    else:
        with path.open("w", encoding="utf-8") as out:
            for record in frame.to_dict("records"):
                out.write(json.dumps(record) + "\n")
    return path


def orders_file(folder: Path, suffix: str, rows: list[tuple[Any, ...]] = ORDERS) -> Path:
    return write_rows(
        folder / f"orders{suffix}", ["order_id", "customer", "ordered_at", "total"], rows
    )


@pytest.fixture
def stream(tmp_path: Path) -> Iterator[EventStream]:
    opened = EventStream(SQLiteDatabase(tmp_path / "events.db"))
    yield opened
    opened.close()


def quarantined(report: IngestReport) -> list[dict[str, Any]]:
    assert report.quarantine is not None
    lines = report.quarantine.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def balanced(report: IngestReport) -> None:
    assert report.accepted + report.rejected_rows == report.read


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_every_row_is_accepted_or_quarantined_with_its_reason(
    tmp_path: Path, stream: EventStream, suffix: str
) -> None:
    path = orders_file(tmp_path, suffix)
    report = ingest_file(
        path,
        parse_mapping(ORDER_MAPPING),
        source="shop",
        into=stream,
        quarantine_dir=tmp_path / "quarantine",
        now=NOW,
    )
    balanced(report)
    assert (report.read, report.stored, report.duplicate) == (8, 2, 1)
    assert dict(report.rejected) == EXPECTED_REJECTIONS
    lines = quarantined(report)
    assert report.quarantine is not None
    assert report.quarantine.parent == tmp_path / "quarantine"
    assert report.quarantine.name.startswith("shop-")
    by_row = {line["row"]: line for line in lines}
    assert sorted(by_row) == [3, 4, 5, 6, 8]
    assert by_row[4]["data"] == {
        "order_id": "o4",
        "customer": "c4",
        "ordered_at": "2026-03-01 10:00:00",
        "total": "3",
    }
    assert by_row[4]["field"] == "occurred_at"
    assert "no time zone" in by_row[4]["error"]
    assert by_row[8]["reason"] == "event_id_reused"
    stored = {event.event_id: event for event in stream.read(after=0)}
    assert sorted(stored) == ["o1", "o2"]
    assert stored["o1"].occurred_at == datetime(2026, 3, 1, 9, tzinfo=UTC)
    assert stored["o1"].payload == {"value": 12.5, "shop": "eu"}
    assert stored["o1"].customer_id == "c1"


def test_the_same_file_twice_stores_nothing_twice(tmp_path: Path, stream: EventStream) -> None:
    path = orders_file(tmp_path, ".csv")
    mapping = parse_mapping(ORDER_MAPPING)
    first = ingest_file(path, mapping, source="shop", into=stream, quarantine_dir=tmp_path, now=NOW)
    again = ingest_file(path, mapping, source="shop", into=stream, quarantine_dir=tmp_path, now=NOW)
    balanced(again)
    assert stream.count() == first.stored == 2
    assert (again.stored, again.duplicate) == (0, 3)
    assert again.rejected == first.rejected
    assert again.quarantine != first.quarantine  # each import keeps its own rejected rows


def test_without_an_id_column_a_row_hash_makes_the_import_idempotent(
    tmp_path: Path, stream: EventStream
) -> None:
    mapping = parse_mapping(
        {
            "target": "events",
            "fields": {
                "customer_id": "customer",
                "type": {"value": "page_view"},
                "occurred_at": "at",
            },
            "payload": {"url": "url"},
        }
    )
    rows = [
        ("c1", "2026-03-01T10:00:00Z", "/a"),
        ("c1", "2026-03-01T10:00:00Z", "/a"),  # the very same row: one event
        ("c1", "2026-03-01T10:00:01Z", "/a"),
    ]
    path = write_rows(tmp_path / "views.csv", ["customer", "at", "url"], rows)
    first = ingest_file(path, mapping, source="web", into=stream, quarantine_dir=tmp_path)
    again = ingest_file(path, mapping, source="web", into=stream, quarantine_dir=tmp_path)
    assert (first.stored, first.duplicate, again.stored, again.duplicate) == (2, 1, 0, 3)
    ids = [event.event_id for event in stream.read(after=0)]
    assert len(set(ids)) == 2
    assert all(event_id.startswith("web:") for event_id in ids)
    other_source = ingest_file(path, mapping, source="app", into=stream, quarantine_dir=tmp_path)
    assert other_source.stored == 2  # another source's rows are other events


def test_a_zone_in_the_mapping_reads_naive_times_and_refuses_unclear_ones(
    tmp_path: Path, stream: EventStream
) -> None:
    rows = [
        ("n1", "c1", "2026-03-01 10:00:00", "1"),  # winter: UTC+1
        ("n2", "c1", "2025-07-01T10:00:00", "1"),  # summer: UTC+2
        ("n3", "c1", "2025-03-30 02:30:00", "1"),  # skipped by the clocks
        ("n4", "c1", "2025-10-26 02:30:00", "1"),  # happens twice
        ("n5", "c1", "2026-03-01T10:00:00-05:00", "1"),  # an offset wins over the zone
        ("n6", "c1", "yesterday", "1"),
    ]
    path = orders_file(tmp_path, ".csv", rows)
    mapping = parse_mapping({**ORDER_MAPPING, "timezone": "Europe/Paris"})
    report = ingest_file(
        path, mapping, source="shop", into=stream, quarantine_dir=tmp_path, now=NOW
    )
    balanced(report)
    assert dict(report.rejected) == {
        ("nonexistent_local_time", "occurred_at"): 1,
        ("ambiguous_local_time", "occurred_at"): 1,
        ("bad_timestamp", "occurred_at"): 1,
    }
    times = {e.event_id: e.occurred_at for e in stream.read(after=0)}
    assert times == {
        "n1": datetime(2026, 3, 1, 9, tzinfo=UTC),
        "n2": datetime(2025, 7, 1, 8, tzinfo=UTC),
        "n5": datetime(2026, 3, 1, 15, tzinfo=UTC),
    }


def test_unix_times(tmp_path: Path, stream: EventStream) -> None:
    rows = [("u1", "c1", "1772359200", "1"), ("u2", "c1", "1772359200500", "1")]
    path = orders_file(tmp_path, ".jsonl", rows)
    seconds = {**ORDER_MAPPING["fields"], "occurred_at": {"column": "ordered_at", "format": "unix"}}
    report = ingest_file(
        path,
        parse_mapping({**ORDER_MAPPING, "fields": seconds}),
        source="shop",
        into=stream,
        quarantine_dir=tmp_path,
        now=NOW,
    )
    # 1772359200500 seconds is far beyond the year 2261.
    assert dict(report.rejected) == {("bad_timestamp", "occurred_at"): 1}
    (stored,) = stream.read(after=0)
    assert stored.occurred_at == datetime(2026, 3, 1, 10, tzinfo=UTC)


def test_late_and_out_of_order_events_keep_their_times_and_go_in_in_time_order(
    tmp_path: Path, stream: EventStream
) -> None:
    mapping = parse_mapping(ORDER_MAPPING)
    shuffled = [
        ("b", "c1", "2026-03-03T00:00:00Z", "1"),
        ("a", "c1", "2026-03-01T00:00:00Z", "1"),
        ("c", "c1", "2026-03-02T00:00:00Z", "1"),
    ]
    ingest_file(
        orders_file(tmp_path, ".csv", shuffled),
        mapping,
        source="shop",
        into=stream,
        quarantine_dir=tmp_path,
        now=NOW,
    )
    assert [e.event_id for e in stream.read(after=0)] == ["a", "c", "b"]
    late = [("z", "c1", "2026-02-01T00:00:00+02:00", "1")]
    ingest_file(
        orders_file(tmp_path, ".parquet", late),
        mapping,
        source="shop",
        into=stream,
        quarantine_dir=tmp_path,
        now=NOW,
    )
    history = stream.history("c1")
    assert history[-1].event_id == "z"  # arrived last...
    assert history[-1].occurred_at == datetime(2026, 1, 31, 22, tzinfo=UTC)  # ...happened first
    ordered = sorted(history, key=lambda e: e.occurred_at)
    assert [e.event_id for e in ordered] == ["z", "a", "c", "b"]


def test_an_id_stored_before_for_another_event_is_refused(
    tmp_path: Path, stream: EventStream
) -> None:
    mapping = parse_mapping(ORDER_MAPPING)
    first = [("x1", "c1", "2026-03-01T10:00:00Z", "5")]
    ingest_file(
        orders_file(tmp_path, ".csv", first),
        mapping,
        source="shop",
        into=stream,
        quarantine_dir=tmp_path,
        now=NOW,
    )
    changed = [("x1", "c1", "2026-03-01T10:00:00Z", "6")]
    report = ingest_file(
        orders_file(tmp_path, ".jsonl", changed),
        mapping,
        source="shop",
        into=stream,
        quarantine_dir=tmp_path,
        now=NOW,
    )
    assert dict(report.rejected) == {("event_id_reused", "event_id"): 1}
    assert "other payload" in quarantined(report)[0]["error"]
    (stored,) = stream.read(after=0)
    assert stored.payload["value"] == 5.0


def test_malformed_lines_are_quarantined_not_skipped(tmp_path: Path, stream: EventStream) -> None:
    csv_path = tmp_path / "orders.csv"
    csv_path.write_text(
        "order_id,customer,ordered_at,total\n"
        "m1,c1,2026-03-01T10:00:00Z,1\n"
        "m2,c1,2026-03-01T10:00:00Z\n"
        "\n"
        'm3,c1,2026-03-01T10:00:00Z,1,"extra"\n',
        encoding="utf-8",
    )
    jsonl_path = tmp_path / "orders.jsonl"
    jsonl_path.write_text(
        '{"order_id": "m4", "customer": "c1", "ordered_at": "2026-03-01T10:00:00Z", "total": 1}\n'
        "{not json\n"
        "[1, 2]\n",
        encoding="utf-8",
    )
    mapping = parse_mapping(ORDER_MAPPING)
    for path, reasons in (
        (csv_path, {("wrong_field_count", "row"): 2}),
        (jsonl_path, {("bad_json", "row"): 1, ("not_an_object", "row"): 1}),
    ):
        report = ingest_file(
            path, mapping, source="shop", into=stream, quarantine_dir=tmp_path, now=NOW
        )
        balanced(report)
        assert (report.read, report.stored, dict(report.rejected)) == (3, 1, reasons)
    lines = quarantined(report)
    assert lines[0]["data"] == {"line": "{not json"}


def test_big_files_go_in_chunks_with_a_progress_bar(
    tmp_path: Path, stream: EventStream, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        (f"e{i}", f"c{i % 7}", f"2026-03-01T10:{i // 60 % 60:02d}:{i % 60:02d}Z", str(i))
        for i in range(2_500)
    ]
    rows[1_234] = ("e1234", "c1", "not a time", "1")
    path = orders_file(tmp_path, ".csv", rows)
    report = ingest_file(
        path,
        parse_mapping(ORDER_MAPPING),
        source="shop",
        into=stream,
        quarantine_dir=tmp_path,
        progress=True,
        chunk_rows=300,
        now=NOW,
    )
    balanced(report)
    assert (report.read, report.stored, report.rejected_rows) == (2_500, 2_499, 1)
    assert quarantined(report)[0]["row"] == 1_235
    assert stream.count() == 2_499
    assert "ingest orders.csv" in capsys.readouterr().err


def test_identify_rows_go_through_the_identity_graph(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "stream.db")
    plain_stream = EventStream(db)
    stitching = StitchingStream(
        plain_stream, IdentityGraph(db, b"k" * 32, listeners=[plain_stream])
    )
    mapping = parse_mapping(
        {
            "target": "events",
            "fields": {"event_id": "id", "customer_id": "who", "type": "type", "occurred_at": "at"},
            "payload": {"anonymous_id": "anon", "email": "email"},
        }
    )
    rows = [
        ("v1", "anon-7", "page_view", "2026-03-01T10:00:00Z", "", ""),
        ("i1", "c1", "identify", "2026-03-01T10:05:00Z", "anon-7", "Ann@Example.com"),
        ("i2", "c2", "identify", "2026-03-01T10:06:00Z", "", "not an address"),
    ]
    path = write_rows(tmp_path / "web.csv", ["id", "who", "type", "at", "anon", "email"], rows)
    report = ingest_file(path, mapping, source="web", into=stitching, quarantine_dir=tmp_path)
    assert dict(report.rejected) == {("invalid", "payload.email"): 1}
    assert [e.event_id for e in plain_stream.history("c1")] == ["v1", "i1"]
    db.close()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"fields": {"when": "ordered_at"}}, r"`fields.when` is not a field of the events schema"),
        ({"fields": {"customer_id": "customer"}}, r"`fields.type` must be mapped"),
        ({"target": "orders"}, r"`target` must be one of \['events', 'profiles'\]"),
        ({"timezone": "Mars/Olympus"}, r"`timezone` must be an IANA time zone"),
        ({"extra": 1}, r"`extra` is not a mapping key"),
        (
            {"fields": {**ORDER_MAPPING["fields"], "customer_id": {"column": "c", "value": "x"}}},
            r"`fields.customer_id` must give either `column`",
        ),
        (
            {"fields": {**ORDER_MAPPING["fields"], "customer_id": {"column": "c", "type": "int"}}},
            r"`fields.customer_id.type` is fixed by the schema \(string\)",
        ),
        (
            {"payload": {"v": {"column": "total", "type": "decimal"}}},
            r"`payload.v.type` must be one of",
        ),
        (
            {"payload": {"v": {"column": "total", "format": "unix"}}},
            r"`payload.v.format` is only for timestamps",
        ),
        (
            {"fields": {**ORDER_MAPPING["fields"], "customer_id": "cust"}},
            r"`fields.customer_id` names column 'cust', which the file does not have",
        ),
        (
            {"payload": {"value": "amount"}},
            r"`payload.value` names column 'amount', which the file does not have",
        ),
    ],
)
def test_a_bad_mapping_is_named_before_any_row_is_written(
    tmp_path: Path, stream: EventStream, change: dict[str, Any], match: str
) -> None:
    mapping_file = tmp_path / "mapping.yaml"
    mapping_file.write_text(yaml.safe_dump({**ORDER_MAPPING, **change}), encoding="utf-8")
    with pytest.raises(InvalidRequest, match=match):
        ingest_file(
            orders_file(tmp_path, ".csv"),
            load_mapping(mapping_file),
            source="shop",
            into=stream,
            quarantine_dir=tmp_path / "quarantine",
            now=NOW,
        )
    assert stream.count() == 0
    assert not (tmp_path / "quarantine").exists()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda d: d / "orders.xlsx", r"`FILE` must end in .csv, .parquet or .jsonl"),
        (lambda d: d / "absent.csv", r"`FILE` must be an existing file"),
    ],
)
def test_bad_files(
    tmp_path: Path, stream: EventStream, make: Callable[[Path], Path], match: str
) -> None:
    path = make(tmp_path)
    if path.suffix == ".xlsx":
        path.write_text("x")
    with pytest.raises(InvalidRequest, match=match):
        ingest_file(
            path,
            parse_mapping(ORDER_MAPPING),
            source="shop",
            into=stream,
            quarantine_dir=tmp_path,
        )


def test_the_target_must_match_where_rows_go(tmp_path: Path, stream: EventStream) -> None:
    with pytest.raises(InvalidRequest, match=r"`into` must be the event log for target profiles"):
        ingest_file(
            write_rows(tmp_path / "p.csv", PROFILE_COLUMNS, [profile_row("p1", "2026-03-01")]),
            parse_mapping(profile_mapping()),
            source="crm",
            into=stream,
            quarantine_dir=tmp_path,
        )


# -- profiles ---------------------------------------------------------------------------------

PROFILE_COLUMNS = ["id", "as_of", "recency", "history", "mens", "womens", "newbie", "zip", "via"]


def profile_mapping(**extra: Any) -> dict[str, Any]:
    return {
        "target": "profiles",
        "fields": {
            "customer_id": "id",
            "event_timestamp": "as_of",
            "recency": "recency",
            "history": "history",
            "mens": "mens",
            "womens": "womens",
            "newbie": "newbie",
            "zip_code": "zip",
            "channel": "via",
        },
        **extra,
    }


def profile_row(
    customer: str, as_of: str, recency: int = 3, history: float = 10.0
) -> tuple[Any, ...]:
    return (customer, as_of, str(recency), str(history), "1", "0", "0", "Urban", "Web")


def ingest_profiles(
    folder: Path, rows: list[tuple[Any, ...]], log: EventLog, suffix: str = ".csv", **extra: Any
) -> IngestReport:
    now = extra.pop("now", NOW)
    path = write_rows(folder / f"profiles{suffix}", PROFILE_COLUMNS, rows)
    report = ingest_file(
        path,
        parse_mapping(profile_mapping(**extra)),
        source="crm",
        into=log,
        quarantine_dir=folder / "quarantine",
        now=now,
    )
    balanced(report)
    return report


def test_a_backfill_is_known_from_its_import_and_a_repeat_keeps_that_time(
    tmp_path: Path,
) -> None:
    log = EventLog(tmp_path / "events")
    rows = [profile_row("p1", "2026-03-01T00:00:00Z")]
    ingest_profiles(tmp_path, rows, log, now=NOW)
    later = NOW + timedelta(days=30)
    again = ingest_profiles(tmp_path, rows, log, now=later)
    assert (again.stored, again.duplicate) == (0, 1)
    assert log.read("profiles")["created_at"].tolist() == [pd.Timestamp(NOW)]
    # A corrected value is a new fact: known from the import that brought it.
    fixed = ingest_profiles(
        tmp_path, [profile_row("p1", "2026-03-01T00:00:00Z", recency=9)], log, now=later
    )
    assert fixed.stored == 1
    table = log.read("profiles")
    assert table["recency"].tolist() == [9]
    assert table["created_at"].tolist() == [pd.Timestamp(later)]


def test_profile_rows_become_the_feature_tables_types_in_time_order(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events")
    rows = [
        profile_row("p2", "2026-03-02T00:00:00Z"),
        profile_row("p1", "2026-03-01T00:00:00+01:00", recency=5),
        ("p3", "2026-03-01T00:00:00Z", "two", "1", "1", "0", "0", "Rural", "Phone"),
        ("p4", "2026-03-01T00:00:00Z", "1", "1", "1", "0", "0", "", "Phone"),
    ]
    report = ingest_profiles(tmp_path, rows, log)
    assert (report.stored, dict(report.rejected)) == (
        2,
        {("not_an_integer", "recency"): 1, ("missing", "zip_code"): 1},
    )
    table = log.read("profiles")
    assert table["customer_id"].tolist() == ["p1", "p2"]
    assert table["event_timestamp"].tolist() == [
        pd.Timestamp("2026-02-28T23:00:00Z"),
        pd.Timestamp("2026-03-02T00:00:00Z"),
    ]
    # Without a created_at column, each row became known at the import.
    assert (table["created_at"] == pd.Timestamp(NOW)).all()
    assert table.dtypes.astype(str).to_dict() == {
        "customer_id": "string",
        "recency": "int64",
        "history": "float64",
        "mens": "int64",
        "womens": "int64",
        "newbie": "int64",
        "zip_code": "string",
        "channel": "string",
        "event_timestamp": "datetime64[ns, UTC]",
        "created_at": "datetime64[ns, UTC]",
    }


def test_profiles_again_change_nothing_and_corrections_replace(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events")
    rows = [profile_row("p1", "2026-03-01T00:00:00Z"), profile_row("p2", "2026-03-01T00:00:00Z")]
    ingest_profiles(tmp_path, rows, log)
    table = log.path("profiles")
    written = table.stat().st_mtime_ns
    os.utime(table, ns=(written - 10**9, written - 10**9))
    again = ingest_profiles(tmp_path, rows, log, suffix=".parquet")
    assert (again.stored, again.duplicate) == (0, 2)
    assert table.stat().st_mtime_ns == written - 10**9  # not even rewritten
    corrected = ingest_profiles(tmp_path, [profile_row("p2", "2026-03-01T00:00:00Z", 9)], log)
    assert (corrected.stored, corrected.duplicate) == (1, 0)
    stored = log.read("profiles").set_index("customer_id")["recency"].to_dict()
    assert stored == {"p1": 3, "p2": 9}


def test_two_rows_of_one_import_for_one_key_keep_the_first(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events")
    rows = [
        profile_row("p1", "2026-03-01T00:00:00Z", recency=1),
        profile_row("p1", "2026-03-01T00:00:00Z", recency=1),  # the same again
        profile_row("p1", "2026-03-01T01:00:00+01:00", recency=2),  # the same moment, other values
    ]
    report = ingest_profiles(tmp_path, rows, log, suffix=".jsonl")
    assert (report.stored, report.duplicate) == (1, 1)
    assert dict(report.rejected) == {("duplicate_key", "customer_id"): 1}
    assert "row 1" in quarantined(report)[0]["error"]
    assert log.read("profiles")["recency"].tolist() == [1]


def test_a_late_snapshot_is_seen_by_point_in_time_reads_from_its_own_time(tmp_path: Path) -> None:
    from features import FeatureRepo

    log = EventLog(tmp_path / "events")
    ingest_profiles(tmp_path, [profile_row("p1", "2026-03-10T00:00:00Z", recency=10)], log)
    # Imported later, stamped earlier: it belongs before the first one.
    ingest_profiles(tmp_path, [profile_row("p1", "2026-03-01T00:00:00Z", recency=1)], log)
    assert log.read("profiles")["recency"].tolist() == [1, 10]
    repo = FeatureRepo(tmp_path / "state")
    repo.apply(log.path("profiles"))
    entities = pd.DataFrame(
        {
            "customer_id": ["p1", "p1", "p1"],
            "event_timestamp": pd.to_datetime(
                ["2026-02-20T00:00:00Z", "2026-03-05T00:00:00Z", "2026-03-12T00:00:00Z"]
            ),
        }
    )
    recency = repo.training_frame(entities)["recency"].tolist()
    assert recency[1:] == [1.0, 10.0]
    assert pd.isna(recency[0])


# -- the demo's load ------------------------------------------------------------------------


def test_the_hillstrom_load_goes_through_batch_ingest_unchanged(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events")
    loaded = ingest_hillstrom(log, sample=1_500, seed=4)
    expected = build_hillstrom_log(load_hillstrom(sample=1_500, seed=4), seed=4)
    for name in ("profiles", "decisions", "outcomes"):
        pd.testing.assert_frame_equal(log.read(name), getattr(expected, name))
    pd.testing.assert_frame_equal(loaded.profiles, expected.profiles)
    again = ingest_frame(
        expected.profiles,
        load_mapping(Path(__file__).parents[2] / "features" / "mappings" / "hillstrom.yaml"),
        source="hillstrom",
        into=log,
        quarantine_dir=tmp_path / "quarantine",
    )
    assert (again.read, again.stored, again.duplicate) == (
        len(expected.profiles),
        0,
        len(expected.profiles),
    )
    assert not (tmp_path / "quarantine").exists()


def test_constants_and_payload_kinds(tmp_path: Path, stream: EventStream) -> None:
    mapping = parse_mapping(
        {
            "target": "events",
            "fields": {
                "event_id": "id",
                "customer_id": "who",
                "type": {"value": "newsletter_flag"},
                "occurred_at": {"value": "2026-03-01T00:00:00Z"},
            },
            "payload": {
                "channel": {"value": "email"},
                "opted_in": {"column": "flag", "type": "bool"},
                "count": {"column": "n", "type": "int"},
                "seen": {"column": "seen", "type": "timestamp"},
                "note": "note",
            },
        }
    )
    rows = [
        ("k1", "c1", "yes", "3", "2026-02-01T00:00:00Z", "hi"),
        ("k2", "c2", "maybe", "3", "", ""),
        ("k3", "c3", "0", "3.5", "", ""),
    ]
    path = write_rows(tmp_path / "c.csv", ["id", "who", "flag", "n", "seen", "note"], rows)
    report = ingest_file(path, mapping, source="crm", into=stream, quarantine_dir=tmp_path, now=NOW)
    assert dict(report.rejected) == {
        ("not_a_boolean", "payload.opted_in"): 1,
        ("not_an_integer", "payload.count"): 1,
    }
    (stored,) = stream.read(after=0)
    assert stored.type == "newsletter_flag"
    assert stored.payload == {
        "channel": "email",
        "opted_in": True,
        "count": 3,
        "seen": "2026-02-01T00:00:00+00:00",
        "note": "hi",
    }


def test_typed_parquet_columns_and_a_byte_order_mark(tmp_path: Path, stream: EventStream) -> None:
    frame = pd.DataFrame(
        {
            "id": [7, 8],
            "customer": ["c1", "c2"],
            "local": pd.to_datetime(["2025-01-10 09:00", "2025-07-10 09:00"]),  # naive
            "utc": pd.to_datetime(["2025-01-10 09:00Z", None], utc=True),
            "amount": [1.5, float("nan")],
        }
    )
    path = tmp_path / "typed.parquet"
    frame.to_parquet(path, index=False)
    mapping = {
        "target": "events",
        "timezone": "America/New_York",
        "fields": {
            "event_id": "id",
            "customer_id": "customer",
            "type": {"value": "purchase"},
            "occurred_at": "local",
        },
        "payload": {"value": {"column": "amount", "type": "float"}, "seen": "utc"},
    }
    report = ingest_file(
        path, parse_mapping(mapping), source="pos", into=stream, quarantine_dir=tmp_path, now=NOW
    )
    assert (report.stored, report.rejected_rows) == (2, 0)
    stored = {e.event_id: e for e in stream.read(after=0)}
    assert stored["7"].occurred_at == datetime(2025, 1, 10, 14, tzinfo=UTC)  # EST
    assert stored["8"].occurred_at == datetime(2025, 7, 10, 13, tzinfo=UTC)  # EDT
    assert stored["7"].payload == {"value": 1.5, "seen": "2025-01-10T09:00:00+00:00"}
    assert stored["8"].payload == {}  # missing payload values are left out, not refused

    bom = tmp_path / "bom.csv"
    bom.write_bytes(
        "\ufefforder_id,customer,ordered_at,total\nb1,c1,2026-03-01T10:00:00Z,1\n".encode()
    )
    report = ingest_file(
        bom,
        parse_mapping(ORDER_MAPPING),
        source="shop",
        into=stream,
        quarantine_dir=tmp_path,
        now=NOW,
    )
    assert (report.stored, report.rejected_rows) == (1, 0)
