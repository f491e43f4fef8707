"""What monitoring reads from the decision log: recent sends, conversions, drift samples, contacts.

One pass over the recent decisions and one over the outcomes give every
log-based gauge and alert input at once, so a scheduled evaluation reads the
log once. Only decisions made since the earliest moment any window needs are
decoded (see :func:`scan_start`); the drift reference (the first decisions of a
model version) is read separately by :func:`reference_rows`, once per version.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from decisioning import NO_SEND, Decision, DecisionConfig, DecisionLog
from decisioning.holdout import Holdout
from features import FeatureValue

__all__ = [
    "FAILURE_EVENTS",
    "SEND_EVIDENCE_EVENTS",
    "SEND_STATUS",
    "Conversions",
    "HoldoutContact",
    "LogReadings",
    "ScanWindows",
    "SendCounts",
    "drift_row",
    "holdout_entry",
    "read_log",
    "reference_rows",
    "scan_start",
]

FAILURE_EVENTS = frozenset({"bounce", "soft_bounce", "hard_bounce", "send_failed"})
"""Outcome events that say a send did not reach the customer."""
SEND_STATUS: Mapping[str, str] = {
    "delivered": "delivered",
    **dict.fromkeys(FAILURE_EVENTS, "failed"),
}
"""Outcome event → send status ("delivered" or "failed"); other events say nothing of the send."""
SEND_EVIDENCE_EVENTS = frozenset({*SEND_STATUS, "open", "click", "complaint"})
"""Outcome events that only happen when a message was sent (or its send was attempted)."""
CANCELLED = "cancelled"


@dataclass(frozen=True)
class ScanWindows:
    """The periods monitoring looks at; the alert thresholds' defaults are documented there."""

    sends: timedelta = timedelta(hours=1)
    """Send results counted for the failure rate: those reported in this last period."""
    recent: timedelta = timedelta(days=1)
    """Conversion now: decisions whose attribution window closed in this last period."""
    baseline: timedelta = timedelta(days=7)
    """Conversion before: windows closed in this period just before ``recent``."""
    contamination: timedelta = timedelta(days=7)
    """Sends to holdout customers are looked for in this last period (so the alert can clear)."""
    drift_reference: int = 1000
    """The first this many decisions of a model version are its reference distribution."""
    drift_recent: int = 1000
    """The latest this many decisions of the model version are compared against it."""


@dataclass(frozen=True)
class SendCounts:
    """Send results of one channel over the send window.

    >>> SendCounts(delivered=75, failed=25).failure_rate
    0.25
    """

    delivered: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.delivered + self.failed

    @property
    def failure_rate(self) -> float:
        return self.failed / self.total if self.total else 0.0


@dataclass(frozen=True)
class Conversions:
    """Decisions whose window closed in a period: how many, how many converted, reward credited.

    >>> Conversions(decisions=200, converted=30, reward=41.5).rate
    0.15
    """

    decisions: int = 0
    converted: int = 0
    reward: float = 0.0

    @property
    def rate(self) -> float:
        return self.converted / self.decisions if self.decisions else 0.0

    @property
    def reward_rate(self) -> float:
        return self.reward / self.decisions if self.decisions else 0.0

    def add(self, converted: bool, reward: float) -> Conversions:
        return Conversions(self.decisions + 1, self.converted + converted, self.reward + reward)


@dataclass(frozen=True)
class HoldoutContact:
    """Evidence that a customer of the holdout was contacted."""

    decision_id: str
    at: datetime
    reason: str
    """``"holdout decision had a 'delivered' outcome"`` or ``"sent after joining the holdout"``."""


@dataclass(frozen=True)
class LogReadings:
    """Everything monitoring takes from the log at one moment."""

    now: datetime
    sends: Mapping[str, SendCounts] = field(default_factory=dict)
    """By channel, over ``ScanWindows.sends``."""
    recent: Mapping[str, Conversions] = field(default_factory=dict)
    """By journey, windows closed over ``ScanWindows.recent``."""
    baseline: Mapping[str, Conversions] = field(default_factory=dict)
    """By journey, windows closed over ``ScanWindows.baseline`` before that."""
    by_group: Mapping[tuple[str, str], Conversions] = field(default_factory=dict)
    """By (journey, group), windows closed over ``ScanWindows.recent``: the gauges."""
    model_version: str | None = None
    """The version the drift rows belong to (the latest decision's, unless one was asked for)."""
    drift_recent: Sequence[tuple[str, Mapping[str, FeatureValue]]] = ()
    """The latest decisions of ``model_version``: (decision id, :func:`drift_row`), oldest first."""
    holdout_contacts: Sequence[HoldoutContact] = ()


