"""The uplift report: what contacting customers added, how sure we are, and what else would do.

Built from any decision log with a holdout (the demo's or a data set fed through
the ingest path) by one pure function, so that the CLI, the API and notebooks
show the same numbers. Its tables:

- ``journeys``: per journey, every non-holdout decision (intention to treat)
  against the holdout, which a salted hash of the customer id chose at random:
  the randomised estimate of what the journey's contacts added.
- ``actions``: per journey and per part of the action (message, channel,
  send-time slot), the decisions that sent it against the same holdout. The
  policy chose whom to send each to, so these rows describe; they do not
  prove what the message caused.
- ``trends``: per UTC day and journey, conversion rates of both groups.
- ``qini`` and ``qini_summary``: the Qini curve of the current model.
- ``policy_values``: the live policy against uniform random, the best fixed
  action and a challenger, by off-policy evaluation.

Only decisions that could have fallen into the holdout are compared with it:
those of steps that allow "no send" (a step that must send is never held out).
Cancelled decisions were never carried out and are left out everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from decisioning.config import DecisionConfig
from decisioning.log import DecisionLog
from decisioning.types import NO_SEND, Decision, Outcome
from features import InvalidRequest
from training.decision_results import decision_result, outcomes_by_decision
from training.holdout_lift import LIFT_COLUMNS, Row, lift_row
from training.log_qini import QINI_COLUMNS, QINI_SUMMARY_COLUMNS, logged_uplift_score, qini_rows
from training.logged_policy_values import POLICY_VALUE_COLUMNS, LoggedFeedback

__all__ = [
    "ACTION_PARTS",
    "TABLE_COLUMNS",
    "UpliftReport",
    "build_uplift_report",
    "report_from_log",
]

ACTION_PARTS: tuple[str, ...] = ("message", "channel", "slot")
"""The parts of a joint action the ``actions`` table breaks sends down by."""

TREND_COLUMNS: tuple[str, ...] = (
    "journey",
    "day",
    "n_treated",
    "conversion_rate_treated",
    "n_holdout",
    "conversion_rate_holdout",
)

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "journeys": ("journey", *LIFT_COLUMNS),
    "actions": ("journey", "part", "value", "basis", *LIFT_COLUMNS),
    "trends": TREND_COLUMNS,
    "policy_values": POLICY_VALUE_COLUMNS,
    "qini": QINI_COLUMNS,
    "qini_summary": QINI_SUMMARY_COLUMNS,
}
"""Every table of the report and its columns, in order (the CSV header rows)."""


@dataclass(frozen=True)
class UpliftReport:
    """A built report: plain rows per table, plus what it was built from.

    ``filters`` holds the journey, since, min_group and closed_windows_only it
    was built with; ``summary`` the counts of decisions it read and left out;
    ``warnings`` what a reader must know about the report as a whole (each row
    carries its own warning as well).
    """

    generated_at: datetime
    filters: Mapping[str, Any]
    summary: Mapping[str, Any]
    warnings: tuple[str, ...]
    journeys: tuple[Row, ...] = ()
    actions: tuple[Row, ...] = ()
    trends: tuple[Row, ...] = ()
    policy_values: tuple[Row, ...] = ()
    qini: tuple[Row, ...] = ()
    qini_summary: tuple[Row, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """The whole report as plain JSON values: what the page shows and the API returns.

        Moments are ISO 8601 text in UTC; a number that does not exist is None.
        """
        return {
            "generated_at": self.generated_at.isoformat(),
            "filters": dict(self.filters),
            "summary": dict(self.summary),
            "warnings": list(self.warnings),
            **{name: [dict(row) for row in getattr(self, name)] for name in TABLE_COLUMNS},
        }

    def tables(self) -> dict[str, pd.DataFrame]:
        """One DataFrame per table, columns in :data:`TABLE_COLUMNS` order, for CSV export."""
        return {
            name: pd.DataFrame([dict(row) for row in getattr(self, name)], columns=list(columns))
            for name, columns in TABLE_COLUMNS.items()
        }


def build_uplift_report(
    decisions: Iterable[Decision],
    outcomes: Iterable[Outcome],
    config: DecisionConfig,
    *,
    journey: str | None = None,
    since: datetime | None = None,
    min_group: int = 200,
    challenger: Callable[[Decision], str] | None = None,
    uplift_score: Callable[[Decision], float | None] = logged_uplift_score,
    closed_windows_only: bool = False,
    now: datetime | None = None,
    resamples: int = 500,
    seed: int = 0,
) -> UpliftReport:
    """The report of ``decisions`` and their ``outcomes``; reads nothing else.

    ``journey`` and ``since`` keep the decisions of one journey and those decided
    at or after a moment. Groups smaller than ``min_group`` decisions are
    flagged as too small to conclude. ``challenger`` maps a decision to the
    action key another policy would have chosen, to evaluate it off-policy.
    ``uplift_score`` gives a decision's uplift score for the Qini curve (by
    default from its logged priors). A decision whose attribution window is
    still open at ``now`` (default: the clock) may yet convert: the summary
    counts them, and ``closed_windows_only`` leaves them out. ``resamples``
    and ``seed`` set the bootstrap of the policy values.
    """
    if isinstance(min_group, bool) or not isinstance(min_group, int) or min_group < 2:
        raise InvalidRequest("min_group", "must be a whole number of at least 2", min_group)
    start = None if since is None else _aware("since", since)
    moment = datetime.now(UTC) if now is None else _aware("now", now)
    grouped = outcomes_by_decision(outcomes)
    frame = _Frame()
    feedback = LoggedFeedback()
    counts = {"decisions": 0, "cancelled": 0, "open_windows": 0, "not_randomised": 0}
    for decision in decisions:
        if journey is not None and decision.journey != journey:
            continue
        if start is not None and decision.decided_at < start:
            continue
        counts["decisions"] += 1
        result = decision_result(decision, grouped.get(decision.decision_id, ()), config)
        if result.cancelled:
            counts["cancelled"] += 1
            continue
        closes = decision.attribution_closes_at
        if closes is not None and closes > moment:
            counts["open_windows"] += 1
            if closed_windows_only:
                continue
        holdout = decision.group == "holdout"
        randomised = holdout or any(a.key == NO_SEND for a in decision.eligible)
        counts["not_randomised"] += not randomised
        arm = "holdout" if holdout else "treated" if randomised else "other"
        frame.add(decision, arm, result.converted, result.revenue, uplift_score(decision))
        if not holdout:
            choice = None if challenger is None else challenger(decision)
            feedback.add(decision, result.reward, choice)

    data = frame.to_pandas()
    journeys = _journey_rows(data, min_group)
    current = None if data.empty else str(data.loc[data["decided_at"].idxmax(), "model_version"])
    qini_summary, qini = _qini(data, current, min_group)
    summary = {
        **counts,
        "analysed": len(data),
        "treated": int((data["arm"] == "treated").sum()),
        "holdout": int((data["arm"] == "holdout").sum()),
        "journeys": sorted(data["journey"].unique().tolist()),
        "first_decision": None if data.empty else _iso(data["decided_at"].min()),
        "last_decision": None if data.empty else _iso(data["decided_at"].max()),
        "current_model": current,
        "holdout_percent": config.holdout_percent,
    }
    return UpliftReport(
        generated_at=moment,
        filters={
            "journey": journey,
            "since": None if start is None else start.isoformat(),
            "min_group": min_group,
            "closed_windows_only": closed_windows_only,
        },
        summary=summary,
        warnings=tuple(_warnings(summary, closed_windows_only)),
        journeys=tuple(journeys),
        actions=tuple(_action_rows(data, min_group)),
        trends=tuple(_trend_rows(data)),
        policy_values=tuple(feedback.policy_values(resamples=resamples, seed=seed)),
        qini=tuple(qini),
        qini_summary=tuple(qini_summary),
    )


def report_from_log(
    log: DecisionLog,
    config: DecisionConfig,
    *,
    journey: str | None = None,
    since: datetime | None = None,
    min_group: int = 200,
    challenger: Callable[[Decision], str] | None = None,
    **options: Any,
) -> UpliftReport:
    """:func:`build_uplift_report` over everything ``log`` holds (decisions since ``since``).

    ``options`` are the other keywords of :func:`build_uplift_report`.
    """
    return build_uplift_report(
        log.iter_decisions(since=since),
        log.iter_outcomes(),
        config,
        journey=journey,
        since=since,
        min_group=min_group,
        challenger=challenger,
        **options,
    )


class _Frame:
    """The few facts per decision the tables group by, gathered column by column."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {
            name: []
            for name in (
                "journey",
                "decided_at",
                "arm",
                "is_send",
                *ACTION_PARTS,
                "converted",
                "revenue",
                "model_version",
                "score",
            )
        }

    def add(
        self, decision: Decision, arm: str, converted: bool, revenue: float, score: float | None
    ) -> None:
        action = decision.action
        values = (
            decision.journey,
            decision.decided_at.astimezone(UTC),
            arm,
            action.is_send,
            action.message,
            action.channel,
            action.slot,
            float(converted),
            float(revenue),
            decision.model_version,
            math.nan if score is None else float(score),
        )
        for column, value in zip(self.columns.values(), values, strict=True):
            column.append(value)

    def to_pandas(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.columns)
        frame["decided_at"] = pd.to_datetime(frame["decided_at"], utc=True)
        frame["is_send"] = frame["is_send"].astype(bool)
        return frame


