"""Swapping the engine's model while it serves, and sharing the holdout baseline."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from decisioning import (
    BASELINE_STATE_KEY,
    CandidateMessage,
    Decision,
    DecisionRequest,
    LinearThompson,
    SQLitePolicyStateStore,
)
from features.errors import InvalidRequest

if TYPE_CHECKING:  # only for annotations: the fixtures come from conftest
    from conftest import EngineFactory, TickingClock

from conftest import TableModel, make_config, with_holdout

V1 = {"welcome": 0.30, "discount": 0.20, "none": 0.05}
V2 = {"welcome": 0.60, "discount": 0.10, "none": 0.05}
WELCOME_EMAIL = [CandidateMessage("welcome", ("email",))]
EMAIL_COST = 0.01
KEY = "welcome/email/now"
# No caps and no quiet hours: every customer can get the e-mail now, at any hour.
OPEN = make_config(caps=[], quiet_hours=None)


def ask(customer_id: str = "c1") -> DecisionRequest:
    return DecisionRequest(customer_id, WELCOME_EMAIL, slots=["now"])


def welcome_prior(decision: Decision) -> float:
    return decision.scores[KEY].prior


def stored(tmp_path: Path, key: str) -> dict[str, bytes]:
    """Every worker's blob under ``key`` in the engines' store (the fixture's database)."""
    store = SQLitePolicyStateStore(tmp_path / "nudge.db")
    try:
        return store.collect(key)
    finally:
        store.close()


def updates_under(tmp_path: Path, key: str) -> int:
    policy = LinearThompson()
    policy.absorb(list(stored(tmp_path, key).values()))
    return policy.n_updates_


def test_after_a_swap_decisions_use_the_new_model_and_a_fresh_policy_under_its_own_key(
    make_engine: EngineFactory, clock: TickingClock, tmp_path: Path
) -> None:
    engine = make_engine(config=OPEN, model=TableModel(V1), state_key="p/v1")
    for customer in ("c2", "c3", "c1"):  # c2 is a VIP, with a higher prior
        decision = engine.decide(ask(customer))
        engine.record_outcome(decision.decision_id, event="conversion", occurred_at=clock.now)
    learned_on_v1 = engine.policy.version
    assert welcome_prior(decision) == pytest.approx(V1["welcome"] - EMAIL_COST)

    engine.swap_model(TableModel(V2), "v2", "p/v2")

    assert (engine.model_version, engine.state_key) == ("v2", "p/v2")
    after = engine.decide(ask("c1"))
    assert after.model_version == "v2"
    assert welcome_prior(after) == pytest.approx(V2["welcome"] - EMAIL_COST)
    # v2's policy starts from v2's priors, having learned nothing (read before it learns
    # the decision itself).
    assert after.policy_version.endswith("+0")
    # v1's learning was published under v1's key when it left service.
    assert set(stored(tmp_path, "p/v1")) == {engine.worker_id}

    # A rollback finds v1's policy where it was left.
    engine.swap_model(TableModel(V1), "v1", "p/v1")
    assert engine.policy.version == learned_on_v1
    assert welcome_prior(engine.decide(ask("c3"))) == pytest.approx(V1["welcome"] - EMAIL_COST)


def test_a_restarted_engine_on_the_old_version_continues_from_its_state(
    make_engine: EngineFactory, clock: TickingClock
) -> None:
    engine = make_engine(config=OPEN, model=TableModel(V1), state_key="p/v1")
    for customer in ("c1", "c2"):
        decision = engine.decide(ask(customer))
        engine.record_outcome(decision.decision_id, event="conversion", occurred_at=clock.now)
    probe = ask("c3")
    engine.swap_model(TableModel(V2), "v2", "p/v2")
    restarted = make_engine(config=OPEN, model=TableModel(V1), state_key="p/v1", worker_id="later")
    fresh = make_engine(config=OPEN, model=TableModel(V1), state_key="p/v0", worker_id="other")
    assert restarted.policy.version.endswith("+4")  # two decisions and two conversions
    assert restarted.decide(probe).scores[KEY].mean != fresh.decide(probe).scores[KEY].mean


def test_outcomes_of_the_old_versions_decisions_teach_the_old_policy_not_the_new(
    make_engine: EngineFactory, clock: TickingClock
) -> None:
    engine = make_engine(config=OPEN, model=TableModel(V1), state_key="p/v1")
    before = engine.decide(ask("c1"))
    engine.swap_model(TableModel(V2), "v2", "p/v2")
    receipt = engine.record_outcome(before.decision_id, event="conversion", occurred_at=clock.now)
    assert (receipt.credited, receipt.learned) == (True, True)
    assert engine.policy.version.endswith("+0")
    engine.sync()
    # A fresh process on v1 sees the conversion: v1's state is whole for a rollback.
    other = make_engine(config=OPEN, model=TableModel(V1), state_key="p/v1", worker_id="other")
    assert other.policy.version.endswith("+2")


def test_a_model_without_a_configured_arm_is_refused_and_nothing_changes(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(model=TableModel(V1), state_key="p/v1")
    with pytest.raises(InvalidRequest, match=r"messages\.welcome\.model_arm"):
        engine.swap_model(TableModel({"discount": 0.2, "none": 0.1}), "v2", "p/v2")
    assert (engine.model_version, engine.state_key) == ("v1", "p/v1")
    assert engine.decide(ask()).model_version == "v1"


def test_swapping_to_the_version_in_service_does_nothing(make_engine: EngineFactory) -> None:
    engine = make_engine(model=TableModel(V1), state_key="p/v1")
    policy = engine.policy
    engine.swap_model(TableModel(V2), "v1", "p/v1")
    assert engine.policy is policy
    assert welcome_prior(engine.decide(ask())) == pytest.approx(V1["welcome"] - EMAIL_COST)


def test_swaps_under_concurrent_decisions_and_outcomes_keep_each_decision_whole(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    engine = make_engine(
        config=OPEN,
        model=TableModel(V1),
        state_key="p/v1",
        clock=lambda: datetime.now(UTC),
        policy=LinearThompson(seed=0),
    )
    models = {"v1": TableModel(V1), "v2": TableModel(V2)}
    expected = {version: m.priors["welcome"] - EMAIL_COST for version, m in models.items()}
    done = threading.Event()
    errors: list[BaseException] = []

    def work(worker: int) -> list[Decision]:
        made: list[Decision] = []
        try:
            while not done.is_set() or len(made) < 20:
                decision = engine.decide(ask(("c1", "c3")[worker % 2]))  # not c2, a VIP
                made.append(decision)
                if len(made) % 2:
                    engine.record_outcome(
                        decision.decision_id,
                        event="conversion",
                        occurred_at=datetime.now(UTC) + timedelta(milliseconds=1),
                    )
        except BaseException as error:  # reported below, with the thread's own traceback
            errors.append(error)
        return made

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(work, i) for i in range(4)]
        for round_ in range(20):
            # A few decisions between swaps, so that they interleave.
            target = engine.log.count_decisions() + 8
            while engine.log.count_decisions() < target and not errors:
                time.sleep(0.001)
            version = "v2" if round_ % 2 == 0 else "v1"
            engine.swap_model(models[version], version, f"p/{version}")
            engine.sync()
        done.set()
        made = [d for f in futures for d in f.result()]

    assert not errors, errors
    assert {d.model_version for d in made} == {"v1", "v2"}
    for decision in made:
        assert welcome_prior(decision) == pytest.approx(expected[decision.model_version])
    engine.sync()
    # Every decision taught its own version's policy its pending zero, and every other
    # one (the first, third, ... of each thread) a conversion: nothing lost or misfiled
    # across the twenty swaps.
    learned = updates_under(tmp_path, "p/v1") + updates_under(tmp_path, "p/v2")
    conversions = sum((len(f.result()) + 1) // 2 for f in futures)
    assert learned == len(made) + conversions
    v2 = [d for d in made if d.model_version == "v2"]
    assert {d.model_version for d in engine.log.iter_decisions()} == {"v1", "v2"}
    assert len(v2) < len(made)


def test_workers_share_the_holdout_baseline_and_a_restart_keeps_it(
    make_engine: EngineFactory, clock: TickingClock, tmp_path: Path
) -> None:
    config = with_holdout(OPEN, 100.0)
    one = make_engine(config=config, worker_id="one")
    two = make_engine(config=config, worker_id="two")
    for engine, customers in ((one, ("c1", "c2")), (two, ("c3",))):
        for customer in customers:
            decision = engine.decide(ask(customer))
            assert decision.group == "holdout"
    converted = one.log.iter_decisions().__next__()
    one.record_outcome(converted.decision_id, event="conversion", occurred_at=clock.now)
    clock.advance(timedelta(hours=73))
    assert one.finalise_due(limit=2) == 2
    assert two.finalise_due() == 1
    one.sync()
    two.sync()
    one.sync()
    for engine in (one, two):
        assert engine.baseline.count("default") == 3.0
    restarted = make_engine(config=config, worker_id="three")
    assert restarted.baseline.count("default") == 3.0
    assert set(stored(tmp_path, BASELINE_STATE_KEY)) == {"one", "two"}
