"""Training sets from Feast, training a family's model and logging it to a real MLflow (SQLite)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from lifecycle_support import build_state, clone_state
from mlflow.tracking import MlflowClient
from mlflow.utils.proto_json_utils import dataframe_from_parsed_json

from features import EventLog, FeatureRepo, InvalidRequest
from models import ArmPropensityModel, DRLearner
from serving.settings import Settings
from training.lifecycle import (
    CONTROL_ARM,
    TrainedModel,
    TrainingSet,
    build_training_set,
    holdout_mask,
    log_challenger,
    registry_for,
    split_training_set,
    train_model,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return build_state(tmp_path_factory.mktemp("lifecycle"))


@pytest.fixture(scope="module")
def training_set(base: Settings) -> TrainingSet:
    return build_training_set(base)


@pytest.fixture(scope="module")
def propensity(base: Settings, training_set: TrainingSet) -> TrainedModel:
    return train_model(base, "propensity", training_set=training_set)


@pytest.fixture(scope="module")
def uplift(base: Settings, training_set: TrainingSet) -> TrainedModel:
    return train_model(base, "uplift", learner="dr", training_set=training_set)


def test_training_set_joins_every_decision_with_its_outcome_and_features(
    base: Settings, training_set: TrainingSet
) -> None:
    decisions = EventLog(base.events_dir).read("decisions")
    frame = training_set.frame
    assert len(frame) == len(decisions) == 12_000
    assert training_set.features == (
        "recency",
        "history",
        "mens",
        "womens",
        "newbie",
        "zip_code",
        "channel",
    )
    assert training_set.feature_service == "propensity_v1"
    assert training_set.rows == {
        "profiles": len(EventLog(base.events_dir).read("profiles")),
        "decisions": 12_000,
        "outcomes": 12_000,
        "training": 12_000,
    }
    assert frame["recency"].dtype == "float64"
    assert isinstance(frame["channel"].dtype, pd.StringDtype)
    assert frame[list(training_set.features)].notna().all().all()
    assert set(frame["arm"]) == {"mens_email", "womens_email", "no_email"}
    np.testing.assert_allclose(frame["propensity"], 1 / 3)
    # The same data gives the same snapshot id.
    assert build_training_set(base).snapshot_id == training_set.snapshot_id
    assert len(training_set.snapshot_id) == 64


def test_as_of_ignores_a_backfilled_feature_row(base: Settings, tmp_path: Path) -> None:
    settings = clone_state(base, tmp_path)
    events = EventLog(settings.events_dir)
    FeatureRepo(settings.state_dir).apply(events.path("profiles"))
    before = build_training_set(settings)
    decisions = events.read("decisions")
    customer = str(decisions["customer_id"].iloc[100])
    decided_at = decisions["decided_at"].iloc[100]
    original = before.frame.loc[before.frame["customer_id"] == customer, "recency"].item()

    profiles = events.read("profiles")
    row = profiles[profiles["customer_id"] == customer].head(1).copy()
    # Stamped before the decision, so Feast joins it; created years later by a backfill.
    row["event_timestamp"] = decided_at - timedelta(hours=1)
    row["created_at"] = pd.Timestamp("2030-01-01", tz="UTC")
    row["recency"] = int(original) + 50
    events.write("profiles", pd.concat([profiles, row], ignore_index=True))

    leaky = build_training_set(settings)
    assert leaky.frame.loc[leaky.frame["customer_id"] == customer, "recency"].item() == (
        original + 50
    )
    known = build_training_set(settings, as_of=datetime(2020, 1, 1, tzinfo=UTC))
    assert known.frame.loc[known.frame["customer_id"] == customer, "recency"].item() == original
    assert known.ignored["profiles"] == 1
    assert known.rows["profiles"] == len(profiles)
    # Every other row is as before, and the snapshot says the data differ.
    pd.testing.assert_frame_equal(known.frame, before.frame)
    assert len({before.snapshot_id, leaky.snapshot_id, known.snapshot_id}) == 3


def test_as_of_leaves_out_decisions_and_outcomes_not_yet_known(base: Settings) -> None:
    outcomes = EventLog(base.events_dir).read("outcomes")
    as_of = datetime(2008, 3, 20, tzinfo=UTC)
    known = build_training_set(base, as_of=as_of)
    observed = outcomes["observed_at"] <= pd.Timestamp(as_of)
    assert 0 < len(known.frame) == int(observed.sum()) < len(outcomes)
    assert known.ignored["outcomes"] == int((~observed).sum())
    assert known.ignored["decisions_without_outcome"] == int((~observed).sum())
    assert known.frame["event_timestamp"].max() <= pd.Timestamp(as_of) - pd.Timedelta(days=14)
    with pytest.raises(InvalidRequest, match=r"`as_of` leaves no decision with a known outcome"):
        build_training_set(base, as_of=datetime(2008, 3, 2, tzinfo=UTC))
    with pytest.raises(InvalidRequest, match=r"`as_of` must be a timezone-aware datetime"):
        build_training_set(base, as_of=datetime(2008, 3, 20))


def test_every_model_is_judged_on_the_same_customers(training_set: TrainingSet) -> None:
    train, test = split_training_set(training_set)
    assert set(train["customer_id"]).isdisjoint(test["customer_id"])
    assert len(test) / len(training_set.frame) == pytest.approx(0.3, abs=0.02)
    # A customer's side depends on its id alone, not on which other rows are there.
    some = training_set.frame["customer_id"].iloc[::7]
    np.testing.assert_array_equal(
        holdout_mask(some), holdout_mask(training_set.frame["customer_id"])[::7]
    )


def test_propensity_training_evaluates_every_arm(propensity: TrainedModel) -> None:
    assert isinstance(propensity.model, ArmPropensityModel)
    metrics = propensity.metrics
    for arm in ("mens_email", "womens_email", "no_email"):
        assert 0.58 < metrics[f"auc_{arm}"] < 0.75
        assert 0.2 < metrics[f"log_loss_{arm}"] < 0.5
        assert 0 <= metrics[f"ece_{arm}"] < 0.05
    for treatment in ("mens_email", "womens_email"):
        assert f"qini_{treatment}" in metrics
        # Both e-mails raised visits in Hillstrom; the model sees it.
        assert metrics[f"observed_uplift_{treatment}"] > 0.02
        assert metrics[f"predicted_uplift_{treatment}"] > 0.02
    assert set(propensity.figures) == {
        "plots/calibration.png",
        "plots/qini.png",
        "plots/feature_importance.png",
    }


def test_same_seed_same_model(base: Settings, training_set: TrainingSet) -> None:
    first = train_model(base, "uplift", learner="t", seed=3, training_set=training_set)
    again = train_model(base, "uplift", learner="t", seed=3, training_set=training_set)
    assert first.metrics == again.metrics


def test_log_challenger_records_config_snapshot_metrics_plots_and_categories(
    base: Settings, tmp_path: Path, propensity: TrainedModel
) -> None:
    settings = clone_state(base, tmp_path)
    registered = log_challenger(settings, propensity)
    # The family's first model is its champion too: there is nothing to compare it with.
    assert (registered.name, registered.version) == ("nudge-propensity", "1")
    assert registered.aliases == ("challenger", "champion")

    client = MlflowClient(settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    run = client.get_run(registered.run_id)
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "nudge-propensity"
    params = run.data.params
    assert params["feature_service"] == "propensity_v1"
    assert params["snapshot_id"] == propensity.training_set.snapshot_id
    assert params["learner"] == "arm"
    assert params["model.num_boost_round"] == "200"
    assert params["train_rows"] == str(len(propensity.train))
    assert run.data.metrics == pytest.approx(propensity.metrics, abs=1e-12)

    artifacts = Path(settings.mlflow_artifact_root) / registered.run_id / "artifacts"
    for plot in ("calibration", "qini", "feature_importance"):
        assert (artifacts / "plots" / f"{plot}.png").read_bytes()[:8] == PNG_MAGIC
    schema = json.loads((artifacts / "feature_schema.json").read_text())
    model = propensity.model
    assert isinstance(model, ArmPropensityModel)
    categorical = {f["name"]: f["categories"] for f in schema["features"] if "categories" in f}
    assert categorical == model.categories_
    assert categorical["channel"] == ["Multichannel", "Phone", "Web"]
    assert json.loads(run.data.tags["nudge.categories"]) == model.categories_

    version = client.get_model_version("nudge-propensity", "1")
    assert version.tags["nudge.snapshot_id"] == propensity.training_set.snapshot_id
    assert version.tags["nudge.kind"] == "propensity"

    second = log_challenger(settings, propensity)
    assert (second.version, second.aliases) == ("2", ("challenger",))
    registry = registry_for(settings)
    assert registry.resolve("nudge-propensity", "champion").version == "1"
    # The served model still loads the way the API loads it.
    served = registry.load("nudge-propensity", "champion")
    features = list(propensity.training_set.features)
    pd.testing.assert_frame_equal(
        served.model.predict_frame(propensity.test[features]),
        model.predict_frame(propensity.test[features]),
    )


@pytest.mark.parametrize("family", ["propensity", "uplift"])
def test_signature_accepts_the_serving_payload(
    base: Settings,
    tmp_path: Path,
    family: str,
    propensity: TrainedModel,
    uplift: TrainedModel,
) -> None:
    trained = propensity if family == "propensity" else uplift
    settings = clone_state(base, tmp_path)
    registered = log_challenger(settings, trained)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{registered.name}/{registered.version}")
    signature = pyfunc.metadata.get_input_schema()
    assert signature.input_types_dict()["recency"].name == "double"
    assert signature.input_types_dict()["zip_code"].name == "string"

    # What Feast's online store gives serving: a missing int and a category never trained on.
    payload = {
        "recency": None,
        "history": 250.0,
        "mens": 1,
        "womens": 0,
        "newbie": 1,
        "zip_code": "Atlantis",
        "channel": "Web",
    }
    predicted = pyfunc.predict(payload)
    expected = trained.model.predict_one(payload)
    assert list(predicted.columns) == list(expected)
    np.testing.assert_allclose(predicted.iloc[0].to_numpy(), list(expected.values()), atol=1e-12)
    assert np.isfinite(predicted.to_numpy()).all()

    # The same payload as JSON records, as a served model receives it: ints are cast.
    records = [payload, {**payload, "recency": 7, "zip_code": None}]
    frame = dataframe_from_parsed_json(records, "records", signature)
    scored = pyfunc.predict(frame)
    assert scored.shape == (2, len(expected))
    second = trained.model.predict_one(records[1])
    np.testing.assert_allclose(scored.iloc[1].to_numpy(), list(second.values()), atol=1e-12)


def test_uplift_models_are_logged_and_loaded(
    base: Settings, tmp_path: Path, uplift: TrainedModel
) -> None:
    settings = clone_state(base, tmp_path)
    registered = log_challenger(settings, uplift)
    assert (registered.name, registered.aliases) == ("nudge-uplift", ("challenger", "champion"))
    registry = registry_for(settings)
    loaded = registry.load_version("nudge-uplift", registered.version)
    assert loaded.kind == "uplift"
    assert isinstance(loaded.model, DRLearner)
    features = list(uplift.training_set.features)
    pd.testing.assert_frame_equal(
        loaded.model.predict_uplift(uplift.test[features]),
        uplift.model.predict_uplift(uplift.test[features]),  # type: ignore[union-attr]
    )
    assert list(loaded.model.treatments) == ["mens_email", "womens_email"]
    assert CONTROL_ARM not in loaded.model.treatments
    # The API serves propensity models only, and says so.
    with pytest.raises(InvalidRequest, match=r"`name` must name a registered propensity model"):
        registry.load("nudge-uplift", "champion")


def test_uplift_on_spend(base: Settings, training_set: TrainingSet) -> None:
    trained = train_model(base, "uplift", learner="t", outcome="spend", training_set=training_set)
    assert "auc_mens_email" not in trained.metrics
    # Mean spend per customer rose by about half a dollar with the e-mails in Hillstrom.
    assert -2 < trained.metrics["observed_uplift_mens_email"] < 3
    assert "plots/calibration.png" in trained.figures


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"family": "churn"}, r"`model` must be one of \['propensity', 'uplift'\], got 'churn'"),
        ({"learner": "t"}, r"`learner` must be one of \['arm', 'calibrated'\], got 't'"),
        ({"outcome": "clicks"}, r"`outcome` must be one of \['visit', 'conversion', 'spend'\]"),
        ({"outcome": "spend"}, r"`outcome` must be a 0/1 outcome .* for nudge-propensity"),
        ({"seed": -1}, r"`seed` must be an integer >= 0, got -1"),
        (
            {"as_of": datetime(2030, 1, 1, tzinfo=UTC)},
            r"`as_of` must be left out when a training_set is given",
        ),
    ],
)
def test_bad_arguments_name_the_field(
    base: Settings, training_set: TrainingSet, kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"family": "propensity", **kwargs}
    family = str(arguments.pop("family"))
    with pytest.raises(InvalidRequest, match=message):
        train_model(base, family, training_set=training_set, **arguments)  # type: ignore[arg-type]


def test_a_training_set_without_held_out_customers_is_refused(
    base: Settings, training_set: TrainingSet
) -> None:
    mask = holdout_mask(training_set.frame["customer_id"])
    only_train = replace(training_set, frame=training_set.frame[~mask])
    with pytest.raises(InvalidRequest, match=r"`training_set` must have held-out customers"):
        train_model(base, "propensity", training_set=only_train)
