"""Features: the event log, the Feast feature repo, identity and the domain errors.

Only the errors and the ``FeatureSource`` protocol are imported eagerly. The rest
load on first use, because importing Feast takes several seconds (it type-checks
its own classes at import time) and every layer imports this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from features.errors import Conflict, InvalidRequest, NotFound, NudgeError, Unavailable
from features.online import FeatureRow, FeatureSource, FeatureValue

if TYPE_CHECKING:
    from features.definitions import (
        CUSTOMER_ENTITY,
        PROFILE_VIEW,
        PROPENSITY_SERVICE,
        feature_definitions,
    )
    from features.event_log import EventLog
    from features.feast_online import FeastOnlineFeatures
    from features.feast_repo import FeatureRepo
    from features.hillstrom import (
        ARMS,
        CATEGORICAL_FEATURES,
        MIN_SAMPLE,
        OUTCOME_COLUMNS,
        PROFILE_FEATURES,
        SEGMENT_TO_ARM,
        HillstromLog,
        build_hillstrom_log,
        default_hillstrom_path,
        load_hillstrom,
    )
    from features.ingest import HILLSTROM_TABLES, ingest_hillstrom

__all__ = [
    "ARMS",
    "CATEGORICAL_FEATURES",
    "CUSTOMER_ENTITY",
    "HILLSTROM_TABLES",
    "MIN_SAMPLE",
    "OUTCOME_COLUMNS",
    "PROFILE_FEATURES",
    "PROFILE_VIEW",
    "PROPENSITY_SERVICE",
    "SEGMENT_TO_ARM",
    "Conflict",
    "EventLog",
    "FeastOnlineFeatures",
    "FeatureRepo",
    "FeatureRow",
    "FeatureSource",
    "FeatureValue",
    "HillstromLog",
    "InvalidRequest",
    "NotFound",
    "NudgeError",
    "Unavailable",
    "build_hillstrom_log",
    "default_hillstrom_path",
    "feature_definitions",
    "ingest_hillstrom",
    "load_hillstrom",
]

_LAZY = {
    "features.definitions": (
        "CUSTOMER_ENTITY",
        "PROFILE_VIEW",
        "PROPENSITY_SERVICE",
        "feature_definitions",
    ),
    "features.event_log": ("EventLog",),
    "features.feast_online": ("FeastOnlineFeatures",),
    "features.feast_repo": ("FeatureRepo",),
    "features.hillstrom": (
        "ARMS",
        "CATEGORICAL_FEATURES",
        "MIN_SAMPLE",
        "OUTCOME_COLUMNS",
        "PROFILE_FEATURES",
        "SEGMENT_TO_ARM",
        "HillstromLog",
        "build_hillstrom_log",
        "default_hillstrom_path",
        "load_hillstrom",
    ),
    "features.ingest": ("HILLSTROM_TABLES", "ingest_hillstrom"),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'features' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
