"""Each alert fires on a real situation and keeps quiet on a near miss.

The inputs are built by :class:`AlertMonitor` from a real SQLite decision log
that a real DecisionEngine filled (see monitoring_support), a real Feast repo
and a real Prometheus histogram, then judged by the pure rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from monitoring_support import START, World

from features import PROFILE_VIEW, FeatureRepo
from features.definitions import PROFILE_FEATURE_TYPES
from serving.alerts import AlertInputs, AlertMonitor, AlertThresholds, Finding, evaluate_alerts
from serving.alerts.rules import RULES
from serving.log_readings import ScanWindows
from serving.metrics import ApiMetrics
from serving.settings import Settings


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path / "state")
    yield w
    w.close()


def monitor_of(
    world: World, *, metrics: ApiMetrics | None = None, **thresholds: Any
) -> AlertMonitor:
    settings = Settings(state_dir=world.state_dir)
    return AlertMonitor(
        settings,
        world.runtime(),
        metrics or ApiMetrics(),
        thresholds=AlertThresholds.from_settings(settings, **thresholds),
        notifiers=[],
    )


def inputs_at(world: World, now: datetime, **thresholds: Any) -> AlertInputs:
    monitor = monitor_of(world, **thresholds)
    try:
        return monitor.inputs(now)
    finally:
        monitor.close()


def findings_of(inputs: AlertInputs, rule: str) -> dict[str, Finding]:
    return {finding.subject: finding for finding in RULES[rule](inputs)}


# -- send_failure_spike ------------------------------------------------------------------


def send_and_report(world: World, count: int, events: list[str], after: timedelta) -> None:
    customers = [f"s{i}" for i in range(count)]
    world.customers(customers)
    for customer, event in zip(customers, events, strict=True):
        decision = world.decide(customer, mandatory=True)
        world.outcome(decision, event, after=after)


def test_send_failure_spike_fires_on_a_channel_failing_a_third_of_its_sends(world: World) -> None:
    events = ["delivered"] * 40 + ["bounce"] * 10 + ["hard_bounce"] * 6 + ["soft_bounce"] * 4
    send_and_report(world, 60, events, after=timedelta(minutes=10))
    inputs = inputs_at(world, world.clock.now + timedelta(minutes=30))

    email = findings_of(inputs, "send_failure_spike")["email"]
    assert email.firing
    assert (email.details["failed"], email.details["delivered"]) == (20, 40)
    assert email.details["failure_rate"] == pytest.approx(1 / 3)
    assert [event.key for event in evaluate_alerts(inputs)] == ["send_failure_spike:email"]


def test_send_failure_spike_stays_quiet_on_old_failures_and_a_normal_hour(world: World) -> None:
    # 40 bounces two hours ago are outside the hour; the last hour fails 5 %.
    send_and_report(world, 40, ["bounce"] * 40, after=timedelta(0))
    world.clock.now += timedelta(hours=2)
    send_and_report(world, 60, ["delivered"] * 57 + ["bounce"] * 3, after=timedelta(minutes=1))
    inputs = inputs_at(world, world.clock.now + timedelta(minutes=30))

    email = findings_of(inputs, "send_failure_spike")["email"]
    assert not email.firing
    assert (email.details["failed"], email.details["delivered"]) == (3, 57)
    assert evaluate_alerts(inputs) == []


def test_send_failure_spike_needs_enough_sends_to_judge(world: World) -> None:
    send_and_report(world, 10, ["bounce"] * 10, after=timedelta(minutes=1))
    inputs = inputs_at(world, world.clock.now + timedelta(minutes=30))
    assert findings_of(inputs, "send_failure_spike") == {}  # 100 % of 10 sends: not judged


# -- conversion_drop ---------------------------------------------------------------------


def convert_over_eight_days(world: World, recent_percent: int, recent: int = 200) -> datetime:
    """800 decisions over days 0-6 of which 30 % convert, then ``recent`` on day 7 of which
    ``recent_percent`` % convert.

    Windows last 24 h, so the baseline's close over days 1-7 and the recent ones on day 8.
    """
    world.customers([f"k{i}" for i in range(1000)])
    for i in range(800):
        world.clock.now = START + i * timedelta(days=6) / 800
        decision = world.decide(f"k{i}", mandatory=True)
        if i % 10 < 3:
            world.outcome(decision, "conversion", after=timedelta(minutes=1))
    for i in range(recent):
        world.clock.now = START + timedelta(days=7, minutes=i)
        decision = world.decide(f"k{800 + i}", mandatory=True)
        if i % 100 < recent_percent:
            world.outcome(decision, "conversion", after=timedelta(minutes=1))
    return START + timedelta(days=8, hours=4)


def test_conversion_drop_fires_when_the_last_day_converts_a_third_as_often(world: World) -> None:
    now = convert_over_eight_days(world, recent_percent=10)
    inputs = inputs_at(world, now)

    journey = findings_of(inputs, "conversion_drop")["default"]
    assert journey.firing
    assert (journey.details["recent_decisions"], journey.details["baseline_decisions"]) == (
        200,
        800,
    )
    assert journey.details["recent_rate"] == pytest.approx(0.10)
    assert journey.details["baseline_rate"] == pytest.approx(0.30)
    assert float(journey.details["p_value"]) < 1e-6


def test_conversion_drop_stays_quiet_on_a_small_dip(world: World) -> None:
    now = convert_over_eight_days(world, recent_percent=29)
    inputs = inputs_at(world, now)

    journey = findings_of(inputs, "conversion_drop")["default"]
    assert not journey.firing
    assert journey.details["recent_rate"] == pytest.approx(0.29)
    assert float(journey.details["p_value"]) > 0.5


def test_a_big_drop_that_is_not_significant_stays_quiet(world: World) -> None:
    # 30 % → 20 % is a third down, but on 100 decisions a z-test cannot tell (p ≈ 0.03).
    now = convert_over_eight_days(world, recent_percent=20, recent=100)
    inputs = inputs_at(world, now)
    journey = findings_of(inputs, "conversion_drop")["default"]
    assert float(journey.details["relative_drop"]) == pytest.approx(1 / 3)
    assert 0.01 < float(journey.details["p_value"]) < 0.05
    assert not journey.firing


# -- stale_features ----------------------------------------------------------------------

MATERIALISED = datetime(2024, 5, 1, 0, 0, tzinfo=START.tzinfo)


@pytest.fixture(scope="module")
def feast_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Feast repo whose profile view was materialised up to MATERIALISED."""
    state_dir = tmp_path_factory.mktemp("feast") / "state"
    n = 20
    kinds = {"Int64": np.arange(n), "Float64": np.linspace(0, 1, n), "String": ["Web"] * n}
    profiles = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "event_timestamp": pd.Timestamp(MATERIALISED - timedelta(days=1)),
            "created_at": pd.Timestamp(MATERIALISED - timedelta(days=1)),
            **{name: kinds[kind] for name, kind in PROFILE_FEATURE_TYPES.items()},
        }
    )
    path = state_dir / "profiles.parquet"
    state_dir.mkdir(parents=True)
    profiles.to_parquet(path)
    repo = FeatureRepo(state_dir)
    repo.apply(path)
    repo.materialize(end=MATERIALISED, start=MATERIALISED - timedelta(days=30))
    return state_dir


