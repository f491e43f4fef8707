"""Score-triggered journeys: hysteresis, durable crossing state, batch and real-time paths."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from journey_harness import DECISIONS, Clock, Features, Priors, build_runner

from decisioning import DecisionEngine, LinearThompson, SQLiteDecisionLog, SQLitePolicyStateStore
from decisioning.config import DEFAULT_CONFIG, load_decision_config, parse_decision_config
from decisioning.contact_store import ChannelState, ContactProfile
from decisioning.sqlite_contact import SQLiteContactStore
from features.errors import InvalidRequest
from features.event_stream import CustomerEvent, EventStream
from features.sql import SQLiteDatabase
from journeys import (
    DEFAULT_JOURNEYS_DIR,
    JourneyFileError,
    ScoreState,
    ScoreStateStore,
    ScoreTrigger,
    ScoreTriggers,
    load_journey,
    next_state,
    parse_journey,
    validate_against,
)
from journeys.runner import JourneyRunner
from journeys.store import JourneyStore

LAPSE = """
journey: lapse
trigger:
  score: {model: test-churn, above: 0.6, reset_below: 0.4}
entry: {reentry: true}
goal: purchase
steps:
  - id: offer
    decide: {candidates: [{message: discount_10, channels: [email]}]}
  - id: send_it
    send: {}
