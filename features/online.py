"""The protocol for reading one customer's features at decision time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["FeatureRow", "FeatureSource", "FeatureValue"]

FeatureValue = float | int | str | None


@dataclass(frozen=True)
class FeatureRow:
    """One customer's features; ``missing`` names those the store had no value for.

    >>> row = FeatureRow("c1", {"recency": 3, "channel": None}, missing=("channel",))
    >>> row.values["recency"], row.missing
    (3, ('channel',))
    """

    customer_id: str
    values: Mapping[str, FeatureValue]
    missing: tuple[str, ...] = field(default=())


class FeatureSource(Protocol):
    """Where the decision engine reads online features from."""

    def get(self, customer_id: str) -> FeatureRow:
        """Return the customer's current features; an unknown customer gets all missing."""
        ...
