"""The uplift report against logs with a known truth, and against small hand-made logs."""

from __future__ import annotations

import io
import json
import math
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from uplift_samples import (
    CONFIG,
    EFFECT,
    EMAIL_COST,
    MEAN_VALUE,
    NO_EFFECT,
    START,
    WINDOW,
    expected,
    synthetic_log,
    truth,
)

from decisioning.types import NO_SEND, ActionScore, Decision, JointAction, Outcome
from features import InvalidRequest
from training.uplift_report import TABLE_COLUMNS, UpliftReport, build_uplift_report

LATER = START + timedelta(days=60)
Z95 = 1.959963984540054


def standard_error(row: dict[str, Any], column: str) -> float:
    return float(row[f"{column}_ci_high"] - row[f"{column}_ci_low"]) / (2 * Z95)


def by_journey(report: UpliftReport) -> dict[str, dict[str, Any]]:
    return {str(row["journey"]): dict(row) for row in report.journeys}


@pytest.fixture(scope="module")
def log() -> Any:
    """20,000 decisions: "welcome" (sends add 3.4 points), "winback" (no effect); 10 % held out."""
    return synthetic_log({"welcome": (EFFECT, 10_000), "winback": (NO_EFFECT, 10_000)}, seed=1)


@pytest.fixture(scope="module")
def report(log: Any) -> UpliftReport:
    return build_uplift_report(log.decisions, log.outcomes, CONFIG, now=LATER)


# -- journeys: the randomised estimate --------------------------------------------------------


def test_a_real_effect_is_found_and_its_interval_covers_the_truth(report: UpliftReport) -> None:
    welcome = by_journey(report)["welcome"]
    effect = truth(EFFECT)["effect"]  # 8.40 % treated against 5.00 % held out
    assert welcome["lift_ci_low"] <= effect <= welcome["lift_ci_high"]
    assert welcome["lift_ci_low"] > 0
    assert welcome["prob_positive"] > 0.999
    assert welcome["warning"] is None
    # Revenue: each conversion is worth 40 on average.
    assert welcome["revenue_lift_ci_low"] <= effect * MEAN_VALUE <= welcome["revenue_lift_ci_high"]


def test_no_effect_is_reported_as_no_evidence(report: UpliftReport) -> None:
    winback = by_journey(report)["winback"]
    assert winback["lift_ci_low"] <= 0 <= winback["lift_ci_high"]
    assert 0.05 < winback["prob_positive"] < 0.95
    assert str(winback["warning"]).startswith(
        "No evidence of an effect yet: the 95 % interval of the difference ("
    )


def test_incremental_conversions_are_the_lift_times_the_treated(
    report: UpliftReport, log: Any
) -> None:
    welcome = by_journey(report)["welcome"]
    n_t = welcome["n_treated"]
    assert n_t + welcome["n_holdout"] == 10_000
    assert 850 < welcome["n_holdout"] < 1_150  # 10 % held out
    assert welcome["incremental_conversions"] == pytest.approx(welcome["lift"] * n_t, rel=1e-12)
    # Against the truth: within three standard errors (seen: 347 against 305, s.e. 64).
    true_increment = truth(EFFECT)["effect"] * n_t
    se = standard_error(welcome, "incremental_conversions")
    assert abs(welcome["incremental_conversions"] - true_increment) < 3 * se
    assert 40 < se < 90


def test_rates_and_relative_lift_are_those_of_the_decisions(report: UpliftReport, log: Any) -> None:
    converted = {o.decision_id for o in log.outcomes}
    welcome = [d for d in log.decisions if d.journey == "welcome"]
    held = [d.decision_id in converted for d in welcome if d.group == "holdout"]
    treated = [d.decision_id in converted for d in welcome if d.group != "holdout"]
    row = by_journey(report)["welcome"]
    assert row["conversion_rate_holdout"] == pytest.approx(np.mean(held), abs=1e-12)
    assert row["conversion_rate_treated"] == pytest.approx(np.mean(treated), abs=1e-12)
    assert row["relative_lift"] == pytest.approx(
        row["lift"] / row["conversion_rate_holdout"], rel=1e-12
    )
    revenue = {o.decision_id: o.value for o in log.outcomes}
    held_revenue = [revenue.get(d.decision_id, 0.0) for d in welcome if d.group == "holdout"]
    assert row["revenue_per_customer_holdout"] == pytest.approx(np.mean(held_revenue), rel=1e-12)


