"""The baseline policy: every candidate equally likely, nothing learned."""

from __future__ import annotations

import numpy as np

from decisioning._checks import check_candidates, check_seed, check_unit_interval
from decisioning.types import ActionScore, Context, Selection

__all__ = ["UniformRandom"]


class UniformRandom:
    """Chooses uniformly at random among the candidates; the yardstick every policy must beat.

    Every choice is random, so every selection is reported as ``explored``. Its
    logs are the cleanest data for off-policy evaluation of other policies.

    >>> policy = UniformRandom(seed=3)
    >>> pick = policy.select(Context("c1", {}, {"email": 0.2, "sms": 0.1}), ("email", "sms"))
    >>> pick.propensity, pick.explored
    (0.5, True)
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = check_seed(seed)
        self._rng = np.random.default_rng(self.seed)

    @property
    def version(self) -> str:
        return "uniform-random"

    def select(self, context: Context, candidates: tuple[str, ...]) -> Selection:
        chosen = check_candidates(candidates, context.priors)
        probability = 1.0 / len(chosen)
        scores = {}
        for a in chosen:
            prior = check_unit_interval(f"priors.{a}", context.priors[a])
            scores[a] = ActionScore(prior=prior, mean=prior, probability=probability)
        action = chosen[int(self._rng.integers(len(chosen)))]
        return Selection(action=action, propensity=probability, scores=scores, explored=True)

    def update(self, context: Context, action: str, reward: float) -> None:
        """Learns nothing: the baseline must stay the same however much it is used."""

    def clone(self) -> UniformRandom:
        return UniformRandom(self.seed)

    def __repr__(self) -> str:
        return f"UniformRandom(seed={self.seed!r})"
