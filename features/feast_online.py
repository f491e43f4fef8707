"""Online features from Feast: the decision hot path's ``FeatureSource``.

Feast's online read does not honour a view's TTL for the SQLite or the Redis
store (0.67: ``online_read`` returns whatever was last written, with its event
time, and ``get_online_features`` marks it ``PRESENT``; only the pre-computed
vector path checks the age). So this reader does: a value whose event time is
more than its view's TTL before now is served as missing, not as present.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from feast import FeatureService, FeatureStore, FeatureView
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import feast_value_type_to_python_type

from features.definitions import ONLINE_TTL_EXEMPT
from features.online import FeatureRow, FeatureValue

__all__ = ["Clock", "FeastOnlineFeatures", "python_value", "read_view"]

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class FeastOnlineFeatures:
    """Reads a feature service's current values for customers from the online store.

    The service's feature views are resolved once here, and each read goes
    straight to the provider's ``online_read`` (the interface every Feast online
    store implements): ``get_online_features`` rebuilds its request plan on every
    call, which measured 130 µs against 33 µs for the read itself. Values come
    back under their plain feature names; an unknown customer gets every feature
    missing, and so does a view whose value is older than its TTL by ``clock``
    (default the wall clock), except the views named in ``serve_expired``.
    """

    def __init__(
        self,
        store: FeatureStore,
        service: FeatureService,
        *,
        clock: Clock | None = None,
        serve_expired: Collection[str] = ONLINE_TTL_EXEMPT,
    ) -> None:
        self.store = store
        self.service = service
        self.clock = clock or _now
        self._views: list[tuple[FeatureView, list[str], timedelta | None]] = []
        for projection in service.feature_view_projections:
            view = store.get_feature_view(projection.name)
            ttl = None if view.name in serve_expired or not view.ttl else view.ttl
            self._views.append((view, [field.name for field in projection.features], ttl))
        self.feature_names: tuple[str, ...] = tuple(
            name for _, names, _ in self._views for name in names
        )
        # Feast shares one SQLite connection (opened with check_same_thread=False)
        # and lazily builds its provider on first use; the lock keeps worker
        # threads from racing through that shared state.
        self._lock = threading.Lock()

    def get(self, customer_id: str) -> FeatureRow:
        """The customer's current features; those without a live value are ``missing``."""
        (row,) = self.get_many([customer_id])
        return row

    def get_many(self, customer_ids: Sequence[str]) -> list[FeatureRow]:
        """One row per id, in request order (repeats included), one store read per view.

        An unknown customer's row has every feature missing.
        """
        unique = list(dict.fromkeys(customer_ids))
        keys = [_key(customer_id) for customer_id in unique]
        now = self.clock()
        values: list[dict[str, FeatureValue]] = [{} for _ in unique]
        with self._lock:
            provider = self.store.provider
            for view, names, ttl in self._views:
                # A copy: Feast's Redis store appends its timestamp field to the list.
                found = provider.online_read(self.store.config, view, keys, list(names))
                for row, (stamp, data) in zip(values, found, strict=True):
                    live = data is not None and not _expired(stamp, ttl, now)
                    for name in names:
                        row[name] = python_value(data.get(name)) if live and data else None
        rows = {
            customer_id: FeatureRow(
                customer_id, row, tuple(name for name, value in row.items() if value is None)
            )
            for customer_id, row in zip(unique, values, strict=True)
        }
        return [rows[customer_id] for customer_id in customer_ids]


def read_view(
    store: FeatureStore, view: FeatureView, customer_ids: Sequence[str]
) -> list[tuple[datetime | None, dict[str, FeatureValue] | None]]:
    """Each customer's raw row of one view: its event time and values (None: no row).

    No TTL is applied: the caller (the cart pusher) judges the age itself.
    """
    names = [field.name for field in view.features]
    found = store.provider.online_read(
        store.config, view, [_key(customer_id) for customer_id in customer_ids], list(names)
    )
    return [
        (stamp, None if data is None else {name: python_value(data.get(name)) for name in names})
        for stamp, data in found
    ]


def _key(customer_id: str) -> EntityKey:
    return EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val=customer_id)])


def _expired(stamp: datetime | None, ttl: timedelta | None, now: datetime) -> bool:
    if ttl is None or stamp is None:
        return False
    if stamp.tzinfo is None:  # the stores hand back UTC, some of them naive
        stamp = stamp.replace(tzinfo=UTC)
    return now - stamp > ttl


def python_value(value: Any) -> FeatureValue:
    """A Feast ``Value`` proto as a plain Python scalar.

    Cheaper than ``OnlineResponse.to_dict``, which looks up each feature's type
    and builds column lists: profiled, that was about 15 % of a read.
    """
    if value is None:
        return None
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    if kind in _SCALARS:
        scalar: FeatureValue = getattr(value, kind)
        if kind in _FLOATS and scalar != scalar:  # NaN is how a missing float can arrive
            return None
        return scalar
    converted: FeatureValue = feast_value_type_to_python_type(value)
    return converted


_SCALARS = frozenset(
    {"int64_val", "int32_val", "double_val", "float_val", "string_val", "bool_val"}
)
_FLOATS = frozenset({"double_val", "float_val"})