def _journey_rows(data: pd.DataFrame, min_group: int) -> list[Row]:
    rows: list[Row] = []
    for name, group in data.groupby("journey", sort=True):
        holdout = group[group["arm"] == "holdout"]
        treated = group[group["arm"] == "treated"]
        if holdout.empty and treated.empty:
            continue  # only steps that must send: nothing to compare
        rows.append({"journey": str(name), **_lift(treated, holdout, min_group)})
    return rows


def _action_rows(data: pd.DataFrame, min_group: int) -> list[Row]:
    rows: list[Row] = []
    for name, group in data.groupby("journey", sort=True):
        holdout = group[group["arm"] == "holdout"]
        sends = group[(group["arm"] == "treated") & group["is_send"]]
        for part in ACTION_PARTS:
            for value, sent in sends.groupby(part, sort=True):
                rows.append(
                    {
                        "journey": str(name),
                        "part": part,
                        "value": str(value),
                        "basis": "descriptive",
                        **_lift(sent, holdout, min_group),
                    }
                )
    return rows


def _lift(treated: pd.DataFrame, holdout: pd.DataFrame, min_group: int) -> Row:
    return lift_row(
        treated["converted"].to_numpy(),
        treated["revenue"].to_numpy(),
        holdout["converted"].to_numpy(),
        holdout["revenue"].to_numpy(),
        min_group=min_group,
    )


