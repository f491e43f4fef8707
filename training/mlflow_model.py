"""The MLflow pyfunc faces of Nudge's models, and the signature that serving payloads meet.

Two kinds of model are logged: a *propensity* model (``predict_frame``: one
column of P(reward) per action; the served ``PriorModel``) and an *uplift*
model (``predict_uplift``: one column of incremental outcome per treatment).

Notebooks and batch jobs can call ``mlflow.pyfunc.load_model(...).predict(frame)``;
serving unwraps to the raw model instead, because the pyfunc path costs ~20x a
bare booster call per decision (PERFORMANCE.md).

The signature (:func:`serving_signature`) declares every numeric feature as
double, as MLflow advises for integers that can be missing, and every
categorical feature as string. A JSON payload posted to a served model is cast
to these types first, so integers and nulls pass; in Python, MLflow's schema
check accepts NaN or None gaps and int64 0/1 flags but refuses other int64
columns (cast them with ``astype(float)``). An unseen category is just a string:
the model scores it as missing. The training categories are recorded beside
the model (:func:`feature_schema`), since a signature has no place for them.

The model is logged the way MLflow recommends, as code: a three-line entry point
that names the wrapper class, plus the fitted model as an artifact, rather than
a cloudpickle of the wrapper object.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

import pandas as pd
from mlflow.models import ModelSignature, set_model
from mlflow.pyfunc.model import PythonModel
from mlflow.types import ColSpec, Schema

from features import InvalidRequest, Unavailable
from models import PriorModel, UpliftModel

__all__ = [
    "ModelKind",
    "PropensityModel",
    "PropensityPyfunc",
    "UpliftPyfunc",
    "feature_schema",
    "model_kind",
    "pyfunc_files",
    "serving_signature",
]

ModelKind = Literal["propensity", "uplift"]

MODEL_ARTIFACT = "arm_propensity_model"
UPLIFT_ARTIFACT = "uplift_model"
_ARTIFACTS: dict[ModelKind, str] = {"propensity": MODEL_ARTIFACT, "uplift": UPLIFT_ARTIFACT}
_CODE_FILES: dict[ModelKind, str] = {
    "propensity": "propensity_model.py",
    "uplift": "uplift_model.py",
}
_ENTRY_POINT = '''\
"""MLflow models-from-code entry point of a Nudge {kind} model."""
from training.mlflow_model import entry_point

entry_point({argument})
'''


class PropensityModel(PriorModel, Protocol):
    """A ``PriorModel`` that also scores frames: what serving and promotion need of one."""

    def predict_frame(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803 - as in fit
        """P(reward | row, action) for every row: one column per action."""
        ...


class PropensityPyfunc(PythonModel):
    """Wraps a propensity model (:class:`~models.ArmPropensityModel` or a calibrated one).

    MLflow builds it empty from the entry point and fills ``model`` in
    :meth:`load_context` from the logged artifact.

    >>> from models import ArmPropensityModel
    >>> X = pd.DataFrame({"recency": [1, 2] * 100})
    >>> model = ArmPropensityModel(num_boost_round=2, min_data_in_leaf=5)
    >>> model = model.fit(X, ["a"] * 100 + ["b"] * 100, [1, 0] * 100)
    >>> PropensityPyfunc(model).predict(None, X.head(2)).columns.tolist()
    ['a', 'b']
    """

    def __init__(self, model: PropensityModel | None = None) -> None:
        self.model = model

    def load_context(self, context: Any) -> None:
        """Load the fitted model from the run's artifact."""
        self.model = _unpickle(context.artifacts[MODEL_ARTIFACT])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """P(reward | row, action) for each row of ``model_input``: one column per action."""
        if self.model is None:
            raise Unavailable("PropensityPyfunc has no model; MLflow loads it in load_context()")
        return self.model.predict_frame(model_input)


