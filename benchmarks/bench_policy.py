"""Policies on the seeded simulator: regret curves against the oracle, and select() latency.

    python -m benchmarks.bench_policy [--decisions 20000] [--seed 0] [--out reports]

Runs LinearThompson, EpsilonGreedy, UniformRandom, the best fixed joint action
and the oracle on the same decision stream (decisioning/simulator.py), saves
reports/regret.png and reports/bench_policy.json, and prints a table. Then
times select() over 55 candidates (3 messages x 3 channels x 6 slots + no
send), untrained and after the run, and river's BayesianLinearRegression on the
same job for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from decisioning import Context, EpsilonGreedy, JointAction, LinearThompson, Policy, UniformRandom
from decisioning.joint_features import JointFeaturizer
from decisioning.simulator import (
    CHANNELS,
    FixedAction,
    Oracle,
    SimulatedWorld,
    SimulationResult,
    simulate,
)


def _summary(result: SimulationResult, seconds: float) -> dict[str, Any]:
    n = len(result.expected)
    half = slice(n // 2, None)
    oracle = float(result.oracle.sum())
    second_half_regret = float(result.oracle[half].sum() - result.expected[half].sum())
    return {
        "version": result.policy,
        "total_reward": result.total,
        "oracle_reward": oracle,
        "regret": float(result.regret[-1]),
        "regret_fraction": float(result.regret[-1]) / oracle,
        "regret_fraction_second_half": second_half_regret / float(result.oracle[half].sum()),
        "realised_reward": float(result.realised.sum()),
        "send_share": result.send_share,
        "mean_propensity": float(result.propensity.mean()),
        "seconds": seconds,
    }


def _full_decisions(world: SimulatedWorld, n: int) -> list[tuple[Context, tuple[JointAction, ...]]]:
    """Decisions with all 55 candidates: customers reachable everywhere, at 09:30 local."""
    reachable = np.flatnonzero(world.reachable.all(axis=1))
    decisions = []
    for i in reachable[:n].tolist():
        hours = (9.5 - float(world.offset[i])) % 24.0 + 24.0 * 3
        decision = world.decision(i, hours)
        assert len(decision.candidates) == 55, len(decision.candidates)
        decisions.append((decision.context, decision.candidates))
    return decisions


def _time_select(
    policy: Policy, decisions: list[tuple[Context, tuple[JointAction, ...]]], calls: int
) -> dict[str, float]:
    for context, candidates in decisions[:50]:
        policy.select(context, candidates)
    samples = []
    for n in range(calls):
        context, candidates = decisions[n % len(decisions)]
        started = time.perf_counter()
        policy.select(context, candidates)
        samples.append(time.perf_counter() - started)
    ordered = sorted(samples)
    return {
        "p50_us": 1e6 * statistics.median(ordered),
        "p99_us": 1e6 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "candidates": len(decisions[0][1]),
    }


def _time_river(decisions: list[tuple[Context, tuple[JointAction, ...]]]) -> dict[str, float]:
    """river's BayesianLinearRegression doing the same job: learn one, score 55 with spread."""
    from river import linear_model

    featurizer = JointFeaturizer()  # the columns LinearThompson learns on
    rows: list[list[dict[str, float]]] = []
    for context, candidates in decisions:
        matrix = featurizer.transform(context, candidates)
        names = featurizer.names
        rows.append([dict(zip(names, row.tolist(), strict=True)) for row in matrix])
    # river is untyped; alpha is its prior variance, beta the noise precision (sd 0.5).
    model: Any = linear_model.BayesianLinearRegression(alpha=1.0, beta=4.0)
    started = time.perf_counter()
    learned = 0
    for features in rows:
        for x in features[:10]:
            model.learn_one(x, 0.1)
            learned += 1
    learn_us = 1e6 * (time.perf_counter() - started) / learned
    samples = []
    for n in range(200):
        features = rows[n % len(rows)]
        started = time.perf_counter()
        for x in features:
            model.predict_one(x, with_dist=True)
        samples.append(time.perf_counter() - started)
    return {
        "dimension": len(rows[0][0]),
        "learn_one_us": learn_us,
        "predict_55_with_dist_p50_us": 1e6 * statistics.median(samples),
    }


