"""The churn model ``nudge-churn``: will a customer make no purchase in the next N days?

Trained from the event log: at each reference date the customer's RFM
features (``features.behaviour`` snapshots, the ``customer_rfm`` view that
Feast serves online) are computed from what had happened by then, and the
label is 1 when they make no purchase in the ``horizon_days`` after it.
Customers are split 70/30 by the same hash of their id as every other model
(``training.training_set.holdout_mask``); the held-out AUC, log loss and
calibration error are logged to MLflow with the model, registered as
``nudge-churn`` (``challenger``, and ``champion`` when it is the first or when
asked). The model is an :class:`~models.ArmPropensityModel` with one arm,
``churn``, so the registry, the pyfunc and serving take it as they are.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from features.behaviour import behaviour_snapshots
from features.definitions import BEHAVIOUR_FEATURE_TYPES, RFM_VIEW
from features.errors import InvalidRequest, NotFound
from features.event_stream import CustomerEvent
from models import ArmPropensityModel
from training.calibration_metrics import calibration_curve, expected_calibration_error
from training.metrics import auc, log_loss
from training.registry import ModelRegistry, RegisteredModel
from training.training_set import SPLIT_RULE, holdout_mask

__all__ = [
    "CHURN_ARM",
    "CHURN_FEATURES",
    "CHURN_MODEL",
    "ChurnModel",
    "churn_training_set",
    "log_churn_model",
    "train_churn_model",
]

CHURN_MODEL = "nudge-churn"
CHURN_ARM = "churn"
CHURN_FEATURES: tuple[str, ...] = tuple(BEHAVIOUR_FEATURE_TYPES[RFM_VIEW])
"""days since purchase and since activity, purchases and spend over 90 and 365 days."""


def churn_training_set(
    events: Iterable[CustomerEvent],
    references: Sequence[datetime],
    *,
    horizon_days: int = 60,
) -> pd.DataFrame:
    """One row per customer with a purchase by each reference date: RFM features and ``churned``.

    Customers who never bought by the reference date are left out: they cannot
    lapse, and including them would teach the model that "never bought" is churn.
    """
    if horizon_days < 1:
        raise InvalidRequest("horizon_days", "must be at least 1", horizon_days)
    rows = list(events)
    purchases = pd.DataFrame(
        [(e.customer_id, e.occurred_at) for e in rows if e.type == "purchase"],
        columns=["customer_id", "at"],
    )
    snapshots = behaviour_snapshots(list(references), events=rows)
    frames = []
    for reference in references:
        moment = pd.Timestamp(reference)
        snap = snapshots[snapshots["event_timestamp"] == moment]
        snap = snap[snap["purchases_365d"].astype("float64") > 0]
        window = purchases[
            (purchases["at"] > moment) & (purchases["at"] <= moment + timedelta(days=horizon_days))
        ]
        bought = set(window["customer_id"])
        frame = snap[["customer_id", *CHURN_FEATURES]].copy()
        frame["reference"] = moment
        frame["churned"] = (~frame["customer_id"].isin(bought)).astype("int64")
        frames.append(frame)
    if not frames:
        raise InvalidRequest("references", "must name at least one reference date")
    data = pd.concat(frames, ignore_index=True)
    for column in CHURN_FEATURES:
        data[column] = data[column].astype("float64")
    return data


@dataclass
class ChurnModel:
    """A fitted churn model and its held-out evaluation."""

    model: ArmPropensityModel
    metrics: dict[str, float]
    params: dict[str, Any]
    calibration: dict[str, list[float]]
    example: pd.DataFrame = field(repr=False)

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, np.dtype[np.float64]]:
        """P(churn) for each row of ``frame`` (the :data:`CHURN_FEATURES` columns)."""
        scores = self.model.predict_frame(frame[list(CHURN_FEATURES)])[CHURN_ARM]
        return np.asarray(scores, dtype=np.float64)


def train_churn_model(
    data: pd.DataFrame,
    *,
    seed: int = 0,
    num_boost_round: int = 150,
    min_data_in_leaf: int = 50,
) -> ChurnModel:
    """Fit on 70 % of the customers of ``data`` (:func:`churn_training_set`), judge on the rest."""
    started = time.perf_counter()
    held_out = holdout_mask(data["customer_id"])
    train, test = data[~held_out], data[held_out]
    for name, part in (("train", train), ("test", test)):
        if part["churned"].nunique() < 2:
            raise InvalidRequest(
                "data", f"must have churned and retained customers in the {name} part", len(part)
            )
    model = ArmPropensityModel(
        num_boost_round=num_boost_round, min_data_in_leaf=min_data_in_leaf, seed=seed
    )
    model.fit(train[list(CHURN_FEATURES)], [CHURN_ARM] * len(train), train["churned"])
    fitted = ChurnModel(model, {}, {}, {}, test[list(CHURN_FEATURES)].head(5))
    y, p = test["churned"].to_numpy(), fitted.predict(test)
    curve = calibration_curve(y, p, 10)
    fitted.metrics = {
        "auc": auc(y, p),
        "log_loss": log_loss(y, p),
        "calibration_error": expected_calibration_error(y, p),
        "base_rate": float(np.mean(y)),
        "train_rows": float(len(train)),
        "test_rows": float(len(test)),
        "fit_seconds": time.perf_counter() - started,
    }
    fitted.calibration = {
        "mean_predicted": [float(v) for v in curve.mean_predicted],
        "observed_rate": [float(v) for v in curve.observed_rate],
        "count": [float(v) for v in curve.count],
    }
    fitted.params = {
        **model.get_params(),
        "references": sorted({str(r) for r in data["reference"]}),
        "features": list(CHURN_FEATURES),
    }
    return fitted


def log_churn_model(
    registry: ModelRegistry,
    trained: ChurnModel,
    *,
    horizon_days: int,
    champion: bool = False,
) -> RegisteredModel:
    """Log ``trained`` (metrics, calibration, parameters) and register it as ``nudge-churn``.

    It becomes ``challenger``; ``champion`` too when asked or when there is none yet.
    """
    try:
        registry.resolve(CHURN_MODEL, "champion")
        has_champion = True
    except NotFound:
        has_champion = False
    aliases = ("challenger", "champion") if champion or not has_champion else ("challenger",)
    params = {k: v for k, v in trained.params.items() if k not in ("references", "features")}
    return registry.log_model(
        trained.model,
        name=CHURN_MODEL,
        experiment=CHURN_MODEL,
        example=trained.example,
        aliases=aliases,
        params={**params, "horizon_days": horizon_days},
        metrics=trained.metrics,
        tags={
            "nudge.family": CHURN_MODEL,
            "nudge.outcome": f"no purchase within {horizon_days} days",
            "nudge.split": SPLIT_RULE,
        },
        documents={
            "calibration.json": trained.calibration,
            "training_set.json": {
                "references": trained.params["references"],
                "features": trained.params["features"],
                "horizon_days": horizon_days,
            },
        },
    )