class UpliftPyfunc(PythonModel):
    """Wraps an uplift model (:class:`~models.TLearner`, :class:`~models.DRLearner`)."""

    def __init__(self, model: UpliftModel | None = None) -> None:
        self.model = model

    def load_context(self, context: Any) -> None:
        """Load the fitted model from the run's artifact."""
        self.model = _unpickle(context.artifacts[UPLIFT_ARTIFACT])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Incremental outcome of each treatment against the control: one column per treatment."""
        if self.model is None:
            raise Unavailable("UpliftPyfunc has no model; MLflow loads it in load_context()")
        return self.model.predict_uplift(model_input)


def entry_point(kind: ModelKind = "propensity") -> None:
    """What the logged entry-point file runs: hand MLflow an empty wrapper to load into.

    Models logged before uplift models existed call it without an argument.
    """
    set_model(UpliftPyfunc() if kind == "uplift" else PropensityPyfunc())


def model_kind(model: object) -> ModelKind:
    """``uplift`` for a model with ``predict_uplift``; ``propensity`` for ``predict_frame``.

    >>> from models import ArmPropensityModel
    >>> model_kind(ArmPropensityModel())
    'propensity'
    >>> model_kind("a string")
    Traceback (most recent call last):
    ...
    features.errors.InvalidRequest: `model` must be a propensity model (predict_frame) or an \
uplift model (predict_uplift), got 'str'
    """
    if callable(getattr(model, "predict_uplift", None)):
        return "uplift"
    if callable(getattr(model, "predict_frame", None)):
        return "propensity"
    raise InvalidRequest(
        "model",
        "must be a propensity model (predict_frame) or an uplift model (predict_uplift)",
        type(model).__name__,
    )


def feature_schema(
    features: Sequence[str], categories: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """The input contract beside the signature: each feature's type and training categories.

    >>> feature_schema(["recency", "channel"], {"channel": ["Phone", "Web"]})["features"][1]
    {'name': 'channel', 'type': 'string', 'categories': ['Phone', 'Web']}
    """
    unknown = sorted(set(categories) - set(features))
    if unknown:
        raise InvalidRequest("categories", "must name features of the model", unknown)
    return {
        "features": [
            {"name": name, "type": "string", "categories": list(categories[name])}
            if name in categories
            else {"name": name, "type": "double"}
            for name in features
        ],
        "note": "numbers are doubles (null for missing); an unseen category counts as missing",
    }


def serving_signature(
    features: Sequence[str], categorical: Sequence[str], outputs: Sequence[str]
) -> ModelSignature:
    """Inputs: each feature as double, or string if categorical; outputs: one double per column.

    >>> signature = serving_signature(["recency", "channel"], ["channel"], ["mens", "womens"])
    >>> signature.inputs.input_types_dict()["recency"].name, signature.outputs.input_names()
    ('double', ['mens', 'womens'])
    """
    unknown = sorted(set(categorical) - set(features))
    if unknown:
        raise InvalidRequest("categorical", "must name features of the model", unknown)
    return ModelSignature(
        inputs=Schema(
            [ColSpec("string" if name in categorical else "double", name) for name in features]
        ),
        outputs=Schema([ColSpec("double", str(name)) for name in outputs]),
    )


@contextmanager
def pyfunc_files(model: object) -> Iterator[tuple[Path, dict[str, str]]]:
    """The entry-point file and the ``artifacts`` dict for ``mlflow.pyfunc.log_model``.

    Both live in a temporary folder that is removed on exit; MLflow copies them
    into the logged model.

    >>> from models import ArmPropensityModel
    >>> with pyfunc_files(ArmPropensityModel()) as (code, artifacts):
    ...     code.name, sorted(artifacts)
    ('propensity_model.py', ['arm_propensity_model'])
    """
    kind = model_kind(model)
    argument = "" if kind == "propensity" else repr(kind)
    with tempfile.TemporaryDirectory(prefix="nudge-pyfunc-") as folder:
        code = Path(folder) / _CODE_FILES[kind]
        code.write_text(_ENTRY_POINT.format(kind=kind, argument=argument), encoding="utf-8")
        pickled = Path(folder) / f"{_ARTIFACTS[kind]}.pkl"
        with open(pickled, "wb") as file:
            pickle.dump(model, file, protocol=pickle.HIGHEST_PROTOCOL)
        yield code, {_ARTIFACTS[kind]: str(pickled)}


def _unpickle(path: str) -> Any:
    with open(path, "rb") as file:
        return pickle.load(file)
