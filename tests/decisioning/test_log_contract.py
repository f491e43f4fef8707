"""The DecisionLog contract, run over every backend: SQLite (embedded) and Postgres (scale mode).

The Postgres runs use the machine's real server, each test in a schema of its
own that is dropped afterwards.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import MISSING, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from log_samples import BASE, FULL, WHEN, decision, outcome

from decisioning.log import DecisionLog
from decisioning.postgres_log import PostgresDecisionLog
from decisioning.sqlite_log import SQLiteDecisionLog
from decisioning.types import ActionScore, Decision, JointAction, Outcome
from features.errors import Conflict, InvalidRequest, NotFound, Unavailable

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
THREADS = 8
T = TypeVar("T")

OpenLog = Callable[[], DecisionLog]


@pytest.fixture(params=["sqlite", "postgres"])
def open_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenLog]:
    """Opens logs over one store, as each worker process (or a restart) would."""
    opened: list[DecisionLog] = []
    schema = f"nudge_test_{uuid.uuid4().hex[:8]}"

    def open_one() -> DecisionLog:
        log: DecisionLog
        if request.param == "sqlite":
            log = SQLiteDecisionLog(tmp_path / "nudge.db")
        else:
            log = PostgresDecisionLog(POSTGRES_DSN, schema, pool_size=THREADS)
        opened.append(log)
        return log

    yield open_one
    for log in opened:
        log.close()
    if request.param == "postgres":
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def log(open_log: OpenLog) -> DecisionLog:
    return open_log()


def together(work: Callable[[int], T], threads: int = THREADS) -> list[T]:
    """``work(i)`` on ``threads`` threads released at the same moment; results by ``i``."""
    barrier = threading.Barrier(threads)
    results: list[Any] = [None] * threads
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as err:  # re-raised below, in the test's thread
            errors.append(err)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return results


# -- decisions ---------------------------------------------------------------------------


def test_a_decision_reads_back_equal_in_utc(log: DecisionLog) -> None:
    written = FULL
    assert log.record_decision(written) == written
    read = log.get_decision("d1")
    assert read == written
    assert read.decided_at == datetime(2024, 5, 1, 9, 30, 15, 123456, tzinfo=UTC)
    moments = [read.decided_at, read.attribution_closes_at, read.action.send_at]
    moments += [a.send_at for a in read.eligible if a.send_at is not None]
    assert {m.tzinfo for m in moments if m is not None} == {UTC}
    assert read.scores["welcome/sms/+1h"].prior == 1e-300
    assert read.scores["welcome/sms/+1h"].uncertainty == 5e-324
    assert read.eligible[2].transactional is True
    assert read.eligible[3] == JointAction.no_send()
    assert read.features == {
        "recency": 3,
        "spend": 29.990000000000002,
        "channel": "Web ✓",
        "zip": None,
        "big": 2**62,
        "tiny": -1e-310,
    }
    assert isinstance(read.features["recency"], int)
    assert list(read.scores) == list(written.scores)  # the explanation keeps its order


def test_the_sample_decision_sets_every_field_away_from_its_default() -> None:
    # A field the log does not store would read back as its default: make that fail.
    defaulted = [f for f in fields(Decision) if f.default is not MISSING]
    assert defaulted
    assert [f.name for f in defaulted if getattr(FULL, f.name) == f.default] == []


def test_a_decision_without_optional_parts_reads_back_equal(log: DecisionLog) -> None:
    bare = decision(
        action=JointAction.no_send(),
        group="holdout",
        eligible=(JointAction.no_send(),),
        excluded=(),
        scores={},
        explored=False,
        features={},
        missing_features=(),
        attribution_closes_at=None,
        time_zone="UTC",
    )
    log.record_decision(bare)
    assert log.get_decision("d1") == bare


def test_a_decision_id_is_recorded_once(log: DecisionLog) -> None:
    log.record_decision(decision())
    with pytest.raises(Conflict, match="decision 'd1' is already recorded"):
        log.record_decision(decision(customer_id="c2"))
    assert log.get_decision("d1").customer_id == "c1"
    assert log.count_decisions() == 1


def test_an_idempotency_key_returns_the_decision_recorded_first(log: DecisionLog) -> None:
    first = decision("d1", idempotency_key="req-1")
    assert log.record_decision(first) == first
    assert log.record_decision(decision("d2", idempotency_key="req-1", step="x")) == first
    assert log.record_decision(first) == first  # a retry of the very same decision too
    assert log.find_idempotent("req-1") == first
    assert log.find_idempotent("req-2") is None
    with pytest.raises(NotFound):
        log.get_decision("d2")
    assert log.count_decisions() == 1


def test_decisions_without_a_key_do_not_collide(log: DecisionLog) -> None:
    for i in range(3):
        log.record_decision(decision(f"d{i}", idempotency_key=None))
    assert log.count_decisions() == 3


def test_racing_requests_with_one_key_record_one_decision(
    log: DecisionLog, open_log: OpenLog
) -> None:
    keys = [f"req-{k}" for k in range(20)]
    small = {"eligible": (BASE.action,), "excluded": (), "scores": {}}
    workers = [open_log() for _ in range(THREADS)]

    def request_all(t: int) -> list[Decision]:
        return [
            workers[t].record_decision(decision(f"{key}-{t}", idempotency_key=key, **small))
            for key in keys
        ]

    returned = together(request_all)
    assert log.count_decisions() == len(keys)
    for k, key in enumerate(keys):
        recorded = log.find_idempotent(key)
        assert recorded is not None
        assert recorded.decision_id in {f"{key}-{t}" for t in range(THREADS)}
        assert [row[k] for row in returned] == [recorded] * THREADS


def test_unknown_decisions_are_not_found(log: DecisionLog) -> None:
    calls: list[Callable[[], object]] = [
        lambda: log.get_decision("nope"),
        lambda: log.credit("nope", 1.0),
        lambda: log.credited_reward("nope"),
        lambda: log.close_window("nope"),
        lambda: log.window_closed("nope"),
        lambda: log.record_outcome(outcome(decision_id="nope")),
    ]
    for call in calls:
        with pytest.raises(NotFound, match="decision 'nope' not found"):
            call()
    assert log.outcomes("nope") == []


NAIVE_ACTION = JointAction("welcome", "push", "now", datetime(2024, 5, 1, 9))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"decided_at": datetime(2024, 5, 1, 9)}, "`decided_at` must be a datetime that includes"),
        ({"action": NAIVE_ACTION}, "`action.send_at` must be a datetime"),
        ({"eligible": (BASE.action, NAIVE_ACTION)}, r"`eligible\[1\].send_at` must be a datetime"),
        ({"attribution_closes_at": datetime(2024, 5, 4)}, "`attribution_closes_at` must be"),
        ({"propensity": float("nan")}, "`propensity` must be a finite number"),
        ({"propensity_error": float("inf")}, "`propensity_error` must be a finite number"),
        (
            {"scores": {"a/b/c": ActionScore(0.1, float("inf"), 0.0, 1.0)}},
            r"`scores\['a/b/c'\].mean` must be a finite number",
        ),
        ({"features": {"spend": float("-inf")}}, r"`features\['spend'\]` must be a finite number"),
    ],
)
def test_what_cannot_be_stored_exactly_is_refused_by_field(
    log: DecisionLog, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        log.record_decision(decision(**overrides))
    assert log.count_decisions() == 0


def test_iter_decisions_pages_through_all_in_recorded_order(log: DecisionLog) -> None:
    ids = [f"d{i:04d}" for i in random.Random(0).sample(range(10_000), 2_345)]  # > 2 pages
    small = {"eligible": (BASE.action,), "excluded": (), "scores": {}}
    for i in ids:
        log.record_decision(decision(i, **small))
    assert log.count_decisions() == 2_345
    read = list(log.iter_decisions())
    assert [d.decision_id for d in read] == ids
    assert read[-1] == decision(ids[-1], **small)


def test_a_second_log_over_the_same_store_sees_everything(open_log: OpenLog) -> None:
    first = open_log()
    first.record_decision(decision(idempotency_key="req-1"))
    first.credit("d1", 2.5)
    first.record_outcome(outcome())
    first.record_holdout_change(WHEN, 5.0)
    second = open_log()  # creating the tables again must leave them as they are
    assert second.get_decision("d1") == decision(idempotency_key="req-1")
    assert second.credited_reward("d1") == 2.5
    assert second.outcomes("d1") == [outcome()]
    assert second.holdout_changes() == [(WHEN, 5.0)]
    assert second.credit("d1", 1.0) is False


# -- credit and attribution windows -------------------------------------------------------


def test_credit_is_first_only_once_and_sums_rewards(log: DecisionLog) -> None:
    log.record_decision(decision("d1"))
    log.record_decision(decision("d2"))
    assert log.credited_reward("d1") is None
    assert log.credit("d1", 0.0) is True  # a zero reward is still the first credit
    assert log.credited_reward("d1") == 0.0
    assert [log.credit("d1", 1.25), log.credit("d1", -0.5)] == [False, False]
    assert log.credited_reward("d1") == 0.75
    assert log.credited_reward("d2") is None
    with pytest.raises(InvalidRequest, match="`reward` must be a finite number"):
        log.credit("d2", float("nan"))
    assert log.credited_reward("d2") is None


def test_racing_credits_have_exactly_one_first(log: DecisionLog, open_log: OpenLog) -> None:
    ids = [f"d{i}" for i in range(50)]
    for i in ids:
        log.record_decision(decision(i, eligible=(), excluded=(), scores={}))
    workers = [open_log() for _ in range(THREADS)]  # own connections, as in separate processes
    firsts = together(lambda t: [workers[t].credit(i, 1.0) for i in ids])
    for column in range(len(ids)):
        assert sum(row[column] for row in firsts) == 1
    assert [log.credited_reward(i) for i in ids] == [float(THREADS)] * len(ids)


def test_a_window_closes_once(log: DecisionLog) -> None:
    log.record_decision(decision("d1"))
    assert log.window_closed("d1") is False
    assert log.close_window("d1") is True
    assert log.window_closed("d1") is True
    assert log.close_window("d1") is False


def test_racing_closes_have_exactly_one_winner(log: DecisionLog, open_log: OpenLog) -> None:
    ids = [f"d{i}" for i in range(50)]
    for i in ids:
        log.record_decision(decision(i, eligible=(), excluded=(), scores={}))
    workers = [open_log() for _ in range(THREADS)]
    closed = together(lambda t: [workers[t].close_window(i) for i in ids])
    for column in range(len(ids)):
        assert sum(row[column] for row in closed) == 1
    assert all(log.window_closed(i) for i in ids)


def test_due_windows_are_the_open_ones_closed_by_now_oldest_first(log: DecisionLog) -> None:
    hours = [5, 1, 3, 2, 4, 30]
    order = random.Random(1).sample(range(len(hours)), len(hours))
    for i in order:
        log.record_decision(
            decision(f"d{i}", attribution_closes_at=WHEN + timedelta(hours=hours[i]))
        )
    log.record_decision(decision("never", attribution_closes_at=None))
    log.close_window("d2")  # closes at +3 h, but already handled
    now = WHEN + timedelta(hours=4)  # d4 closes exactly now: due

    due = log.due_windows(now, limit=10)
    assert [d.decision_id for d in due] == ["d1", "d3", "d4"]
    assert due[0] == decision("d1", attribution_closes_at=WHEN + timedelta(hours=1))
    assert [d.decision_id for d in log.due_windows(now, limit=2)] == ["d1", "d3"]
    assert log.due_windows(now, limit=0) == []
    assert log.due_windows(WHEN, limit=10) == []
    log.close_window("d1")
    assert [d.decision_id for d in log.due_windows(now.astimezone(UTC), 10)] == ["d3", "d4"]


@pytest.mark.parametrize(
    ("now", "limit", "message"),
    [
        (datetime(2024, 5, 1), 10, "`now` must be a datetime that includes a time zone"),
        (WHEN, -1, "`limit` must be a non-negative integer, got -1"),
        (WHEN, 2.5, "`limit` must be a non-negative integer, got 2.5"),
    ],
)
def test_due_windows_checks_its_arguments(
    log: DecisionLog, now: datetime, limit: Any, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        log.due_windows(now, limit)


# -- outcomes and holdout history -----------------------------------------------------------


def test_an_outcome_id_is_recorded_once_and_the_first_stays(log: DecisionLog) -> None:
    log.record_decision(decision())
    assert log.get_outcome("o1") is None
    assert log.record_outcome(outcome("o2")) is True
    assert log.record_outcome(outcome("o1", event="conversion", value=0.0)) is True
    assert log.record_outcome(outcome("o1", event="open", reward=5.0)) is False
    read = log.outcomes("d1")
    assert [o.outcome_id for o in read] == ["o2", "o1"]
    assert log.get_outcome("o1") == outcome("o1", event="conversion", value=0.0)
    assert read[0].occurred_at == WHEN + timedelta(hours=1)
    assert read[0].occurred_at.tzinfo == UTC


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (outcome(occurred_at=datetime(2024, 5, 1)), "`occurred_at` must be a datetime"),
        (outcome(value=float("nan")), "`value` must be a finite number"),
        (outcome(reward=float("inf")), "`reward` must be a finite number"),
    ],
)
def test_an_outcome_that_cannot_be_stored_is_refused(
    log: DecisionLog, bad: Outcome, message: str
) -> None:
    log.record_decision(decision())
    with pytest.raises(InvalidRequest, match=message):
        log.record_outcome(bad)
    assert log.outcomes("d1") == []


def test_holdout_changes_are_kept_oldest_first(log: DecisionLog) -> None:
    assert log.holdout_changes() == []
    log.record_holdout_change(WHEN + timedelta(days=30), 10.0)
    log.record_holdout_change(WHEN, 5.0)
    changes = log.holdout_changes()
    assert changes == [(WHEN, 5.0), (WHEN + timedelta(days=30), 10.0)]
    assert changes[0][0].tzinfo == UTC
    with pytest.raises(InvalidRequest, match="`percent` must be a finite number"):
        log.record_holdout_change(WHEN, float("nan"))


# -- what the Postgres log adds ----------------------------------------------------------------


@pytest.fixture
def pg_log() -> Iterator[PostgresDecisionLog]:
    log = PostgresDecisionLog(POSTGRES_DSN, f"nudge_test_{uuid.uuid4().hex[:8]}")
    yield log
    log.drop_schema()
    log.close()


def test_postgres_reports_can_query_typed_columns(pg_log: PostgresDecisionLog) -> None:
    pg_log.record_decision(decision("d1"))
    pg_log.record_decision(decision("d2", group="holdout"))
    pg_log.credit("d1", 2.0)
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        rows = conn.execute(
            f"SELECT decision_group, channel, send_at, credited, reward, "
            f"scores -> 'welcome/sms/+1h' ->> 3 "
            f"FROM {pg_log.schema}.decisions ORDER BY decision_id"
        ).fetchall()
    send_at = datetime(2024, 5, 1, 10, 30, 15, 123456, tzinfo=UTC)
    assert rows == [
        ("explore", "sms", send_at, 1, 2.0, repr(1 / 3 + 0.1 / 3)),
        ("holdout", "sms", send_at, 0, 0.0, repr(1 / 3 + 0.1 / 3)),
    ]


def test_postgres_refuses_a_schema_name_it_would_have_to_quote() -> None:
    with pytest.raises(InvalidRequest, match="`schema` must be 1 to 63 lowercase letters"):
        PostgresDecisionLog(POSTGRES_DSN, 'nudge"; DROP TABLE x; --')


def test_an_unreachable_postgres_is_unavailable() -> None:
    with pytest.raises(Unavailable, match=r"cannot connect to Postgres at 127\.0\.0\.1:1/test"):
        PostgresDecisionLog("postgresql://postgres@127.0.0.1:1/test", "nudge_test", timeout=1)
