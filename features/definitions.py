"""The Feast objects of Nudge's feature repo: the customer entity, its views and services.

Two families of views, each with its own service:

- ``customer_profile`` (service ``propensity_v1``, what the served model reads):
  the Hillstrom profile table.
- the behaviour views, computed by ``features.behaviour`` from the event stream
  and the decision log: ``customer_rfm``, ``channel_engagement``, ``cart_state``
  (also updated in real time through the ``cart_events`` push source) and
  ``channel_consent`` (service ``behaviour_v1``), and ``send_time_profile``
  (service ``send_time_v1``: its 170 features would make every behaviour read
  several times slower, and only the send-time choice needs them).

They are built by functions rather than declared at import time because the
tables they read live under the runtime state folder (or, in scale mode, in
Postgres), which is only known then. Feast itself is imported inside those
functions: importing it takes seconds, and callers that only need the names
below should not pay for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feast import Entity, FeatureService, FeatureView, PushSource
    from feast.data_source import DataSource

__all__ = [
    "BEHAVIOUR_FEATURE_TYPES",
    "BEHAVIOUR_SERVICE",
    "BEHAVIOUR_SOURCE",
    "BEHAVIOUR_TTLS",
    "CART_PUSH_SOURCE",
    "CART_VIEW",
    "CHANNELS",
    "CONSENT_VIEW",
    "CUSTOMER_ENTITY",
    "ENGAGEMENT_METRICS",
    "ENGAGEMENT_VIEW",
    "ENGAGEMENT_WINDOWS",
    "HOURS_OF_WEEK",
    "ONLINE_TTL_EXEMPT",
    "PROFILE_FEATURE_TYPES",
    "PROFILE_SOURCE",
    "PROFILE_TTL",
    "PROFILE_VIEW",
    "PROPENSITY_SERVICE",
    "RFM_VIEW",
    "SEND_TIME_SERVICE",
    "SEND_TIME_VIEW",
    "behaviour_definitions",
    "customer_entity",
    "feature_definitions",
    "file_source",
    "profile_definitions",
]

CUSTOMER_ENTITY = "customer"
PROFILE_VIEW = "customer_profile"
PROFILE_SOURCE = "customer_profiles"
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

ONLINE_TTL_EXEMPT: frozenset[str] = frozenset({PROFILE_VIEW})
"""Views whose online values are served past their TTL.

