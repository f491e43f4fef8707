"""How a trained model does on held-out rows of a randomised experiment, and its plots.

One function, :func:`evaluate_model`, for both kinds of model: per arm, where the
model predicts each arm's outcome, AUC, log loss and the expected calibration
error with a calibration curve; per treatment the Qini coefficient and curve,
uplift in the top 30 %, and the predicted and observed average uplift (for a
model that predicts uplift only, the calibration plot compares predicted and
observed uplift by quintile instead); and the feature importance over every
LightGBM booster in the model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import lightgbm as lgb
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from models import UpliftModel
from training.calibration_metrics import calibration_curve, expected_calibration_error
from training.metrics import QiniCurve, auc, log_loss, qini_coefficient, qini_curve
from training.mlflow_model import PropensityModel, model_kind
from training.model_plots import calibration_figure, importance_figure, qini_figure
from training.uplift_metrics import uplift_at_k

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["evaluate_model", "feature_importance"]

BINARY_OUTCOMES: tuple[str, ...] = ("visit", "conversion")
_CALIBRATION_BINS = 10
_UPLIFT_BINS = 5
_UPLIFT_AT = 0.3


def evaluate_model(
    model: PropensityModel | UpliftModel,
    test: pd.DataFrame,
    features: Sequence[str],
    outcome: str,
    *,
    control: str,
) -> tuple[dict[str, float], dict[str, Figure]]:
    """Held-out metrics and the plots (``plots/<name>.png``: calibration, qini, feature_importance).

    ``test`` needs the ``features``, an ``arm`` column and the ``outcome``
    column; ``control`` is the arm every treatment is compared with.
    """
    X = test[list(features)]  # noqa: N806 - scikit-learn's name
    arms = test["arm"].astype(str).to_numpy()
    y = test[outcome].to_numpy(dtype=np.float64)
    metrics: dict[str, float] = {}
    figures: dict[str, Figure] = {}
    per_arm: pd.DataFrame | None
    if model_kind(model) == "propensity":
        per_arm = cast(PropensityModel, model).predict_frame(X)
        uplift = pd.DataFrame(
            {arm: per_arm[arm] - per_arm[control] for arm in per_arm if arm != control}
        )
    else:
        uplift_model = cast(UpliftModel, model)
        uplift = uplift_model.predict_uplift(X)
        predict_outcomes = getattr(uplift_model, "predict_outcomes", None)
        binary = outcome in BINARY_OUTCOMES
        per_arm = predict_outcomes(X) if callable(predict_outcomes) and binary else None

    if per_arm is not None:
        curves: dict[str, tuple[list[float], list[float]]] = {}
        for arm in per_arm.columns:
            rows = arms == arm
            p = per_arm[arm].to_numpy()[rows]
            metrics[f"auc_{arm}"] = auc(y[rows], p)
            metrics[f"log_loss_{arm}"] = log_loss(y[rows], p)
            metrics[f"ece_{arm}"] = expected_calibration_error(
                y[rows], p, _CALIBRATION_BINS, strategy="quantile"
            )
            curve = calibration_curve(y[rows], p, _CALIBRATION_BINS, strategy="quantile")
            curves[arm] = (curve.mean_predicted.tolist(), curve.observed_rate.tolist())
        figures["plots/calibration.png"] = calibration_figure(
            curves, title=f"Calibration of P({outcome}) per arm, held-out rows"
        )
    else:
        figures["plots/calibration.png"] = calibration_figure(
            {t: _uplift_bins(y, arms, t, control, uplift[t].to_numpy()) for t in uplift.columns},
            title=f"Predicted vs observed uplift in {outcome}, quintiles, held-out rows",
            xlabel="mean predicted uplift",
            ylabel="observed uplift (treated - control mean)",
        )

    qini_curves: dict[str, QiniCurve] = {}
    in_control = arms == control
    for treatment in uplift.columns:
        rows = (arms == treatment) | in_control
        score = uplift[treatment].to_numpy()
        treated = arms[rows] == treatment
        qini_curves[treatment] = qini_curve(y[rows], treated, score[rows])
        metrics[f"qini_{treatment}"] = qini_coefficient(qini_curves[treatment])
        metrics[f"uplift_at_30_{treatment}"] = uplift_at_k(
            y[rows], treated, score[rows], _UPLIFT_AT
        )
        metrics[f"predicted_uplift_{treatment}"] = float(score.mean())
        metrics[f"observed_uplift_{treatment}"] = float(
            y[arms == treatment].mean() - y[in_control].mean()
        )
    figures["plots/qini.png"] = qini_figure(qini_curves, ylabel=f"incremental {outcome}")
    figures["plots/feature_importance.png"] = importance_figure(feature_importance(model))
    return metrics, figures


def _uplift_bins(
    y: NDArray[np.float64],
    arms: NDArray[Any],
    treatment: str,
    control: str,
    score: NDArray[np.float64],
) -> tuple[list[float], list[float]]:
    """Mean predicted and observed uplift in quintiles of the predicted uplift."""
    rows = (arms == treatment) | (arms == control)
    ranks = pd.Series(score[rows]).rank(method="first").to_numpy()
    bins = np.minimum((ranks - 1) * _UPLIFT_BINS // rows.sum(), _UPLIFT_BINS - 1)
    treated = arms[rows] == treatment
    outcomes, scores = y[rows], score[rows]
    predicted: list[float] = []
    observed: list[float] = []
    for b in range(_UPLIFT_BINS):
        in_bin = bins == b
        if (in_bin & treated).any() and (in_bin & ~treated).any():
            predicted.append(float(scores[in_bin].mean()))
            observed.append(
                float(outcomes[in_bin & treated].mean() - outcomes[in_bin & ~treated].mean())
            )
    return predicted, observed


def feature_importance(model: object) -> dict[str, float]:
    """Total split gain per feature over every LightGBM booster inside ``model``.

    >>> from models import ArmPropensityModel
    >>> X = pd.DataFrame({"recency": [1, 2] * 100, "noise": [0.0] * 200})
    >>> model = ArmPropensityModel(num_boost_round=5, min_data_in_leaf=5)
    >>> gains = feature_importance(model.fit(X, ["a"] * 100 + ["b"] * 100, [1, 0] * 100))
    >>> gains["recency"] > 0 == gains["noise"]
    True
    """
    names = [str(name) for name in getattr(model, "feature_names_", ())]
    totals = np.zeros(len(names))
    for booster in _boosters(model, depth=2):
        totals += booster.feature_importance(importance_type="gain")
    return dict(zip(names, totals.tolist(), strict=True))


def _boosters(value: object, *, depth: int) -> Iterator[lgb.Booster]:
    """The boosters a fitted model holds, in attributes, dicts of them or nested models."""
    for attribute in vars(value).values():
        if isinstance(attribute, lgb.Booster):
            yield attribute
        elif isinstance(attribute, Mapping):
            yield from (item for item in attribute.values() if isinstance(item, lgb.Booster))
        elif depth > 0 and hasattr(attribute, "get_params") and hasattr(attribute, "__dict__"):
            yield from _boosters(attribute, depth=depth - 1)
