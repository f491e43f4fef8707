"""Models: propensity and uplift models (LightGBM) and online learners (river)."""

from models.online import OnlineRecalibrator
from models.prior import PriorModel
from models.propensity import ArmPropensityModel

__all__ = ["ArmPropensityModel", "OnlineRecalibrator", "PriorModel"]