def _plot(results: dict[str, SimulationResult], path: Path, seed: int) -> None:
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, result in results.items():
        x = np.arange(1, len(result.expected) + 1)
        left.plot(x, result.regret, label=name)
        window = 500
        per_decision = np.convolve(
            result.oracle - result.expected, np.ones(window) / window, "valid"
        )
        right.plot(x[window - 1 :], per_decision, label=name)
    left.set(
        title="Cumulative regret against the oracle",
        xlabel="decisions",
        ylabel="expected reward lost",
    )
    right.set(
        title="Regret per decision (moving average of 500)",
        xlabel="decisions",
        ylabel="expected reward lost per decision",
    )
    for axes in (left, right):
        axes.grid(alpha=0.3)
    left.legend(loc="upper left")
    figure.suptitle(f"Simulated customers, quiet hours 21-08, 1 send per day (seed {seed})")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    n, seed = args.decisions, args.seed

    world = SimulatedWorld(seed=seed)
    fixed = FixedAction.best(world, n, seed=seed)
    policies: dict[str, Callable[[], Policy]] = {
        "linear-thompson": lambda: LinearThompson(seed=seed),
        "epsilon-greedy(0.1)": lambda: EpsilonGreedy(epsilon=0.1, seed=seed),
        "uniform-random": lambda: UniformRandom(seed=seed),
        f"best fixed ({fixed.key})": lambda: fixed,
        "oracle": lambda: Oracle(world),
    }
    results: dict[str, SimulationResult] = {}
    summaries: dict[str, dict[str, Any]] = {}
    trained: LinearThompson | None = None
    for name, make in policies.items():
        policy = make()
        started = time.perf_counter()
        results[name] = simulate(policy, n, seed=seed, world=world)
        summaries[name] = _summary(results[name], time.perf_counter() - started)
        if isinstance(policy, LinearThompson):
            trained = policy
    assert trained is not None
    _plot(results, args.out / "regret.png", seed)

    decisions = _full_decisions(world, 200)
    timing = {
        "linear-thompson untrained": _time_select(LinearThompson(seed=seed), decisions, 3_000),
        "linear-thompson trained": _time_select(trained, decisions, 3_000),
        "epsilon-greedy": _time_select(EpsilonGreedy(seed=seed), decisions, 3_000),
        "uniform-random": _time_select(UniformRandom(seed=seed), decisions, 3_000),
    }
    river = _time_river(decisions)
    report = {
        "decisions": n,
        "seed": seed,
        "world": {
            "customers": world.n_customers,
            "channels": list(CHANNELS),
            "quiet_hours": list(world.quiet_hours),
            "cap": "1 send per customer per local day",
            "decisions_per_day": 1_000,
        },
        "policies": summaries,
        "select": timing,
        "linear_thompson_dimension": len(trained.coef_),
        "river_bayesian_linear_regression": river,
    }
    (args.out / "bench_policy.json").write_text(json.dumps(report, indent=2) + "\n")

    print(f"{n:,} simulated decisions, seed {seed}")
    header = ("reward", "oracle", "regret", "2nd half", "sends")
    print(
        f"{'policy':44s} {header[0]:>9s} {header[1]:>9s} "
        + " ".join(f"{h:>8s}" for h in header[2:])
    )
    for name, s in summaries.items():
        print(
            f"{name:44s} {s['total_reward']:9.1f} {s['oracle_reward']:9.1f} "
            f"{s['regret_fraction']:8.1%} {s['regret_fraction_second_half']:8.1%} "
            f"{s['send_share']:6.1%}"
        )
    print(f"\nselect() over 55 candidates (d = {len(trained.coef_)} for linear-thompson)")
    for name, t in timing.items():
        print(f"{name:44s} p50 {t['p50_us']:7.0f} us   p99 {t['p99_us']:7.0f} us")
    print(
        f"river BayesianLinearRegression (d = {river['dimension']}): learn_one "
        f"{river['learn_one_us']:.0f} us, 55 predictive distributions "
        f"{river['predict_55_with_dist_p50_us']:.0f} us"
    )
    print(f"\nwrote {args.out / 'regret.png'} and {args.out / 'bench_policy.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
