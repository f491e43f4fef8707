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
    from features.batch_ingest import IngestReport, ingest_file, ingest_frame
    from features.behaviour import behaviour_snapshots, write_snapshots
    from features.definitions import (
        BEHAVIOUR_SERVICE,
        CUSTOMER_ENTITY,
        PROFILE_VIEW,
        PROPENSITY_SERVICE,
        SEND_TIME_SERVICE,
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
    from features.ingest_mapping import IngestMapping, load_mapping, parse_mapping
    from features.push import CartPusher, push_cart_event

__all__ = [
    "ARMS",
    "BEHAVIOUR_SERVICE",
    "CATEGORICAL_FEATURES",
    "CUSTOMER_ENTITY",
    "HILLSTROM_TABLES",
    "MIN_SAMPLE",
    "OUTCOME_COLUMNS",
    "PROFILE_FEATURES",
    "PROFILE_VIEW",
    "PROPENSITY_SERVICE",
    "SEGMENT_TO_ARM",
    "SEND_TIME_SERVICE",
    "CartPusher",
    "Conflict",
    "EventLog",
    "FeastOnlineFeatures",
    "FeatureRepo",
    "FeatureRow",
    "FeatureSource",
    "FeatureValue",
    "HillstromLog",
    "IngestMapping",
    "IngestReport",
    "InvalidRequest",
    "NotFound",
    "NudgeError",
    "Unavailable",
    "behaviour_snapshots",
    "build_hillstrom_log",
    "default_hillstrom_path",
    "feature_definitions",
    "ingest_file",
    "ingest_frame",
    "ingest_hillstrom",
    "load_hillstrom",
    "load_mapping",
    "parse_mapping",
    "push_cart_event",
    "write_snapshots",
]

_LAZY = {
    "features.behaviour": ("behaviour_snapshots", "write_snapshots"),
    "features.definitions": (
        "BEHAVIOUR_SERVICE",
        "CUSTOMER_ENTITY",
        "PROFILE_VIEW",
        "PROPENSITY_SERVICE",
        "SEND_TIME_SERVICE",
        "feature_definitions",
    ),
    "features.event_log": ("EventLog",),
    "features.feast_online": ("FeastOnlineFeatures",),
    "features.feast_repo": ("FeatureRepo",),
    "features.push": ("CartPusher", "push_cart_event"),
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
    "features.batch_ingest": ("IngestReport", "ingest_file", "ingest_frame"),
    "features.ingest_mapping": ("IngestMapping", "load_mapping", "parse_mapping"),
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
