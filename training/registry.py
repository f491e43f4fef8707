"""The MLflow model registry: log a trained model, move an alias, load by alias or version.

Both kinds of model (see :mod:`training.mlflow_model`) are logged the same way:
one run holding the parameters, metrics, plots and documents, the model as a
pyfunc with a signature and an input example, and a new registered version
carrying the requested aliases.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, get_model_info
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient

from features import InvalidRequest, NotFound
from models import UpliftModel
from training.mlflow_model import (
    ModelKind,
    PropensityModel,
    PropensityPyfunc,
    UpliftPyfunc,
    model_kind,
    pyfunc_files,
    serving_signature,
)
from training.propensity_training import PropensityTrainingResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["LoadedModel", "ModelRegistry", "ModelVersionInfo", "RegisteredModel"]

_EXAMPLE_ROWS = 5
_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
# Pinned so that MLflow need not infer them, which loads the model in a subprocess.
# Loading also needs Nudge itself importable: the logged entry point imports training.
_REQUIREMENTS = ("lightgbm", "numpy", "pandas", "scikit-learn")
# MLflow's limit on a parameter value; longer values go in the run's documents.
_PARAM_LIMIT = 6_000

ModelT = TypeVar("ModelT", covariant=True)


@dataclass(frozen=True)
class RegisteredModel:
    """Where a logged model landed: registry name, version, the alias now on it, and its run.

    ``aliases`` are all the aliases the version was given (``alias`` is the first).
    """

    name: str
    version: str
    alias: str
    run_id: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadedModel(Generic[ModelT]):
    """A model loaded from the registry, unwrapped to the raw model, and where it came from.

    ``alias`` is the alias it was loaded by, or empty when it was loaded by version.
    """

    model: ModelT
    name: str
    version: str
    alias: str
    run_id: str
    kind: ModelKind = "propensity"


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered version: its aliases now, its run, when it was created and its tags."""

    name: str
    version: str
    aliases: tuple[str, ...]
    run_id: str
    created: datetime
    tags: dict[str, str]


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
        return self.log_model(
            model,
            name=name,
            experiment=experiment,
            example=result.test,
            aliases=(alias,),
            params={**model.get_params(), **(params or {})},
            metrics=result.metrics,
            tags=tags,
        )

    def log_model(
        self,
        model: PropensityModel | UpliftModel,
        *,
        name: str,
        experiment: str,
        example: pd.DataFrame,
        aliases: Sequence[str] = ("champion",),
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, Any] | None = None,
        figures: Mapping[str, Figure] | None = None,
        documents: Mapping[str, Any] | None = None,
    ) -> RegisteredModel:
        """Log ``model`` as one run, register it as a new version of ``name``, set ``aliases``.

        ``example`` supplies a few rows of the model's features as the input
        example (numbers as float, so that it shows the signature's doubles).
        ``figures`` are saved as PNG artifacts and ``documents`` as JSON, both
        under the paths given as their keys. The version is tagged ``nudge.kind``.
        """
        if isinstance(aliases, str) or not aliases:
            raise InvalidRequest("aliases", "must be a non-empty sequence of alias names", aliases)
        kind = model_kind(model)
        features = _fitted_attribute(model, "feature_names_")
        categories: dict[str, list[str]] = dict(getattr(model, "categories_", {}))
        outputs = _fitted_attribute(model, "treatments" if kind == "uplift" else "actions")
        signature = serving_signature(features, list(categories), outputs)
        model_tags = {
            "nudge.model": type(model).__name__,
            "nudge.kind": kind,
            "nudge.features": ",".join(features),
            "nudge.categories": json.dumps(categories, sort_keys=True),
            **({"nudge.actions": ",".join(outputs)} if kind == "propensity" else {}),
            **({"nudge.treatments": ",".join(outputs)} if kind == "uplift" else {}),
            **(tags or {}),
        }
        input_example = _input_example(example, features)
        with self._active(), _quiet_mlflow(), pyfunc_files(model) as (code, artifacts):
            logged: list[tuple[str, str]] = []
            run_id = self._log_run(
                experiment,
                params=params,
                metrics=metrics,
                tags=model_tags,
                figures=figures,
                documents=documents,
                then=lambda: logged.append(_log_pyfunc(code, artifacts, signature, input_example)),
            )
            model_uri, model_id = logged[0]
            version = self._register(name, model_uri, run_id, model_id)
            self._client.set_model_version_tag(name, version, "nudge.kind", kind)
            for alias in aliases:
                self._client.set_registered_model_alias(name, alias, version)
        return RegisteredModel(
            name=name, version=version, alias=aliases[0], run_id=run_id, aliases=tuple(aliases)
        )

    def log_run(
        self,
        experiment: str,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, Any] | None = None,
        figures: Mapping[str, Figure] | None = None,
        documents: Mapping[str, Any] | None = None,
        then: Callable[[], object] | None = None,
    ) -> str:
        """Record one run with no model (a promotion's evidence, say); returns its id.

        ``then`` runs last, inside the run: if it raises, the run is marked
        FAILED rather than FINISHED, so a record is finished only when what it
        records (an alias move, say) happened.
        """
        with self._active(), _quiet_mlflow():
            return self._log_run(
                experiment,
                params=params,
                metrics=metrics,
                tags=tags,
                figures=figures,
                documents=documents,
                then=then,
            )

    def runs(self, experiment: str, filter_string: str = "") -> list[Run]:
        """The runs of ``experiment`` matching ``filter_string``, oldest first ([] if none)."""
        with _quiet_mlflow():
            found = self._client.get_experiment_by_name(experiment)
            if found is None:
                return []
            runs: list[Run] = []
            token: str | None = None
            while True:
                page = self._client.search_runs(
                    [found.experiment_id],
                    filter_string=filter_string,
                    order_by=["attributes.start_time ASC"],
                    max_results=1_000,
                    page_token=token,
                )
                runs.extend(page)
                token = page.token
                if not token:
                    return runs

    def run(self, run_id: str) -> Run:
        """One run by id."""
        with _quiet_mlflow():
            return self._client.get_run(run_id)

    def load(
        self, name: str = "nudge-propensity", alias: str = "champion"
    ) -> LoadedModel[PropensityModel]:
        """The raw propensity model that ``name@alias`` points at, ready to predict on numpy.

        Raises ``NotFound`` when the registry has no such model or alias, and
        ``InvalidRequest`` when it is not a propensity model.
        """
        version = self.resolve(name, alias).version
        loaded = self.load_version(name, version)
        if loaded.kind != "propensity":
            raise InvalidRequest(
                "name", "must name a registered propensity model", f"{name}@{alias} ({loaded.kind})"
            )
        return LoadedModel(
            model=cast(PropensityModel, loaded.model),
            name=name,
            version=version,
            alias=alias,
            run_id=loaded.run_id,
        )

    def load_version(self, name: str, version: str) -> LoadedModel[PropensityModel | UpliftModel]:
        """The raw model of one version of ``name``, of either kind (see ``kind``)."""
        info = self.version(name, version)
        with self._active(), _quiet_mlflow():
            # The version, not an alias: if an alias moves meanwhile, what is loaded
            # still matches the version reported.
            pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
        wrapper = pyfunc.unwrap_python_model()
        model: PropensityModel | UpliftModel | None
        if isinstance(wrapper, PropensityPyfunc):
            kind: ModelKind = "propensity"
            model = wrapper.model
        elif isinstance(wrapper, UpliftPyfunc):
            kind = "uplift"
            model = wrapper.model
        else:
            model = None
        if model is None:
            raise InvalidRequest(
                "name", "must name a registered Nudge model", type(wrapper).__name__
            )
        return LoadedModel(
            model=model, name=name, version=str(version), alias="", run_id=info.run_id, kind=kind
        )

    def resolve(self, name: str, alias: str) -> ModelVersionInfo:
        """The version ``name@alias`` points at now; ``NotFound`` if there is none."""
        with _quiet_mlflow():
            try:
                found = self._client.get_model_version_by_alias(name, alias)
            except MlflowException:
                # The store reports a missing model and a missing alias with different
                # error codes; ask directly rather than decode them.
                if not self._has_alias(name, alias):
                    raise NotFound("model", f"{name}@{alias}") from None
                raise
        return _version_info(found)

    def version(self, name: str, version: str) -> ModelVersionInfo:
        """One version of ``name``; ``NotFound`` if the registry has no such version."""
        with _quiet_mlflow():
            try:
                found = self._client.get_model_version(name, str(version))
            except MlflowException as error:
                if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                    raise NotFound("model version", f"{name} v{version}") from None
                raise
        return _version_info(found)

    def versions(self, name: str) -> list[ModelVersionInfo]:
        """Every version of ``name``, oldest first ([] for a name never registered)."""
        with _quiet_mlflow():
            found = self._client.search_model_versions(f"name = '{_quoted(name)}'")
            # Searched versions come without their aliases; the model lists them all.
            aliases = self._client.get_registered_model(name).aliases if found else {}
        by_version: dict[str, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(str(version), []).append(alias)
        infos = [
            replace(_version_info(v), aliases=tuple(sorted(by_version.get(str(v.version), []))))
            for v in found
        ]
        return sorted(infos, key=lambda v: int(v.version))

    def names(self) -> list[str]:
        """The registered model names, sorted."""
        with _quiet_mlflow():
            return sorted(model.name for model in self._client.search_registered_models())

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point ``name@alias`` at ``version``."""
        self.version(name, version)
        with _quiet_mlflow():
            self._client.set_registered_model_alias(name, alias, str(version))

    def tag_version(self, name: str, version: str, tags: Mapping[str, Any]) -> None:
        """Set tags on one version (existing keys are overwritten)."""
        with _quiet_mlflow():
            for key, value in tags.items():
                self._client.set_model_version_tag(name, str(version), key, str(value))

    def signature(self, name: str, version: str) -> ModelSignature | None:
        """The signature a version was logged with, or None if it was logged without one."""
        with self._active(), _quiet_mlflow():
            signature: ModelSignature | None = get_model_info(f"models:/{name}/{version}").signature
        return signature

    def _log_run(
        self,
        experiment: str,
        *,
        params: Mapping[str, Any] | None,
        metrics: Mapping[str, float] | None,
        tags: Mapping[str, Any] | None,
        figures: Mapping[str, Figure] | None,
        documents: Mapping[str, Any] | None,
        then: Callable[[], object] | None,
    ) -> str:
        experiment_id = self._experiment_id(experiment)
        long_params = {k: v for k, v in (params or {}).items() if len(str(v)) > _PARAM_LIMIT}
        with mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.log_params({k: v for k, v in (params or {}).items() if k not in long_params})
            if metrics:
                mlflow.log_metrics(dict(metrics))
            if tags:
                mlflow.set_tags({key: str(value) for key, value in tags.items()})
            for path, figure in (figures or {}).items():
                mlflow.log_figure(figure, path)
            for path, document in {**(documents or {}), **_long_params(long_params)}.items():
                mlflow.log_dict(document, path)
            if then is not None:
                then()
        return str(run.info.run_id)

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


def _log_pyfunc(
    code: Path,
    artifacts: dict[str, str],
    signature: ModelSignature,
    example: pd.DataFrame,
) -> tuple[str, str]:
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=code,
        artifacts=artifacts,
        signature=signature,
        input_example=example,
        pip_requirements=_pip_requirements(),
    )
    return info.model_uri, str(info.model_id)


def _fitted_attribute(model: object, name: str) -> tuple[str, ...]:
    """A fitted model's tuple of names (features, actions, treatments)."""
    value = getattr(model, name, None)
    if value is None or isinstance(value, str):
        raise InvalidRequest("model", f"must be fitted, with `{name}`", type(model).__name__)
    return tuple(str(item) for item in value)


def _long_params(params: Mapping[str, Any]) -> dict[str, Any]:
    return {f"params/{key}.json": {"value": str(value)} for key, value in params.items()}


def _version_info(version: Any) -> ModelVersionInfo:
    return ModelVersionInfo(
        name=str(version.name),
        version=str(version.version),
        aliases=tuple(sorted(version.aliases or ())),
        run_id=str(version.run_id),
        created=datetime.fromtimestamp(version.creation_timestamp / 1000, tz=UTC),
        tags=dict(version.tags or {}),
    )


def _quoted(name: str) -> str:
    return name.replace("'", "\\'")


def _input_example(test: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    """A few held-out rows; integer columns as float so the signature admits missing values."""
    missing = [name for name in features if name not in test.columns]
    if missing:
        raise InvalidRequest("example", "must have a column for every model feature", missing)
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
