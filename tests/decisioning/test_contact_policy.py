"""The contact policy inside a decision: each rule, their order, caps, quiet hours, re-checks."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta

import pytest

from decisioning.contact_policy import ContactPolicy
from decisioning.contact_rules import ContactRules, FrequencyCap, QuietHours
from decisioning.contact_store import ChannelState, ContactProfile, Send
from decisioning.slots import load_zone
from decisioning.types import Exclusion, JointAction
from features.errors import InvalidRequest

PARIS = load_zone("Europe/Paris", "time_zone")
NEW_YORK = load_zone("America/New_York", "time_zone")
NOON = datetime(2024, 5, 1, 10, tzinfo=UTC)  # 12:00 in Paris, 06:00 in New York
OK = ChannelState("opted_in", reachable=True)
RULES = ContactRules(
    caps=(
        FrequencyCap(3, timedelta(days=7), "email"),
        FrequencyCap(1, timedelta(days=1), "sms"),
        FrequencyCap(5, timedelta(days=7)),
    ),
    quiet_hours=QuietHours(time(21), time(8)),
)


def profile(**channels: ChannelState) -> ContactProfile:
    return ContactProfile("c1", channels)


def send(channel: str, at: datetime = NOON, message: str = "promo", **kw: bool) -> JointAction:
    return JointAction(message, channel, "slot", at, **kw)


def verdicts(
    policy: ContactPolicy,
    who: ContactProfile,
    candidates: list[JointAction],
    sends: list[Send] | None = None,
    zone: object = PARIS,
) -> Mapping[str, tuple[str, str] | None]:
    """Each candidate's (rule, detail), or None when eligible; checks the two lists agree."""
    eligible, excluded = policy.evaluate(who, sends or [], candidates, zone)  # type: ignore[arg-type]
    assert len(eligible) + len(excluded) == len(candidates)
    out: dict[str, tuple[str, str] | None] = {action.key: None for action in eligible}
    out.update({ex.action: (ex.rule, ex.detail) for ex in excluded})
    return out


@pytest.mark.parametrize(
    ("state", "rule", "detail"),
    [
        (ChannelState("opted_in", "unsubscribe", True), "suppression", "email: unsubscribe"),
        (ChannelState("opted_in", "hard_bounce", True), "suppression", "email: hard_bounce"),
        (ChannelState("unknown", "complaint", False), "suppression", "email: complaint"),
        (ChannelState("opted_out", None, True), "consent", "email: not opted in (opted out)"),
        (ChannelState("unknown", None, True), "consent", "email: not opted in (consent unknown)"),
        (ChannelState("opted_out", None, False), "consent", "email: not opted in (opted out)"),
        (
            ChannelState("opted_in", None, False),
            "reachability",
            "email: no address, number or token on file",
        ),
        (OK, None, None),
    ],
)
def test_channel_rules_in_order(state: ChannelState, rule: str | None, detail: str | None) -> None:
    got = verdicts(ContactPolicy(RULES), profile(email=state), [send("email")])
    assert got["promo/email/slot"] == (None if rule is None else (rule, detail))


def test_a_channel_not_on_the_profile_has_unknown_consent() -> None:
    got = verdicts(ContactPolicy(RULES), profile(email=OK), [send("sms")])
    assert got["promo/sms/slot"] == ("consent", "sms: not opted in (consent unknown)")


def test_no_send_is_always_eligible_and_order_is_kept() -> None:
    policy = ContactPolicy(RULES)
    candidates = [send("email", message="a"), JointAction.no_send(), send("email", message="b")]
    eligible, excluded = policy.evaluate(profile(), [], candidates, PARIS)
    assert eligible == [JointAction.no_send()]
    assert [ex.action for ex in excluded] == ["a/email/slot", "b/email/slot"]
    eligible, _ = policy.evaluate(profile(email=OK), [], candidates, PARIS)
    assert eligible == candidates


def test_quiet_hours_use_the_customers_zone() -> None:
    evening = datetime(2024, 5, 1, 20, 30, tzinfo=UTC)  # 22:30 in Paris, 16:30 in New York
    policy = ContactPolicy(RULES)
    who = profile(email=OK)
    assert verdicts(policy, who, [send("email", evening)], zone=PARIS)["promo/email/slot"] == (
        "quiet_hours",
        "quiet hours 21:00–08:00 Europe/Paris",
    )
    assert (
        verdicts(policy, who, [send("email", evening)], zone=NEW_YORK)["promo/email/slot"] is None
    )


@pytest.mark.parametrize(
    ("utc_hour", "utc_minute", "quiet"),
    [(18, 59, False), (19, 0, True), (22, 0, True), (5, 59, True), (6, 0, False)],
)
def test_quiet_hours_wrap_midnight_in_local_time(
    utc_hour: int, utc_minute: int, quiet: bool
) -> None:
    # Paris is UTC+2 in May: 19:00 UTC is 21:00 local, 06:00 UTC is 08:00 local.
    at = datetime(2024, 5, 2, utc_hour, utc_minute, tzinfo=UTC)
    got = verdicts(ContactPolicy(RULES), profile(sms=OK), [send("sms", at)])
    assert (got["promo/sms/slot"] is not None) is quiet


def test_quiet_hours_come_after_the_channel_rules() -> None:
    night = datetime(2024, 5, 1, 22, tzinfo=UTC)
    got = verdicts(
        ContactPolicy(RULES), profile(email=ChannelState("opted_out")), [send("email", night)]
    )
    assert got["promo/email/slot"] == ("consent", "email: not opted in (opted out)")


def test_suppression_wins_over_opted_in_at_send_time_too() -> None:
    policy = ContactPolicy(RULES)
    suppressed = profile(email=ChannelState("opted_in", "complaint", True))
    assert policy.check_send(suppressed, send("email"), PARIS) == Exclusion(
        "promo/email/slot", "suppression", "email: complaint"
    )