# -- actions: descriptive ----------------------------------------------------------------------


def test_each_message_is_compared_with_the_journeys_holdout(report: UpliftReport) -> None:
    rows = {(r["journey"], r["part"], r["value"]): dict(r) for r in report.actions}
    assert {key for key in rows if key[0] == "welcome"} == {
        ("welcome", "message", "m1"),
        ("welcome", "message", "m2"),
        ("welcome", "channel", "email"),
        ("welcome", "slot", "now"),
    }
    assert {row["basis"] for row in rows.values()} == {"descriptive"}
    holdout = by_journey(report)["welcome"]["conversion_rate_holdout"]
    assert {rows[("welcome", "message", m)]["conversion_rate_holdout"] for m in ("m1", "m2")} == {
        holdout
    }
    # The policy sends m1 more to high x, where m1 converts better: the rate of those
    # who got m1 is E[p(x) r(x)] / E[p(x)], about 10.8 %; m2's is its flat 6.25 %.
    m1_rate = expected(
        lambda x: EFFECT.policy["m1/email/now"](x) * EFFECT.rates["m1/email/now"](x)
    ) / expected(EFFECT.policy["m1/email/now"])
    for message, true_rate in (("m1", m1_rate), ("m2", 0.0625)):
        row = rows[("welcome", "message", message)]
        rate = row["conversion_rate_treated"]
        se = math.sqrt(true_rate * (1 - true_rate) / row["n_treated"])
        assert abs(rate - true_rate) < 3 * se, message
    sends = rows[("welcome", "channel", "email")]
    m1, m2 = rows[("welcome", "message", "m1")], rows[("welcome", "message", "m2")]
    assert sends["n_treated"] == m1["n_treated"] + m2["n_treated"]


# -- trends and the Qini curve -------------------------------------------------------------------


def test_trends_split_each_journey_by_utc_day(report: UpliftReport, log: Any) -> None:
    trends = report.tables()["trends"]
    assert sorted(trends["day"].unique()) == [f"2024-05-{d:02d}" for d in range(1, 11)]
    for name, row in by_journey(report).items():
        mine = trends[trends["journey"] == name]
        assert mine["n_treated"].sum() == row["n_treated"]
        assert mine["n_holdout"].sum() == row["n_holdout"]
        pooled = (mine["conversion_rate_treated"] * mine["n_treated"]).sum() / row["n_treated"]
        assert pooled == pytest.approx(row["conversion_rate_treated"], rel=1e-9)
    converted = {o.decision_id for o in log.outcomes}
    first_day = [
        d.decision_id in converted
        for d in log.decisions
        if d.journey == "welcome" and d.group == "holdout" and d.decided_at.day == 1
    ]
    first = trends[(trends["journey"] == "welcome") & (trends["day"] == "2024-05-01")].iloc[0]
    assert first["n_holdout"] == len(first_day)
    assert first["conversion_rate_holdout"] == pytest.approx(np.mean(first_day), abs=1e-12)


