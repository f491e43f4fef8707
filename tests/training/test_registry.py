"""The MLflow registry round trip on a real SQLite-backed MLflow in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from features import InvalidRequest, NotFound
from models import ArmPropensityModel
from training import ModelRegistry, PropensityTrainingResult, train_propensity


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    # One store for the module: creating a fresh SQLite store runs MLflow's migrations (~2 s).
    root = tmp_path_factory.mktemp("mlflow")
    return ModelRegistry(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts")


@pytest.fixture(scope="module")
def trained(hillstrom: pd.DataFrame, features: list[str]) -> PropensityTrainingResult:
    model = ArmPropensityModel(num_boost_round=20)
    return train_propensity(hillstrom.sample(6_000, random_state=0), features=features, model=model)


def test_round_trip(
    registry: ModelRegistry,
    trained: PropensityTrainingResult,
    features: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    registered = registry.log_propensity_model(
        trained, name="round-trip", params={"sample": 6_000}, tags={"owner": "tests"}
    )
    assert (registered.name, registered.version, registered.alias) == (
        "round-trip",
        "1",
        "champion",
    )

    client = MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)
    assert str(client.get_model_version_by_alias("round-trip", "champion").version) == "1"
    run = client.get_run(registered.run_id)
    assert run.data.params["num_boost_round"] == "20"
    assert run.data.params["sample"] == "6000"
    assert run.data.tags["owner"] == "tests"
    assert run.data.metrics == pytest.approx(trained.metrics, abs=1e-12)
    artifacts = Path(registry.artifact_root)
    assert any(artifacts.rglob("arm_propensity_model.pkl"))

    loaded = registry.load("round-trip")
    assert (loaded.name, loaded.version, loaded.alias) == ("round-trip", "1", "champion")
    assert loaded.run_id == registered.run_id
    assert isinstance(loaded.model, ArmPropensityModel)
    frame = trained.test[features]
    pd.testing.assert_frame_equal(
        loaded.model.predict_frame(frame), trained.model.predict_frame(frame)
    )
    row = frame.iloc[0].to_dict()
    assert loaded.model.predict_one(row) == trained.model.predict_one(row)


def test_registering_again_moves_the_alias(
    registry: ModelRegistry, trained: PropensityTrainingResult
) -> None:
    first = registry.log_propensity_model(trained, name="promotion")
    second = registry.log_propensity_model(trained, name="promotion")
    assert (first.version, second.version) == ("1", "2")
    assert second.run_id != first.run_id
    champion = registry.load("promotion", "champion")
    assert (champion.version, champion.run_id) == ("2", second.run_id)

    challenger = registry.log_propensity_model(trained, name="promotion", alias="challenger")
    assert challenger.version == "3"
    assert registry.load("promotion", "champion").version == "2"
    assert registry.load("promotion", "challenger").version == "3"


def test_pyfunc_predicts_frames_with_missing_values(
    registry: ModelRegistry, trained: PropensityTrainingResult, features: list[str]
) -> None:
    registry.log_propensity_model(trained, name="pyfunc")
    pyfunc = mlflow.pyfunc.load_model("models:/pyfunc@champion")
    frame = trained.test[features].head(20).reset_index(drop=True)
    # The signature declares numeric features as double so that gaps (NaN) pass.
    # MLflow then accepts int64 0/1 flags as they are, but refuses other int64
    # columns (not exactly representable in general), so recency is cast first.
    gappy = frame.assign(recency=frame["recency"].astype("float64"))
    gappy.loc[:4, "recency"] = np.nan
    assert (gappy[["mens", "womens", "newbie"]].dtypes == "int64").all()
    predicted = pyfunc.predict(gappy[list(reversed(features))])
    expected = trained.model.predict_frame(gappy)
    assert list(predicted.columns) == list(expected.columns)
    np.testing.assert_allclose(predicted.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-12)


def test_missing_model_or_alias_is_not_found(
    registry: ModelRegistry, trained: PropensityTrainingResult
) -> None:
    with pytest.raises(NotFound, match=r"model 'no-such-model@champion' not found"):
        registry.load("no-such-model")
    registry.log_propensity_model(trained, name="aliased")
    with pytest.raises(NotFound, match=r"model 'aliased@no-such-alias' not found"):
        registry.load("aliased", "no-such-alias")


def test_params_may_not_override_the_model_params(
    registry: ModelRegistry, trained: PropensityTrainingResult
) -> None:
    with pytest.raises(InvalidRequest, match=r"`params` must not override .*got \['seed'\]"):
        registry.log_propensity_model(trained, name="clash", params={"seed": 3})


def test_mlflow_stays_quiet(
    registry: ModelRegistry, trained: PropensityTrainingResult, capfd: pytest.CaptureFixture[str]
) -> None:
    registry.log_propensity_model(trained, name="quiet")
    registry.load("quiet")
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""
