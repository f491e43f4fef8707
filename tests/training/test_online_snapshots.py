"""Snapshots of the online learners' state in a real MLflow store, and their restore.

Real engines over real SQLite stores learn from real outcomes; only the
feature store and the offline model are small stand-ins.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from decisioning import (
    CandidateMessage,
    Context,
    DecisionEngine,
    DecisionRequest,
    EpsilonGreedy,
    JointAction,
    LinearThompson,
    Policy,
    SQLiteDecisionLog,
    SQLitePolicyStateStore,
)
from decisioning.config import parse_decision_config
from decisioning.contact_store import ChannelState, ContactProfile
from decisioning.sqlite_contact import SQLiteContactStore
from features import FeatureRow, FeatureValue, InvalidRequest, NotFound
from serving.cli import main
from serving.metrics import ApiMetrics
from serving.online_state import StateSnapshotter
from serving.settings import Settings
from serving.wiring import Runtime, policy_state_key
from training.online_snapshots import (
    EXPERIMENT,
    load_online_state,
    restore_policy_state,
    snapshot_policy_state,
)

MODEL = "nudge-propensity"
CUSTOMERS = [f"c{i:02d}" for i in range(90)]
CONFIG = parse_decision_config(
    {
        "channels": {"email": {"cost": 0.0}},
        "messages": {
            "mens": {"channels": ["email"], "model_arm": "mens"},
            "womens": {"channels": ["email"], "model_arm": "womens"},
        },
        "control_arm": "none",
        "slots": ["now"],
        "caps": [],
        "holdout": {"percent": 30, "salt": "snapshots"},
        "exploration": 0.1,
        "rewards": {"default": {"attribution_window": "1h", "conversions": {"visit": 1.0}}},
    }
)
BOTH = [CandidateMessage("mens"), CandidateMessage("womens")]


class FixedModel:
    """A PriorModel with the same priors for everyone."""

    actions = ("mens", "womens", "none")

    def predict_one(self, features: Mapping[str, FeatureValue]) -> dict[str, float]:
        return {"mens": 0.15, "womens": 0.10, "none": 0.05}


class NoFeatures:
    def get(self, customer_id: str) -> FeatureRow:
        return FeatureRow(customer_id, {}, ())


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 9, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@pytest.fixture(scope="module")
def registry_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow store with a champion, made once: a new store's migrations take seconds."""
    settings = Settings(state_dir=tmp_path_factory.mktemp("registry"))
    # The champion only has to resolve to a version for the CLI: nothing loads it.
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    client.create_registered_model(MODEL)
    version = client.create_model_version(MODEL, source=settings.state_dir.as_uri())
    client.set_registered_model_alias(MODEL, "champion", version.version)
    return settings.mlflow_db


@pytest.fixture
def settings(tmp_path: Path, registry_db: Path) -> Settings:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    shutil.copyfile(registry_db, state_dir / registry_db.name)
    return Settings(state_dir=state_dir)


@pytest.fixture
def contacts(settings: Settings) -> Iterator[SQLiteContactStore]:
    store = SQLiteContactStore(settings.contact_db)
    email = {"email": ChannelState(consent="opted_in", reachable=True)}
    store.load_profiles([ContactProfile(c, email, None) for c in CUSTOMERS])
    yield store
    store.close()


EngineFactory = Callable[[str, Policy], DecisionEngine]


@pytest.fixture
def make_engine(
    settings: Settings, contacts: SQLiteContactStore
) -> Iterator[tuple[EngineFactory, Clock]]:
    clock = Clock()
    opened: list[Any] = []

    def build(worker: str, policy: Policy) -> DecisionEngine:
        log = SQLiteDecisionLog(settings.decision_db)
        state = SQLitePolicyStateStore(settings.decision_db)
        opened.extend([log, state])
        return DecisionEngine(
            config=CONFIG,
            features=NoFeatures(),
            model=FixedModel(),
            model_version="1",
            policy=policy,
            log=log,
            state=state,
            contacts=contacts,
            state_key=key_of(settings, policy),
            clock=clock,
            worker_id=worker,
        )

    yield build, clock
    for store in opened:
        store.close()