def stale_inputs(tmp_path: Path, feast_state: Path, now: datetime) -> AlertInputs:
    world = World(feast_state)  # the decision log lives beside the Feast repo
    try:
        return inputs_at(world, now)
    finally:
        world.close()


def test_stale_features_fires_three_days_after_the_last_materialisation(
    tmp_path: Path, feast_state: Path
) -> None:
    inputs = stale_inputs(tmp_path, feast_state, MATERIALISED + timedelta(hours=72))
    assert inputs.feature_ages == {PROFILE_VIEW: 72 * 3600.0}
    view = findings_of(inputs, "stale_features")[PROFILE_VIEW]
    assert view.firing
    assert view.summary == (
        f"feature view {PROFILE_VIEW}: its last materialisation ended 3.0 days ago "
        "(alert above 48 h)"
    )
    assert [e.key for e in evaluate_alerts(inputs)] == [f"stale_features:{PROFILE_VIEW}"]


def test_stale_features_stays_quiet_within_the_maximum_age(
    tmp_path: Path, feast_state: Path
) -> None:
    inputs = stale_inputs(tmp_path, feast_state, MATERIALISED + timedelta(hours=47))
    view = findings_of(inputs, "stale_features")[PROFILE_VIEW]
    assert not view.firing
    assert view.details["age_seconds"] == 47 * 3600.0


