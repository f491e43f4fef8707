"""The Hillstrom loader: validation messages, stable ids, stratified samples."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features import ARMS, PROFILE_FEATURES, InvalidRequest, load_hillstrom

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


def test_non_numeric_value_is_rejected(tmp_path: Path) -> None:
    rows = [*ROWS[:3], ROWS[3].replace("675.83", "lots")]
    with pytest.raises(InvalidRequest, match=r"`history` must be numeric .*, got 'lots'"):
        load_hillstrom(write_csv(tmp_path, rows=rows))


def test_sample_is_stratified_by_arm() -> None:
    sample = load_hillstrom(sample=600, seed=7)
    assert len(sample) == 600
    # 21,307 / 21,387 / 21,306 customers: proportional shares of 600 round to 200 each.
    assert sample["arm"].value_counts().to_dict() == dict.fromkeys(ARMS, 200)


def test_sample_keeps_ids_and_rows_of_the_full_file(full: pd.DataFrame) -> None:
    sample = load_hillstrom(sample=50, seed=3)
    by_id = full.set_index("customer_id").loc[sample["customer_id"]].reset_index()
    pd.testing.assert_frame_equal(sample, by_id)


def test_sample_is_reproducible_and_seed_dependent() -> None:
    first = load_hillstrom(sample=30, seed=1)["customer_id"].tolist()
    assert load_hillstrom(sample=30, seed=1)["customer_id"].tolist() == first
    assert load_hillstrom(sample=30, seed=2)["customer_id"].tolist() != first


@pytest.mark.parametrize("size", [0, 2, 5])
def test_sample_size_must_fit(tmp_path: Path, size: int) -> None:
    with pytest.raises(InvalidRequest, match=r"`sample` must be between 3 and 4 rows"):
        load_hillstrom(write_csv(tmp_path), sample=size)
