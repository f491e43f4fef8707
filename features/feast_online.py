"""Online features for one customer from Feast: the decision hot path's ``FeatureSource``."""

from __future__ import annotations

import threading
from typing import Any

from feast import FeatureService, FeatureStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import feast_value_type_to_python_type

from features.online import FeatureRow, FeatureValue

__all__ = ["FeastOnlineFeatures"]


class FeastOnlineFeatures:
    """Reads a feature service's current values for one customer from the online store.

    The service's feature views are resolved once here, and each read goes
    straight to the provider's ``online_read`` (the interface every Feast online
    store implements): ``get_online_features`` rebuilds its request plan on every
    call, which measured 130 µs against 33 µs for the read itself. Values come
    back under their plain feature names; an unknown customer gets every feature missing.
    """

    def __init__(self, store: FeatureStore, service: FeatureService) -> None:
        self.store = store
        self.service = service
        self._views = [
            (
                store.get_feature_view(projection.name),
                [field.name for field in projection.features],
            )
            for projection in service.feature_view_projections
        ]
        self.feature_names: tuple[str, ...] = tuple(
            name for _, names in self._views for name in names
        )
        # Feast shares one SQLite connection (opened with check_same_thread=False)
        # and lazily builds its provider on first use; the lock keeps worker
        # threads from racing through that shared state.
        self._lock = threading.Lock()

    def get(self, customer_id: str) -> FeatureRow:
        """The customer's current features; those the store has no value for are ``missing``."""
        key = EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val=customer_id)])
        values: dict[str, FeatureValue] = {}
        with self._lock:
            provider = self.store.provider
            for view, names in self._views:
                ((_, found),) = provider.online_read(self.store.config, view, [key], names)
                for name in names:
                    values[name] = None if found is None else _python(found.get(name))
        missing = tuple(name for name, value in values.items() if value is None)
        return FeatureRow(customer_id, values, missing)


def _python(value: Any) -> FeatureValue:
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
        return scalar
    converted: FeatureValue = feast_value_type_to_python_type(value)
    return converted


_SCALARS = frozenset(
    {"int64_val", "int32_val", "double_val", "float_val", "string_val", "bool_val"}
)
