"""Decisions and outcomes in process: ``DecisionEngine`` as ``serving.wiring`` builds it.

Decisions are timed one by one (p50/p99) in rounds; each round starts with no
sends reserved, so frequency caps bind only for customers drawn more than once.
Outcomes (one conversion per decision, so each one credits a reward and teaches
the policy) are timed three ways: through the engine that made the decisions
(they are still in its memory), through a fresh engine (as another worker, or the
same one later, reads them from the log), and in batches where the engine has
``record_outcomes``.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from benchmarks.bench_breakdown import GcPauses, component_times, describe
from decisioning import CandidateMessage, Decision, DecisionEngine, DecisionRequest
from serving.app import freeze_startup_heap
from serving.settings import Settings
from serving.wiring import build_runtime

__all__ = ["latency_summary", "profile_engine", "run_in_process"]

OUTCOME_BATCH = 100


def latency_summary(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p99/mean in ms and the rate one caller reaches, from per-call times in seconds."""
    ordered = sorted(samples_s)
    total = sum(ordered)
    return {
        "n": len(ordered),
        "p50_ms": 1e3 * statistics.median(ordered),
        "p99_ms": 1e3 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "mean_ms": 1e3 * total / len(ordered),
        "per_s": len(ordered) / total,
    }


def _requests(
    customers: Sequence[str], messages: Sequence[str], n: int, rng: np.random.Generator
) -> list[DecisionRequest]:
    candidates = [CandidateMessage(message) for message in messages]
    picks = rng.integers(len(customers), size=n)
    return [DecisionRequest(customers[int(i)], candidates) for i in picks]


def _decide_round(
    engine: DecisionEngine, requests: Sequence[DecisionRequest]
) -> tuple[list[float], list[Decision]]:
    samples: list[float] = []
    decisions: list[Decision] = []
    clock = time.perf_counter
    for request in requests:
        started = clock()
        decision = engine.decide(request)
        samples.append(clock() - started)
        decisions.append(decision)
    return samples, decisions


def _outcomes_one_by_one(
    engine: DecisionEngine, decisions: Sequence[Decision]
) -> tuple[dict[str, float], int]:
    samples: list[float] = []
    learned = 0
    clock = time.perf_counter
    for decision in decisions:
        occurred = datetime.now(UTC)
        started = clock()
        receipt = engine.record_outcome(
            decision.decision_id, event="conversion", occurred_at=occurred
        )
        samples.append(clock() - started)
        learned += receipt.learned
    return latency_summary(samples), learned


def _outcomes_in_batches(
    engine: DecisionEngine, decisions: Sequence[Decision]
) -> dict[str, float] | None:
    record_outcomes: Callable[[list[Any]], list[Any]] | None = getattr(
        engine, "record_outcomes", None
    )
    try:
        from decisioning import OutcomeReport  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    if record_outcomes is None:
        return None
    started = time.perf_counter()
    for start in range(0, len(decisions), OUTCOME_BATCH):
        occurred = datetime.now(UTC)
        chunk = decisions[start : start + OUTCOME_BATCH]
        record_outcomes([OutcomeReport(d.decision_id, "conversion", occurred) for d in chunk])
    elapsed = time.perf_counter() - started
    return {"n": len(decisions), "batch": OUTCOME_BATCH, "per_s": len(decisions) / elapsed}


def _mix(decisions: Sequence[Decision]) -> dict[str, Any]:
    """What the decisions looked like: groups, eligible-set sizes, exclusions by rule."""
    groups = Counter(d.group for d in decisions)
    rules: Counter[str] = Counter()
    capped = 0
    for decision in decisions:
        rules.update(e.rule for e in decision.excluded)
        capped += any(e.rule == "frequency_cap" for e in decision.excluded)
    policy = [d for d in decisions if d.group != "holdout"]
    return {
        "groups": dict(groups),
        "sends": sum(d.action.is_send for d in decisions),
        "mean_candidates": statistics.mean(len(d.eligible) + len(d.excluded) for d in policy),
        "mean_eligible": statistics.mean(len(d.eligible) for d in policy),
        "exclusions_by_rule": dict(rules),
        "share_with_a_cap_exclusion": capped / len(decisions),
    }


