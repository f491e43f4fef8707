"""What Nudge knows about reaching each customer, and the sends it has reserved.

The records are plain values; :class:`ContactStore` is the protocol that the
embedded SQLite store and the scale-mode Redis store both implement. The one
operation that must be atomic is :meth:`ContactStore.reserve`: when many
decisions for one customer arrive at once, exactly as many pass a frequency
cap as it allows, because the count and the write are one step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Literal, Protocol

from decisioning.contact_rules import FrequencyCap
from decisioning.slots import load_zone
from features.errors import InvalidRequest

__all__ = [
    "CONSENT_STATES",
    "SUPPRESSION_REASONS",
    "ChannelState",
    "ConsentState",
    "ContactProfile",
    "ContactStore",
    "Send",
    "blocking_cap",
]

SUPPRESSION_REASONS = ("hard_bounce", "complaint", "unsubscribe")
"""Why a channel of a customer is never used again; suppression wins over any consent."""

ConsentState = Literal["opted_in", "opted_out", "unknown"]
CONSENT_STATES: tuple[ConsentState, ...] = ("opted_in", "opted_out", "unknown")


@dataclass(frozen=True)
class ChannelState:
    """One customer's standing on one channel.

    ``consent_at`` and ``suppressed_at`` keep when each was last set, so an
    older change that arrives late does not undo a newer one.

    >>> ChannelState().consent
    'unknown'
    >>> ChannelState(suppressed="bounced")
    Traceback (most recent call last):
    ...
    features.errors.InvalidRequest: `suppressed` must be None or one of \