def test_channel_caps_and_the_overall_cap() -> None:
    policy = ContactPolicy(RULES)
    who = profile(email=OK, sms=OK, push=OK)
    three_emails = [Send(f"e{i}", "email", NOON - timedelta(days=i + 1)) for i in range(3)]
    got = verdicts(policy, who, [send("email"), send("sms"), send("push")], three_emails)
    assert got == {
        "promo/email/slot": ("frequency_cap", "email cap 3 per 7 days reached"),
        "promo/sms/slot": None,
        "promo/push/slot": None,
    }
    five = [*three_emails, Send("s1", "sms", NOON - timedelta(days=2)), Send("p1", "push", NOON)]
    got = verdicts(policy, who, [send("email"), send("sms"), send("push")], five)
    assert got == {
        "promo/email/slot": ("frequency_cap", "email cap 3 per 7 days reached"),
        "promo/sms/slot": ("frequency_cap", "overall cap 5 per 7 days reached"),
        "promo/push/slot": ("frequency_cap", "overall cap 5 per 7 days reached"),
    }


def test_caps_count_scheduled_sends_on_both_sides_with_an_open_window() -> None:
    policy = ContactPolicy(RULES)
    who = profile(sms=OK)
    for offset, capped in [
        (timedelta(hours=20), True),  # a send already scheduled for later today
        (-timedelta(hours=23, minutes=59), True),
        (timedelta(days=1) - timedelta(microseconds=1), True),
        (timedelta(days=1), False),  # exactly one window apart: a 1-day window holds only one
        (-timedelta(days=1), False),
    ]:
        got = verdicts(policy, who, [send("sms")], [Send("s0", "sms", NOON + offset)])
        assert (got["promo/sms/slot"] is not None) is capped, offset


@pytest.mark.parametrize("limit", [0, None])
def test_a_cap_of_zero_or_none_never_excludes(limit: int | None) -> None:
    policy = ContactPolicy(ContactRules(caps=(FrequencyCap(limit, timedelta(days=7), "email"),)))
    many = [Send(f"e{i}", "email", NOON - timedelta(hours=i)) for i in range(50)]
    assert verdicts(policy, profile(email=OK), [send("email")], many)["promo/email/slot"] is None


def test_transactional_messages_are_not_capped() -> None:
    policy = ContactPolicy(RULES)
    who = profile(sms=OK)
    sent = [Send("s0", "sms", NOON - timedelta(hours=1))]
    got = verdicts(
        policy, who, [send("sms", message="receipt", transactional=True), send("sms")], sent
    )
    assert got == {
        "receipt/sms/slot": None,
        "promo/sms/slot": ("frequency_cap", "sms cap 1 per day reached"),
    }


def test_transactional_messages_still_need_consent_and_respect_quiet_hours() -> None:
    policy = ContactPolicy(RULES)
    night = datetime(2024, 5, 1, 22, tzinfo=UTC)
    got = verdicts(
        policy,
        profile(sms=OK),
        [
            send("email", message="receipt", transactional=True),
            send("sms", night, message="receipt", transactional=True),
        ],
    )
    assert got["receipt/email/slot"] == ("consent", "email: not opted in (consent unknown)")
    assert got["receipt/sms/slot"] == ("quiet_hours", "quiet hours 21:00–08:00 Europe/Paris")


def test_check_send_sees_a_revocation_but_not_caps() -> None:
    policy = ContactPolicy(RULES)
    action = send("sms")
    capped = [Send("s0", "sms", NOON - timedelta(hours=1))]
    assert verdicts(policy, profile(sms=OK), [action], capped)["promo/sms/slot"] is not None
    assert policy.check_send(profile(sms=OK), action, PARIS) is None
    revoked = profile(sms=ChannelState("opted_out", reachable=True))
    assert policy.check_send(revoked, action, PARIS) == Exclusion(
        "promo/sms/slot", "consent", "sms: not opted in (opted out)"
    )
    late = send("sms", datetime(2024, 5, 1, 21, tzinfo=UTC))
    assert policy.check_send(profile(sms=OK), late, PARIS) == Exclusion(
        "promo/sms/slot", "quiet_hours", "quiet hours 21:00–08:00 Europe/Paris"
    )
    assert policy.check_send(profile(), JointAction.no_send(), PARIS) is None


def test_without_quiet_hours_or_caps_only_channel_rules_apply() -> None:
    policy = ContactPolicy(ContactRules())
    night = datetime(2024, 5, 1, 23, tzinfo=UTC)
    many = [Send(f"e{i}", "email", night) for i in range(10)]
    assert (
        verdicts(policy, profile(email=OK), [send("email", night)], many)["promo/email/slot"]
        is None
    )


def test_zone_for_falls_back_to_the_default() -> None:
    policy = ContactPolicy(ContactRules(default_time_zone="Europe/London"))
    assert policy.zone_for(ContactProfile("c1", {})).key == "Europe/London"
    assert policy.zone_for(ContactProfile("c1", {}, "Asia/Tokyo")).key == "Asia/Tokyo"


def test_a_send_without_a_time_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"^`candidates` must give every send"):
        ContactPolicy(RULES).evaluate(
            profile(email=OK), [], [JointAction("promo", "email", "now", None)], PARIS
        )


def test_inputs_are_not_mutated() -> None:
    policy = ContactPolicy(RULES)
    candidates = [send("email"), send("sms"), JointAction.no_send()]
    sent = [Send("s0", "sms", NOON)]
    before = (list(candidates), list(sent))
    policy.evaluate(profile(email=OK, sms=OK), sent, candidates, PARIS)
    assert (candidates, sent) == before
