"""The contact policy: which candidates a decision may choose, and why the others may not.

It runs inside every decision, before the bandit sees the candidates, so a
ruled-out send is never chosen and its exclusion is logged with the rule. The
rules, in order, first failing wins:

1. ``suppression`` — the channel is suppressed (hard bounce, complaint,
   unsubscribe), whatever its consent says;
2. ``consent`` — the customer has not opted in on the channel;
3. ``reachability`` — no address, number or token on file;
4. ``quiet_hours`` — the send time falls in the quiet window on the
   customer's own clock (the slot is excluded, never moved, so the logged
   action is the one that would be sent);
5. ``frequency_cap`` — a send then would break a cap, counted as the contact
   store counts reservations; transactional messages are neither capped nor
   counted.

"No send" is always eligible. :meth:`ContactPolicy.check_send` repeats rules 1–4
just before a scheduled send goes out, so a revocation takes effect at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from decisioning.contact_rules import ContactRules, FrequencyCap
from decisioning.contact_store import ChannelState, ContactProfile, Send, blocking_cap
from decisioning.slots import load_zone
from decisioning.types import Exclusion, JointAction
from features.errors import InvalidRequest

__all__ = ["ContactPolicy"]

_Verdict = tuple[str, str] | None
"""A rule name and its detail in words, or None when the rule passes."""


class ContactPolicy:
    """Applies a deployment's :class:`ContactRules` to one customer's candidates.

    >>> from datetime import UTC, datetime, time, timedelta
    >>> from decisioning.contact_rules import FrequencyCap, QuietHours
    >>> from decisioning.contact_store import ChannelState
    >>> policy = ContactPolicy(ContactRules(
    ...     caps=(FrequencyCap(1, timedelta(days=1), "sms"),),
    ...     quiet_hours=QuietHours(time(21), time(8)),
    ... ))
    >>> profile = ContactProfile("c1", {
    ...     "email": ChannelState("opted_in", "unsubscribe", True),
    ...     "sms": ChannelState("opted_in", reachable=True),
    ... })
    >>> noon, night = datetime(2024, 5, 1, 10, tzinfo=UTC), datetime(2024, 5, 1, 21, tzinfo=UTC)
    >>> candidates = [
    ...     JointAction("promo", "email", "now", noon),
    ...     JointAction("promo", "sms", "now", noon),
    ...     JointAction("promo", "sms", "23:00", night),
    ...     JointAction.no_send(),
    ... ]
    >>> paris = load_zone("Europe/Paris", "time_zone")
    >>> eligible, excluded = policy.evaluate(profile, [], candidates, paris)
    >>> [action.key for action in eligible]
    ['promo/sms/now', 'no_send']
    >>> for exclusion in excluded:
    ...     print(exclusion.action, exclusion.rule, "-", exclusion.detail)
    promo/email/now suppression - email: unsubscribe
    promo/sms/23:00 quiet_hours - quiet hours 21:00–08:00 Europe/Paris
    >>> sent = [Send("d1", "sms", noon - timedelta(hours=2))]
    >>> policy.evaluate(profile, sent, candidates[1:2], paris)[1][0].detail
    'sms cap 1 per day reached'
    """

    def __init__(self, rules: ContactRules) -> None:
        if not isinstance(rules, ContactRules):
            raise InvalidRequest("rules", "must be ContactRules", rules)
        self.rules = rules
        self._caps = rules.active_caps
        quiet = rules.quiet_hours
        self._quiet = quiet if quiet is not None and quiet.start != quiet.end else None
        self._exempt = rules.quiet_exempt

    def zone_for(self, profile: ContactProfile) -> ZoneInfo:
        """The customer's own time zone, or the deployment's default."""
        return load_zone(profile.time_zone or self.rules.default_time_zone, "time_zone")

    def evaluate(
        self,
        profile: ContactProfile,
        sends: Sequence[Send],
        candidates: Sequence[JointAction],
        zone: ZoneInfo,
    ) -> tuple[list[JointAction], list[Exclusion]]:
        """The eligible candidates (in their order) and an exclusion for each of the others.

        ``sends`` are the customer's reserved sends; ``zone`` is the customer's.
        Each verdict is worked out once per channel, send time or (channel,
        send time) and shared by every candidate with the same one.
        """
        eligible: list[JointAction] = []
        excluded: list[Exclusion] = []
        by_channel: dict[str, _Verdict] = {}
        by_time: dict[datetime, _Verdict] = {}
        by_slot: dict[tuple[str, datetime], _Verdict] = {}
        for action in candidates:
            channel = action.channel
            if action.message is None:
                eligible.append(action)
                continue
            send_at = action.send_at
            if channel is None or send_at is None:
                raise InvalidRequest(
                    "candidates", "must give every send a channel and a send time", action.key
                )
            if channel in by_channel:
                verdict = by_channel[channel]
            else:
                verdict = by_channel[channel] = _channel_verdict(channel, profile.channel(channel))
            if verdict is None and self._quiet is not None and channel not in self._exempt:
                if send_at in by_time:
                    verdict = by_time[send_at]
                else:
                    verdict = by_time[send_at] = self._quiet_verdict(send_at, zone)
            if verdict is None and self._caps and not action.transactional:
                slot = (channel, send_at)
                if slot in by_slot:
                    verdict = by_slot[slot]
                else:
                    verdict = by_slot[slot] = _cap_verdict(self._caps, channel, send_at, sends)
            if verdict is None:
                eligible.append(action)
            else:
                excluded.append(Exclusion(action.key, verdict[0], verdict[1]))
        return eligible, excluded

    def check_send(
        self, profile: ContactProfile, action: JointAction, zone: ZoneInfo
    ) -> Exclusion | None:
        """Why ``action`` must not go out now, or None: rules 1–4 on the current profile.

        Caps are not checked again: the send already holds its reservation.
        """
        if action.message is None:
            return None
        if action.channel is None or action.send_at is None:
            raise InvalidRequest("action", "must give a send a channel and a send time", action.key)
        verdict = _channel_verdict(action.channel, profile.channel(action.channel))
        if verdict is None and self._quiet is not None and action.channel not in self._exempt:
            verdict = self._quiet_verdict(action.send_at, zone)
        return None if verdict is None else Exclusion(action.key, verdict[0], verdict[1])

    def _quiet_verdict(self, send_at: datetime, zone: ZoneInfo) -> _Verdict:
        assert self._quiet is not None
        if send_at.utcoffset() is None:
            raise InvalidRequest("send_at", "must be time-zone aware", send_at)
        if self._quiet.contains(send_at.astimezone(zone).time()):
            return "quiet_hours", f"quiet hours {self._quiet.label} {zone.key}"
        return None


def _channel_verdict(channel: str, state: ChannelState) -> _Verdict:
    if state.suppressed is not None:
        return "suppression", f"{channel}: {state.suppressed}"
    if state.consent != "opted_in":
        reason = "opted out" if state.consent == "opted_out" else "consent unknown"
        return "consent", f"{channel}: not opted in ({reason})"
    if not state.reachable:
        return "reachability", f"{channel}: no address, number or token on file"
    return None


def _cap_verdict(
    caps: Sequence[FrequencyCap], channel: str, send_at: datetime, sends: Sequence[Send]
) -> _Verdict:
    cap = blocking_cap(channel, send_at, sends, caps)
    return None if cap is None else ("frequency_cap", f"{cap.label} reached")