('hard_bounce', 'complaint', 'unsubscribe'), got 'bounced'
    """

    consent: ConsentState = "unknown"
    suppressed: str | None = None
    """The suppression reason, one of :data:`SUPPRESSION_REASONS`, or None."""
    reachable: bool = False
    """Whether an address, number or push token is on file for the channel."""
    consent_at: datetime | None = None
    suppressed_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.consent not in CONSENT_STATES:
            raise InvalidRequest("consent", f"must be one of {CONSENT_STATES}", self.consent)
        if self.suppressed is not None and self.suppressed not in SUPPRESSION_REASONS:
            raise InvalidRequest(
                "suppressed", f"must be None or one of {SUPPRESSION_REASONS}", self.suppressed
            )
        if not isinstance(self.reachable, bool):
            raise InvalidRequest("reachable", "must be true or false", self.reachable)


_UNKNOWN = ChannelState()


@dataclass(frozen=True)
class ContactProfile:
    """A customer's channels and time zone; a channel not listed has the default state.

    >>> profile = ContactProfile("c1", {"email": ChannelState("opted_in", reachable=True)})
    >>> profile.channel("email").consent, profile.channel("sms").consent
    ('opted_in', 'unknown')
    """

    customer_id: str
    channels: Mapping[str, ChannelState] = field(default_factory=dict)
    time_zone: str | None = None
    """The customer's IANA zone; None means the deployment's default."""

    def __post_init__(self) -> None:
        if not isinstance(self.customer_id, str) or not self.customer_id:
            raise InvalidRequest("customer_id", "must be a non-empty string", self.customer_id)
        if not isinstance(self.channels, Mapping) or not all(
            isinstance(name, str) and name and isinstance(state, ChannelState)
            for name, state in self.channels.items()
        ):
            raise InvalidRequest(
                "channels", "must map channel names to ChannelState", self.channels
            )
        # Read-only, so a profile handed to a decision cannot be changed under it.
        object.__setattr__(self, "channels", MappingProxyType(dict(self.channels)))
        if self.time_zone is not None:
            load_zone(self.time_zone, "time_zone")

    def channel(self, name: str) -> ChannelState:
        return self.channels.get(name, _UNKNOWN)


@dataclass(frozen=True)
class Send:
    """A send reserved for a decision: its channel and when it goes out (time-zone aware)."""

    decision_id: str
    channel: str
    send_at: datetime

    def __post_init__(self) -> None:
        if not isinstance(self.decision_id, str) or not self.decision_id:
            raise InvalidRequest("decision_id", "must be a non-empty string", self.decision_id)
        if not isinstance(self.channel, str) or not self.channel:
            raise InvalidRequest("channel", "must be a non-empty string", self.channel)
        if not isinstance(self.send_at, datetime) or self.send_at.utcoffset() is None:
            raise InvalidRequest("send_at", "must be a time-zone-aware datetime", self.send_at)


def blocking_cap(
    channel: str, send_at: datetime, existing: Sequence[Send], caps: Sequence[FrequencyCap]
) -> FrequencyCap | None:
    """The first active cap that a send on ``channel`` at ``send_at`` would break, or None.

    This is the counting that every store's :meth:`ContactStore.reserve` and
    the contact policy share: an existing send counts against a cap when the
    cap covers its channel and it lies strictly less than the cap's window
    from ``send_at``, before or after, so that no rolling window anywhere,
    scheduled sends included, holds more than the limit.

    >>> from datetime import UTC, timedelta
    >>> t = datetime(2024, 5, 1, 9, tzinfo=UTC)
    >>> caps = [FrequencyCap(1, timedelta(days=1), "sms")]
    >>> blocking_cap("sms", t, [Send("d1", "sms", t + timedelta(hours=23))], caps)
    FrequencyCap(limit=1, window=datetime.timedelta(days=1), channel='sms')
    >>> print(blocking_cap("sms", t, [Send("d1", "sms", t + timedelta(days=1))], caps))
    None
    """
    for cap in caps:
        if not cap.limit or (cap.channel is not None and cap.channel != channel):
            continue
        window = cap.window
        count = 0
        for other in existing:
            if (cap.channel is None or other.channel == channel) and abs(
                other.send_at - send_at
            ) < window:
                count += 1
        if count >= cap.limit:
            return cap
    return None


class ContactStore(Protocol):
    """Consent, suppression, reachability and time zone per customer, and the reserved sends.

    An unknown customer reads as a profile with no channels (consent unknown
    everywhere), so a decision for them is "no send" rather than an error.
    Transactional sends are never reserved: they neither count nor are capped.
    """

    def profile(self, customer_id: str) -> ContactProfile:
        """The customer's profile as it is now."""
        ...

    def set_consent(self, customer_id: str, channel: str, opted_in: bool, at: datetime) -> None:
        """Record an opt-in or a revocation made at ``at``; effective at once.

        A change older than the one already recorded for the channel is ignored.
        """
        ...

    def suppress(self, customer_id: str, channel: str, reason: str, at: datetime) -> None:
        """Never use the channel again; ``reason`` is one of :data:`SUPPRESSION_REASONS`."""
        ...

    def set_reachable(self, customer_id: str, channel: str, reachable: bool) -> None:
        """Whether an address, number or token is on file for the channel."""
        ...

    def set_time_zone(self, customer_id: str, zone: str | None) -> None:
        """The customer's IANA zone, or None for the deployment's default."""
        ...

    def load_profiles(self, profiles: Iterable[ContactProfile]) -> int:
        """Replace each given customer's profile, all in one transaction; returns how many."""
        ...

    def sends(self, customer_id: str) -> list[Send]:
        """The customer's reserved (and not released) sends, earliest first."""
        ...

    def reserve(
        self, customer_id: str, send: Send, caps: Sequence[FrequencyCap]
    ) -> FrequencyCap | None:
        """Record ``send`` unless it breaks a cap, atomically; returns the cap it would break.

        Counting follows :func:`blocking_cap`. A decision id already reserved
        is not recorded again and returns None.
        """
        ...

    def release(self, decision_id: str) -> bool:
        """Forget the decision's send (it was not sent); True if there was one."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...
