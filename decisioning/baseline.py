"""What the holdout earns without any contact, per journey: the baseline of incremental reward."""

from __future__ import annotations

import json
from collections.abc import Sequence

from river import stats

from features.errors import InvalidRequest

__all__ = ["HoldoutBaseline"]


class HoldoutBaseline:
    """The running mean reward of holdout decisions, per journey (river ``stats.Mean``).

    Until a journey has ``min_count`` closed holdout windows its baseline is 0:
    a mean of a handful of customers would move every reward by its noise.

    Like a policy, each process keeps the means of the windows it closed
    itself, shares them with :meth:`snapshot` and takes in every other
    process's (and earlier runs') with :meth:`absorb`; the baseline is all of
    them together. Each window is closed by one process, so nothing counts twice.

    >>> baseline = HoldoutBaseline(min_count=3)
    >>> for reward in (0.0, 1.0, 0.0):
    ...     baseline.update("winback", reward)
    >>> round(baseline.get("winback"), 4), baseline.get("onboarding")
    (0.3333, 0.0)
    >>> other = HoldoutBaseline(min_count=3)
    >>> other.update("winback", 1.0)
    >>> baseline.absorb([other.snapshot()])
    >>> baseline.get("winback"), baseline.count("winback"), baseline.mean("onboarding")
    (0.5, 4.0, 0.0)
    """

    def __init__(self, min_count: int = 30) -> None:
        self.min_count = min_count
        self._own: dict[str, stats.Mean] = {}
        self._others: dict[str, stats.Mean] = {}

    def update(self, journey: str, reward: float) -> None:
        self._own.setdefault(journey, stats.Mean()).update(reward)

    def get(self, journey: str) -> float:
        """The baseline of ``journey``: its mean, once it has ``min_count`` windows, else 0."""
        n, mean = self._combined(journey)
        return 0.0 if n < self.min_count else mean

    def count(self, journey: str) -> float:
        """How many holdout windows of ``journey`` the baseline has seen, here and elsewhere."""
        return self._combined(journey)[0]

    def mean(self, journey: str) -> float:
        """The mean reward of the holdout windows of ``journey`` seen (0 when none), however few."""
        return self._combined(journey)[1]

    def snapshot(self) -> bytes:
        """This process's own means (not what it absorbed), as JSON.

        Floats are written with ``repr``, so a mean read back is the same number.
        """
        means = {journey: [mean.n, mean.get()] for journey, mean in sorted(self._own.items())}
        return json.dumps({"holdout_means": means}).encode()

    def absorb(self, snapshots: Sequence[bytes]) -> None:
        """Replace what other processes taught this one with the sum of ``snapshots``.

        Pass every other process's snapshot, never this one's own. An empty blob
        counts as nothing learned.
        """
        others: dict[str, stats.Mean] = {}
        for i, blob in enumerate(snapshots):
            if not blob:
                continue
            for journey, (n, value) in _parse(i, blob).items():
                mean = stats.Mean._from_state(n, value)
                if journey in others:
                    others[journey] += mean
                else:
                    # Not 0 + mean: n·m/n need not give m back exactly.
                    others[journey] = mean
        self._others = others

    def _combined(self, journey: str) -> tuple[float, float]:
        own, others = self._own.get(journey), self._others.get(journey)
        if own is None or others is None:
            either = own or others
            return (0.0, 0.0) if either is None else (either.n, float(either.get()))
        n = own.n + others.n
        return n, float((own.n * own.get() + others.n * others.get()) / n)


def _parse(i: int, blob: bytes) -> dict[str, tuple[float, float]]:
    try:
        means = json.loads(blob)["holdout_means"]
        parsed = {str(j): (float(n), float(m)) for j, (n, m) in means.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InvalidRequest(f"snapshots[{i}]", "must be a HoldoutBaseline snapshot") from error
    if any(n < 0 for n, _ in parsed.values()):
        raise InvalidRequest(f"snapshots[{i}]", "must hold counts >= 0")
    return parsed
