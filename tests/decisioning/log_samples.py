"""Decisions and outcomes that exercise every field of the log's records (not a test module)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from decisioning.types import ActionScore, Decision, Exclusion, JointAction, Outcome

WHEN = datetime(2024, 5, 1, 11, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
"""Not UTC on purpose: the log must store the instant and read it back in UTC."""

PARIS = ZoneInfo("Europe/Paris")


def joint(
    message: str, channel: str, slot: str, hours: float, transactional: bool = False
) -> JointAction:
    return JointAction(
        message, channel, slot, (WHEN + timedelta(hours=hours)).astimezone(PARIS), transactional
    )


ELIGIBLE = (
    joint("welcome", "email", "now", 0),
    joint("welcome", "sms", "+1h", 1),
    joint("receipt", "email", "now", 0, transactional=True),
    JointAction.no_send(),
)

BASE = Decision(
    decision_id="d1",
    customer_id="c1",
    decided_at=WHEN,
    journey="onboarding",
    step="day-0",
    group="explore",
    action=ELIGIBLE[1],
    propensity=1 / 3 + 0.1 / 3,
    propensity_error=0.012345678901234567,
    eligible=ELIGIBLE,
    excluded=(
        Exclusion("welcome/push/now", "consent", "push is not opted in"),
        Exclusion("welcome/email/+3h", "quiet_hours", 'inside 22:00–07:00 "Europe/Paris" \\ é'),
    ),
    scores={
        ELIGIBLE[0].key: ActionScore(0.1 + 0.2, 0.30000000000000004, 0.05, 0.1 / 3),
        ELIGIBLE[1].key: ActionScore(1e-300, 0.123456789012345678, 5e-324, 1 / 3 + 0.1 / 3),
        ELIGIBLE[2].key: ActionScore(0.0, -0.0, 1.7976931348623157e308, 0.5),
        ELIGIBLE[3].key: ActionScore(0, 1.0, 0.0, 1 - (0.1 / 3 + 1 / 3 + 0.1 / 3 + 0.5)),
    },
    explored=True,
    policy_version="linear-ts(v=0.5,seed=7)+1234",
    model_version="3",
    features={
        "recency": 3,
        "spend": 29.990000000000002,
        "channel": "Web ✓",
        "zip": None,
        "big": 2**62,
        "tiny": -1e-310,
    },
    missing_features=("zip",),
    idempotency_key=None,
    attribution_closes_at=WHEN + timedelta(hours=72),
    time_zone="Europe/Paris",
)
"""Every defaulted field but ``idempotency_key`` holds something else (see :data:`FULL`)."""

FULL = replace(BASE, idempotency_key="req-1")
"""Every field away from its default, so a field the log forgets to store shows."""


def decision(decision_id: str = "d1", **overrides: Any) -> Decision:
    """:data:`BASE` under another id, with any fields replaced."""
    return replace(BASE, decision_id=decision_id, **overrides)


def outcome(outcome_id: str = "o1", decision_id: str = "d1", **overrides: Any) -> Outcome:
    return replace(
        Outcome(outcome_id, decision_id, "click", 49.9, 1.0, WHEN + timedelta(hours=1)),
        **overrides,
    )
