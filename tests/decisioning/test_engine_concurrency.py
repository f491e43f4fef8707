"""One engine shared by many threads, and several engines sharing one set of stores."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from decisioning import CandidateMessage, Decision, DecisionRequest, NoEligibleAction

if TYPE_CHECKING:  # only for annotations: the fixtures come from conftest
    from conftest import EngineFactory

THREADS = 8


def _now() -> datetime:
    return datetime.now(UTC)


def test_threads_deciding_log_every_decision_once(make_engine: EngineFactory) -> None:
    engine = make_engine(clock=_now)
    start = threading.Barrier(THREADS)
    customers = [f"c{i}" for i in range(1, 4)]

    def work(worker: int) -> list[Decision]:
        start.wait()
        return [
            engine.decide(DecisionRequest(customers[(worker + i) % 3], [CandidateMessage("news")]))
            for i in range(25)
        ]

    with ThreadPoolExecutor(THREADS) as pool:
        made = [d for batch in pool.map(work, range(THREADS)) for d in batch]

    assert len({d.decision_id for d in made}) == THREADS * 25
    assert engine.log.count_decisions() == THREADS * 25
    assert {d.decision_id for d in engine.log.iter_decisions()} == {d.decision_id for d in made}


def test_racing_decisions_for_one_customer_pass_exactly_the_cap(
    make_engine: EngineFactory,
) -> None:
    # Two engines (two workers) over the same stores, eight threads each: the email
    # cap is 2 per 7 days, so exactly two of the sixteen may send.
    engines = [make_engine(clock=_now, worker_id=f"w{i}") for i in range(2)]
    start = threading.Barrier(16)
    email = [CandidateMessage("welcome", ("email",))]

    def work(i: int) -> Decision | None:
        start.wait()
        request = DecisionRequest("c1", email, slots=["09:00"], allow_no_send=False)
        try:
            return engines[i % 2].decide(request)
        except NoEligibleAction:
            return None

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(work, range(16)))

    sent = [d for d in results if d is not None]
    assert len(sent) == 2
    assert sorted(s.decision_id for s in engines[0].contacts.sends("c1")) == sorted(
        d.decision_id for d in sent
    )
