"""The MLflow model registry: log a trained propensity model, move an alias, load by alias."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient

from features import InvalidRequest, NotFound
from models import ArmPropensityModel
from training.mlflow_model import PropensityPyfunc, pyfunc_files
from training.propensity_training import PropensityTrainingResult

__all__ = ["LoadedModel", "ModelRegistry", "RegisteredModel"]

_EXAMPLE_ROWS = 5
_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
# Pinned so that MLflow need not infer them, which loads the model in a subprocess.
# Loading also needs Nudge itself importable: the logged entry point imports training.
_REQUIREMENTS = ("lightgbm", "numpy", "pandas", "scikit-learn")


@dataclass(frozen=True)
class RegisteredModel:
    """Where a logged model landed: registry name, version, the alias now on it, and its run."""

    name: str
    version: str
    alias: str
    run_id: str


@dataclass(frozen=True)
class LoadedModel:
    """A model loaded from the registry, unwrapped to the raw model, and where it came from."""

    model: ArmPropensityModel
    name: str
    version: str
    alias: str
    run_id: str


class ModelRegistry:
    """MLflow tracking and registry on one store (SQLite by default) and a local artifact root.

    MLflow's fluent API (runs, ``log_model``, ``models:/`` URIs) reads the
    process-wide tracking and registry URIs, so each call points both at this
    registry's store first.
    """

    def __init__(self, tracking_uri: str, artifact_root: Path) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = Path(artifact_root)
        # The client opens the store at once, and a new SQLite store logs its migrations.
        with _quiet_mlflow():
            self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def log_propensity_model(
        self,
        result: PropensityTrainingResult,
        *,
        name: str = "nudge-propensity",
        alias: str = "champion",
        experiment: str = "nudge-propensity",
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> RegisteredModel:
        """Log ``result`` as one run, register it as a new version of ``name``, move ``alias``.

        The run holds the model's parameters plus ``params``, the held-out
        metrics, ``tags``, and the model as a pyfunc with a signature and an
        input example.
        """
        model = result.model
        clashes = sorted(set(params or {}) & set(model.get_params()))
        if clashes:
            raise InvalidRequest("params", "must not override the model's own parameters", clashes)
        example = _input_example(result.test, model.feature_names_)
        signature = infer_signature(example, model.predict_frame(example))
        with self._active(), _quiet_mlflow(), pyfunc_files(model) as (code, artifacts):
            experiment_id = self._experiment_id(experiment)
            with mlflow.start_run(experiment_id=experiment_id) as run:
                mlflow.log_params({**model.get_params(), **(params or {})})
                mlflow.log_metrics(result.metrics)
                mlflow.set_tags(
                    {
                        "nudge.model": type(model).__name__,
                        "nudge.features": ",".join(model.feature_names_),
                        "nudge.actions": ",".join(model.actions),
                        **(tags or {}),
                    }
                )
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=code,
                    artifacts=artifacts,
                    signature=signature,
                    input_example=example,
                    pip_requirements=_pip_requirements(),
                )
            version = self._register(name, info.model_uri, run.info.run_id, info.model_id)
            self._client.set_registered_model_alias(name, alias, version)
        return RegisteredModel(name=name, version=version, alias=alias, run_id=run.info.run_id)

    def load(self, name: str = "nudge-propensity", alias: str = "champion") -> LoadedModel:
        """The raw model that ``name@alias`` points at, ready to predict on numpy.

        Raises ``NotFound`` when the registry has no such model or alias.
        """
        with self._active(), _quiet_mlflow():
            try:
                version = self._client.get_model_version_by_alias(name, alias)
            except MlflowException:
                # The store reports a missing model and a missing alias with different
                # error codes; ask directly rather than decode them.
                if not self._has_alias(name, alias):
                    raise NotFound("model", f"{name}@{alias}") from None
                raise
            # The version the alias resolved to, not the alias again: if the alias
            # moves meanwhile, what is loaded still matches the version reported.
            pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}")
        wrapper = pyfunc.unwrap_python_model()
        if not isinstance(wrapper, PropensityPyfunc) or wrapper.model is None:
            raise InvalidRequest(
                "name", "must name a registered propensity model", type(wrapper).__name__
            )
        return LoadedModel(
            model=wrapper.model,
            name=name,
            version=str(version.version),
            alias=alias,
            run_id=str(version.run_id),
        )

    def _has_alias(self, name: str, alias: str) -> bool:
        try:
            registered = self._client.get_registered_model(name)
        except MlflowException as error:
            if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                return False
            raise
        return alias in registered.aliases

    def _register(self, name: str, model_uri: str, run_id: str, model_id: str) -> str:
        # What log_model(registered_model_name=...) does, minus the lines it prints
        # straight to stderr, which no logging level silences.
        try:
            self._client.create_registered_model(name)
        except MlflowException as error:
            if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
        created = self._client.create_model_version(
            name, source=model_uri, run_id=run_id, model_id=model_id
        )
        return str(created.version)

    def _experiment_id(self, experiment: str) -> str:
        found = self._client.get_experiment_by_name(experiment)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(
                self._client.create_experiment(
                    experiment, artifact_location=self.artifact_root.resolve().as_uri()
                )
            )
        except MlflowException as error:
            # Another process created it between our look-up and create.
            if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            created = self._client.get_experiment_by_name(experiment)
            if created is None:
                raise
            return str(created.experiment_id)

    @contextmanager
    def _active(self) -> Iterator[None]:
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        yield


def _input_example(test: pd.DataFrame, features: tuple[str, ...]) -> pd.DataFrame:
    """A few held-out rows; integer columns as float so the signature admits missing values."""
    example = test.loc[:, list(features)].head(_EXAMPLE_ROWS).reset_index(drop=True)
    for column in example.columns:
        if pd.api.types.is_integer_dtype(example[column]) or pd.api.types.is_bool_dtype(
            example[column]
        ):
            example[column] = example[column].astype("float64")
    return example


def _pip_requirements() -> list[str]:
    return [f"mlflow=={mlflow.__version__}"] + [
        f"{package}=={metadata.version(package)}" for package in _REQUIREMENTS
    ]


@contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """Silence MLflow's INFO chatter and progress bars for the duration of a call.

    Warnings still show. A progress-bar setting the user made themselves is kept.
    """
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    user_set_bar = _PROGRESS_BAR in os.environ
    if not user_set_bar:
        os.environ[_PROGRESS_BAR] = "false"
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        if not user_set_bar:
            os.environ.pop(_PROGRESS_BAR, None)