def test_the_qini_curve_finds_who_the_message_helps(report: UpliftReport) -> None:
    summary = {row["journey"]: dict(row) for row in report.qini_summary}
    # In "welcome" the model's score rises with x, and so does m1's true uplift.
    assert summary["welcome"]["qini_coefficient"] > 0.002  # seen: 0.0055
    assert summary["welcome"]["model_version"] == "m-1"
    # Every score in "winback" is the same: a random order, no area.
    assert summary["winback"]["qini_coefficient"] == pytest.approx(0.0, abs=1e-12)
    # The curve ends at the average effect of a send against the holdout, which is
    # what the per-channel row measures on the same decisions.
    sends = next(r for r in report.actions if (r["journey"], r["part"]) == ("welcome", "channel"))
    assert summary["welcome"]["average_effect"] == pytest.approx(sends["lift"], abs=1e-12)
    assert summary["welcome"]["n_treated"] == sends["n_treated"]
    curve = [row for row in report.qini if row["journey"] == "welcome"]
    assert len(curve) == 101
    assert (curve[0]["fraction"], curve[0]["gain"]) == (0.0, 0.0)
    assert curve[-1]["gain"] == pytest.approx(sends["lift"], abs=1e-12)
    assert curve[50]["random_gain"] == pytest.approx(0.5 * sends["lift"], abs=1e-12)


def test_holdout_decisions_without_send_scores_give_no_qini_curve_and_say_so() -> None:
    log = synthetic_log({"welcome": (EFFECT, 3_000)}, seed=3, holdout_scores=False)
    report = build_uplift_report(log.decisions, log.outcomes, CONFIG, now=LATER)
    assert report.qini == ()
    (summary,) = report.qini_summary
    assert summary["n_control"] == 0
    assert summary["warning"] == (
        "No Qini curve: the log holds no holdout decisions with an uplift score "
        "of the current model in this journey."
    )
    # A caller that can score them (with the model) passes its own score.
    scored = build_uplift_report(
        log.decisions,
        log.outcomes,
        CONFIG,
        now=LATER,
        uplift_score=lambda d: float(d.features["x"]),  # type: ignore[arg-type]
    )
    assert len(scored.qini) == 101
    assert scored.qini_summary[0]["qini_coefficient"] > 0


# -- the JSON and the tables --------------------------------------------------------------------


def test_to_json_is_plain_json(report: UpliftReport) -> None:
    data = report.to_json()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == data
    assert set(data) == {"generated_at", "filters", "summary", "warnings", *TABLE_COLUMNS}
    assert data["generated_at"] == LATER.isoformat()
    assert data["filters"] == {
        "journey": None,
        "since": None,
        "min_group": 200,
        "closed_windows_only": False,
    }
    assert data["summary"]["decisions"] == data["summary"]["analysed"] == 20_000
    assert data["summary"]["treated"] + data["summary"]["holdout"] == 20_000


def test_tables_are_frames_with_the_documented_columns(report: UpliftReport) -> None:
    tables = report.tables()
    assert set(tables) == set(TABLE_COLUMNS)
    data = report.to_json()
    for name, frame in tables.items():
        assert list(frame.columns) == list(TABLE_COLUMNS[name])
        assert len(frame) == len(data[name])
        back = pd.read_csv(io.StringIO(frame.to_csv(index=False)))
        assert list(back.columns) == list(TABLE_COLUMNS[name])
    assert len(tables["journeys"]) == 2
    assert len(tables["actions"]) == 8


# -- small logs made by hand -------------------------------------------------------------------

SEND = JointAction("m1", "email", "now", START)
SKIP = JointAction.no_send()


def decision(
    i: int,
    *,
    group: str = "policy",
    journey: str = "j",
    action: JointAction = SEND,
    eligible: tuple[JointAction, ...] = (SEND, SKIP),
    at: datetime = START,
) -> Decision:
    scores = {a.key: ActionScore(0.1, 0.1, 0.0, 1 / len(eligible)) for a in eligible}
    return Decision(
        decision_id=f"d{i}",
        customer_id=f"c{i}",
        decided_at=at,
        journey=journey,
        step="s",
        group=group,  # type: ignore[arg-type]
        action=SKIP if group == "holdout" else action,
        propensity=1.0 if group == "holdout" else 1 / len(eligible),
        propensity_error=0.0,
        eligible=(SKIP,) if group == "holdout" else eligible,
        excluded=(),
        scores=scores,
        explored=False,
        policy_version="p",
        model_version="m",
        features={},
        attribution_closes_at=at + WINDOW,
    )


