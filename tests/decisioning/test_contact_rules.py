"""The contact rules as values: caps, quiet hours, and their checks."""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from decisioning.contact_rules import ContactRules, FrequencyCap, QuietHours, describe_window
from features.errors import InvalidRequest

DAY = timedelta(days=1)


@pytest.mark.parametrize(("limit", "active"), [(None, False), (0, False), (1, True), (5, True)])
def test_a_cap_of_zero_or_blank_is_no_cap(limit: int | None, active: bool) -> None:
    assert FrequencyCap(limit, DAY).active is active


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": -1, "window": DAY}, r"^`limit` must be a whole number ≥ 0"),
        ({"limit": 1.5, "window": DAY}, r"^`limit` must be a whole number ≥ 0"),
        ({"limit": True, "window": DAY}, r"^`limit` must be a whole number ≥ 0"),
        ({"limit": 1, "window": timedelta(0)}, r"^`window` must be a positive duration"),
        ({"limit": 1, "window": "7d"}, r"^`window` must be a positive duration"),
        ({"limit": 1, "window": DAY, "channel": ""}, r"^`channel` must be a channel name"),
    ],
)
def test_bad_caps_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        FrequencyCap(**kwargs)  # type: ignore[arg-type]


def test_cap_labels_and_scope() -> None:
    email = FrequencyCap(3, timedelta(days=7), "email")
    overall = FrequencyCap(5, timedelta(hours=36))
    assert email.label == "email cap 3 per 7 days"
    assert overall.label == "overall cap 5 per 36 hours"
    assert email.applies_to("email")
    assert not email.applies_to("sms")
    assert overall.applies_to("sms")
    assert describe_window(timedelta(minutes=90)) == "90 minutes"
    assert describe_window(timedelta(seconds=1.5)) == "1.5 seconds"


@pytest.mark.parametrize(
    ("local", "inside"),
    [
        (time(20, 59, 59), False),
        (time(21, 0), True),
        (time(23, 59, 59), True),
        (time(0, 0), True),
        (time(7, 59, 59, 999999), True),
        (time(8, 0), False),
        (time(12, 0), False),
    ],
)
def test_quiet_hours_wrap_midnight(local: time, inside: bool) -> None:
    assert QuietHours(time(21), time(8)).contains(local) is inside


@pytest.mark.parametrize(
    ("local", "inside"),
    [(time(12, 59), False), (time(13), True), (time(13, 59), True), (time(14), False)],
)
def test_quiet_hours_within_a_day(local: time, inside: bool) -> None:
    assert QuietHours(time(13), time(14)).contains(local) is inside


def test_equal_start_and_end_is_no_quiet_hours() -> None:
    quiet = QuietHours(time(9), time(9))
    assert not any(quiet.contains(time(hour)) for hour in range(24))


def test_rules_keep_caps_as_a_tuple_and_check_the_zone() -> None:
    caps = [FrequencyCap(3, timedelta(days=7), "email"), FrequencyCap(0, timedelta(days=30))]
    rules = ContactRules(caps=caps)  # type: ignore[arg-type]
    assert rules.caps == tuple(caps)
    assert rules.active_caps == (caps[0],)
    assert rules.longest_window == timedelta(days=7)  # the inactive 30-day cap does not count
    with pytest.raises(InvalidRequest, match=r"^`default_time_zone` must be an IANA time zone"):
        ContactRules(default_time_zone="Europe/Atlantis")
    with pytest.raises(InvalidRequest, match=r"^`start` must be a local time of day"):
        QuietHours("21:00", time(8))  # type: ignore[arg-type]