def test_a_view_never_materialised_is_stale() -> None:
    from serving.log_readings import LogReadings

    inputs = AlertInputs(log=LogReadings(now=START), feature_ages={"new_view": None})
    assert [e.summary for e in evaluate_alerts(inputs)] == [
        "feature view new_view has never been materialised"
    ]


# -- model_drift -------------------------------------------------------------------------

DRIFT = {"windows": ScanWindows(drift_reference=400, drift_recent=400), "drift_min_recent": 400}


def decide_population(
    world: World, prefix: str, recency_mean: float, web_share: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    ids = [f"{prefix}{i}" for i in range(400)]
    recency = [int(v) for v in np.clip(np.round(rng.normal(recency_mean, 10, 400)), 1, 99)]
    channel: list[object] = ["Web" if u < web_share else "Phone" for u in rng.random(400)]
    world.customers(ids, recency=recency, channel=channel)  # type: ignore[arg-type]
    for customer in ids:
        world.clock.now += timedelta(minutes=1)
        world.decide(customer)


def test_model_drift_fires_naming_the_shifted_input_and_the_score_it_moves(world: World) -> None:
    decide_population(world, "r", recency_mean=30, web_share=0.5, seed=1)
    decide_population(world, "s", recency_mean=60, web_share=0.8, seed=2)
    inputs = inputs_at(world, world.clock.now, **DRIFT)

    drift = findings_of(inputs, "model_drift")
    firing = {name for name, finding in drift.items() if finding.firing}
    assert firing == {"recency", "channel", "score:welcome"}
    # Three standard deviations apart: far beyond the 0.2 threshold.
    assert float(drift["recency"].details["psi"]) > 2.0
    # 50/50 → 80/20: (0.8-0.5) ln 1.6 + (0.2-0.5) ln 0.4 = 0.416, give or take sampling.
    assert float(drift["channel"].details["psi"]) == pytest.approx(0.416, abs=0.12)
    assert not drift["score:no_send"].firing  # the no-send prior is a constant
    assert drift["recency"].details["reference"] == 400
    assert "recency" in drift["recency"].summary


def test_model_drift_stays_quiet_when_new_customers_look_like_the_first(world: World) -> None:
    decide_population(world, "r", recency_mean=30, web_share=0.5, seed=1)
    decide_population(world, "s", recency_mean=30, web_share=0.5, seed=2)
    inputs = inputs_at(world, world.clock.now, **DRIFT)

    drift = findings_of(inputs, "model_drift")
    assert set(drift) == {"recency", "channel", "score:welcome", "score:no_send"}
    assert max(float(f.details["psi"]) for f in drift.values()) < 0.1
    assert not any(f.firing for f in drift.values())


def test_model_drift_waits_for_a_full_reference_and_recent_window(world: World) -> None:
    decide_population(world, "r", recency_mean=30, web_share=0.5, seed=1)
    inputs = inputs_at(world, world.clock.now, **DRIFT)
    assert findings_of(inputs, "model_drift") == {}  # the first 400 are the reference alone


# -- decision_latency --------------------------------------------------------------------


def latency_inputs(world: World, seconds: list[float]) -> AlertInputs:
    metrics = ApiMetrics()
    for value in seconds:
        metrics.decision_latency.observe(value)
    monitor = monitor_of(world, metrics=metrics)
    try:
        return monitor.inputs(START)
    finally:
        monitor.close()


def test_decision_latency_fires_when_the_p99_is_over_the_objective(world: World) -> None:
    inputs = latency_inputs(world, [0.001] * 50 + [0.02] * 150)
    latency = findings_of(inputs, "decision_latency")["p99"]
    assert latency.firing
    # 198th of 200 falls in the (10 ms, 25 ms] bucket: 10 + 15 × (198 - 50) / 150 = 24.8 ms.
    assert latency.details["milliseconds"] == pytest.approx(24.8)
    assert latency.details["count"] == 200


def test_decision_latency_stays_quiet_when_a_few_slow_decisions_stay_under_the_p99(
    world: World,
) -> None:
    inputs = latency_inputs(world, [0.003] * 500 + [0.02] * 4)
    latency = findings_of(inputs, "decision_latency")["p99"]
    assert not latency.firing
    assert float(latency.details["milliseconds"]) <= 5.0


# -- holdout_contamination ---------------------------------------------------------------


def test_holdout_contamination_fires_on_a_delivered_holdout_decision(tmp_path: Path) -> None:
    world = World(tmp_path / "state", holdout=100.0)
    try:
        world.customers(["h1", "h2"])
        held = world.decide("h1")
        world.decide("h2")
        assert held.group == "holdout"
        world.outcome(held, "delivered", after=timedelta(minutes=2))
        inputs = inputs_at(world, world.clock.now + timedelta(hours=1))
    finally:
        world.close()
    finding = findings_of(inputs, "holdout_contamination")["holdout"]
    assert finding.firing
    assert finding.details == {"contacts": 1, "decision_ids": held.decision_id}
    assert "'delivered' outcome" in finding.summary


def test_holdout_contamination_fires_on_a_send_after_the_customer_joined(tmp_path: Path) -> None:
    world = World(tmp_path / "state", holdout=0.0)
    try:
        world.customers(["h1"])
        before = world.decide("h1", mandatory=True)  # sent while no one was held out
        world.clock.now += timedelta(hours=1)
        world.set_holdout(100.0)
        world.clock.now += timedelta(hours=1)
        after = world.decide("h1", mandatory=True)  # a step that must send: still a contact
        inputs = inputs_at(world, world.clock.now + timedelta(minutes=5))
    finally:
        world.close()
    assert (before.action.is_send, after.action.is_send) == (True, True)
    assert after.group in {"policy", "explore"}  # not a holdout decision: the step must send
    finding = findings_of(inputs, "holdout_contamination")["holdout"]
    assert finding.firing
    assert finding.details["decision_ids"] == after.decision_id
    assert "sent after joining the holdout" in finding.summary


def test_holdout_contamination_stays_quiet_for_clean_holdouts_and_earlier_sends(
    tmp_path: Path,
) -> None:
    world = World(tmp_path / "state", holdout=0.0)
    try:
        world.customers(["h1", "h2"])
        world.outcome(world.decide("h1", mandatory=True), "delivered")  # before joining
        world.clock.now += timedelta(hours=1)
        world.set_holdout(100.0)
        world.clock.now += timedelta(hours=1)
        held = world.decide("h2")
        world.outcome(held, "conversion", after=timedelta(minutes=5))  # converts on its own
        world.outcome(held, "visit", after=timedelta(minutes=6))
        inputs = inputs_at(world, world.clock.now + timedelta(hours=1))
    finally:
        world.close()
    finding = findings_of(inputs, "holdout_contamination")["holdout"]
    assert held.group == "holdout"
    assert not finding.firing
    assert finding.details["contacts"] == 0


def test_rules_leave_out_what_they_cannot_judge() -> None:
    from serving.log_readings import LogReadings

    inputs = AlertInputs(log=LogReadings(now=START))
    assert {rule: len(RULES[rule](inputs)) for rule in RULES} == {
        "send_failure_spike": 0,
        "conversion_drop": 0,
        "stale_features": 0,
        "model_drift": 0,
        "decision_latency": 0,
        "holdout_contamination": 1,  # no contact seen is a verdict: clean
    }
