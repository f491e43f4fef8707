"""Train a model of a family from the feature store and log it to MLflow as the challenger.

A *family* is a registered model name, and the name of its MLflow experiment:

- ``nudge-propensity``: the served ``PriorModel``, P(visit | customer, arm) per
  arm; learners ``arm`` (:class:`~models.ArmPropensityModel`) and ``calibrated``
  (:class:`~models.CalibratedPropensityModel`).
- ``nudge-uplift``: the incremental outcome of each e-mail against no e-mail;
  learners ``t`` (:class:`~models.TLearner`) and ``dr`` (:class:`~models.DRLearner`),
  on ``visit``, ``conversion`` or ``spend``.

The training set (:mod:`training.training_set`, re-exported here) comes from
Feast's point-in-time join of the decision log; every model is fitted on the
same 70 % of customers and judged on the same other 30 %
(:func:`~training.training_set.holdout_mask`), which is also where
:mod:`training.promotion` compares champion and challenger.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from features import InvalidRequest, NotFound
from models import (
    ArmPropensityModel,
    CalibratedPropensityModel,
    DRLearner,
    TLearner,
    UpliftModel,
)
from models.uplift import Outcome
from training.mlflow_model import PropensityModel, feature_schema
from training.model_evaluation import BINARY_OUTCOMES, evaluate_model
from training.registry import ModelRegistry, RegisteredModel
from training.training_set import (
    HOLDOUT_FRACTION,
    SPLIT_RULE,
    LifecycleSettings,
    TrainingSet,
    build_training_set,
    holdout_mask,
    split_training_set,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "CONTROL_ARM",
    "DEFAULT_LEARNERS",
    "FAMILIES",
    "HOLDOUT_FRACTION",
    "LEARNERS",
    "OUTCOMES",
    "PROPENSITY_FAMILY",
    "SPLIT_RULE",
    "UPLIFT_FAMILY",
    "LifecycleSettings",
    "TrainedModel",
    "TrainingSet",
    "build_training_set",
    "family_name",
    "holdout_mask",
    "log_challenger",
    "registry_for",
    "resolve_learner",
    "split_training_set",
    "train_model",
]

PROPENSITY_FAMILY = "nudge-propensity"
UPLIFT_FAMILY = "nudge-uplift"
FAMILIES: tuple[str, ...] = (PROPENSITY_FAMILY, UPLIFT_FAMILY)
LEARNERS: dict[str, tuple[str, ...]] = {
    PROPENSITY_FAMILY: ("arm", "calibrated"),
    UPLIFT_FAMILY: ("t", "dr"),
}
DEFAULT_LEARNERS: dict[str, str] = {PROPENSITY_FAMILY: "arm", UPLIFT_FAMILY: "dr"}
OUTCOMES: tuple[str, ...] = ("visit", "conversion", "spend")
CHAMPION = "champion"
CHALLENGER = "challenger"
CONTROL_ARM = "no_email"


@dataclass(frozen=True)
class TrainedModel:
    """A fitted model of a family, the split it was fitted and judged on, and how it did.

    ``config`` is the resolved configuration (logged as the run's parameters),
    ``metrics`` the held-out metrics, ``figures`` the plots (logged as PNG).
    """

    family: str
    learner: str
    outcome: str
    model: PropensityModel | UpliftModel
    training_set: TrainingSet
    train: pd.DataFrame
    test: pd.DataFrame
    metrics: dict[str, float]
    config: dict[str, Any]
    figures: dict[str, Figure]
    fit_seconds: float


def family_name(model: str) -> str:
    """The family of a ``--model`` argument: ``propensity`` and ``nudge-propensity`` alike.

    >>> family_name("uplift"), family_name("nudge-propensity")
    ('nudge-uplift', 'nudge-propensity')
    >>> family_name("churn")
    Traceback (most recent call last):
    ...
    features.errors.InvalidRequest: `model` must be one of ['propensity', 'uplift'], got 'churn'
    """
    name = model if isinstance(model, str) and model.startswith("nudge-") else f"nudge-{model}"
    if name not in FAMILIES:
        choices = [family.removeprefix("nudge-") for family in FAMILIES]
        raise InvalidRequest("model", f"must be one of {choices}", model)
    return name


def registry_for(settings: LifecycleSettings) -> ModelRegistry:
    """The MLflow registry of ``settings``' state folder."""
    return ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifact_root)