"""


class Scores:
    """A Scorer whose scores the test sets."""

    def __init__(self) -> None:
        self.now: dict[str, float] = {}
        self.asked: list[list[str]] = []

    def score(self, customer_ids: Sequence[str]) -> dict[str, float]:
        self.asked.append(list(customer_ids))
        return {c: self.now[c] for c in customer_ids if c in self.now}


@dataclass
class World:
    runner: JourneyRunner
    store: JourneyStore
    stream: EventStream
    engine: DecisionEngine
    log: SQLiteDecisionLog
    scores: Scores
    triggers: ScoreTriggers
    clock: Clock
    n: int = 0

    def event(self, customer: str, kind: str) -> None:
        self.n += 1
        self.stream.append([CustomerEvent(f"e{self.n}", customer, kind, self.clock.now, {})])

    def entries(self, customer: str = "c1") -> int:
        return len(self.store.instances_of(customer, "lapse"))


def _world(tmp_path: Path, clock: Clock, scores: Scores) -> World:
    contacts = SQLiteContactStore(tmp_path / "contacts.db")
    every = ChannelState(consent="opted_in", reachable=True)
    contacts.load_profiles([ContactProfile(c, {"email": every}, "UTC") for c in ("c1", "c2")])
    log = SQLiteDecisionLog(tmp_path / "decisions.db")
    engine = DecisionEngine(
        config=parse_decision_config(DECISIONS),
        features=Features({}),
        model=Priors(),
        model_version="v1",
        policy=LinearThompson(seed=0),
        log=log,
        state=SQLitePolicyStateStore(tmp_path / "decisions.db"),
        contacts=contacts,
        clock=clock,
        seed=0,
    )
    runner, stream, store, _ = build_runner(tmp_path, engine, clock, LAPSE)
    triggers = ScoreTriggers(journeys=runner.journeys, store=store, scorers={"test-churn": scores})
    runner.scores = triggers
    return World(runner, store, stream, engine, log, scores, triggers, clock)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = _world(tmp_path, Clock(), Scores())
    yield built
    built.engine.close()
    built.store.close()
    built.stream.close()


# -- hysteresis -------------------------------------------------------------------------


def test_noise_around_the_threshold_triggers_once_and_reset_rearms() -> None:
    trigger = ScoreTrigger("m", above=0.6, reset_below=0.4)
    state: ScoreState | None = None
    fired = []
    for score in (0.3, 0.61, 0.58, 0.63, 0.41, 0.62, 0.39, 0.45, 0.61):
        state, crossed = next_state(trigger, state, score, now=0.0)
        fired.append(crossed)
    assert fired == [False, True, False, False, False, False, False, False, True]
    assert state is not None
    assert state.crossings == 2
    assert not state.armed


def test_batch_pass_enters_once_per_crossing(world: World) -> None:
    for score in (0.5, 0.65, 0.59, 0.7, 0.62):
        world.scores.now = {"c1": score, "c2": 0.1}
        world.triggers.score_all(["c1", "c2"], world.clock.now)
        world.runner.run_once()
        world.clock.advance(timedelta(hours=1))
    assert world.entries("c1") == 1
    assert world.entries("c2") == 0
    state = world.triggers.states.get("lapse", "c1")
    assert state is not None
    assert (state.score, state.armed, state.crossings) == (0.62, False, 1)
    # Down below reset_below re-arms; the next rise is a second crossing and entry.
    for score in (0.35, 0.8):
        world.scores.now = {"c1": score}
        crossings = world.triggers.score_all(["c1"], world.clock.now)
        world.runner.run_once()
    assert [(c.customer_id, c.number, c.entered) for c in crossings] == [("c1", 2, True)]
    assert world.entries("c1") == 2


def test_a_purchase_before_the_crossing_is_not_the_goal(world: World) -> None:
    # The runner is behind: a purchase from before the crossing is read after the entry.
    world.clock.advance(-timedelta(days=2))
    world.event("c1", "purchase")
    world.clock.advance(timedelta(days=2))
    world.scores.now = {"c1": 0.8}
    world.triggers.score_all(["c1"], world.clock.now)
    world.runner.run_once()
    (instance,) = world.store.instances_of("c1", "lapse")
    assert instance.status == "active"
    # A purchase after the crossing is.
    world.clock.advance(timedelta(hours=1))
    world.event("c1", "purchase")
    world.runner.run_once()
    (instance,) = world.store.instances_of("c1", "lapse")
    assert instance.end_reason == "goal:purchase"


def test_the_decision_is_logged_with_the_score_that_caused_it(world: World) -> None:
    world.scores.now = {"c1": 0.73}
    world.triggers.score_all(["c1"], world.clock.now)
    world.runner.run_once()
    (instance,) = world.store.instances_of("c1", "lapse")
    assert instance.state["trigger"]["score"]["score"] == pytest.approx(0.73)
    decision_id = instance.state["decisions"]["offer"]["decision_id"]
    logged = world.log.get_decision(decision_id)
    assert logged.features["trigger_score"] == pytest.approx(0.73)
    assert logged.features["trigger_model"] == "test-churn"


# -- real time ----------------------------------------------------------------------------


def test_an_activity_event_rescores_that_customer_in_real_time(world: World) -> None:
    world.scores.now = {"c1": 0.9, "c2": 0.9}
    world.event("c1", "page_view")
    world.event("c1", "winback_due")  # not an activity event: nothing is rescored for it
    stats = world.runner.run_once()
    assert world.scores.asked == [["c1"]]
    assert stats.entered == 1
    assert world.entries("c1") == 1
    assert world.entries("c2") == 0
    world.event("c1", "page_view")  # still high: the same crossing, no second entry
    world.runner.run_once()
    assert world.entries("c1") == 1


def test_crossing_state_survives_a_runner_restart(tmp_path: Path) -> None:
    clock, scores = Clock(), Scores()
    first = _world(tmp_path, clock, scores)
    scores.now = {"c1": 0.8}
    first.event("c1", "page_view")
    first.runner.run_once()
    assert first.entries() == 1
    first.engine.close()
    first.store.close()
    first.stream.close()

    clock.advance(timedelta(days=1))
    again = _world(tmp_path, clock, scores)  # a new process over the same databases
    again.event("c1", "page_view")
    again.runner.run_once()
    again.triggers.score_all(["c1"], clock.now)
    assert again.entries() == 1
    assert ScoreStateStore(again.store.db).get("lapse", "c1") == ScoreState(
        0.8, armed=False, crossings=1, updated_at=clock.now.timestamp()
    )
    again.engine.close()
    again.store.close()
    again.stream.close()


def test_a_trigger_on_a_model_nobody_scores_is_refused(tmp_path: Path) -> None:
    journey = parse_journey(LAPSE, "lapse.yaml")
    store = JourneyStore(_sqlite(tmp_path))
    with pytest.raises(InvalidRequest, match=r"`scorers` must score model 'test-churn'"):
        ScoreTriggers(journeys={"lapse": journey}, store=store, scorers={})
    store.close()


def _sqlite(tmp_path: Path) -> SQLiteDatabase:
    return SQLiteDatabase(tmp_path / "j.db")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_state_store_on_both_backends(backend: str, tmp_path: Path) -> None:
    import uuid

    import psycopg

    from features.sql import PostgresDatabase

    dsn, schema = "postgresql://postgres@127.0.0.1:5432/test", f"h8_{uuid.uuid4().hex[:8]}"
    db = PostgresDatabase(dsn, schema) if backend == "postgres" else _sqlite(tmp_path)
    try:
        store = ScoreStateStore(db)
        store.put("w", "c1", ScoreState(0.7, armed=False, crossings=1, updated_at=1.5))
        store.put("w", "c1", ScoreState(0.3, armed=True, crossings=1, updated_at=2.5))
        store.put("w", "c2", ScoreState(0.9, armed=False, crossings=3, updated_at=2.5))
        assert store.get("w", "c1") == ScoreState(0.3, armed=True, crossings=1, updated_at=2.5)
        assert store.get("other", "c1") is None
        assert store.counts("w") == {"armed": 1, "disarmed": 1}
    finally:
        db.close()
        if backend == "postgres":
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# -- the files ----------------------------------------------------------------------------

HEAD = "journey: t\ntrigger:\n"
STEPS = "steps: [{id: a, wait: 1h}]\n"
BAD = [
    # (trigger lines, line, field, message)
    ("  score: {model: 'bad name!', above: 0.6, reset_below: 0.4}\n", 3, "trigger.score.model",
     "must be a registered model name"),
    ("  score: {model: m, above: 0.6, reset_below: 0.6}\n", 3, "trigger.score.reset_below",
     r"must be below above \(0.6\), got 0.6"),
    ("  score: {model: m, above: 1.5, reset_below: 0.4}\n", 3, "trigger.score.above",
     r"must be a score in \[0, 1\)"),
    ("  score: {model: m, above: high, reset_below: 0.4}\n", 3, "trigger.score.above",
     "must be a number between 0 and 1"),
    ("  score: {model: m, above: 0.6}\n", 3, "trigger.score.reset_below", "is required"),
    ("  score: {model: m, above: 0.6, reset_below: 0.4, below: 0.1}\n", 3, "trigger.score.below",
     "is not allowed here"),
    ("  score: {model: m, above: 0.6, reset_below: 0.4, alias: '@x'}\n", 3,
     "trigger.score.alias", "must be a model alias"),
    ("  event: a\n  score: {model: m, above: 0.6, reset_below: 0.4}\n", 4, "trigger.score",
     "must not be given with trigger.event"),
    ("  where: {a: 1}\n  score: {model: m, above: 0.6, reset_below: 0.4}\n", 3, "trigger.where",
     "is only allowed with trigger.event"),
]  # fmt: skip


@pytest.mark.parametrize(("trigger", "line", "field", "message"), BAD)
def test_a_bad_score_trigger_names_file_line_and_field(
    trigger: str, line: int, field: str, message: str
) -> None:
    with pytest.raises(JourneyFileError, match=rf"^bad\.yaml:{line}: {field} {message}") as err:
        parse_journey(HEAD + trigger + STEPS, "bad.yaml")
    assert err.value.field == field
    assert err.value.line == line


def test_winback_ships_wired_to_the_churn_score() -> None:
    journey = load_journey(DEFAULT_JOURNEYS_DIR / "winback.yaml")
    assert journey.trigger.event is None
    assert journey.trigger.score == ScoreTrigger("nudge-churn", above=0.6, reset_below=0.4)
    validate_against(journey, load_decision_config(DEFAULT_CONFIG))


class Broken:
    def score(self, customer_ids: Sequence[str]) -> dict[str, float]:
        raise InvalidRequest("model", "must be loadable")


def test_a_failing_scorer_does_not_stall_the_stream(world: World) -> None:
    world.triggers.scorers["test-churn"] = Broken()
    world.event("c1", "page_view")
    stats = world.runner.run_once()
    assert stats.events == 1
    assert world.entries("c1") == 0
