"""Promotion on evidence, refusal, rollback and their records, on a real MLflow (SQLite).

The candidates are worse or better by construction: a model fitted on inverted
visits sends each customer the arm least likely to bring a visit, one fitted on
shuffled visits picks arms at random, and one fitted on the real visits picks
the best arm it can see. On the 3,557 held-out customers of a 12,000-customer
sample the real model's greedy policy is worth about 0.17 visits per customer,
the shuffled one's 0.15 and the inverted one's 0.11.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from lifecycle_support import build_state, clone_state, shuffled
from mlflow.tracking import MlflowClient

from features import Conflict, InvalidRequest, NotFound
from models import ArmPropensityModel
from serving.settings import Settings
from training import PropensityPyfunc, train_propensity
from training.lifecycle import (
    TrainedModel,
    TrainingSet,
    build_training_set,
    log_challenger,
    registry_for,
    split_training_set,
    train_model,
)
from training.promotion import (
    PROMOTIONS_EXPERIMENT,
    evaluate_candidates,
    history,
    promote,
    rollback,
)

RESAMPLES = 300


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return build_state(tmp_path_factory.mktemp("promotion"))


@pytest.fixture(scope="module")
def training_set(base: Settings) -> TrainingSet:
    return build_training_set(base)


def _trained(
    base: Settings, training_set: TrainingSet, family: str, labels: str, seed: int = 0
) -> TrainedModel:
    visits = training_set.frame["visit"].to_numpy()
    changed = {"real": visits, "inverted": 1 - visits, "shuffled": shuffled(visits, seed=1)}
    fitted_on = replace(training_set, frame=training_set.frame.assign(visit=changed[labels]))
    return train_model(base, family, seed=seed, training_set=fitted_on)


@pytest.fixture(scope="module")
def models(base: Settings, training_set: TrainingSet) -> dict[tuple[str, str], TrainedModel]:
    return {
        (family, labels): _trained(base, training_set, family, labels)
        for family in ("propensity", "uplift")
        for labels in ("real", "inverted", "shuffled")
    }


@pytest.fixture
def settings(base: Settings, tmp_path: Path) -> Settings:
    return clone_state(base, tmp_path)


@pytest.mark.parametrize("family", ["propensity", "uplift"])
def test_a_better_challenger_is_promoted_with_its_evidence_recorded(
    settings: Settings,
    training_set: TrainingSet,
    models: dict[tuple[str, str], TrainedModel],
    family: str,
) -> None:
    name = f"nudge-{family}"
    worse = log_challenger(settings, models[(family, "inverted")])
    better = log_challenger(settings, models[(family, "real")])
    assert (worse.aliases, better.aliases) == (("challenger", "champion"), ("challenger",))

    decision = promote(settings, family, training_set=training_set, resamples=RESAMPLES)
    assert (decision.action, decision.applied) == ("promote", True)
    assert (decision.champion_before, decision.champion_after) == ("1", "2")
    registry = registry_for(settings)
    assert registry.resolve(name, "champion").version == "2"

    evidence = decision.evidence
    assert evidence is not None
    _, held_out = split_training_set(training_set)
    assert evidence.n == len(held_out) == evidence.challenger.dr.n
    assert evidence.logged.mean == pytest.approx(held_out["visit"].mean())
    assert evidence.challenger.dr.ci95[0] > evidence.champion.dr.mean
    assert 0.155 < evidence.challenger.dr.mean < 0.19
    assert 0.08 < evidence.champion.dr.mean < 0.13
    # The inverted model keeps the e-mails from the customers they would bring back.
    assert evidence.champion.arms.get("no_email", 0.0) > 0.5
    low, high = evidence.difference.ci95
    assert 0 < low < evidence.difference.mean < high
    assert evidence.champion.same_split
    assert evidence.challenger.same_split
    assert evidence.warnings == ()

    # The record holds the numbers the decision was made on.
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    assert decision.record_run_id is not None
    run = client.get_run(decision.record_run_id)
    assert client.get_experiment(run.info.experiment_id).name == PROMOTIONS_EXPERIMENT
    assert run.data.params["action"] == "promote"
    assert run.data.metrics["challenger_dr"] == pytest.approx(evidence.challenger.dr.mean)
    assert run.data.metrics["challenger_dr_low"] == pytest.approx(evidence.challenger.dr.ci95[0])
    assert run.data.metrics["champion_dr"] == pytest.approx(evidence.champion.dr.mean)
    assert run.data.metrics["n"] == evidence.n
    recorded = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/decision.json")
    assert recorded["evidence"]["challenger"]["dr"]["mean"] == pytest.approx(
        evidence.challenger.dr.mean
    )
    promoted = registry.version(name, "2")
    assert promoted.tags["nudge.last_decision"] == "promote"
    assert promoted.tags["nudge.last_decision_run"] == decision.record_run_id
    assert registry.version(name, "1").tags["nudge.replaced_by"] == "2"

    records = history(settings, family)
    assert [(r.action, r.applied, r.champion_before, r.champion_after) for r in records] == [
        ("promote", True, "1", "2")
    ]
    assert records[0].metrics["challenger_dr"] == pytest.approx(evidence.challenger.dr.mean)


def test_a_worse_challenger_is_refused_and_the_refusal_recorded(
    settings: Settings, training_set: TrainingSet, models: dict[tuple[str, str], TrainedModel]
) -> None:
    log_challenger(settings, models[("propensity", "real")])
    log_challenger(settings, models[("propensity", "shuffled")])
    decision = promote(settings, "propensity", training_set=training_set, resamples=RESAMPLES)
    assert (decision.action, decision.applied) == ("refuse", False)
    assert registry_for(settings).resolve("nudge-propensity", "champion").version == "1"
    evidence = decision.evidence
    assert evidence is not None
    assert evidence.challenger.dr.ci95[0] <= evidence.champion.dr.mean
    assert evidence.challenger.dr.mean < evidence.champion.dr.mean
    assert "DR lower bound" in decision.reason
    assert "<=" in decision.reason
    [record] = history(settings, "propensity")
    assert (record.action, record.applied, record.challenger) == ("refuse", False, "2")
    tags = registry_for(settings).version("nudge-propensity", "2").tags
    assert tags["nudge.last_decision"] == "refuse"


def test_rollback_restores_the_exact_previous_champions(
    settings: Settings, training_set: TrainingSet, models: dict[tuple[str, str], TrainedModel]
) -> None:
    first = log_challenger(settings, models[("propensity", "inverted")])
    second = log_challenger(settings, models[("propensity", "real")])
    promote(settings, "propensity", training_set=training_set, resamples=RESAMPLES)
    third = log_challenger(settings, _trained(settings, training_set, "propensity", "real", 5))
    forced = promote(
        settings, "propensity", force=True, training_set=training_set, resamples=RESAMPLES
    )
    assert (forced.action, forced.applied, forced.forced) == ("promote", True, True)
    registry = registry_for(settings)
    assert registry.resolve("nudge-propensity", "champion").version == third.version == "3"

    back = rollback(settings, "propensity")
    assert (back.action, back.champion_before, back.champion_after) == ("rollback", "3", "2")
    champion = registry.resolve("nudge-propensity", "champion")
    assert (champion.version, champion.run_id) == (second.version, second.run_id)
    assert registry.load("nudge-propensity").run_id == second.run_id

    rollback(settings, "propensity")
    champion = registry.resolve("nudge-propensity", "champion")
    assert (champion.version, champion.run_id) == (first.version, first.run_id)
    with pytest.raises(Conflict, match=r"no earlier champion of nudge-propensity"):
        rollback(settings, "propensity")
    assert [(r.action, r.champion_after) for r in history(settings, "propensity")] == [
        ("promote", "2"),
        ("promote", "3"),
        ("rollback", "2"),
        ("rollback", "1"),
    ]


def test_dry_run_and_margin(
    settings: Settings, training_set: TrainingSet, models: dict[tuple[str, str], TrainedModel]
) -> None:
    log_challenger(settings, models[("propensity", "inverted")])
    log_challenger(settings, models[("propensity", "real")])
    dry = promote(
        settings, "propensity", dry_run=True, training_set=training_set, resamples=RESAMPLES
    )
    assert (dry.action, dry.applied, dry.record_run_id) == ("promote", False, None)
    assert registry_for(settings).resolve("nudge-propensity", "champion").version == "1"
    assert history(settings, "propensity") == []

    # A margin larger than the gap between the two policies turns the promotion down.
    assert dry.evidence is not None
    gap = dry.evidence.challenger.dr.ci95[0] - dry.evidence.champion.dr.mean
    refused = promote(
        settings, "propensity", margin=gap + 0.001, training_set=training_set, resamples=RESAMPLES
    )
    assert refused.action == "refuse"
    assert f"margin {gap + 0.001:g}" in refused.reason
    for margin in (-0.01, float("nan"), "0.1"):
        with pytest.raises(InvalidRequest, match=r"`margin` must be a number >= 0"):
            promote(settings, "propensity", margin=margin)  # type: ignore[arg-type]


def test_a_model_without_a_signature_cannot_be_promoted(
    settings: Settings, training_set: TrainingSet, models: dict[tuple[str, str], TrainedModel]
) -> None:
    log_challenger(settings, models[("propensity", "inverted")])
    model = models[("propensity", "real")].model
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    mlflow.set_experiment("unsigned")
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=PropensityPyfunc(model))
    assert info.signature is None
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    version = client.create_model_version("nudge-propensity", info.model_uri, info.run_id)
    client.set_registered_model_alias("nudge-propensity", "challenger", version.version)

    with pytest.raises(InvalidRequest, match=r"`challenger` must have a model signature"):
        promote(settings, "propensity", training_set=training_set)
    with pytest.raises(InvalidRequest, match=r"must have a model signature"):
        promote(settings, "propensity", force=True, training_set=training_set)
    assert registry_for(settings).resolve("nudge-propensity", "champion").version == "1"
    records = history(settings, "propensity")
    assert [(r.action, r.applied) for r in records] == [("refuse", False)] * 2
    assert "without a model signature" in records[0].reason


def test_a_challenger_trained_on_another_split_is_refused(
    settings: Settings, training_set: TrainingSet, models: dict[tuple[str, str], TrainedModel]
) -> None:
    log_challenger(settings, models[("propensity", "inverted")])
    # The demo's way: a stratified split of its own, which may hold held-out customers.
    demo = train_propensity(
        training_set.frame, features=list(training_set.features), model=ArmPropensityModel()
    )
    registry_for(settings).log_propensity_model(demo, alias="challenger")
    decision = promote(settings, "propensity", training_set=training_set, resamples=RESAMPLES)
    assert decision.action == "refuse"
    assert "not trained with the lifecycle's holdout" in decision.reason
    assert decision.evidence is not None
    assert not decision.evidence.challenger.same_split


def test_nothing_to_promote_and_missing_models(
    settings: Settings, training_set: TrainingSet, models: dict[tuple[str, str], TrainedModel]
) -> None:
    with pytest.raises(NotFound, match=r"model 'nudge-propensity@champion' not found"):
        promote(settings, "propensity", training_set=training_set)
    log_challenger(settings, models[("propensity", "real")])
    decision = promote(settings, "propensity", training_set=training_set)
    assert (decision.action, decision.applied, decision.record_run_id) == ("none", False, None)
    assert "already is the champion" in decision.reason
    with pytest.raises(Conflict, match=r"no earlier champion"):
        rollback(settings, "propensity")


def test_evaluation_is_reproducible(
    settings: Settings, training_set: TrainingSet, models: dict[tuple[str, str], TrainedModel]
) -> None:
    log_challenger(settings, models[("uplift", "inverted")])
    log_challenger(settings, models[("uplift", "real")])
    first = evaluate_candidates(settings, "uplift", training_set=training_set, resamples=200)
    again = evaluate_candidates(settings, "uplift", training_set=training_set, resamples=200)
    assert first == again
    assert first.outcome == "visit"
    assert set(first.challenger.arms) <= {"mens_email", "womens_email", "no_email"}
    assert sum(first.challenger.arms.values()) == pytest.approx(1.0)
    assert np.isfinite(pd.Series(first.metrics())).all()