def resolve_learner(
    family: str, learner: str | None = None, outcome: str = "visit"
) -> tuple[str, str]:
    """The family and learner :func:`train_model` would use, checked against the outcome.

    >>> resolve_learner("uplift")
    ('nudge-uplift', 'dr')
    >>> resolve_learner("propensity", outcome="spend")
    Traceback (most recent call last):
    ...
    features.errors.InvalidRequest: `outcome` must be a 0/1 outcome ['visit', 'conversion'] \
for nudge-propensity, got 'spend'
    """
    family = family_name(family)
    learner = DEFAULT_LEARNERS[family] if learner is None else learner
    if learner not in LEARNERS[family]:
        raise InvalidRequest("learner", f"must be one of {list(LEARNERS[family])}", learner)
    if outcome not in OUTCOMES:
        raise InvalidRequest("outcome", f"must be one of {list(OUTCOMES)}", outcome)
    if family == PROPENSITY_FAMILY and outcome not in BINARY_OUTCOMES:
        raise InvalidRequest(
            "outcome", f"must be a 0/1 outcome {list(BINARY_OUTCOMES)} for {family}", outcome
        )
    return family, learner


def train_model(
    settings: LifecycleSettings,
    family: str,
    *,
    learner: str | None = None,
    as_of: datetime | None = None,
    seed: int | None = None,
    outcome: str = "visit",
    training_set: TrainingSet | None = None,
) -> TrainedModel:
    """Fit a model of ``family`` on the training 70 % and evaluate it on the held-out 30 %.

    ``learner`` defaults to :data:`DEFAULT_LEARNERS`; ``seed`` (default
    ``settings.seed``) seeds the learner, not the split (see the module notes).
    ``training_set`` reuses a set already built (``as_of`` must then be left
    out: the set carries its own). Metrics: AUC and log loss per arm where the
    model predicts each arm's outcome, the expected calibration error of those
    probabilities, and per treatment the Qini coefficient, uplift in the top
    30 % and the predicted and observed average uplift.
    """
    family, learner = resolve_learner(family, learner, outcome)
    seed = settings.seed if seed is None else seed
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidRequest("seed", "must be an integer >= 0", seed)
    if training_set is None:
        training_set = build_training_set(settings, as_of=as_of)
    elif as_of is not None:
        raise InvalidRequest("as_of", "must be left out when a training_set is given", as_of)

    train, test = split_training_set(training_set)
    for name, part in (("training", train), ("held-out", test)):
        if part.empty:
            raise InvalidRequest("training_set", f"must have {name} customers", len(part))
    features = list(training_set.features)
    started = time.perf_counter()
    model: PropensityModel | UpliftModel
    if family == PROPENSITY_FAMILY:
        propensity = _propensity_learner(learner, seed)
        model = propensity.fit(train[features], train["arm"], train[outcome])
    else:
        uplift = _uplift_learner(learner, outcome, seed, training_set.frame)
        model = uplift.fit(train[features], train["arm"], train[outcome])
    fit_seconds = time.perf_counter() - started

    metrics, figures = evaluate_model(model, test, features, outcome, control=CONTROL_ARM)
    config: dict[str, Any] = {
        "family": family,
        "learner": learner,
        "model_class": type(model).__name__,
        "outcome": outcome,
        "control": CONTROL_ARM,
        "features": ",".join(features),
        "feature_service": training_set.feature_service,
        "snapshot_id": training_set.snapshot_id,
        "as_of": training_set.as_of.isoformat() if training_set.as_of else "none",
        "split": SPLIT_RULE,
        "train_rows": len(train),
        "test_rows": len(test),
        **{f"rows_{table}": count for table, count in training_set.rows.items()},
        **_flat_params(model.get_params(), prefix="model."),
    }
    return TrainedModel(
        family=family,
        learner=learner,
        outcome=outcome,
        model=model,
        training_set=training_set,
        train=train,
        test=test,
        metrics=metrics,
        config=config,
        figures=figures,
        fit_seconds=fit_seconds,
    )