def key_of(settings: Settings, policy: Policy) -> str:
    name = "linear_ts" if isinstance(policy, LinearThompson) else "epsilon_greedy"
    return policy_state_key(settings.model_copy(update={"policy": name}), MODEL, "1")


def learn(engine: DecisionEngine, clock: Clock, customers: list[str], seed: int) -> None:
    """Decide for each customer, post a visit for some, and let every window close."""
    rng = np.random.default_rng(seed)
    for customer in customers:
        decision = engine.decide(DecisionRequest(customer, BOTH))
        if rng.random() < 0.3:
            engine.record_outcome(decision.decision_id, event="visit", occurred_at=clock.now)
    clock.now += timedelta(hours=2)
    engine.finalise_due()
    engine.sync()


PROBE = Context("probe", {}, {"mens/email/now": 0.15, "womens/email/now": 0.10, "no_send": 0.05})
PROBE_ACTIONS = [
    JointAction("mens", "email", "now", None),
    JointAction("womens", "email", "now", None),
    JointAction.no_send(),
]


def learned_state(engine: DecisionEngine) -> dict[str, Any]:
    """Everything the engine's online learners hold, as exactly comparable values."""
    policy = engine.policy
    state: dict[str, Any] = {
        "holdout windows": engine.baseline.count("default"),
        "holdout mean": engine.baseline.mean("default"),
    }
    if isinstance(policy, LinearThompson):
        mean, sd = policy.predict(PROBE, PROBE_ACTIONS)
        state.update(
            updates=policy.n_updates_, coef=policy.coef_, mean=mean.tolist(), sd=sd.tolist()
        )
    elif isinstance(policy, EpsilonGreedy):
        recalibrator = policy.recalibrator_
        state.update(
            updates=recalibrator.total_updates,
            corrected={
                key: [recalibrator.predict_one(key, p) for p in (0.05, 0.1, 0.15)]
                for key in ("mens/email/now", "womens/email/now")
            },
        )
    return state


@pytest.mark.parametrize("make_policy", [LinearThompson, EpsilonGreedy])
def test_a_restore_brings_back_exactly_the_snapshotted_state(
    settings: Settings,
    make_engine: tuple[EngineFactory, Clock],
    make_policy: Callable[[], Policy],
) -> None:
    build, clock = make_engine
    first = build("w1", make_policy())
    learn(first, clock, CUSTOMERS[:40], seed=1)
    snapshotted = learned_state(first)
    assert snapshotted["updates"] > 0
    assert snapshotted["holdout windows"] > 0

    store = SQLitePolicyStateStore(settings.decision_db)
    try:
        run_id = snapshot_policy_state(
            settings,
            store,
            state_key=first.state_key,
            model_name=MODEL,
            model_version="1",
            policy=make_policy(),
        )
        # More learning after the snapshot, by this worker and by one that did not exist then.
        learn(first, clock, CUSTOMERS[40:60], seed=2)
        later = build("w2", make_policy())
        learn(later, clock, CUSTOMERS[60:], seed=3)
        first.close()
        later.close()
        assert learned_state(build("probe-before", make_policy())) != snapshotted

        restored = restore_policy_state(settings, store, run_id)
    finally:
        store.close()

    assert (restored.state_key, restored.model_version) == (first.state_key, "1")
    assert learned_state(build("after-restart", make_policy())) == snapshotted


def test_a_snapshot_is_a_tagged_run_of_its_own_experiment(
    settings: Settings, make_engine: tuple[EngineFactory, Clock]
) -> None:
    build, clock = make_engine
    engine = build("w1", LinearThompson())
    learn(engine, clock, CUSTOMERS[:20], seed=1)
    store = SQLitePolicyStateStore(settings.decision_db)
    try:
        run_id = snapshot_policy_state(
            settings,
            store,
            state_key=engine.state_key,
            model_name=MODEL,
            model_version="1",
            policy=LinearThompson(),
        )
    finally:
        store.close()
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    tags = run.data.tags
    assert tags["nudge.model_version"] == "1"
    assert tags["nudge.state_key"] == engine.state_key
    assert tags["nudge.updates_learned"] == str(learned_state(engine)["updates"])
    assert tags["nudge.policy"] == engine.policy.version
    assert tags["nudge.workers"] == "1"
    state = load_online_state(settings, run_id)
    assert set(state.policy) == {"w1"}
    assert set(state.baseline) == {"w1"}