def purchase(i: int, value: float, after: timedelta, event: str = "purchase") -> Outcome:
    reward = -1.0 if event == "unsubscribe" else value if event == "purchase" else 0.0
    return Outcome(f"o{i}-{event}-{after}", f"d{i}", event, value, reward, START + after)


def small_report(
    decisions: list[Decision], outcomes: list[Outcome], **options: Any
) -> UpliftReport:
    return build_uplift_report(decisions, outcomes, CONFIG, now=LATER, min_group=2, **options)


def test_cancelled_decisions_are_left_out_everywhere() -> None:
    decisions = [decision(i) for i in range(4)] + [decision(i, group="holdout") for i in (4, 5)]
    outcomes = [
        purchase(0, 10.0, timedelta(hours=1)),
        purchase(1, 10.0, timedelta(hours=1)),  # d1 converted, but was cancelled
        Outcome("d1:cancelled", "d1", "cancelled", 0.0, 0.0, START),
    ]
    report = small_report(decisions, outcomes)
    row = by_journey(report)["j"]
    assert (row["n_treated"], row["n_holdout"]) == (3, 2)
    assert row["conversion_rate_treated"] == pytest.approx(1 / 3)
    assert report.summary["cancelled"] == 1
    assert report.summary["decisions"] == 6
    assert report.policy_values[0]["n"] == 3  # the policy values leave it out too


def test_only_conversions_inside_the_attribution_window_count() -> None:
    decisions = [decision(i) for i in range(4)] + [decision(i, group="holdout") for i in (4, 5)]
    outcomes = [
        purchase(0, 10.0, WINDOW),  # exactly when the window closes: counts
        purchase(1, 10.0, WINDOW + timedelta(seconds=1)),  # a second late: does not
        purchase(2, 7.0, timedelta(hours=2), event="open"),  # not a conversion
        purchase(3, 5.0, timedelta(hours=1)),
        purchase(3, 20.0, timedelta(hours=5)),  # a second purchase adds revenue
        purchase(4, 30.0, timedelta(days=4)),  # the holdout's late purchase
    ]
    row = by_journey(small_report(decisions, outcomes))["j"]
    assert row["conversion_rate_treated"] == 0.5  # d0 and d3
    assert row["revenue_per_customer_treated"] == (10.0 + 25.0) / 4
    assert row["conversion_rate_holdout"] == 0.0
    assert row["revenue_per_customer_holdout"] == 0.0


def test_the_reward_is_what_the_policy_learns_value_minus_cost_and_penalties() -> None:
    decisions = [decision(i) for i in range(3)]
    outcomes = [
        purchase(0, 12.0, timedelta(hours=1)),
        purchase(1, 0.0, timedelta(hours=1), event="unsubscribe"),
        purchase(2, 50.0, WINDOW * 2),  # too late: worth nothing
    ]
    report = small_report(decisions, outcomes)
    on_policy = next(r for r in report.policy_values if r["estimator"] == "on_policy")
    rewards = [12.0 - EMAIL_COST, -1.0 - EMAIL_COST, -EMAIL_COST]
    assert on_policy["value"] == pytest.approx(np.mean(rewards), abs=1e-12)


def test_tiny_groups_are_too_small_to_conclude() -> None:
    decisions = [decision(i) for i in range(300)] + [
        decision(i, group="holdout") for i in range(300, 303)
    ]
    outcomes = [purchase(i, 10.0, timedelta(hours=1)) for i in range(0, 300, 3)]
    report = build_uplift_report(decisions, outcomes, CONFIG, now=LATER)
    row = by_journey(report)["j"]
    assert row["warning"] == (
        "Too small to conclude: the holdout has 3 decisions; at least 200 are needed."
    )
    assert row["lift"] == pytest.approx(1 / 3)  # the numbers are still shown
    one = build_uplift_report(decisions[:1] + decisions[-1:], [], CONFIG, now=LATER)
    (row,) = one.journeys
    assert row["lift"] is None
    assert row["lift_ci_low"] is None
    assert row["warning"] == (
        "Too small to conclude: the treated group has 1 decision and the holdout has 1 "
        "decision; at least 200 are needed."
    )
    json.dumps(one.to_json(), allow_nan=False)


