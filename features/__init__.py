"""Features: the event log, the Feast feature repo, identity and the domain errors."""

from features.errors import Conflict, InvalidRequest, NotFound, NudgeError, Unavailable
from features.online import FeatureRow, FeatureSource, FeatureValue

__all__ = [
    "Conflict",
    "FeatureRow",
    "FeatureSource",
    "FeatureValue",
    "InvalidRequest",
    "NotFound",
    "NudgeError",
    "Unavailable",
]
