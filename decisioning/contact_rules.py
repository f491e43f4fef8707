"""The contact rules of a deployment: frequency caps, quiet hours and the default time zone.

Plain, validated values read from the configuration; :class:`ContactPolicy`
applies them inside each decision and the contact store enforces the caps
atomically when a send is reserved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import time, timedelta

from decisioning.slots import load_zone
from features.errors import InvalidRequest

__all__ = ["ContactRules", "FrequencyCap", "QuietHours", "describe_window"]


@dataclass(frozen=True)
class FrequencyCap:
    """At most ``limit`` sends within any ``window``, on ``channel`` or (None) across all channels.

    A limit of 0 or None means "no cap", not "never": a blank in a config file
    must not silence a channel.

    >>> cap = FrequencyCap(3, timedelta(days=7), "email")
    >>> cap.active, cap.label
    (True, 'email cap 3 per 7 days')
    >>> FrequencyCap(0, timedelta(days=1)).active
    False
    """

    limit: int | None
    window: timedelta
    channel: str | None = None

    def __post_init__(self) -> None:
        limit = self.limit
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise InvalidRequest("limit", "must be a whole number ≥ 0, or None for no cap", limit)
        if not isinstance(self.window, timedelta) or self.window <= timedelta(0):
            raise InvalidRequest("window", "must be a positive duration", self.window)
        if self.channel is not None and (not isinstance(self.channel, str) or not self.channel):
            raise InvalidRequest("channel", "must be a channel name, or None for all", self.channel)

    @property
    def active(self) -> bool:
        """Whether the cap limits anything (a limit of 0 or None does not)."""
        return bool(self.limit)

    def applies_to(self, channel: str) -> bool:
        """Whether a send on ``channel`` counts against, and is held to, this cap."""
        return self.channel is None or self.channel == channel

    @property
    def label(self) -> str:
        """The cap in words, for explanations."""
        scope = self.channel if self.channel is not None else "overall"
        limit = "none" if not self.limit else str(self.limit)
        return f"{scope} cap {limit} per {describe_window(self.window)}"


def describe_window(window: timedelta) -> str:
    """A duration in the largest whole unit that fits it.

    >>> describe_window(timedelta(days=1)), describe_window(timedelta(hours=36))
    ('day', '36 hours')
    """
    seconds = int(window.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and window.microseconds == 0:
            count = seconds // size
            return unit if count == 1 else f"{count} {unit}s"
    return f"{window.total_seconds():g} seconds"


@dataclass(frozen=True)
class QuietHours:
    """Local times of day when nobody is contacted: ``[start, end)``, wrapping past midnight.

    ``start == end`` is an empty window (no quiet hours), never a whole day.

    >>> night = QuietHours(time(21), time(8))
    >>> night.contains(time(23, 30)), night.contains(time(8)), night.contains(time(7, 59))
    (True, False, True)
    >>> night.label
    '21:00–08:00'
    """

    start: time
    end: time

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, time) or value.tzinfo is not None:
                # The zone is always the customer's, so the window carries none.
                raise InvalidRequest(name, "must be a local time of day without a zone", value)

    def contains(self, local: time) -> bool:
        """Whether the local time of day ``local`` is inside the quiet window."""
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    @property
    def label(self) -> str:
        return f"{self.start:%H:%M}–{self.end:%H:%M}"


@dataclass(frozen=True)
class ContactRules:
    """Every contact rule of a deployment; a list of caps is kept as a tuple.

    ``default_time_zone`` applies to customers whose own zone is unknown.

    >>> rules = ContactRules(caps=[FrequencyCap(1, timedelta(days=1), "sms")])
    >>> rules.caps[0].label, rules.longest_window
    ('sms cap 1 per day', datetime.timedelta(days=1))
    """

    caps: tuple[FrequencyCap, ...] = ()
    quiet_hours: QuietHours | None = None
    default_time_zone: str = "UTC"
    quiet_exempt: frozenset[str] = frozenset()
    """Channels that wake no one (an ad audience), so quiet hours do not apply to them."""

    def __post_init__(self) -> None:
        caps = self.caps
        if isinstance(caps, str) or not isinstance(caps, Sequence):
            raise InvalidRequest("caps", "must be a list of frequency caps", caps)
        if not all(isinstance(cap, FrequencyCap) for cap in caps):
            raise InvalidRequest("caps", "must be a list of frequency caps", list(caps))
        object.__setattr__(self, "caps", tuple(caps))
        if self.quiet_hours is not None and not isinstance(self.quiet_hours, QuietHours):
            raise InvalidRequest("quiet_hours", "must be QuietHours or None", self.quiet_hours)
        load_zone(self.default_time_zone, "default_time_zone")

    @property
    def active_caps(self) -> tuple[FrequencyCap, ...]:
        return tuple(cap for cap in self.caps if cap.active)

    @property
    def longest_window(self) -> timedelta:
        """The longest window of an active cap (zero without one): older sends no longer count."""
        return max((cap.window for cap in self.active_caps), default=timedelta(0))
