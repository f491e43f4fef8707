"""Training: point-in-time training sets, model fitting, evaluation, MLflow registry, OPE.

``training.uplift_comparison`` is not re-exported: it is also a script
(``python -m training.uplift_comparison``), which runpy wants unimported.
"""

from training.calibration_metrics import (
    CalibrationCurve,
    calibration_curve,
    expected_calibration_error,
)
from training.lift import Lift, arm_lift
from training.metrics import QiniCurve, auc, log_loss, qini_coefficient, qini_curve
from training.mlflow_model import PropensityPyfunc
from training.open_bandit import OpenBanditLog, load_open_bandit
from training.open_bandit_ope import OpenBanditEvaluation, evaluate_open_bandit
from training.policy_value import PolicyValue, ips_value, mean_with_ci, snips_value
from training.propensity_training import PropensityTrainingResult, train_propensity
from training.registry import LoadedModel, ModelRegistry, RegisteredModel
from training.report_html import render_report
from training.split import stratified_split
from training.uplift_metrics import UpliftCurve, uplift_at_k, uplift_coefficient, uplift_curve

__all__ = [
    "CalibrationCurve",
    "Lift",
    "LoadedModel",
    "ModelRegistry",
    "OpenBanditEvaluation",
    "OpenBanditLog",
    "PolicyValue",
    "PropensityPyfunc",
    "PropensityTrainingResult",
    "QiniCurve",
    "RegisteredModel",
    "UpliftCurve",
    "arm_lift",
    "auc",
    "calibration_curve",
    "evaluate_open_bandit",
    "expected_calibration_error",
    "ips_value",
    "load_open_bandit",
    "log_loss",
    "mean_with_ci",
    "qini_coefficient",
    "qini_curve",
    "render_report",
    "snips_value",
    "stratified_split",
    "train_propensity",
    "uplift_at_k",
    "uplift_coefficient",
    "uplift_curve",
]
