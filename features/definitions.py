"""The Feast objects of Nudge's feature repo: the customer entity, its profile view, services.

They are built by a function rather than declared at import time because the
profile table lives under the runtime state folder, which is only known then.
Feast itself is imported inside that function: importing it takes seconds, and
callers that only need the names below should not pay for it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from feast import Entity, FeatureService, FeatureView

__all__ = [
    "CUSTOMER_ENTITY",
    "PROFILE_FEATURE_TYPES",
    "PROFILE_TTL",
    "PROFILE_VIEW",
    "PROPENSITY_SERVICE",
    "feature_definitions",
]

CUSTOMER_ENTITY = "customer"
PROFILE_VIEW = "customer_profile"
PROPENSITY_SERVICE = "propensity_v1"
# The profile features summarise the past twelve months, so a snapshot more than
# a year (plus a month's grace) older than a training row is stale: the
# point-in-time join leaves such a row's features missing rather than use it.
PROFILE_TTL = timedelta(days=400)
# Feast type names (feast.types) of the profile view's features, in order.
PROFILE_FEATURE_TYPES: dict[str, str] = {
    "recency": "Int64",
    "history": "Float64",
    "mens": "Int64",
    "womens": "Int64",
    "newbie": "Int64",
    "zip_code": "String",
    "channel": "String",
}


def feature_definitions(
    profiles_path: Path,
) -> list[Entity | FeatureView | FeatureService]:
    """The entity, view and services to register, reading profiles from ``profiles_path``."""
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType, types

    customer = Entity(
        name=CUSTOMER_ENTITY,
        join_keys=["customer_id"],
        value_type=ValueType.STRING,
        description="A person the business may contact; keyed by Nudge's customer id.",
    )
    profiles = FileSource(
        name="customer_profiles",
        path=str(Path(profiles_path).resolve()),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_at",
    )
    profile = FeatureView(
        name=PROFILE_VIEW,
        entities=[customer],
        ttl=PROFILE_TTL,
        schema=[
            Field(name=name, dtype=getattr(types, type_name))
            for name, type_name in PROFILE_FEATURE_TYPES.items()
        ],
        source=profiles,
        online=True,
    )
    propensity = FeatureService(name=PROPENSITY_SERVICE, features=[profile])
    return [customer, profile, propensity]