def test_restoring_an_unknown_or_foreign_run_names_it(settings: Settings) -> None:
    store = SQLitePolicyStateStore(settings.decision_db)
    try:
        with pytest.raises(NotFound, match="online-state snapshot run 'no-such-run' not found"):
            restore_policy_state(settings, store, "no-such-run")
        client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
        other = client.create_run(client.create_experiment("something-else")).info.run_id
        with pytest.raises(InvalidRequest, match=r"`run_id` must be a run of experiment"):
            restore_policy_state(settings, store, other)
        assert store.collect(policy_state_key(settings, MODEL, "1")) == {}
    finally:
        store.close()


def test_a_damaged_snapshot_is_refused_and_nothing_is_written(
    settings: Settings, make_engine: tuple[EngineFactory, Clock]
) -> None:
    build, clock = make_engine
    engine = build("w1", LinearThompson())
    learn(engine, clock, CUSTOMERS[:10], seed=1)
    store = SQLitePolicyStateStore(settings.decision_db)
    try:
        run_id = snapshot_policy_state(
            settings,
            store,
            state_key=engine.state_key,
            model_name=MODEL,
            model_version="1",
            policy=LinearThompson(),
        )
        (blob,) = settings.mlflow_artifact_root.rglob("policy-0.bin")
        blob.write_bytes(b"tampered")
        before = store.collect(engine.state_key)
        with pytest.raises(InvalidRequest, match="SHA-256"):
            restore_policy_state(settings, store, run_id)
        assert store.collect(engine.state_key) == before
    finally:
        store.close()


def test_the_server_snapshots_on_its_schedule_once_per_state_folder_and_change(
    settings: Settings, make_engine: tuple[EngineFactory, Clock]
) -> None:
    build, clock = make_engine
    engine = build("w1", LinearThompson())
    runtime = Runtime(engine=engine, model_name=MODEL, model_version="1")
    one = StateSnapshotter(settings, runtime, ApiMetrics())
    two = StateSnapshotter(settings, runtime, ApiMetrics())
    try:
        learn(engine, clock, CUSTOMERS[:10], seed=1)
        first = one.run_once()
        assert first is not None
        assert two.run_once() is None  # another worker holds the state folder's lock
        assert one.run_once() is None  # nothing learned since
        unchanged = one.metrics.registry.get_sample_value(
            "nudge_online_state_snapshots_total", {"result": "unchanged"}
        )
        assert unchanged == 1.0
        learn(engine, clock, CUSTOMERS[10:20], seed=2)
        second = one.run_once()
        assert second not in (None, first)
        one.close()
        assert two.run_once() is not None  # takes over once the first lets go
    finally:
        one.close()
        two.close()


def test_the_cli_snapshots_the_champions_state_and_restores_it(
    settings: Settings,
    make_engine: tuple[EngineFactory, Clock],
    capsys: pytest.CaptureFixture[str],
) -> None:
    build, clock = make_engine
    engine = build("w1", LinearThompson())
    learn(engine, clock, CUSTOMERS[:20], seed=1)
    snapshotted = learned_state(engine)
    state_dir = str(settings.state_dir)

    assert main(["models", "snapshot", "--state-dir", state_dir]) == 0
    out = capsys.readouterr().out
    assert f"{engine.state_key}: 1 worker" in out
    run_id = out.split("as run ")[1].split()[0]

    learn(engine, clock, CUSTOMERS[20:40], seed=2)
    engine.close()
    assert main(["models", "restore", run_id, "--state-dir", state_dir]) == 0
    assert "Start (or restart) the API" in capsys.readouterr().out
    assert learned_state(build("restarted", LinearThompson())) == snapshotted

    assert main(["models", "restore", "nope", "--state-dir", state_dir]) == 2
    assert "online-state snapshot run 'nope' not found" in capsys.readouterr().err