def run_in_process(
    settings: Settings,
    customers: Sequence[str],
    messages: Sequence[str],
    *,
    rounds: int,
    per_round: int,
    warmup: int,
    reset_sends: Callable[[], object],
    seed: int = 0,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Time decisions and outcome ingestion; the figures are medians over ``rounds``."""
    rng = np.random.default_rng(seed)
    runtime = build_runtime(settings)
    freeze_startup_heap()  # as the server does once its runtime is built
    try:
        engine = runtime.engine
        reset_sends()
        _decide_round(engine, _requests(customers, messages, warmup, rng))
        per_round_figures: list[dict[str, float]] = []
        every: list[Decision] = []
        with GcPauses() as pauses:
            for number in range(rounds):
                reset_sends()
                samples, decisions = _decide_round(
                    engine, _requests(customers, messages, per_round, rng)
                )
                figures = latency_summary(samples)
                per_round_figures.append(figures)
                every.extend(decisions)
                say(
                    f"round {number + 1}/{rounds}: {len(samples):,} decisions, "
                    f"p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms"
                )
        collections = pauses.summary()
        if "gen2" in collections:
            say(
                f"{collections['gen2']['count']} full garbage collection(s) meanwhile, "
                f"the longest {collections['gen2']['max_ms']:.0f} ms"
            )
        # The last round's decisions are still in this engine's memory.
        recent = every[-per_round:]
        recent_figures, recent_learned = _outcomes_one_by_one(engine, recent)
        say(f"outcomes, same engine: {recent_figures['per_s']:,.0f}/s")
    finally:
        runtime.close()
    earlier = every[:-per_round]
    half = len(earlier) // 2
    runtime = build_runtime(settings)  # a fresh engine: the decisions come from the log
    try:
        logged_figures, logged_learned = _outcomes_one_by_one(runtime.engine, earlier[:half])
        say(f"outcomes, fresh engine (from the log): {logged_figures['per_s']:,.0f}/s")
        batched = _outcomes_in_batches(runtime.engine, earlier[half:])
        if batched is not None:
            say(f"outcomes in batches of {OUTCOME_BATCH}: {batched['per_s']:,.0f}/s")
    finally:
        runtime.close()
    return {
        "decide": {
            "rounds": per_round_figures,
            **{
                key: statistics.median(r[key] for r in per_round_figures)
                for key in ("p50_ms", "p99_ms", "mean_ms", "per_s")
            },
            "warmup": warmup,
            "garbage_collections": collections,
            "mix": _mix(every),
        },
        "outcomes_same_engine": {**recent_figures, "learned": recent_learned},
        "outcomes_from_log": {**logged_figures, "learned": logged_learned},
        "outcomes_batched": batched,
    }


def profile_engine(
    settings: Settings,
    customers: Sequence[str],
    messages: Sequence[str],
    *,
    decisions: int,
    reset_sends: Callable[[], object],
    top: int = 25,
    seed: int = 1,
) -> dict[str, str]:
    """Where the time goes: a timed breakdown of decide by part, and cProfile listings
    (by own and by cumulative time) of decide and of record_outcome, through the engine
    that decided and through a fresh one that reads the decisions from the log."""
    rng = np.random.default_rng(seed)
    listings: dict[str, str] = {}
    runtime = build_runtime(settings)
    try:
        engine = runtime.engine
        reset_sends()
        _decide_round(engine, _requests(customers, messages, 200, rng))
        reset_sends()
        listings["decide, by part"] = describe(
            component_times(engine, _requests(customers, messages, decisions, rng))
        )
        reset_sends()
        requests = _requests(customers, messages, 2 * decisions, rng)
        profiler = cProfile.Profile()
        profiler.enable()
        _, made = _decide_round(engine, requests[:decisions])
        profiler.disable()
        listings["decide"] = _listing(profiler, top, decisions)
        _, earlier = _decide_round(engine, requests[decisions:])
        profiler = cProfile.Profile()
        profiler.enable()
        _outcomes_one_by_one(engine, made)
        profiler.disable()
        listings["record_outcome, same engine"] = _listing(profiler, top, decisions)
    finally:
        runtime.close()
    runtime = build_runtime(settings)
    try:
        profiler = cProfile.Profile()
        profiler.enable()
        _outcomes_one_by_one(runtime.engine, earlier)
        profiler.disable()
        listings["record_outcome, fresh engine (from the log)"] = _listing(profiler, top, decisions)
    finally:
        runtime.close()
    return listings


def _listing(profiler: cProfile.Profile, top: int, calls: int) -> str:
    text = io.StringIO()
    print(f"{calls:,} calls; times are totals over all of them", file=text)
    stats = pstats.Stats(profiler, stream=text).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return text.getvalue()
