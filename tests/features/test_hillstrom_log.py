"""The Hillstrom timeline: decisions inside the campaign, outcomes after, profiles that can leak."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from features import (
    ARMS,
    PROFILE_FEATURES,
    HillstromLog,
    InvalidRequest,
    build_hillstrom_log,
    load_hillstrom,
)

START = datetime(2008, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return load_hillstrom(sample=3_000, seed=5)


@pytest.fixture(scope="module")
def log(raw: pd.DataFrame) -> HillstromLog:
    return build_hillstrom_log(raw, seed=11)


def test_campaign_times(log: HillstromLog) -> None:
    assert log.campaign_start == START
    assert log.campaign_end == START + timedelta(days=14)
    assert log.tracking_end == START + timedelta(days=28)


def test_one_decision_per_customer_inside_the_window(log: HillstromLog, raw: pd.DataFrame) -> None:
    decided = log.decisions["decided_at"]
    assert str(decided.dt.tz) == "UTC"
    assert decided.min() >= log.campaign_start
    assert decided.max() < log.campaign_end
    assert decided.is_monotonic_increasing
    assert (decided.dt.microsecond == 0).all()
    assert (decided.dt.nanosecond == 0).all()
    assert sorted(log.decisions["customer_id"]) == sorted(raw["customer_id"])


def test_decision_times_spread_over_the_whole_window(log: HillstromLog) -> None:
    days = (log.decisions["decided_at"] - log.campaign_start).dt.days
    counts = np.bincount(days, minlength=14)
    # 3,000 draws over 14 days: about 214 a day; 150 is more than four deviations below.
    assert counts.min() > 150


def test_arms_and_exact_propensities_follow_the_raw_segment(
    log: HillstromLog, raw: pd.DataFrame
) -> None:
    decisions = log.decisions.set_index("customer_id")
    expected = raw.set_index("customer_id")["arm"]
    assert (decisions.loc[expected.index, "arm"] == expected).all()
    assert set(decisions["arm"]) == set(ARMS)
    assert (decisions["propensity"] == 1 / 3).all()


def test_outcomes_are_observed_after_tracking(log: HillstromLog, raw: pd.DataFrame) -> None:
    outcomes = log.outcomes
    assert outcomes["customer_id"].tolist() == log.decisions["customer_id"].tolist()
    assert (outcomes["observed_at"] - outcomes["decided_at"] == pd.Timedelta(days=14)).all()
    assert outcomes["conversion"].dtype == "int64"
    assert outcomes["spend"].dtype == "float64"
    assert outcomes["conversion"].sum() == raw["conversion"].sum()


def test_baseline_profile_precedes_the_campaign(log: HillstromLog, raw: pd.DataFrame) -> None:
    baseline = log.profiles[log.profiles["event_timestamp"] < log.campaign_start]
    assert (baseline["event_timestamp"] == log.campaign_start - timedelta(days=1)).all()
    assert (baseline["created_at"] == baseline["event_timestamp"]).all()
    expected = raw[["customer_id", *PROFILE_FEATURES]].reset_index(drop=True)
    pd.testing.assert_frame_equal(baseline[expected.columns].reset_index(drop=True), expected)


def test_converters_have_a_later_snapshot_showing_the_purchase(
    log: HillstromLog, raw: pd.DataFrame
) -> None:
    later = log.profiles[log.profiles["event_timestamp"] > log.campaign_start]
    converters = raw[raw["conversion"] == 1].set_index("customer_id")
    assert len(converters) > 10
    assert sorted(later["customer_id"]) == sorted(converters.index)
    assert (later["event_timestamp"] == log.tracking_end).all()
    assert (later["recency"] == 0).all()
    later = later.set_index("customer_id")
    spent = converters["history"] + converters["spend"]
    np.testing.assert_allclose(later.loc[converters.index, "history"], spent)


def test_profile_types(log: HillstromLog) -> None:
    dtypes = log.profiles.dtypes.astype(str).to_dict()
    assert dtypes == {
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


def test_same_seed_same_log_other_seed_other_times(raw: pd.DataFrame, log: HillstromLog) -> None:
    again = build_hillstrom_log(raw, seed=11)
    pd.testing.assert_frame_equal(again.decisions, log.decisions)
    other = build_hillstrom_log(raw, seed=12)
    assert not other.decisions["decided_at"].equals(log.decisions["decided_at"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"campaign_start": datetime(2008, 3, 1)}, r"`campaign_start` must be timezone-aware"),
        ({"campaign_days": 0}, r"`campaign_days` must be at least 1, got 0"),
        ({"tracking_days": -1}, r"`tracking_days` must be at least 1, got -1"),
    ],
)
def test_bad_timeline_arguments(raw: pd.DataFrame, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        build_hillstrom_log(raw, **kwargs)  # type: ignore[arg-type]


def test_raw_frame_must_come_from_the_loader(raw: pd.DataFrame) -> None:
    with pytest.raises(InvalidRequest, match=r"`arm` must be a column of `raw`"):
        build_hillstrom_log(raw.drop(columns="arm"))