def log_challenger(settings: LifecycleSettings, trained: TrainedModel) -> RegisteredModel:
    """Log ``trained`` as a run of its family's experiment and register it as ``challenger``.

    The run holds the resolved config (parameters), the feature service and data
    snapshot (parameters and tags), the held-out metrics, the plots (PNG), the
    training categories (``feature_schema.json`` and the ``nudge.categories``
    tag) and the model as a pyfunc whose signature accepts the serving payload.
    The first model of a family becomes its ``champion`` too: there is nothing
    to compare it with.
    """
    registry = registry_for(settings)
    family = trained.family
    try:
        registry.resolve(family, CHAMPION)
        aliases: tuple[str, ...] = (CHALLENGER,)
    except NotFound:
        aliases = (CHALLENGER, CHAMPION)
    model = trained.model
    features = list(trained.training_set.features)
    categories: dict[str, list[str]] = dict(getattr(model, "categories_", {}))
    tags = {
        "nudge.family": family,
        "nudge.learner": trained.learner,
        "nudge.outcome": trained.outcome,
        "nudge.control": CONTROL_ARM,
        "nudge.feature_service": trained.training_set.feature_service,
        "nudge.snapshot_id": trained.training_set.snapshot_id,
        "nudge.split": SPLIT_RULE,
    }
    registered = registry.log_model(
        model,
        name=family,
        experiment=family,
        example=trained.test,
        aliases=aliases,
        params=trained.config,
        metrics=trained.metrics,
        tags=tags,
        figures=trained.figures,
        documents={
            "config.json": trained.config,
            "feature_schema.json": feature_schema(features, categories),
            "training_set.json": {
                "feature_service": trained.training_set.feature_service,
                "snapshot_id": trained.training_set.snapshot_id,
                "as_of": trained.config["as_of"],
                "rows": trained.training_set.rows,
                "ignored": trained.training_set.ignored,
            },
        },
    )
    registry.tag_version(family, registered.version, tags)
    return registered


class _PropensityLearner(PropensityModel, Protocol):
    def fit(
        self,
        X: pd.DataFrame,  # noqa: N803 - scikit-learn's name
        actions: pd.Series,
        y: pd.Series,
    ) -> _PropensityLearner: ...

    def get_params(self) -> dict[str, Any]: ...


def _propensity_learner(learner: str, seed: int) -> _PropensityLearner:
    if learner == "arm":
        return ArmPropensityModel(seed=seed)
    return CalibratedPropensityModel(seed=seed)


def _uplift_learner(learner: str, outcome: str, seed: int, frame: pd.DataFrame) -> UpliftModel:
    kind: Outcome = "binary" if outcome in BINARY_OUTCOMES else "continuous"
    if learner == "t":
        return TLearner(control=CONTROL_ARM, outcome=kind, seed=seed)
    return DRLearner(
        control=CONTROL_ARM,
        outcome=kind,
        propensities=_known_propensities(frame),
        seed=seed,
    )


def _known_propensities(frame: pd.DataFrame) -> dict[str, float] | None:
    """The logged arm probabilities when each arm was always drawn with the same one."""
    per_arm = frame.groupby("arm", observed=True)["propensity"].unique()
    if not all(len(values) == 1 for values in per_arm):
        return None
    known = {str(arm): float(values[0]) for arm, values in per_arm.items()}
    return known if math.isclose(sum(known.values()), 1.0, abs_tol=1e-6) else None


def _flat_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A model's parameters, nested models' flattened as ``base.num_leaves``."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if hasattr(value, "get_params"):
            flat.update(_flat_params(value.get_params(), prefix=f"{name}."))
        elif isinstance(value, Mapping):
            flat[name] = json.dumps(value, sort_keys=True)
        else:
            flat[name] = "none" if value is None else value
    return flat
