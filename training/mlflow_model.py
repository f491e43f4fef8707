"""The MLflow pyfunc face of the arm propensity model.

Notebooks and batch jobs can call ``mlflow.pyfunc.load_model(...).predict(frame)``;
serving unwraps to the raw model instead, because the pyfunc path costs ~20x a
bare booster call per decision (PERFORMANCE.md).

Its signature declares every numeric feature as double, as MLflow advises for
integers that can be missing. MLflow's schema check then accepts NaN gaps and
int64 0/1 flags, but refuses other int64 columns (cast them with ``astype(float)``).

The model is logged the way MLflow recommends, as code: a three-line entry point
that names :class:`PropensityPyfunc`, plus the fitted model as an artifact,
rather than a cloudpickle of the wrapper object.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc.model import PythonModel

from features import Unavailable
from models import ArmPropensityModel

__all__ = ["PropensityPyfunc", "pyfunc_files"]

MODEL_ARTIFACT = "arm_propensity_model"
_ENTRY_POINT = '''\
"""MLflow models-from-code entry point of Nudge's arm propensity model."""
from training.mlflow_model import entry_point

entry_point()
'''


class PropensityPyfunc(PythonModel):
    """Wraps an :class:`~models.ArmPropensityModel`; ``model`` is the raw model.

    MLflow builds it empty from the entry point and fills ``model`` in
    :meth:`load_context` from the logged artifact.

    >>> X = pd.DataFrame({"recency": [1, 2] * 100})
    >>> model = ArmPropensityModel(num_boost_round=2, min_data_in_leaf=5)
    >>> model = model.fit(X, ["a"] * 100 + ["b"] * 100, [1, 0] * 100)
    >>> PropensityPyfunc(model).predict(None, X.head(2)).columns.tolist()
    ['a', 'b']
    """

    def __init__(self, model: ArmPropensityModel | None = None) -> None:
        self.model = model

    def load_context(self, context: Any) -> None:
        """Load the fitted model from the run's artifact."""
        with open(context.artifacts[MODEL_ARTIFACT], "rb") as file:
            self.model = pickle.load(file)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """P(reward | row, action) for each row of ``model_input``: one column per action."""
        if self.model is None:
            raise Unavailable("PropensityPyfunc has no model; MLflow loads it in load_context()")
        return self.model.predict_frame(model_input)


def entry_point() -> None:
    """What the logged entry-point file runs: hand MLflow an empty wrapper to load into."""
    set_model(PropensityPyfunc())


@contextmanager
def pyfunc_files(model: ArmPropensityModel) -> Iterator[tuple[Path, dict[str, str]]]:
    """The entry-point file and the ``artifacts`` dict for ``mlflow.pyfunc.log_model``.

    Both live in a temporary folder that is removed on exit; MLflow copies them
    into the logged model.

    >>> with pyfunc_files(ArmPropensityModel()) as (code, artifacts):
    ...     code.name, sorted(artifacts)
    ('propensity_model.py', ['arm_propensity_model'])
    """
    with tempfile.TemporaryDirectory(prefix="nudge-pyfunc-") as folder:
        code = Path(folder) / "propensity_model.py"
        code.write_text(_ENTRY_POINT, encoding="utf-8")
        pickled = Path(folder) / f"{MODEL_ARTIFACT}.pkl"
        with open(pickled, "wb") as file:
            pickle.dump(model, file, protocol=pickle.HIGHEST_PROTOCOL)
        yield code, {MODEL_ARTIFACT: str(pickled)}
