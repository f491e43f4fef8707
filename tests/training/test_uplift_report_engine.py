"""The uplift report over a real SQLite log that the DecisionEngine wrote: it reads engine output.

The stores are real SQLite files; only the feature store and the offline model are
small in-test classes that keep their protocols (as in tests/decisioning/conftest.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from decisioning import (
    NO_SEND,
    CandidateMessage,
    DecisionEngine,
    DecisionRequest,
    LinearThompson,
    SQLiteDecisionLog,
    SQLitePolicyStateStore,
)
from decisioning.config import DecisionConfig, parse_decision_config
from decisioning.contact_store import ChannelState, ContactProfile
from decisioning.sqlite_contact import SQLiteContactStore
from features import FeatureRow, FeatureValue
from training.uplift_report import UpliftReport, report_from_log
from training.uplift_report_html import render_uplift_html

START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
CUSTOMERS = 500
CONFIG: DecisionConfig = parse_decision_config(
    {
        "channels": {"email": {"cost": 0.01}, "push": {"cost": 0.0}},
        "messages": {
            "welcome": {"channels": ["email", "push"], "model_arm": "welcome"},
            "discount": {"channels": ["email"], "model_arm": "discount"},
        },
        "control_arm": "none",
        "slots": ["now"],
        "default_time_zone": "UTC",
        "holdout": {"percent": 20, "salt": "report-test"},
        "exploration": 0.2,
        "rewards": {
            "default": {
                "attribution_window": "72h",
                "conversions": {"purchase": "value"},
                "penalties": {"unsubscribe": 1.0},
            }
        },
    }
)


class Engagement:
    """A FeatureSource: each customer's engagement, a fixed number in [0, 1)."""

    def get(self, customer_id: str) -> FeatureRow:
        engagement = (int(customer_id[1:]) * 37 % 100) / 100
        return FeatureRow(customer_id, {"engagement": engagement})


class Priors:
    """A PriorModel: engaged customers are likelier to buy after a welcome."""

    @property
    def actions(self) -> tuple[str, ...]:
        return ("welcome", "discount", "none")

    def predict_one(self, features: Mapping[str, FeatureValue]) -> dict[str, float]:
        engagement = float(features.get("engagement") or 0.0)  # type: ignore[arg-type]
        return {"welcome": 0.1 + 0.3 * engagement, "discount": 0.15, "none": 0.05}


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@dataclass
class Run:
    engine: DecisionEngine
    log: SQLiteDecisionLog
    clock: Clock
    cancelled: set[str]
    late_only: set[str]
    must_send: set[str]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    folder: Path = tmp_path_factory.mktemp("engine-report")
    contacts = SQLiteContactStore(folder / "contacts.db")
    every = ChannelState(consent="opted_in", reachable=True)
    contacts.load_profiles(
        ContactProfile(f"c{i}", {"email": every, "push": every}, "UTC") for i in range(CUSTOMERS)
    )
    log = SQLiteDecisionLog(folder / "nudge.db")
    state = SQLitePolicyStateStore(folder / "nudge.db")
    clock = Clock()
    engine = DecisionEngine(
        config=CONFIG,
        features=Engagement(),
        model=Priors(),
        model_version="v1",
        policy=LinearThompson(seed=0),
        log=log,
        state=state,
        contacts=contacts,
        clock=clock,
    )
    rng = np.random.default_rng(0)
    candidates = [CandidateMessage("welcome"), CandidateMessage("discount")]
    cancelled: set[str] = set()
    late_only: set[str] = set()
    must_send: set[str] = set()
    for i in range(CUSTOMERS):
        journey = "onboarding" if i % 2 else "promo"
        decision = engine.decide(DecisionRequest(f"c{i}", candidates, journey=journey))
        clock.now += timedelta(minutes=5)
        rate = 0.05 if decision.action.key == NO_SEND else 0.25
        if rng.random() < rate:
            engine.record_outcome(
                decision.decision_id, event="purchase", occurred_at=clock.now, value=20.0
            )
        if i % 50 == 7 and decision.action.is_send:
            engine.cancel(decision.decision_id)
            cancelled.add(decision.decision_id)
        if i % 10 == 3:  # a step that must send: the holdout cannot apply
            forced = engine.decide(
                DecisionRequest(f"c{i}", candidates, journey=journey, allow_no_send=False)
            )
            must_send.add(forced.decision_id)
    # Purchases four days after a decision: after its 72 h window, logged but not credited.
    last = engine.log.get_decision(decision.decision_id)
    clock.now += timedelta(days=4)
    if engine.log.credited_reward(last.decision_id) is None:
        engine.record_outcome(last.decision_id, event="purchase", occurred_at=clock.now, value=20.0)
        late_only.add(last.decision_id)
    engine.finalise_due(limit=10_000)
    yield Run(engine, log, clock, cancelled, late_only, must_send)
    engine.close()
    log.close()
    state.close()
    contacts.close()


