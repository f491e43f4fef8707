"""What the holdout earns without any contact, per journey: the baseline of incremental reward."""

from __future__ import annotations

from typing import Any

from river import stats

__all__ = ["HoldoutBaseline"]


class HoldoutBaseline:
    """The running mean reward of holdout decisions, per journey (river ``stats.Mean``).

    Until a journey has ``min_count`` closed holdout windows its baseline is 0:
    a mean of a handful of customers would move every reward by its noise.

    >>> baseline = HoldoutBaseline(min_count=3)
    >>> for reward in (0.0, 1.0, 0.0):
    ...     baseline.update("winback", reward)
    >>> round(baseline.get("winback"), 4), baseline.get("onboarding")
    (0.3333, 0.0)
    """

    def __init__(self, min_count: int = 30) -> None:
        self.min_count = min_count
        self._means: dict[str, Any] = {}

    def update(self, journey: str, reward: float) -> None:
        self._means.setdefault(journey, stats.Mean()).update(reward)

    def get(self, journey: str) -> float:
        mean = self._means.get(journey)
        if mean is None or mean.n < self.min_count:
            return 0.0
        return float(mean.get())
