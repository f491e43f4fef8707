"""The alert loop: one notification per firing, one per resolution, none again after a restart,
and a broken webhook that breaks nothing. Plus the gauges it refreshes on the way."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from monitoring_support import World, closed_port_url, webhook_server

from decisioning import OutcomeReceipt
from serving.alerts import AlertMonitor, AlertStateStore
from serving.metrics import ApiMetrics
from serving.monitoring import observe_receipt, refresh_gauges
from serving.settings import Settings

KEY = "holdout_contamination:holdout"


@pytest.fixture
def contaminated(tmp_path: Path) -> Iterator[World]:
    """A holdout decision that was delivered anyway: holdout_contamination fires for 7 days."""
    world = World(tmp_path / "state", holdout=100.0)
    world.customers(["h1"])
    decision = world.decide("h1")
    world.outcome(decision, "delivered", after=timedelta(minutes=1))
    yield world
    world.close()


def monitor_for(world: World, url: str | None, metrics: ApiMetrics | None = None) -> AlertMonitor:
    settings = Settings(state_dir=world.state_dir, alert_webhook_url=url)
    return AlertMonitor(settings, world.runtime(), metrics or ApiMetrics())


def test_a_firing_alert_notifies_once_resolves_once_and_a_restart_stays_silent(
    contaminated: World,
) -> None:
    start = contaminated.clock.now + timedelta(minutes=5)
    with webhook_server() as hook:
        monitor = monitor_for(contaminated, hook.url)
        first = monitor.run(start)
        again = monitor.run(start + timedelta(minutes=1))
        monitor.close()

        restarted = monitor_for(contaminated, hook.url)
        after_restart = restarted.run(start + timedelta(minutes=2))
        cleared = restarted.run(start + timedelta(days=8))  # the contact left the 7-day window
        still_clear = restarted.run(start + timedelta(days=8, minutes=1))
        history = restarted.state.history()
        restarted.close()

    assert [(e.key, e.status) for e in first] == [(KEY, "firing")]
    assert (again, after_restart, still_clear) == ([], [], [])
    assert [(e.key, e.status) for e in cleared] == [(KEY, "resolved")]
    assert [(body["alert"], body["status"]) for body in hook.bodies] == [
        (KEY, "firing"),
        (KEY, "resolved"),
    ]
    assert hook.bodies[0]["summary"].startswith("1 contacts of holdout customers")
    assert hook.bodies[1]["details"]["contacts"] == 0
    assert [(r.key, r.status, r.delivered) for r in history] == [
        (KEY, "firing", True),
        (KEY, "resolved", True),
    ]


def test_a_webhook_answering_500_is_retried_once_and_the_alert_still_recorded(
    contaminated: World, caplog: pytest.LogCaptureFixture
) -> None:
    now = contaminated.clock.now + timedelta(minutes=5)
    caplog.set_level(logging.INFO, logger="nudge.alerts")
    with webhook_server(status=500) as hook:
        monitor = monitor_for(contaminated, hook.url)
        events = monitor.run(now)
        open_keys, history = monitor.state.open_keys(), monitor.state.history()
        monitor.close()

    assert [e.key for e in events] == [KEY]
    assert len(hook.bodies) == 2  # the POST and its one retry
    assert open_keys == {KEY}
    assert [(r.key, r.delivered) for r in history] == [(KEY, False)]
    messages = [r.getMessage() for r in caplog.records if r.name == "nudge.alerts"]
    assert any(m.startswith(f"alert {KEY} firing: 1 contacts") for m in messages)
    assert any("did not take" in m and "HTTP 500" in m for m in messages)


def test_an_unreachable_webhook_breaks_nothing(contaminated: World) -> None:
    now = contaminated.clock.now + timedelta(minutes=5)
    monitor = monitor_for(contaminated, closed_port_url())
    try:
        events = monitor.run(now)
        assert [e.key for e in events] == [KEY]
        assert monitor.state.open_keys() == {KEY}
        assert [(r.key, r.delivered) for r in monitor.state.history()] == [(KEY, False)]
        assert monitor.run(now + timedelta(minutes=1)) == []  # recorded: not sent again
    finally:
        monitor.close()


def test_only_the_process_holding_the_lock_evaluates(contaminated: World) -> None:
    now = contaminated.clock.now + timedelta(minutes=5)
    leader, follower = monitor_for(contaminated, None), monitor_for(contaminated, None)
    try:
        assert leader.evaluates()
        assert follower.run(now) == []  # it refreshed its gauges, but judged nothing
        assert [e.key for e in leader.run(now)] == [KEY]
        leader.close()
        assert follower.evaluates()  # the leader is gone: the next one takes over
    finally:
        follower.close()


def test_the_open_alerts_gauge_counts_by_rule(contaminated: World) -> None:
    metrics = ApiMetrics()
    monitor = monitor_for(contaminated, None, metrics)
    try:
        monitor.run(contaminated.clock.now + timedelta(minutes=5))
    finally:
        monitor.close()
    value = metrics.registry.get_sample_value
    assert value("nudge_alerts_firing", {"rule": "holdout_contamination"}) == 1.0
    assert value("nudge_alerts_firing", {"rule": "decision_latency"}) == 0.0


def test_state_survives_in_alerts_db(contaminated: World) -> None:
    monitor = monitor_for(contaminated, None)
    monitor.run(contaminated.clock.now + timedelta(minutes=5))
    monitor.close()
    store = AlertStateStore(contaminated.state_dir / "alerts.db")
    try:
        assert store.open_keys() == {KEY}
    finally:
        store.close()


# -- gauges and counters -------------------------------------------------------------------


def test_a_refresh_replaces_the_previous_gauges(tmp_path: Path) -> None:
    world = World(tmp_path / "state")
    try:
        world.customers([f"c{i}" for i in range(3)])
        decisions = [world.decide(f"c{i}", mandatory=True) for i in range(3)]
        metrics = ApiMetrics()
        refresh_gauges(metrics, world.runtime(), world.clock.now + timedelta(hours=25))
        value = metrics.registry.get_sample_value
        labels = {"journey": "default", "group": decisions[0].group}
        assert value("nudge_conversion_rate", labels) == 0.0
        assert value("nudge_attribution_backlog") == 3.0
        # As of now, no window has closed: the rates disappear rather than stay stale.
        refresh_gauges(metrics, world.runtime(), world.clock.now)
    finally:
        world.close()
    assert value("nudge_conversion_rate", labels) is None
    assert value("nudge_attribution_backlog") == 0.0


def test_conversion_and_reward_rates_by_group(tmp_path: Path) -> None:
    world = World(tmp_path / "state")
    try:
        world.customers([f"c{i}" for i in range(10)])
        decisions = [world.decide(f"c{i}", mandatory=True) for i in range(10)]
        for decision in decisions[:4]:
            world.outcome(decision, "conversion", after=timedelta(minutes=1))
        metrics = ApiMetrics()
        refresh_gauges(metrics, world.runtime(), world.clock.now + timedelta(hours=25))
    finally:
        world.close()
    value = metrics.registry.get_sample_value
    assert value("nudge_attribution_backlog") == 10.0
    for group in {d.group for d in decisions}:
        mine = [d for d in decisions if d.group == group]
        converted = sum(d in decisions[:4] for d in mine)
        labels = {"journey": "default", "group": group}
        assert value("nudge_conversion_rate", labels) == pytest.approx(converted / len(mine))
        # A conversion is worth 1.0 in this journey, so the mean reward equals the rate.
        assert value("nudge_reward_rate", labels) == pytest.approx(converted / len(mine))


def test_observe_receipt_counts_sends_by_channel_once(tmp_path: Path) -> None:
    world = World(tmp_path / "state")
    metrics = ApiMetrics()
    try:
        world.customers(["c1", "c2"])
        email = world.decide("c1", mandatory=True)
        sms = world.decide("c2", mandatory=True, channels=("sms",))
        receipts: list[OutcomeReceipt] = []
        for decision, event in [(email, "delivered"), (email, "open"), (sms, "hard_bounce")]:
            receipts.append(
                world.engine.record_outcome(
                    decision.decision_id, event=event, occurred_at=decision.decided_at
                )
            )
        receipts.append(  # the same delivery posted twice counts once
            world.engine.record_outcome(
                email.decision_id, event="delivered", occurred_at=email.decided_at
            )
        )
        counted = [observe_receipt(metrics, world.log, r) for r in receipts]
    finally:
        world.close()
    assert counted == [True, False, True, False]
    value = metrics.registry.get_sample_value
    assert value("nudge_sends_total", {"channel": "email", "status": "delivered"}) == 1.0
    assert value("nudge_sends_total", {"channel": "sms", "status": "failed"}) == 1.0
    assert value("nudge_sends_total", {"channel": "email", "status": "failed"}) is None


def test_feature_age_is_infinite_for_a_view_never_materialised() -> None:
    from serving.monitoring import apply_readings

    metrics = ApiMetrics()
    apply_readings(metrics, ages={"profile": None, "orders": 3600.0})
    value = metrics.registry.get_sample_value
    assert value("nudge_feature_age_seconds", {"view": "profile"}) == math.inf
    assert value("nudge_feature_age_seconds", {"view": "orders"}) == 3600.0


def test_a_round_sets_the_data_quality_gauges_and_waits_its_interval(tmp_path: Path) -> None:
    import pandas as pd

    from features import EventLog

    world = World(tmp_path / "state")
    try:
        profiles = pd.DataFrame(
            {
                "customer_id": ["c1", "c1", "c2", "c3"],  # c1 twice: a duplicate key
                "recency": [1.0, 1.0, None, 3.0],
                "event_timestamp": pd.Timestamp("2026-01-01", tz="UTC"),
            }
        )
        settings = Settings(state_dir=world.state_dir, data_check_interval=300)
        EventLog(settings.events_dir).write("outcomes", profiles)
        metrics = ApiMetrics()
        monitor = AlertMonitor(settings, world.runtime(), metrics)
        monitor.run(world.clock.now)
        value = metrics.registry.get_sample_value
        labels = {"source": "outcomes"}
        assert value("nudge_data_duplicate_rate", labels) == 0.25
        assert value("nudge_data_null_rate_max", labels) == 0.25
        assert value("nudge_data_problems", labels) == 2.0  # duplicates and nulls
        # Within the interval the tables are not read again.
        EventLog(settings.events_dir).write("outcomes", profiles.drop_duplicates("customer_id"))
        monitor.run(world.clock.now + timedelta(seconds=60))
        assert value("nudge_data_duplicate_rate", labels) == 0.25
        monitor.run(world.clock.now + timedelta(seconds=301))
        assert value("nudge_data_duplicate_rate", labels) == 0.0
        monitor.close()
    finally:
        world.close()
