"""Models: propensity and uplift models (LightGBM) and online learners (river)."""

from models.prior import PriorModel

__all__ = ["PriorModel"]
