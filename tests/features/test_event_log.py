"""EventLog: Parquet round trips, atomic replacement, validated names."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from features import EventLog, InvalidRequest, NotFound


def decisions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.array(["h00001", "h00002"], dtype="string"),
            "decided_at": pd.to_datetime(
                [datetime(2008, 3, 1, 9, tzinfo=UTC), datetime(2008, 3, 2, 17, tzinfo=UTC)]
            ),
            "propensity": [1 / 3, 1 / 3],
            "visit": [0, 1],
        },
        index=[7, 3],
    )


def test_round_trip_keeps_values_and_types(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events")
    path = log.write("decisions", decisions())
    assert path == tmp_path / "events" / "decisions.parquet"
    back = log.read("decisions")
    pd.testing.assert_frame_equal(back, decisions().reset_index(drop=True))
    assert str(back["decided_at"].dt.tz) == "UTC"


def test_write_replaces_the_table(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.write("outcomes", decisions())
    log.write("outcomes", decisions().head(1))
    assert len(log.read("outcomes")) == 1


def test_failed_write_leaves_the_old_table_and_no_debris(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.write("profiles", decisions())
    # Parquet cannot hold a column mixing dicts and numbers: the write fails midway.
    broken = pd.DataFrame({"customer_id": ["h1", "h2"], "bad": [{"a": 1}, 2.5]})
    with pytest.raises(Exception, match=r"bad|dict|struct|convert"):
        log.write("profiles", broken)
    pd.testing.assert_frame_equal(log.read("profiles"), decisions().reset_index(drop=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profiles.parquet"]


def test_exists_and_missing_table(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "never_created")
    assert not log.exists("decisions")
    with pytest.raises(NotFound, match=r"table 'decisions' not found"):
        log.read("decisions")


@pytest.mark.parametrize("name", ["", "../escape", "a.b", "with space", "dé"])
def test_names_are_letters_digits_underscores(tmp_path: Path, name: str) -> None:
    log = EventLog(tmp_path)
    with pytest.raises(InvalidRequest, match=r"`name` must be letters, digits or underscores"):
        log.write(name, decisions())
    with pytest.raises(InvalidRequest, match=r"`name`"):
        log.read(name)