The Hillstrom profiles are a finished 2008 experiment replayed today: against
today's clock every snapshot is far older than its 400-day TTL, and the served
propensity model would see nothing at all. Their TTL bounds the point-in-time
join (training) only. Every other view's TTL holds online as well: an expired
value is served as missing.
"""

RFM_VIEW = "customer_rfm"
ENGAGEMENT_VIEW = "channel_engagement"
SEND_TIME_VIEW = "send_time_profile"
CART_VIEW = "cart_state"
CONSENT_VIEW = "channel_consent"
BEHAVIOUR_SERVICE = "behaviour_v1"
SEND_TIME_SERVICE = "send_time_v1"
BEHAVIOUR_SOURCE = "customer_behaviour"
CART_PUSH_SOURCE = "cart_events"

CHANNELS: tuple[str, ...] = ("email", "sms", "push")
ENGAGEMENT_METRICS: tuple[str, ...] = ("sent", "opened", "clicked", "unsubscribed")
ENGAGEMENT_WINDOWS: tuple[int, ...] = (7, 30, 90)
HOURS_OF_WEEK = 7 * 24

# Snapshots are meant to be taken daily: two days' TTL lets one run be missed
# before a value counts as stale. Slow-moving views keep longer; a cart is
# abandoned for good after a week.
BEHAVIOUR_TTLS: Mapping[str, timedelta] = {
    RFM_VIEW: timedelta(days=2),
    ENGAGEMENT_VIEW: timedelta(days=2),
    SEND_TIME_VIEW: timedelta(days=30),
    CART_VIEW: timedelta(days=7),
    CONSENT_VIEW: timedelta(days=2),
}

BEHAVIOUR_FEATURE_TYPES: Mapping[str, Mapping[str, str]] = {
    # Recency in days since the last purchase (missing: never bought) and since
    # the last activity; frequency and monetary value over 90 and 365 days.
    RFM_VIEW: {
        "days_since_purchase": "Float64",
        "days_since_active": "Float64",
        "purchases_90d": "Int64",
        "purchases_365d": "Int64",
        "spend_90d": "Float64",
        "spend_365d": "Float64",
    },
    # e.g. email_opened_7d: messages opened in the seven days up to the snapshot.
    ENGAGEMENT_VIEW: {
        f"{channel}_{metric}_{days}d": "Int64"
        for channel in CHANNELS
        for metric in ENGAGEMENT_METRICS
        for days in ENGAGEMENT_WINDOWS
    },
    # The share of the last 90 days' activity in each hour of the week (hour 0 is
    # Monday 00:00 in the customer's zone), its busiest hour and the event count.
    SEND_TIME_VIEW: {
        "activity_events_90d": "Int64",
        "peak_hour_of_week": "Int64",
        **{f"activity_how_{hour:03d}": "Float64" for hour in range(HOURS_OF_WEEK)},
    },
    # last_add_to_cart_at is Unix seconds (UTC).
    CART_VIEW: {
        "cart_value": "Float64",
        "cart_open": "Int64",
        "last_add_to_cart_at": "Int64",
    },
    # consent is opted_in, opted_out or unknown; contactable = opted in,
    # reachable and not suppressed.
    CONSENT_VIEW: {
        f"{channel}_{field}": dtype
        for channel in CHANNELS
        for field, dtype in (
            ("consent", "String"),
            ("suppressed", "Int64"),
            ("reachable", "Int64"),
            ("contactable", "Int64"),
        )
    },
}


def customer_entity() -> Entity:
    from feast import Entity, ValueType

    return Entity(
        name=CUSTOMER_ENTITY,
        join_keys=["customer_id"],
        value_type=ValueType.STRING,
        description="A person the business may contact; keyed by Nudge's customer id.",
    )


def file_source(name: str, path: Path, created_timestamp_column: str = "") -> DataSource:
    """A Parquet table as a Feast batch source (the embedded offline store)."""
    from feast import FileSource

    return FileSource(
        name=name,
        path=str(Path(path).resolve()),
        timestamp_field="event_timestamp",
        created_timestamp_column=created_timestamp_column,
    )


def _view(
    name: str,
    source: DataSource | PushSource,
    entity: Entity,
    types: Mapping[str, str],
    ttl: timedelta,
) -> FeatureView:
    from feast import FeatureView, Field
    from feast import types as feast_types

    return FeatureView(
        name=name,
        entities=[entity],
        ttl=ttl,
        schema=[
            Field(name=feature, dtype=getattr(feast_types, type_name))
            for feature, type_name in types.items()
        ],
        source=source,
        online=True,
    )


def profile_definitions(profiles: DataSource) -> list[Entity | FeatureView | FeatureService]:
    """The entity, the profile view over ``profiles`` and ``propensity_v1``."""
    from feast import FeatureService

    customer = customer_entity()
    profile = _view(PROFILE_VIEW, profiles, customer, PROFILE_FEATURE_TYPES, PROFILE_TTL)
    propensity = FeatureService(name=PROPENSITY_SERVICE, features=[profile])
    return [customer, profile, propensity]


def feature_definitions(
    profiles_path: Path,
) -> list[Entity | FeatureView | FeatureService]:
    """The entity, view and services to register, reading profiles from ``profiles_path``."""
    return profile_definitions(file_source(PROFILE_SOURCE, profiles_path, "created_at"))


def behaviour_definitions(
    behaviour: DataSource,
) -> list[Entity | DataSource | FeatureView | FeatureService]:
    """The behaviour views over the snapshot table ``behaviour``, the cart push source,
    ``behaviour_v1`` and ``send_time_v1``. The cart view reads the same table when
    materialised and takes pushes in between."""
    from feast import FeatureService, PushSource

    customer = customer_entity()
    cart_events = PushSource(name=CART_PUSH_SOURCE, batch_source=behaviour)
    views: list[Any] = [
        _view(
            name,
            cart_events if name == CART_VIEW else behaviour,
            customer,
            types,
            BEHAVIOUR_TTLS[name],
        )
        for name, types in BEHAVIOUR_FEATURE_TYPES.items()
    ]
    send_time = [view for view in views if view.name == SEND_TIME_VIEW]
    behaviour_views = [view for view in views if view.name != SEND_TIME_VIEW]
    services = [
        FeatureService(name=BEHAVIOUR_SERVICE, features=behaviour_views),
        FeatureService(name=SEND_TIME_SERVICE, features=send_time),
    ]
    return [customer, cart_events, *views, *services]