def test_steps_that_must_send_are_not_compared_with_the_holdout() -> None:
    decisions = [
        decision(0),
        decision(1),
        decision(2, eligible=(SEND,)),  # no "no send" allowed: never in the holdout
        decision(3, group="holdout"),
        decision(4, group="holdout"),
    ]
    report = small_report(decisions, [purchase(2, 10.0, timedelta(hours=1))])
    row = by_journey(report)["j"]
    assert row["n_treated"] == 2
    assert row["conversion_rate_treated"] == 0.0
    assert report.summary["not_randomised"] == 1
    assert any("steps that must send" in w for w in report.warnings)
    assert report.policy_values[0]["n"] == 3  # off-policy evaluation still uses it


def test_filters_by_journey_and_since() -> None:
    decisions = [
        decision(0, journey="a"),
        decision(1, journey="a", at=START + timedelta(days=2)),
        decision(2, journey="b", at=START + timedelta(days=2)),
        decision(3, journey="a", group="holdout", at=START + timedelta(days=3)),
        decision(4, journey="a", group="holdout", at=START + timedelta(days=2)),
    ]
    since = START + timedelta(days=1)
    report = small_report(decisions, [], journey="a", since=since)
    assert report.summary["decisions"] == 3  # d1, d3, d4
    (row,) = report.journeys
    assert (row["journey"], row["n_treated"], row["n_holdout"]) == ("a", 1, 2)
    assert report.filters["since"] == since.isoformat()
    assert report.filters["journey"] == "a"


def test_open_windows_are_counted_and_can_be_left_out() -> None:
    now = START + timedelta(days=4)
    later = START + timedelta(days=2)
    decisions = [
        decision(0),
        decision(1, at=later),
        decision(2, group="holdout"),
        decision(3, group="holdout", at=later),
    ]
    report = build_uplift_report(decisions, [], CONFIG, now=now, min_group=2)
    assert report.summary["open_windows"] == 2
    assert any("still inside their attribution window" in w for w in report.warnings)
    closed = build_uplift_report(
        decisions, [], CONFIG, now=now, min_group=2, closed_windows_only=True
    )
    assert closed.summary["analysed"] == 2
    assert (closed.journeys[0]["n_treated"], closed.journeys[0]["n_holdout"]) == (1, 1)


def test_an_empty_log_is_an_empty_report_that_says_so() -> None:
    report = build_uplift_report([], [], CONFIG, now=LATER)
    assert report.warnings == ("No decisions match these filters: there is nothing to report yet.",)
    assert all(len(frame) == 0 for frame in report.tables().values())
    assert report.summary["current_model"] is None


def test_a_log_without_a_holdout_warns_that_no_lift_can_be_measured() -> None:
    report = small_report([decision(0), decision(1)], [])
    assert report.warnings[0].startswith("No holdout decisions: nothing was held out")
    assert report.journeys[0]["warning"] == (
        "Too small to conclude: the holdout has 0 decisions; at least 2 are needed."
    )


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"min_group": 1}, "`min_group` must be a whole number of at least 2, got 1"),
        ({"min_group": 2.5}, "`min_group` must be a whole number of at least 2"),
        ({"since": datetime(2024, 5, 1)}, "`since` must be a datetime that includes a time zone"),
        ({"now": datetime(2024, 5, 1)}, "`now` must be a datetime that includes a time zone"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        build_uplift_report([], [], CONFIG, **{"now": LATER, **options})


def test_the_no_send_key_is_what_the_engine_logs() -> None:
    assert SKIP.key == NO_SEND
