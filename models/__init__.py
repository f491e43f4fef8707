"""Models: propensity and uplift models (LightGBM) and online learners (river)."""

from models.calibration import CalibratedPropensityModel
from models.online import OnlineRecalibrator
from models.prior import PriorModel
from models.propensity import ArmPropensityModel
from models.uplift import UpliftModel
from models.uplift_dr import DRLearner
from models.uplift_t import TLearner

__all__ = [
    "ArmPropensityModel",
    "CalibratedPropensityModel",
    "DRLearner",
    "OnlineRecalibrator",
    "PriorModel",
    "TLearner",
    "UpliftModel",
]
