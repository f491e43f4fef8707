"""compare_uplift_learners and greedy_arms on simulated experiments with a known best policy."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features import InvalidRequest
from models import DRLearner, TLearner
from training.uplift_comparison import UpliftComparison, compare_uplift_learners, greedy_arms

ARMS = ("c", "m", "w")


def experiment(n: int = 6_000, seed: int = 0) -> pd.DataFrame:
    """Arms 1/3 each; "m" helps mens buyers (+0.2), "w" everyone else (+0.1).

    Always "m" is worth 0.1 + 0.2 / 2 = 0.2 a customer; the best policy ("m" to
    mens buyers, "w" to the others) 0.1 + (0.2 + 0.1) / 2 = 0.25.
    """
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"mens": rng.integers(0, 2, n), "recency": rng.integers(1, 13, n)})
    frame["arm"] = rng.choice(ARMS, n)
    mens = frame["mens"].to_numpy() == 1
    p = 0.1 + 0.2 * mens * (frame["arm"] == "m") + 0.1 * ~mens * (frame["arm"] == "w")
    frame["visit"] = (rng.random(n) < p).astype(int)
    frame["spend"] = frame["visit"] * rng.gamma(2.0, 50.0, n)
    return frame


SMALL = {"num_boost_round": 50, "learning_rate": 0.1, "min_data_in_leaf": 50}


def learners() -> dict[str, Any]:
    return {
        "t": TLearner(control="c", **SMALL),
        "dr": DRLearner(
            control="c", effect_learning_rate=0.1, effect_min_data_in_leaf=100, **SMALL
        ),
    }


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return experiment()


@pytest.fixture(scope="module")
def result(frame: pd.DataFrame) -> UpliftComparison:
    return compare_uplift_learners(
        frame, ["mens", "recency"], seeds=(0, 1), learners=learners(), control="c", baseline="m"
    )


def test_finds_who_each_treatment_helps(result: UpliftComparison) -> None:
    assert result.seeds == (0, 1)
    assert result.learners == ("t", "dr")
    assert result.treatments == ("m", "w")
    assert result.policy_names == ("greedy_t", "greedy_dr", "always_m")
    split = result.splits[0]
    assert (split.n_train, split.n_test) == (4_200, 1_800)
    for learner, by_treatment in result.mean_qini().items():
        # A perfect ranking of "m": gain 0.2 on the mens half of its and the
        # control's customers: Qini 0.025 (0.0125 for "w"); a random one 0.
        assert by_treatment["m"] == pytest.approx(0.025, abs=0.012), learner
        assert by_treatment["w"] == pytest.approx(0.0125, abs=0.012), learner


def test_the_greedy_policy_beats_always_the_baseline(result: UpliftComparison) -> None:
    values = result.mean_policy_value()
    # 1,800 held-out rows: an IPS value's standard error is about 0.017.
    assert values["always_m"] == pytest.approx(0.2, abs=0.04)
    for learner in ("t", "dr"):
        assert values[f"greedy_{learner}"] == pytest.approx(0.25, abs=0.04)
        assert result.mean_gain_over_baseline()[learner] > 0.02
        for split in result.splits:
            gain = split.gain_over_baseline[learner]
            low, high = gain.ci95
            assert low < gain.mean < high
            # Paired on the same rows: narrower than the two values' own intervals.
            baseline_low, baseline_high = split.policy["always_m"].ci95
            assert high - low < baseline_high - baseline_low


def test_report_outputs(result: UpliftComparison) -> None:
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["seeds"] == [0, 1]
    assert sorted(payload["mean_qini"]) == ["dr", "t"]
    assert payload["splits"][0]["policy"]["always_m"]["n"] == 1_800
    table = result.table()
    assert "Qini coefficient" in table
    assert "greedy_dr − always_m" in table
    assert table.count("\nmean") == 2


def test_spend_progress_and_determinism(frame: pd.DataFrame) -> None:
    lines: list[str] = []
    run = {
        "features": ["mens", "recency"],
        "seeds": [3],
        "outcome": "spend",
        "learners": learners(),
        "control": "c",
        "baseline": "m",
    }
    first = compare_uplift_learners(frame, progress=lines.append, **run)
    assert len(lines) == 1
    assert lines[0].startswith("seed 3 (1/1): Qini t ")
    assert first.outcome == "spend"
    assert first.mean_policy_value()["always_m"] > 5  # dollars, not visits
    again = compare_uplift_learners(frame, **run)
    assert again.to_dict() == first.to_dict()


def test_greedy_arms() -> None:
    uplift = pd.DataFrame(
        {"m": [0.2, -0.1, 0.0, 0.1, 0.3], "w": [0.1, -0.2, 0.0, 0.1, 0.4]}, index=list("abcde")
    )
    chosen = greedy_arms(uplift, control="c")
    # The best positive treatment; the control when none helps (0 does not);
    # a tie goes to the first column.
    assert chosen.to_dict() == {"a": "m", "b": "c", "c": "c", "d": "m", "e": "w"}


@pytest.mark.parametrize(
    ("uplift", "control", "match"),
    [
        (pd.DataFrame({"m": [0.1, np.nan]}), "c", r"`uplift` must not contain missing values"),
        (pd.DataFrame(index=[0, 1]), "c", r"`uplift` must be a DataFrame with one column"),
        (
            pd.DataFrame({"m": [0.1], "c": [0.2]}),
            "c",
            r"`control` must not be one of the treatment",
        ),
    ],
)
def test_greedy_arms_bad_inputs(uplift: pd.DataFrame, control: str, match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        greedy_arms(uplift, control)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"features": ["mens", "age"]}, r"`features` must name columns of `frame`, got \['age'\]"),
        ({"features": "mens"}, r"`features` must be a non-empty sequence"),
        ({"features": ["mens", "visit"]}, r"`features` must not include the outcome column"),
        ({"outcome": "revenue"}, r"`outcome` must name a column of `frame`, got 'revenue'"),
        ({"control": "none"}, r"`control` must be one of the arms \['c', 'm', 'w'\]"),
        ({"baseline": "sms"}, r"`baseline` must be one of the arms"),
        ({"seeds": []}, r"`seeds` must be at least one seed, none repeated"),
        ({"seeds": [1, 1]}, r"`seeds` must be at least one seed, none repeated"),
        ({"seeds": [-1]}, r"`seeds` must be whole numbers >= 0, got -1"),
        ({"test_fraction": 1.0}, r"`test_fraction` must be a number in \(0, 1\)"),
        ({"propensities": {"c": 0.5, "m": 0.5}}, r"`propensities` must give every arm's"),
        ({"learners": {}}, r"`learners` must name at least one uplift model"),
    ],
)
def test_bad_inputs(frame: pd.DataFrame, overrides: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {
        "features": ["mens"],
        "seeds": [0],
        "learners": learners(),
        "control": "c",
        "baseline": "m",
        **overrides,
    }
    with pytest.raises(InvalidRequest, match=match):
        compare_uplift_learners(frame, **args)
