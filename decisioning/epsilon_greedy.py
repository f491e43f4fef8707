"""Epsilon-greedy over the model's priors, each corrected online from observed rewards."""

from __future__ import annotations

import numpy as np

from decisioning._checks import check_candidates, check_seed, check_unit_interval
from decisioning.types import ActionScore, Context, Selection
from features.errors import InvalidRequest
from models.online import OnlineRecalibrator

__all__ = ["EpsilonGreedy"]


class EpsilonGreedy:
    """Chooses the best recalibrated prior, or with probability ``epsilon`` any candidate.

    Each candidate's probability is exact, so the logged propensity can be used by
    off-policy evaluation: ``(1 - epsilon) / |greedy| + epsilon / K`` for the
    candidates tied for the best estimate, ``epsilon / K`` for the others.

    >>> policy = EpsilonGreedy(epsilon=0.1, seed=7)
    >>> context = Context("c1", {}, {"email": 0.2, "sms": 0.1})
    >>> pick = policy.select(context, ("email", "sms"))
    >>> {action: round(score.probability, 12) for action, score in pick.scores.items()}
    {'email': 0.95, 'sms': 0.05}
    >>> policy.update(context, "sms", reward=1.0)
    >>> policy.version
    'epsilon-greedy(epsilon=0.1,learning_rate=0.05)+1'
    """

    def __init__(self, epsilon: float = 0.1, learning_rate: float = 0.05, seed: int = 0) -> None:
        self.epsilon = check_unit_interval("epsilon", epsilon)
        self.seed = check_seed(seed)
        self._recalibrator = OnlineRecalibrator(learning_rate)
        self.learning_rate = self._recalibrator.learning_rate
        self._rng = np.random.default_rng(self.seed)

    @property
    def recalibrator_(self) -> OnlineRecalibrator:
        """What the policy has learned: the online correction of each action's prior."""
        return self._recalibrator

    @property
    def version(self) -> str:
        return (
            f"epsilon-greedy(epsilon={self.epsilon},learning_rate={self.learning_rate})"
            f"+{self._recalibrator.total_updates}"
        )

    def select(self, context: Context, candidates: tuple[str, ...]) -> Selection:
        chosen = check_candidates(candidates, context.priors)
        priors = {a: check_unit_interval(f"priors.{a}", context.priors[a]) for a in chosen}
        means = {a: self._recalibrator.predict_one(a, priors[a]) for a in chosen}
        best = max(means.values())
        greedy = tuple(a for a in chosen if means[a] == best)
        k = len(chosen)
        explore = self.epsilon / k
        exploit = (1.0 - self.epsilon) / len(greedy)
        probability = {a: explore + (exploit if means[a] == best else 0.0) for a in chosen}
        explored = bool(self._rng.random() < self.epsilon)
        pool = chosen if explored else greedy
        action = pool[int(self._rng.integers(len(pool)))]
        return Selection(
            action=action,
            propensity=probability[action],
            scores={a: ActionScore(priors[a], means[a], probability[a]) for a in chosen},
            explored=explored,
        )

    def update(self, context: Context, action: str, reward: float) -> None:
        if action not in context.priors:
            raise InvalidRequest("action", f"must be one of {sorted(context.priors)}", action)
        prior = check_unit_interval(f"priors.{action}", context.priors[action])
        self._recalibrator.learn_one(action, prior, reward)

    def clone(self) -> EpsilonGreedy:
        return EpsilonGreedy(self.epsilon, self.learning_rate, self.seed)

    def __repr__(self) -> str:
        return (
            f"EpsilonGreedy(epsilon={self.epsilon!r}, learning_rate={self.learning_rate!r}, "
            f"seed={self.seed!r})"
        )