@pytest.fixture(scope="module")
def report(run: Run) -> UpliftReport:
    return report_from_log(run.log, CONFIG, min_group=20, now=run.clock.now, resamples=200)


def test_the_report_counts_what_the_engine_logged(run: Run, report: UpliftReport) -> None:
    decisions = list(run.log.iter_decisions())
    assert report.summary["decisions"] == len(decisions) == run.log.count_decisions()
    assert report.summary["cancelled"] == len(run.cancelled) > 0
    assert report.summary["not_randomised"] == len(run.must_send) > 0
    kept = [d for d in decisions if d.decision_id not in run.cancelled]
    held = [d for d in kept if d.group == "holdout"]
    assert report.summary["holdout"] == len(held) > 0
    rows = {row["journey"]: row for row in report.journeys}
    assert set(rows) == {"onboarding", "promo"}
    for name, row in rows.items():
        mine = [d for d in kept if d.journey == name and d.decision_id not in run.must_send]
        assert row["n_holdout"] == sum(d.group == "holdout" for d in mine)
        assert row["n_treated"] == sum(d.group != "holdout" for d in mine)


def test_conversions_are_what_the_engine_credited(run: Run, report: UpliftReport) -> None:
    # The engine credits a purchase inside the window; the report counts the same ones.
    for row in report.journeys:
        held = [
            d
            for d in run.log.iter_decisions()
            if d.journey == row["journey"] and d.group == "holdout"
        ]
        credited = [(run.log.credited_reward(d.decision_id) or 0.0) > 0 for d in held]
        assert row["conversion_rate_holdout"] == pytest.approx(np.mean(credited), abs=1e-12)
    assert run.late_only
    for decision_id in run.late_only:
        assert run.log.credited_reward(decision_id) == 0.0  # finalised at zero


def test_the_live_policy_value_is_the_reward_the_engine_learned(
    run: Run, report: UpliftReport
) -> None:
    learned = [
        (run.log.credited_reward(d.decision_id) or 0.0)
        - (CONFIG.channels[d.action.channel].cost if d.action.channel else 0.0)
        for d in run.log.iter_decisions()
        if d.group != "holdout" and d.decision_id not in run.cancelled
    ]
    on_policy = next(r for r in report.policy_values if r["estimator"] == "on_policy")
    assert on_policy["n"] == len(learned)
    assert on_policy["value"] == pytest.approx(np.mean(learned), abs=1e-9)
    best = next(r for r in report.policy_values if r["policy"] == "best_fixed")
    keys = {a.key for d in run.log.iter_decisions() for a in d.eligible}
    assert best["action"] in keys
    for row in report.policy_values:
        assert row["ci_low"] <= row["value"] <= row["ci_high"], row


def test_engine_holdout_decisions_carry_no_send_scores_so_a_scorer_is_needed(
    run: Run, report: UpliftReport
) -> None:
    # The engine logs only the no-send score of a holdout decision: the logged scores
    # cannot rank the holdout, and the report says so rather than draw a wrong curve.
    assert report.qini == ()
    assert all("No Qini curve" in str(row["warning"]) for row in report.qini_summary)
    scored = report_from_log(
        run.log,
        CONFIG,
        min_group=20,
        now=run.clock.now,
        resamples=50,
        uplift_score=lambda d: float(d.features["engagement"]),  # type: ignore[arg-type]
    )
    assert {row["journey"] for row in scored.qini} == {"onboarding", "promo"}
    assert all(row["qini_coefficient"] is not None for row in scored.qini_summary)


def test_the_page_renders_from_engine_output(report: UpliftReport) -> None:
    page = render_uplift_html(report)
    start = page.index('id="report-data">') + len('id="report-data">')
    embedded = page[start : page.index("</script>", start)]
    assert json.loads(embedded) == report.to_json()
    json.dumps(report.to_json(), allow_nan=False)