def _trend_rows(data: pd.DataFrame) -> list[Row]:
    compared = data[data["arm"] != "other"].assign(
        day=lambda f: f["decided_at"].dt.strftime("%Y-%m-%d")
    )
    rows: list[Row] = []
    for (name, day), group in compared.groupby(["journey", "day"], sort=True):
        treated = group.loc[group["arm"] == "treated", "converted"]
        holdout = group.loc[group["arm"] == "holdout", "converted"]
        rows.append(
            {
                "journey": str(name),
                "day": str(day),
                "n_treated": int(treated.size),
                "conversion_rate_treated": float(treated.mean()) if treated.size else None,
                "n_holdout": int(holdout.size),
                "conversion_rate_holdout": float(holdout.mean()) if holdout.size else None,
            }
        )
    return rows


def _qini(data: pd.DataFrame, current: str | None, min_group: int) -> tuple[list[Row], list[Row]]:
    summaries: list[Row] = []
    points: list[Row] = []
    if current is None:
        return summaries, points
    scored = data[
        (data["model_version"] == current)
        & data["score"].notna()
        & (((data["arm"] == "treated") & data["is_send"]) | (data["arm"] == "holdout"))
    ]
    for name in sorted(data.loc[data["arm"] != "other", "journey"].unique()):
        group = scored[scored["journey"] == name]
        summary, curve = qini_rows(
            str(name),
            current,
            group["converted"].to_numpy(),
            (group["arm"] == "treated").to_numpy(),
            group["score"].to_numpy(),
            min_group=min_group,
        )
        summaries.append(summary)
        points.extend(curve)
    return summaries, points


def _warnings(summary: Mapping[str, Any], closed_windows_only: bool) -> list[str]:
    warnings: list[str] = []
    if summary["analysed"] == 0:
        warnings.append("No decisions match these filters: there is nothing to report yet.")
    elif summary["holdout"] == 0:
        warnings.append(
            "No holdout decisions: nothing was held out, so no lift can be measured. "
            "Set a holdout percentage above 0 to measure what contacting adds."
        )
    if summary["open_windows"] and not closed_windows_only:
        warnings.append(
            f"{summary['open_windows']:,} decisions are still inside their attribution window: "
            "their conversions may still come in, so recent rates may rise."
        )
    if summary["not_randomised"]:
        warnings.append(
            f"{summary['not_randomised']:,} decisions were made at steps that must send (no "
            "holdout is possible there); they are left out of the comparison with the holdout."
        )
    return warnings


def _aware(name: str, moment: datetime) -> datetime:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise InvalidRequest(name, "must be a datetime that includes a time zone", moment)
    return moment.astimezone(UTC)


def _iso(moment: Any) -> str:
    return str(pd.Timestamp(moment).to_pydatetime().isoformat())