@dataclass(frozen=True, slots=True)
class _Seen:
    """What the outcome pass needs of a recent decision."""

    journey: str
    group: str
    channel: str | None
    closes_at: datetime | None


def scan_start(now: datetime, config: DecisionConfig, windows: ScanWindows) -> datetime:
    """The earliest decision any window can need.

    A conversion counted in the baseline belongs to a decision whose window
    closed at most ``recent + baseline`` ago; that decision was made at most
    one attribution window plus the slot horizon before it closed.

    >>> from decisioning.config import DEFAULT_CONFIG, load_decision_config
    >>> from datetime import UTC
    >>> now = datetime(2024, 5, 10, tzinfo=UTC)
    >>> str(now - scan_start(now, load_decision_config(DEFAULT_CONFIG), ScanWindows()))
    '17 days, 0:00:00'
    """
    longest = max(spec.attribution_window for spec in config.rewards.values())
    back = max(
        windows.recent + windows.baseline + longest + config.horizon,
        windows.contamination + config.horizon,
        windows.sends + longest + config.horizon,
    )
    return now - back - timedelta(days=1)  # a day's grace for late or skewed clocks


def drift_row(decision: Decision, config: DecisionConfig) -> dict[str, FeatureValue]:
    """A decision's model inputs and the model's scores, as one row of named values.

    Inputs keep their names. Scores are named ``score:<message>`` and
    ``score:no_send``: the model's predicted probability, recovered from the
    logged prior (probability × the journey's prior value − the channel's cost),
    so that they compare across channels and journeys.
    """
    row: dict[str, FeatureValue] = dict(decision.features)
    value = config.reward_for(decision.journey).prior_value
    if value <= 0:
        return row
    for action in decision.eligible:
        score = decision.scores.get(action.key)
        if score is None:
            continue
        if action.key == NO_SEND:
            row[f"score:{NO_SEND}"] = score.prior / value
        elif action.message is not None and f"score:{action.message}" not in row:
            channel = config.channels.get(action.channel or "")
            if channel is not None:
                row[f"score:{action.message}"] = (score.prior + channel.cost) / value
    return row


def reference_rows(
    log: DecisionLog,
    config: DecisionConfig,
    model_version: str,
    size: int,
    since: datetime | None = None,
) -> tuple[list[tuple[str, dict[str, FeatureValue]]], datetime | None]:
    """The first ``size`` decisions of ``model_version`` as (decision id, :func:`drift_row`),
    and when the first of them was made (None if there is none yet).

    Reads the log from its start (or from ``since``, the version's first
    decision when known) until it has them; once full the answer cannot
    change, so callers keep it for as long as the version serves.
    """
    rows: list[tuple[str, dict[str, FeatureValue]]] = []
    first: datetime | None = None
    for decision in log.iter_decisions(since=since):
        if decision.model_version == model_version:
            first = first or decision.decided_at
            rows.append((decision.decision_id, drift_row(decision, config)))
            if len(rows) >= size:
                break
    return rows, first


def holdout_entry(
    bucket: float, changes: Sequence[tuple[datetime, float]], percent: float
) -> datetime | None:
    """When a customer with this holdout ``bucket`` last joined the holdout; None if not in it.

    Membership follows the configured ``percent``; the moment comes from the
    recorded changes of the share: the start of the latest run of changes that
    kept the customer in. With no change recorded, or in since the first, the
    customer has always been in (``datetime.min``).

    >>> from datetime import UTC
    >>> t = [datetime(2024, 5, d, tzinfo=UTC) for d in (1, 2, 3)]
    >>> holdout_entry(7.0, [(t[0], 5.0), (t[1], 10.0), (t[2], 12.0)], 12.0) == t[1]
    True
    >>> holdout_entry(3.0, [(t[0], 5.0), (t[1], 10.0)], 10.0)
    datetime.datetime(1, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    >>> holdout_entry(7.0, [(t[0], 5.0)], 5.0) is None
    True
    """
    if bucket >= percent:
        return None
    entered: datetime | None = None
    for at, share in reversed(changes):
        if share <= bucket:
            break
        entered = at
    else:
        return datetime.min.replace(tzinfo=UTC)
    if entered is None:
        # The configuration put the customer in after the last recorded change (the
        # server has not restarted with it yet): nothing sent so far counts.
        return datetime.max.replace(tzinfo=UTC)
    return entered


