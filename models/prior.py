"""The protocol for a model that gives each action a prior reward estimate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from features import FeatureValue

__all__ = ["PriorModel"]


class PriorModel(Protocol):
    """P(reward | customer, action) for each action the model was trained on."""

    @property
    def actions(self) -> tuple[str, ...]:
        """The actions the model scores, in training order."""
        ...

    def predict_one(self, features: Mapping[str, FeatureValue]) -> dict[str, float]:
        """Score one customer; a missing feature is treated as missing, not as an error."""
        ...
