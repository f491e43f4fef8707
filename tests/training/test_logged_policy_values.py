"""Off-policy values in the uplift report against synthetic logs whose true values are known.

The synthetic logging policy logs the true expected reward of every action as its
estimate, so the doubly robust reward model is well specified.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from uplift_samples import (
    CONFIG,
    EFFECT,
    START,
    UNIFORM_POLICY,
    JourneyTruth,
    expected,
    reward_curve,
    synthetic_log,
    truth,
)

from decisioning.types import NO_SEND, Decision
from features import InvalidRequest
from training.logged_policy_values import POLICY_VALUE_COLUMNS
from training.uplift_report import UpliftReport, build_uplift_report

LATER = START + timedelta(days=60)
M1 = "m1/email/now"


def values(report: UpliftReport) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row["policy"], row["estimator"]): dict(row) for row in report.policy_values}


def covers(row: dict[str, Any], value: float) -> bool:
    return bool(row["ci_low"] <= value <= row["ci_high"])


def half_width(row: dict[str, Any]) -> float:
    return float(row["ci_high"] - row["ci_low"]) / 2


def challenger(decision: Decision) -> str:
    """M1 for customers with x above 0.5, no send for the others."""
    return M1 if float(decision.features["x"]) > 0.5 else NO_SEND  # type: ignore[arg-type]


TRUE_CHALLENGER = expected(
    lambda x: np.where(x > 0.5, reward_curve(EFFECT, M1)(x), reward_curve(EFFECT, NO_SEND)(x))
)


@pytest.fixture(scope="module")
def effect_report() -> UpliftReport:
    log = synthetic_log({"welcome": (EFFECT, 20_000)}, seed=11)
    return build_uplift_report(
        log.decisions, log.outcomes, CONFIG, now=LATER, challenger=challenger
    )


def test_policy_values_have_every_policy_and_estimator(effect_report: UpliftReport) -> None:
    table = effect_report.tables()["policy_values"]
    assert list(table.columns) == list(POLICY_VALUE_COLUMNS)
    assert list(zip(table["policy"], table["estimator"], strict=True)) == [
        ("live", "on_policy"),
        ("live", "ips"),
        ("live", "snips"),
        ("live", "dr"),
        *[
            (p, e)
            for p in ("uniform_random", "best_fixed", "challenger")
            for e in ("ips", "snips", "dr")
        ],
    ]
    assert set(table["n"]) == {effect_report.summary["treated"]}


def test_every_estimate_covers_the_true_value(effect_report: UpliftReport) -> None:
    true = truth(EFFECT)
    by = values(effect_report)
    expectations = {
        "live": true["live_value"],
        "uniform_random": true["uniform_value"],
        "best_fixed": true[f"fixed:{M1}"],
        "challenger": TRUE_CHALLENGER,
    }
    for (policy, estimator), row in by.items():
        assert covers(row, expectations[policy]), (policy, estimator, row, expectations[policy])


def test_the_best_fixed_action_is_the_truly_best_one(effect_report: UpliftReport) -> None:
    # True values: m1 3.99, m2 2.49, no send 2.00 per decision.
    best = values(effect_report)[("best_fixed", "dr")]
    assert best["action"] == M1
    assert best["label"] == f"Always {M1} when eligible (best fixed action)"


def test_ips_snips_and_dr_agree_when_the_reward_model_is_right(effect_report: UpliftReport) -> None:
    by = values(effect_report)
    for policy in ("live", "uniform_random", "best_fixed", "challenger"):
        ips, snips, dr = (by[(policy, e)] for e in ("ips", "snips", "dr"))
        # Seen: differences up to a quarter of an interval's half-width.
        assert abs(dr["value"] - ips["value"]) < 0.5 * half_width(ips), policy
        assert abs(snips["value"] - ips["value"]) < 0.5 * half_width(ips), policy
        # Purchase values are noise no model explains, so a right model barely narrows
        # DR's interval; it must not widen it (seen: within 1 % of IPS's).
        assert half_width(dr) <= 1.05 * half_width(ips), policy


def test_the_live_policy_is_its_own_on_policy_mean(effect_report: UpliftReport) -> None:
    by = values(effect_report)
    on_policy = by[("live", "on_policy")]
    # Weights are 1: IPS and SNIPS of the logging policy are its mean reward exactly.
    assert by[("live", "ips")]["value"] == pytest.approx(on_policy["value"], abs=1e-9)
    assert by[("live", "snips")]["value"] == pytest.approx(on_policy["value"], abs=1e-9)
    assert on_policy["effective_n"] == on_policy["n"]
    # The uniform policy agrees with the log on about 1/3 of rows, reweighted: fewer
    # effective decisions.
    assert by[("uniform_random", "ips")]["effective_n"] < 0.8 * on_policy["n"]


def test_uniform_ips_on_a_uniform_log_is_the_on_policy_mean() -> None:
    uniform = JourneyTruth(rates=EFFECT.rates, policy=UNIFORM_POLICY)
    log = synthetic_log({"welcome": (uniform, 20_000)}, seed=12)
    report = build_uplift_report(log.decisions, log.outcomes, CONFIG, now=LATER)
    by = values(report)
    on_policy = by[("live", "on_policy")]
    ips = by[("uniform_random", "ips")]
    assert ips["value"] == pytest.approx(on_policy["value"], abs=1e-9)
    assert covers(ips, on_policy["value"])
    assert covers(ips, truth(uniform)["uniform_value"])


def test_a_challenger_choosing_an_ineligible_action_is_refused() -> None:
    log = synthetic_log({"welcome": (EFFECT, 200)}, seed=13)
    with pytest.raises(
        InvalidRequest, match="`challenger` must choose one of the eligible actions"
    ):
        build_uplift_report(
            log.decisions, log.outcomes, CONFIG, now=LATER, challenger=lambda d: "m9/sms/now"
        )


def test_the_bootstrap_is_seeded() -> None:
    log = synthetic_log({"welcome": (EFFECT, 2_000)}, seed=14)

    def build(seed: int) -> tuple[Any, ...]:
        report = build_uplift_report(
            log.decisions, log.outcomes, CONFIG, now=LATER, seed=seed, resamples=100
        )
        return report.policy_values

    assert build(1) == build(1)
    assert build(1) != build(2)
