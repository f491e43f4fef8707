"""The whole loop on a 6,000-customer sample of the real Hillstrom data, real parts throughout."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from demo_support import E2E_SAMPLE, DemoRun
from mlflow import MlflowClient

from decisioning import SQLiteDecisionLog
from features import PROFILE_FEATURES, EventLog, FeatureRepo
from training import ModelRegistry
from training.training_set import holdout_mask

pytestmark = pytest.mark.e2e

POLICIES = ("nudge_replay", "nudge_ips", "random", "mens_email", "womens_email", "no_email")


def test_summary_has_every_policy_with_a_sane_interval(demo_run: DemoRun) -> None:
    summary = json.loads(demo_run.result.summary_path.read_text())
    assert summary["data"]["rows"] == E2E_SAMPLE
    test_rows = summary["data"]["test_rows"]
    # The lifecycle's fixed holdout: about 30 %, exactly the customers its hash picks.
    decisions = EventLog(demo_run.settings.events_dir).read("decisions")
    assert test_rows == int(holdout_mask(decisions["customer_id"]).sum())
    assert test_rows == pytest.approx(0.3 * E2E_SAMPLE, rel=0.05)
    for name in POLICIES:
        value = summary["policy_value"][name]
        low, high = value["ci95"]
        assert 0.0 <= low <= value["mean"] <= high <= 1.0, name
        assert value["n"] > 0
    assert summary["policy_value"]["random"]["n"] == test_rows
    arms_n = sum(
        summary["policy_value"][a]["n"] for a in ("mens_email", "womens_email", "no_email")
    )
    assert arms_n == test_rows
    matched = sum(
        summary["policy_value"][name]["n"]
        for name in ("nudge_replay", "explore_replay", "holdout_replay")
    )
    assert matched == summary["replay"]["matched"]
    assert summary["replay"]["decisions"] == test_rows
    assert set(summary["timings_s"]) >= {"ingest", "features", "train", "serve", "replay", "report"}


def test_replay_value_beats_uniform_random(demo_run: DemoRun) -> None:
    values = demo_run.result.summary["policy_value"]
    assert values["nudge_replay"]["mean"] > values["random"]["mean"]
    # The e-mails really did add visits in this experiment; the lift table must show it.
    lift = demo_run.result.summary["lift_vs_no_email"]["mens_email"]
    assert lift["absolute"] > 0
    assert lift["ci95"][0] > 0


def test_every_logged_decision_is_valid_bandit_feedback(demo_run: DemoRun) -> None:
    log = SQLiteDecisionLog(demo_run.settings.decision_db)
    try:
        decisions = list(log.iter_decisions())
        credited = {d.decision_id: log.credited_reward(d.decision_id) for d in decisions}
        cancelled = {
            d.decision_id
            for d in decisions
            if any(o.event == "cancelled" for o in log.outcomes(d.decision_id))
        }
    finally:
        log.close()
    assert len(decisions) == demo_run.result.summary["replay"]["decisions"]
    groups = {d.group for d in decisions}
    assert groups == {"policy", "explore", "holdout"}
    for decision in decisions:
        assert 0.0 < decision.propensity <= 1.0
        total = sum(score.probability for score in decision.scores.values())
        assert math.isclose(total, 1.0, abs_tol=1e-9)
        assert decision.propensity == decision.scores[decision.action.key].probability
        assert set(decision.scores) == {a.key for a in decision.eligible}
        if decision.group == "holdout":
            assert (decision.action.key, decision.propensity) == ("no_send", 1.0)
        else:
            assert {a.key for a in decision.eligible} == {
                "mens/email/now",
                "womens/email/now",
                "no_send",
            }
            # The 5 % uniform slice alone gives each of the three at least 0.05 / 3.
            assert decision.propensity >= 0.05 / 3 - 1e-12
    # Decisions that did not match the logged arm were cancelled and teach nothing.
    assert cancelled
    assert all(credited[d] is None for d in cancelled)
    # Windows that closed with no visit were finalised as zero rewards.
    assert any(reward == 0.0 for reward in credited.values())
    assert any(reward == 1.0 for reward in credited.values())


def test_replay_value_is_not_below_the_best_fixed_arms_lower_bound(demo_run: DemoRun) -> None:
    values = demo_run.result.summary["policy_value"]
    best = max(("mens_email", "womens_email", "no_email"), key=lambda a: values[a]["mean"])
    assert values["nudge_replay"]["mean"] >= values[best]["ci95"][0]


def test_mlflow_champion_alias_resolves_to_the_logged_version(demo_run: DemoRun) -> None:
    settings = demo_run.settings
    model = demo_run.result.summary["model"]
    client = MlflowClient(
        tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri
    )
    version = client.get_model_version_by_alias(model["name"], "champion")
    assert str(version.version) == str(model["version"])
    assert version.run_id == model["run_id"]
    loaded = ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifact_root).load(
        model["name"], "champion"
    )
    assert loaded.version == str(model["version"])


def test_feast_training_set_uses_no_feature_value_from_after_its_row(demo_run: DemoRun) -> None:
    settings = demo_run.settings
    events = EventLog(settings.events_dir)
    profiles = events.read("profiles")
    decisions = events.read("decisions")
    # Customers with a snapshot after their decision: the rows a leaky join would get wrong.
    later = profiles.merge(decisions, on="customer_id")
    later = later[later["event_timestamp"] > later["decided_at"]]
    assert len(later) > 0
    entities = decisions.rename(columns={"decided_at": "event_timestamp"})[
        ["customer_id", "event_timestamp"]
    ]
    frame = FeatureRepo(settings.state_dir).training_frame(entities)
    known = pd.merge_asof(
        entities.sort_values("event_timestamp"),
        profiles.sort_values("event_timestamp"),
        on="event_timestamp",
        by="customer_id",
        direction="backward",
    ).set_index("customer_id")
    got = frame.set_index("customer_id")
    for feature in PROFILE_FEATURES:
        expected = known.loc[got.index, feature].to_numpy()
        assert list(got[feature].to_numpy()) == list(expected), feature
    assert (got.loc[later["customer_id"], "recency"] != 0).all()


def test_report_page_has_the_three_charts_and_tables(demo_run: DemoRun) -> None:
    page = demo_run.result.report_path.read_text()
    for element in ("chart-0", "chart-1", "chart-2", "policy-table", "lift-table"):
        assert f'id="{element}"' in page or f"id='{element}'" in page, element
    assert "Plotly.newPlot" in page
    assert "<script src=" not in page  # self-contained: opens without a network


def test_demo_prints_the_policy_table(demo_run: DemoRun) -> None:
    lines = demo_run.output.splitlines()
    for name in POLICIES:
        assert any(line.startswith(name) for line in lines), name
    assert any(line.startswith("[6/6] Report") for line in lines)
