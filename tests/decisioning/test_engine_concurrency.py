"""One engine shared by many threads, as the API's thread pool shares it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from decisioning import Decision

if TYPE_CHECKING:  # only for annotations: the fixtures come from conftest
    from conftest import EngineFactory

THREADS, DECIDES = 8, 50


def _now() -> datetime:
    return datetime.now(UTC)


def test_eight_threads_deciding_log_every_decision_once(make_engine: EngineFactory) -> None:
    engine = make_engine(clock=_now)
    start = threading.Barrier(THREADS)

    def work(worker: int) -> list[Decision]:
        start.wait()
        return [engine.decide(f"c{1 + (worker + i) % 3}") for i in range(DECIDES)]

    with ThreadPoolExecutor(THREADS) as pool:
        made = [d for batch in pool.map(work, range(THREADS)) for d in batch]

    assert len(made) == THREADS * DECIDES
    assert len({d.decision_id for d in made}) == THREADS * DECIDES
    assert engine.log.count_decisions() == THREADS * DECIDES
    assert {d.decision_id for d in engine.log.iter_decisions()} == {d.decision_id for d in made}


def test_racing_outcomes_teach_the_policy_once_per_decision(make_engine: EngineFactory) -> None:
    engine = make_engine(
        clock=_now, reward_by_event={f"event{worker}": 1.0 for worker in range(THREADS)}
    )
    decisions = [engine.decide("c1") for _ in range(20)]
    start = threading.Barrier(THREADS)

    def post(worker: int) -> list[bool]:
        start.wait()
        return [
            engine.record_outcome(
                d.decision_id,
                event=f"event{worker}",  # a different outcome from every thread
                occurred_at=d.decided_at + timedelta(minutes=1),
            ).learned
            for d in decisions
        ]

    with ThreadPoolExecutor(THREADS) as pool:
        learned = list(pool.map(post, range(THREADS)))

    assert sum(sum(flags) for flags in learned) == len(decisions)
    assert engine.policy.version.endswith(f"+{len(decisions)}")
    assert all(len(engine.log.outcomes(d.decision_id)) == THREADS for d in decisions)