def read_log(
    log: DecisionLog,
    config: DecisionConfig,
    now: datetime,
    *,
    model_version: str | None,
    windows: ScanWindows | None = None,
) -> LogReadings:
    """Read sends, conversions, the recent drift rows and holdout contacts as of ``now``.

    ``model_version`` None takes the version of the latest decision read.
    """
    windows = windows or ScanWindows()
    holdout = Holdout(config.holdout_percent, config.holdout_salt)
    changes = log.holdout_changes()
    contact_since = now - windows.contamination

    seen: dict[str, _Seen] = {}
    drift: dict[str, deque[tuple[str, dict[str, FeatureValue]]]] = {}
    latest_version = model_version
    sent_to_holdout: dict[str, datetime] = {}
    for decision in log.iter_decisions(since=scan_start(now, config, windows)):
        action = decision.action
        seen[decision.decision_id] = _Seen(
            decision.journey, decision.group, action.channel, decision.attribution_closes_at
        )
        if model_version is None or decision.model_version == model_version:
            latest_version = decision.model_version
            rows = drift.setdefault(latest_version, deque(maxlen=windows.drift_recent))
            rows.append((decision.decision_id, drift_row(decision, config)))
        send_at = action.send_at
        if (
            decision.group != "holdout"
            and action.is_send
            and not action.transactional
            and send_at is not None
            and contact_since < send_at <= now
        ):
            entered = holdout_entry(holdout.bucket(decision.customer_id), changes, holdout.percent)
            if entered is not None and send_at >= entered:
                sent_to_holdout[decision.decision_id] = send_at

    sends: dict[str, SendCounts] = {}
    converted: set[str] = set()
    rewards: dict[str, float] = {}
    cancelled: set[str] = set()
    contacts: dict[str, HoldoutContact] = {}
    for outcome in log.iter_outcomes():
        about = seen.get(outcome.decision_id)
        if about is None:
            continue
        event, at = outcome.event, outcome.occurred_at
        if event == CANCELLED:
            cancelled.add(outcome.decision_id)
            continue
        status = SEND_STATUS.get(event)
        if status is not None and about.channel is not None and now - windows.sends < at <= now:
            counts = sends.get(about.channel, SendCounts())
            sends[about.channel] = (
                SendCounts(counts.delivered + 1, counts.failed)
                if status == "delivered"
                else SendCounts(counts.delivered, counts.failed + 1)
            )
        if (
            about.group == "holdout"
            and event in SEND_EVIDENCE_EVENTS
            and contact_since < at <= now
            and outcome.decision_id not in contacts
        ):
            contacts[outcome.decision_id] = HoldoutContact(
                outcome.decision_id, at, f"holdout decision had a {event!r} outcome"
            )
        if about.closes_at is not None and at <= about.closes_at:
            rewards[outcome.decision_id] = rewards.get(outcome.decision_id, 0.0) + outcome.reward
            if event in config.reward_for(about.journey).conversions:
                converted.add(outcome.decision_id)
    for decision_id, send_at in sent_to_holdout.items():
        if decision_id not in cancelled and decision_id not in contacts:
            contacts[decision_id] = HoldoutContact(
                decision_id, send_at, "sent after joining the holdout"
            )

    recent: dict[str, Conversions] = {}
    baseline: dict[str, Conversions] = {}
    by_group: dict[tuple[str, str], Conversions] = {}
    recent_from = now - windows.recent
    baseline_from = recent_from - windows.baseline
    for decision_id, about in seen.items():
        closes = about.closes_at
        if closes is None or decision_id in cancelled or not baseline_from < closes <= now:
            continue
        hit, reward = decision_id in converted, rewards.get(decision_id, 0.0)
        if closes > recent_from:
            recent[about.journey] = recent.get(about.journey, Conversions()).add(hit, reward)
            key = (about.journey, about.group)
            by_group[key] = by_group.get(key, Conversions()).add(hit, reward)
        else:
            baseline[about.journey] = baseline.get(about.journey, Conversions()).add(hit, reward)

    return LogReadings(
        now=now,
        sends=sends,
        recent=recent,
        baseline=baseline,
        by_group=by_group,
        model_version=latest_version,
        drift_recent=list(drift.get(latest_version or "", ())),
        holdout_contacts=sorted(contacts.values(), key=lambda c: (c.at, c.decision_id)),
    )
