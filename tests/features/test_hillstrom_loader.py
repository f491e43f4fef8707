"""The Hillstrom loader: validation messages, stable ids, stratified samples."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from features import (
    ARMS,
    MIN_SAMPLE,
    PROFILE_FEATURES,
    InvalidRequest,
    default_hillstrom_path,
    load_hillstrom,
)

HEADER = (
    "recency,history_segment,history,mens,womens,zip_code,newbie,channel,segment,"
    "visit,conversion,spend"
)
ROWS = [
    "10,2) $100 - $200,142.44,1,0,Surburban,0,Phone,Womens E-Mail,0,0,0",
    "6,3) $200 - $350,329.08,1,1,Rural,1,Web,No E-Mail,0,0,0",
    "7,2) $100 - $200,180.65,0,1,Surburban,1,Web,Womens E-Mail,0,0,0",
    "9,5) $500 - $750,675.83,1,0,Rural,1,Web,Mens E-Mail,1,1,29.99",
]


def write_csv(tmp_path: Path, header: str = HEADER, rows: list[str] = ROWS) -> Path:
    path = tmp_path / "hillstrom.csv"
    path.write_text("\n".join([header, *rows]))
    return path


@pytest.fixture(scope="module")
def full() -> pd.DataFrame:
    return load_hillstrom()


def test_full_file_has_every_customer_once_with_an_arm(full: pd.DataFrame) -> None:
    assert len(full) == 64_000
    assert full["customer_id"].is_unique
    assert full["customer_id"].iloc[[0, -1]].tolist() == ["h00000", "h63999"]
    assert set(full["arm"]) == set(ARMS)
    assert set(PROFILE_FEATURES) <= set(full.columns)


def test_suburban_is_spelled_correctly(full: pd.DataFrame) -> None:
    assert set(full["zip_code"]) == {"Urban", "Suburban", "Rural"}


def test_types_are_fixed(tmp_path: Path) -> None:
    frame = load_hillstrom(write_csv(tmp_path))
    assert frame["recency"].dtype == "int64"
    assert frame["history"].dtype == "float64"
    assert frame["zip_code"].dtype == "string"
    assert frame["arm"].tolist() == ["womens_email", "no_email", "womens_email", "mens_email"]


@pytest.mark.parametrize(
    ("drop", "match"),
    [
        ("segment", r"`segment` must be a column of .*hillstrom\.csv"),
        ("spend", r"`spend` must be a column of .*hillstrom\.csv"),
        ("zip_code", r"`zip_code` must be a column of .*hillstrom\.csv"),
    ],
)
def test_missing_column_is_named_with_the_file(tmp_path: Path, drop: str, match: str) -> None:
    columns = HEADER.split(",")
    keep = [i for i, name in enumerate(columns) if name != drop]
    header = ",".join(columns[i] for i in keep)
    rows = [",".join(row.split(",")[i] for i in keep) for row in ROWS]
    with pytest.raises(InvalidRequest, match=match) as caught:
        load_hillstrom(write_csv(tmp_path, header, rows))
    assert caught.value.field == drop


def test_unknown_segment_is_rejected(tmp_path: Path) -> None:
    rows = [*ROWS[:3], ROWS[3].replace("Mens E-Mail", "SMS")]
    with pytest.raises(InvalidRequest, match=r"`segment` must be one of .*, got \['SMS'\]"):
        load_hillstrom(write_csv(tmp_path, rows=rows))


def with_value(row: int, column: str, value: str, rows: list[str] = ROWS) -> list[str]:
    """``rows`` with ``column`` of customer row ``row`` (counted from 1) set to ``value``."""
    position = HEADER.split(",").index(column)
    fields = rows[row - 1].split(",")
    fields[position] = value
    return [*rows[: row - 1], ",".join(fields), *rows[row:]]


@pytest.mark.parametrize(
    ("row", "column", "value", "match"),
    [
        (4, "history", "lots", r"`history` must be a finite number .*row 4 is not\), got 'lots'$"),
        (2, "recency", "", r"`recency` must be present in every row of .*hillstrom\.csv "),
        (3, "recency", "2.5", r"`recency` must be a whole number, at least 0 .*, got 2\.5$"),
        (1, "recency", "-1", r"`recency` must be a whole number, at least 0 .*, got -1$"),
        (3, "mens", "", r"`mens` must be present .*\(customer row 3 is not\)$"),
        (1, "womens", "x", r"`womens` must be a finite number .*row 1 is not\), got 'x'$"),
        (2, "newbie", "3", r"`newbie` must be 0 or 1 .*row 2 is not\), got 3$"),
        (2, "visit", "2", r"`visit` must be 0 or 1 in every row of .*\(customer row 2 is not\)"),
        (4, "visit", "yes", r"`visit` must be a finite number .*row 4 is not\), got 'yes'$"),
        (3, "conversion", "-1", r"`conversion` must be 0 or 1 .*row 3 is not\), got -1$"),
        (1, "conversion", "", r"`conversion` must be present .*\(customer row 1 is not\)$"),
        (2, "history", "-0.5", r"`history` must be at least 0 .*row 2 is not\), got -0\.5$"),
        (4, "history", "inf", r"`history` must be a finite number .*row 4 is not\), got inf$"),
        (4, "spend", "-29.99", r"`spend` must be at least 0 .*row 4 is not\), got -29\.99$"),
    ],
)
def test_bad_values_name_the_column_and_the_first_bad_row(
    tmp_path: Path, row: int, column: str, value: str, match: str
) -> None:
    with pytest.raises(InvalidRequest, match=match) as caught:
        load_hillstrom(write_csv(tmp_path, rows=with_value(row, column, value)))
    assert caught.value.field == column


def test_the_first_of_several_bad_rows_is_named(tmp_path: Path) -> None:
    rows = with_value(4, "visit", "7", with_value(2, "visit", "5"))
    with pytest.raises(InvalidRequest, match=r"`visit` .*\(customer row 2 is not\), got 5$"):
        load_hillstrom(write_csv(tmp_path, rows=rows))


def write_bytes(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


README = b"# Nudge\n\nA decisioning service, in Python.\n\n## Usage\n\nmake demo\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256))
UNREADABLE = r"`path` could not be read as the Hillstrom CSV: "


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda d: d / "missing.csv", r"`path` must be an existing CSV file, got '.*missing\.csv'"),
        (lambda d: d, r"`path` must be an existing CSV file, got '.*'"),
        (lambda d: write_bytes(d, "h.csv", b""), UNREADABLE + r"the file is empty, got '.*h\.csv'"),
        (lambda d: write_bytes(d, "h.csv", b"\n\n"), UNREADABLE + r"the file is empty"),
        (lambda d: write_bytes(d, "h.csv", PNG), UNREADABLE + r"it is not UTF-8 text"),
        (lambda d: write_bytes(d, "README.md", README), UNREADABLE + r"no Hillstrom column in"),
        (
            lambda d: write_bytes(d, "h.csv", HEADER.replace(",", ";").encode()),
            UNREADABLE + r"no Hillstrom column in its header",
        ),
        (
            lambda d: write_bytes(d, "h.csv.gz", HEADER.encode()),
            UNREADABLE + r"Not a gzipped file",
        ),
        (
            lambda d: write_bytes(d, "h.csv", f"{HEADER}\n{ROWS[0]},extra,fields\n".encode()),
            UNREADABLE + r"the first customer row has more fields than the header",
        ),
        (
            lambda d: write_bytes(d, "h.csv", "\n".join([HEADER, *ROWS, ROWS[0] + ",x"]).encode()),
            UNREADABLE + r".*Expected 12 fields in line 6, saw 13",
        ),
        (
            lambda d: write_bytes(d, "h.csv", f"{HEADER}\n".encode()),
            r"`path` must contain at least one customer row, got '.*h\.csv'",
        ),
    ],
    ids=[
        "missing",
        "directory",
        "empty",
        "blank-lines",
        "binary",
        "readme",
        "semicolons",
        "not-gzip",
        "shifted",
        "ragged",
        "header-only",
    ],
)
def test_a_path_that_is_not_the_hillstrom_csv_is_named(
    tmp_path: Path, make: Callable[[Path], Path], match: str
) -> None:
    with pytest.raises(InvalidRequest, match=match) as caught:
        load_hillstrom(make(tmp_path))
    assert caught.value.field == "path"


def test_sample_is_stratified_by_arm() -> None:
    sample = load_hillstrom(sample=1_200, seed=7)
    assert len(sample) == 1_200
    # 21,307 / 21,306 / 21,387 customers: each arm gets its share of 1,200 rounded
    # one way or the other (399.5, 399.5, 401.0), and the shares add up.
    counts = sample["arm"].value_counts().to_dict()
    assert counts == {"mens_email": 400, "no_email": 399, "womens_email": 401}


def test_sample_keeps_ids_and_rows_of_the_full_file(full: pd.DataFrame) -> None:
    sample = load_hillstrom(sample=MIN_SAMPLE, seed=3)
    by_id = full.set_index("customer_id").loc[sample["customer_id"]].reset_index()
    pd.testing.assert_frame_equal(sample, by_id)


def test_sample_is_reproducible_and_seed_dependent() -> None:
    first = load_hillstrom(sample=MIN_SAMPLE, seed=1)["customer_id"].tolist()
    assert load_hillstrom(sample=MIN_SAMPLE, seed=1)["customer_id"].tolist() == first
    assert load_hillstrom(sample=MIN_SAMPLE, seed=2)["customer_id"].tolist() != first


@pytest.mark.parametrize("size", [0, 3, 100, 999, 64_001])
def test_a_sample_of_the_full_file_is_big_enough_to_train_on(size: int) -> None:
    match = rf"`sample` must be between 1000 and 64000, got {size}$"
    with pytest.raises(InvalidRequest, match=match):
        load_hillstrom(sample=size)


def test_the_whole_file_is_a_valid_sample(full: pd.DataFrame) -> None:
    assert len(load_hillstrom(sample=64_000)) == len(full)


@pytest.mark.parametrize("size", [0, 2, 5])
def test_a_small_file_may_be_sampled_down_to_three_rows(tmp_path: Path, size: int) -> None:
    with pytest.raises(InvalidRequest, match=r"`sample` must be between 3 and 4, got"):
        load_hillstrom(write_csv(tmp_path), sample=size)
    assert len(load_hillstrom(write_csv(tmp_path), sample=3)) == 3


@pytest.mark.parametrize(("rows", "low"), [(999, 3), (1_000, 1_000)])
def test_the_minimum_applies_once_the_file_could_meet_it(
    tmp_path: Path, rows: int, low: int
) -> None:
    path = tmp_path / "hillstrom.csv"
    pd.read_csv(default_hillstrom_path(), nrows=rows).to_csv(path, index=False)
    with pytest.raises(InvalidRequest, match=rf"`sample` must be between {low} and {rows}"):
        load_hillstrom(path, sample=2)
    assert len(load_hillstrom(path, sample=max(low, 500))) == max(low, 500)


@pytest.mark.parametrize("size", [1_000.5, True, "1000"])
def test_sample_must_be_a_whole_number(size: object) -> None:
    with pytest.raises(InvalidRequest, match=r"`sample` must be a whole number of customers"):
        load_hillstrom(sample=size)  # type: ignore[arg-type]
