"""Send-time slots: "now", an offset ("+3h") or the next local wall-clock time ("09:00").

A decision chooses *when* as well as what and where, among a few slots from
the configuration. Offsets are exact durations from the moment of the
decision; wall-clock slots are read in the customer's own IANA time zone, so
"09:00" is nine in the morning where the customer is, on either side of a DST
change. Every slot resolves to one UTC instant, the ``send_at`` that is logged.

>>> from datetime import UTC, datetime
>>> now = datetime(2024, 5, 1, 20, 30, tzinfo=UTC)
>>> specs = [parse_slot("now"), parse_slot("+3h"), parse_slot("09:00")]
>>> for name, at in resolve_slots(specs, now, load_zone("Europe/Paris", "time_zone")):
...     print(name, at.isoformat())
now 2024-05-01T20:30:00+00:00
+3h 2024-05-01T23:30:00+00:00
09:00 2024-05-02T07:00:00+00:00
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from features.errors import InvalidRequest

__all__ = ["SlotSpec", "hour_of_week", "load_zone", "parse_slot", "resolve_slots"]

_OFFSET = re.compile(r"\+([0-9]{1,4})([hm])")
_CLOCK = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_SLOT_TEXT = 'must be "now", an offset such as "+1h" or "+90m", or a local time such as "09:00"'
_ZONE_TEXT = "must be an IANA time zone such as Europe/Paris"
_ONE_DAY = timedelta(days=1)
_ZERO = timedelta(0)


@dataclass(frozen=True)
class SlotSpec:
    """One configured slot: an offset from the decision, or a local wall-clock time.

    Exactly one of ``offset`` and ``local_time`` is set.

    >>> SlotSpec("+1h", offset=timedelta(hours=1)).offset
    datetime.timedelta(seconds=3600)
    >>> SlotSpec("odd")
    Traceback (most recent call last):
    ...
    features.errors.InvalidRequest: `slots` must set exactly one of offset and local_time, got 'odd'
    """

    name: str
    offset: timedelta | None = None
    local_time: time | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidRequest("slots", "must have a non-empty name", self.name)
        if (self.offset is None) == (self.local_time is None):
            raise InvalidRequest(
                "slots", "must set exactly one of offset and local_time", self.name
            )
        if self.offset is not None and (
            not isinstance(self.offset, timedelta) or self.offset < _ZERO
        ):
            # A negative offset is a slot in the past: never a valid send time.
            raise InvalidRequest("slots", "must have an offset of zero or more", self.name)
        if self.local_time is not None and (
            not isinstance(self.local_time, time) or self.local_time.tzinfo is not None
        ):
            # The zone is the customer's, chosen per decision, never the slot's own.
            raise InvalidRequest("slots", "must have a local time without a zone", self.name)


def parse_slot(text: str) -> SlotSpec:
    """The slot that ``text`` names; ``text`` becomes its name.

    >>> parse_slot("+90m").offset
    datetime.timedelta(seconds=5400)
    >>> parse_slot("09:00").local_time
    datetime.time(9, 0)
    >>> parse_slot("tomorrow")
    Traceback (most recent call last):
    ...
    features.errors.InvalidRequest: `slots` must be "now", an offset such as "+1h" or "+90m", \
or a local time such as "09:00", got 'tomorrow'
    """
    if not isinstance(text, str):
        raise InvalidRequest("slots", _SLOT_TEXT, text)
    if text == "now":
        return SlotSpec(text, offset=_ZERO)
    offset = _OFFSET.fullmatch(text)
    if offset is not None:
        amount = int(offset.group(1))
        unit = timedelta(hours=1) if offset.group(2) == "h" else timedelta(minutes=1)
        return SlotSpec(text, offset=amount * unit)
    clock = _CLOCK.fullmatch(text)
    if clock is not None:
        hour, minute = int(clock.group(1)), int(clock.group(2))
        if hour < 24 and minute < 60:
            return SlotSpec(text, local_time=time(hour, minute))
    raise InvalidRequest("slots", _SLOT_TEXT, text)


def load_zone(name: object, field: str) -> ZoneInfo:
    """The IANA time zone ``name``, or ``InvalidRequest(field, ...)``.

    Lookups are cached, failures included, because every decision resolves one.

    >>> load_zone("America/New_York", "time_zone").key
    'America/New_York'
    >>> load_zone("Mars/Olympus", "time_zone")
    Traceback (most recent call last):
    ...
    features.errors.InvalidRequest: `time_zone` must be an IANA time zone such as Europe/Paris, \
got 'Mars/Olympus'
    """
    zone = _zone(name) if isinstance(name, str) and name else None
    if zone is None:
        raise InvalidRequest(field, _ZONE_TEXT, name)
    return zone


@lru_cache(maxsize=4096)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    # A missing key, a path outside the database (ValueError), a folder such as
    # "America" (IsADirectoryError) or an absurdly long name (OSError).
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def resolve_slots(
    specs: Iterable[SlotSpec],
    now: datetime,
    zone: ZoneInfo,
    horizon: timedelta = timedelta(hours=24),
) -> list[tuple[str, datetime]]:
    """Each slot's name and UTC send time, in the order given, without those past the horizon.

    An offset slot is ``now + offset`` (exact elapsed time, whatever the zone).
    A wall-clock slot is the first instant at or after ``now`` when the clock
    in ``zone`` reads that time: a time skipped by a spring-forward change
    does not occur that day (the next day's is taken, if still within the
    horizon), and a time that occurs twice at a fall-back change is taken at
    its first occurrence (``fold=0``), or at its second when ``now`` lies
    between the two.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidRequest("now", "must be time-zone aware", now)
    start = now.astimezone(UTC)
    limit = start + horizon
    today = start.astimezone(zone).date()
    resolved: list[tuple[str, datetime]] = []
    for spec in specs:
        at: datetime | None
        if spec.offset is not None:
            at = start + spec.offset if spec.offset <= horizon else None
        else:
            assert spec.local_time is not None  # SlotSpec guarantees one of the two
            at = _next_wall_time(spec.local_time, today, start, limit, zone)
        if at is not None:
            resolved.append((spec.name, at))
    return resolved


def _next_wall_time(
    clock: time, day: date, start: datetime, limit: datetime, zone: ZoneInfo
) -> datetime | None:
    while True:
        wall = datetime.combine(day, clock, zone)
        at = wall.astimezone(UTC)
        if at > limit:
            return None
        if at >= start:
            # In a spring-forward gap the wall time does not exist: converting
            # back gives a different wall time (02:30 becomes 03:30).
            if at.astimezone(zone).replace(tzinfo=None) == wall.replace(tzinfo=None):
                return at
        else:
            # Passed already; at a fall-back change the same wall time comes again
            # an hour later (fold=1). In a gap, fold=1 maps earlier still, so never here.
            again = wall.replace(fold=1).astimezone(UTC)
            if start <= again <= limit and again != at:
                return again
        day += _ONE_DAY


def hour_of_week(moment: datetime, zone: ZoneInfo) -> int:
    """The hour of the week of ``moment`` on the clocks of ``zone``: 0 is Monday 00:00, up to 167.

    >>> hour_of_week(datetime(2024, 5, 6, 7, 30, tzinfo=UTC), load_zone("Europe/Paris", "tz"))
    9
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidRequest("send_at", "must be time-zone aware", moment)
    local = moment.astimezone(zone)
    return local.weekday() * 24 + local.hour
