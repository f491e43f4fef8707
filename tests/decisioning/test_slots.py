"""Send-time slots: offsets, local wall-clock times across DST changes, the horizon, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from decisioning.slots import SlotSpec, hour_of_week, load_zone, parse_slot, resolve_slots
from features.errors import InvalidRequest

PARIS = load_zone("Europe/Paris", "time_zone")
NEW_YORK = load_zone("America/New_York", "time_zone")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def resolve_one(text: str, now: datetime, zone: ZoneInfo, hours: int = 24) -> datetime | None:
    resolved = resolve_slots([parse_slot(text)], now, zone, timedelta(hours=hours))
    assert len(resolved) <= 1
    return resolved[0][1] if resolved else None


@pytest.mark.parametrize(
    ("text", "offset", "local_time"),
    [
        ("now", timedelta(0), None),
        ("+1h", timedelta(hours=1), None),
        ("+90m", timedelta(minutes=90), None),
        ("+3h", timedelta(hours=3), None),
        ("09:00", None, time(9, 0)),
        ("20:30", None, time(20, 30)),
        ("0:05", None, time(0, 5)),
    ],
)
def test_parse_slot_reads_offsets_and_wall_clock_times(
    text: str, offset: timedelta | None, local_time: time | None
) -> None:
    assert parse_slot(text) == SlotSpec(text, offset=offset, local_time=local_time)


@pytest.mark.parametrize(
    "text", ["tomorrow", "", " now", "+1d", "+h", "-1h", "1h", "24:00", "09:60", "9", "09:00:00"]
)
def test_bad_slot_text_names_the_slots_field(text: str) -> None:
    with pytest.raises(InvalidRequest, match=r"^`slots` must be \"now\", an offset") as err:
        parse_slot(text)
    assert err.value.field == "slots"
    assert err.value.got == text


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"offset": timedelta(hours=1), "local_time": time(9)}, {"offset": timedelta(hours=-1)}],
)
def test_slot_spec_needs_exactly_one_non_negative_kind(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest, match=r"^`slots` must"):
        SlotSpec("x", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["Mars/Olympus", "", None, 5, "America", "../etc/passwd", "europe/paris", "UTC "]
)
def test_a_zone_that_does_not_exist_names_the_field(name: object) -> None:
    with pytest.raises(InvalidRequest, match=r"^`profile.time_zone` must be an IANA time zone"):
        load_zone(name, "profile.time_zone")


def test_zone_lookups_are_cached() -> None:
    assert load_zone("Asia/Tokyo", "tz") is load_zone("Asia/Tokyo", "tz")


def test_offsets_are_elapsed_time_and_keep_the_order_given() -> None:
    # 01:30 CET, half an hour before Paris springs forward: +3h is 05:30 CEST, still 3 h later.
    now = utc(2024, 3, 31, 0, 30)
    specs = [parse_slot(text) for text in ("+3h", "now", "+90m")]
    assert resolve_slots(specs, now, PARIS) == [
        ("+3h", utc(2024, 3, 31, 3, 30)),
        ("now", now),
        ("+90m", utc(2024, 3, 31, 2, 0)),
    ]


def test_a_zoned_now_is_the_same_instant() -> None:
    now = datetime(2024, 3, 31, 1, 30, tzinfo=PARIS)  # 00:30 UTC, before the change
    assert resolve_one("+3h", now, PARIS) == utc(2024, 3, 31, 3, 30)
    resolved = resolve_one("+3h", now, PARIS)
    assert resolved is not None
    assert resolved.tzinfo is UTC


def test_slots_beyond_the_horizon_are_dropped() -> None:
    now = utc(2024, 5, 1, 12)
    specs = [parse_slot(text) for text in ("now", "+90m", "+3h", "11:30", "15:00")]
    # Paris is UTC+2 in May: 11:30 tomorrow is 09:30 UTC (21.5 h away), 15:00 today is 13:00 UTC.
    assert resolve_slots(specs, now, PARIS, timedelta(hours=2)) == [
        ("now", now),
        ("+90m", utc(2024, 5, 1, 13, 30)),
        ("15:00", utc(2024, 5, 1, 13)),
    ]
    assert [name for name, _ in resolve_slots(specs, now, PARIS)] == [
        "now",
        "+90m",
        "+3h",
        "11:30",
        "15:00",
    ]


def test_a_wall_time_equal_to_now_is_now_and_the_horizon_end_is_inside() -> None:
    now = utc(2024, 5, 1, 7)  # 09:00 in Paris
    assert resolve_one("09:00", now, PARIS) == now
    assert resolve_one("09:00", now + timedelta(microseconds=1), PARIS) == utc(2024, 5, 2, 7)
    assert resolve_one("+24h", now, PARIS) == utc(2024, 5, 2, 7)
    assert resolve_one("+25h", now, PARIS) is None


DST_CASES: dict[str, tuple[ZoneInfo, datetime, str, int, datetime | None]] = {
    # Europe/Paris springs forward on 2024-03-31: 02:00 CET becomes 03:00 CEST (01:00 UTC).
    "paris-spring-09": (PARIS, utc(2024, 3, 30, 12), "09:00", 24, utc(2024, 3, 31, 7)),
    "paris-gap-next-day": (PARIS, utc(2024, 3, 30, 12), "02:30", 48, utc(2024, 4, 1, 0, 30)),
    "paris-gap-beyond-horizon": (PARIS, utc(2024, 3, 30, 12), "02:30", 24, None),
    "paris-gap-same-night": (PARIS, utc(2024, 3, 31, 0, 10), "02:30", 25, utc(2024, 4, 1, 0, 30)),
    "paris-gap-end": (PARIS, utc(2024, 3, 31, 0, 10), "03:00", 24, utc(2024, 3, 31, 1)),
    # Europe/Paris falls back on 2024-10-27: 03:00 CEST becomes 02:00 CET (01:00 UTC).
    "paris-fold-first": (PARIS, utc(2024, 10, 26, 12), "02:30", 24, utc(2024, 10, 27, 0, 30)),
    "paris-fold-between": (PARIS, utc(2024, 10, 27, 0, 45), "02:30", 24, utc(2024, 10, 27, 1, 30)),
    "paris-fold-after": (PARIS, utc(2024, 10, 27, 1, 45), "02:30", 24, utc(2024, 10, 28, 1, 30)),
    "paris-fall-09": (PARIS, utc(2024, 10, 26, 12), "09:00", 24, utc(2024, 10, 27, 8)),
    # America/New_York springs forward on 2024-03-10 at 02:00 EST (07:00 UTC).
    "ny-spring-09": (NEW_YORK, utc(2024, 3, 9, 15), "09:00", 24, utc(2024, 3, 10, 13)),
    "ny-gap-next-day": (NEW_YORK, utc(2024, 3, 9, 12), "02:30", 48, utc(2024, 3, 11, 6, 30)),
    "ny-gap-beyond-horizon": (NEW_YORK, utc(2024, 3, 9, 12), "02:30", 24, None),
    # America/New_York falls back on 2024-11-03 at 02:00 EDT (06:00 UTC).
    "ny-fold-first": (NEW_YORK, utc(2024, 11, 2, 12), "01:30", 24, utc(2024, 11, 3, 5, 30)),
    "ny-fold-between": (NEW_YORK, utc(2024, 11, 3, 5, 45), "01:30", 24, utc(2024, 11, 3, 6, 30)),
    # The fall-back day is 25 h long: 09:00 EST is exactly 24 h after 10:00 EDT.
    "ny-fall-09": (NEW_YORK, utc(2024, 11, 2, 14), "09:00", 24, utc(2024, 11, 3, 14)),
    "ny-fall-09-past-horizon": (NEW_YORK, utc(2024, 11, 2, 13, 59, 59), "09:00", 24, None),
}


@pytest.mark.parametrize(
    ("zone", "now", "slot", "hours", "expected"), list(DST_CASES.values()), ids=list(DST_CASES)
)
def test_wall_clock_slots_across_dst(
    zone: ZoneInfo, now: datetime, slot: str, hours: int, expected: datetime | None
) -> None:
    assert resolve_one(slot, now, zone, hours) == expected


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"^`now` must be time-zone aware"):
        resolve_slots([parse_slot("now")], datetime(2024, 5, 1, 12), PARIS)


@pytest.mark.parametrize(
    ("moment", "zone", "expected"),
    [
        (utc(2024, 5, 6, 0, 0), load_zone("UTC", "tz"), 0),  # Monday 00:00
        (utc(2024, 5, 12, 23, 59), load_zone("UTC", "tz"), 167),  # Sunday 23:59
        (utc(2024, 5, 5, 22, 30), PARIS, 0),  # Sunday 22:30 UTC is Monday 00:30 in Paris
        (utc(2024, 5, 5, 22, 30), NEW_YORK, 6 * 24 + 18),  # and Sunday 18:30 in New York
        (utc(2024, 3, 31, 1, 0), PARIS, 6 * 24 + 3),  # the first instant of CEST reads 03:00
    ],
)
def test_hour_of_week_is_on_the_customers_clock(
    moment: datetime, zone: ZoneInfo, expected: int
) -> None:
    assert hour_of_week(moment, zone) == expected
