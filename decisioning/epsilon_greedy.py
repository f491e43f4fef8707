"""Epsilon-greedy over the model's priors, each corrected online from observed rewards."""

from __future__ import annotations

import pickle
from collections.abc import Sequence

import numpy as np

from decisioning._checks import (
    check_finite,
    check_joint_action,
    check_joint_candidates,
    check_priors,
    check_seed,
    check_unit_interval,
)
from decisioning.types import ActionScore, Context, JointAction, Selection
from features.errors import InvalidRequest
from models.online import OnlineRecalibrator

__all__ = ["EpsilonGreedy"]


class EpsilonGreedy:
    """Chooses the best recalibrated prior, or with probability ``epsilon`` any candidate.

    Each candidate's probability is exact, so the logged propensity can be used by
    off-policy evaluation: ``(1 - epsilon) / |greedy| + epsilon / K`` for the
    candidates tied for the best estimate, ``epsilon / K`` for the others.

    Priors are expected rewards and may be any finite number (a value minus a
    channel cost can be negative). Only a prior in [0, 1] reads as a probability
    that :class:`~models.online.OnlineRecalibrator` can correct (by joint-action
    key, from rewards clipped to [0, 1]); any other prior is used unchanged and
    its rewards are not learned from. Each decision teaches once: only its first
    reward (``first=True``) is learned, later changes are ignored.

    Sharing between processes is limited: river models cannot be merged, so
    :meth:`absorb` adopts the snapshot with the most updates only while this
    process has learned nothing itself (a fresh worker starts from the most
    experienced one). Additive learning across workers is a
    :class:`~decisioning.linear_ts.LinearThompson` feature.

    >>> from decisioning.types import JointAction
    >>> email, sms = JointAction("hi", "email", "now", None), JointAction("hi", "sms", "now", None)
    >>> policy = EpsilonGreedy(epsilon=0.1, seed=7)
    >>> context = Context("c1", {}, {email.key: 0.2, sms.key: 0.1})
    >>> pick = policy.select(context, (email, sms))
    >>> {key: round(score.probability, 12) for key, score in pick.scores.items()}
    {'hi/email/now': 0.95, 'hi/sms/now': 0.05}
    >>> policy.update(context, sms, reward=1.0, first=True)
    >>> policy.version
    'epsilon-greedy(epsilon=0.1,learning_rate=0.05)+1'
    """

    def __init__(self, epsilon: float = 0.1, learning_rate: float = 0.05, seed: int = 0) -> None:
        self.epsilon = check_unit_interval("epsilon", epsilon)
        self.seed = check_seed(seed)
        self._recalibrator = OnlineRecalibrator(learning_rate)
        self.learning_rate = self._recalibrator.learning_rate
        self._rng = np.random.default_rng(self.seed)
        self._own_updates = 0

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

    def select(self, context: Context, candidates: Sequence[JointAction]) -> Selection:
        _, keys = check_joint_candidates(candidates)
        priors = check_priors(context.priors, keys)
        means = [self._estimate(key, prior) for key, prior in zip(keys, priors, strict=True)]
        best = max(means)
        greedy = [i for i, mean in enumerate(means) if mean == best]
        k = len(keys)
        explore = self.epsilon / k
        exploit = (1.0 - self.epsilon) / len(greedy)
        probability = [explore + (exploit if mean == best else 0.0) for mean in means]
        explored = bool(self._rng.random() < self.epsilon)
        pool = range(k) if explored else greedy
        index = pool[int(self._rng.integers(len(pool)))]
        return Selection(
            action=keys[index],
            propensity=probability[index],
            scores={
                key: ActionScore(prior, mean, 0.0, p)
                for key, prior, mean, p in zip(keys, priors, means, probability, strict=True)
            },
            explored=explored,
        )

    def update(self, context: Context, action: JointAction, reward: float, *, first: bool) -> None:
        key = check_joint_action("action", action).key
        (prior,) = check_priors(context.priors, (key,))
        check_finite("reward", reward)
        if not first or not 0.0 <= prior <= 1.0:
            return
        self._recalibrator.learn_one(key, prior, reward)
        self._own_updates += 1

    @property
    def learns_before_close(self) -> bool:
        """Learns each decision once, from its whole reward when its window closes."""
        return False

    def forget(self, context: Context, action: JointAction, reward: float) -> None:
        """Never needed: nothing is learned before a window closes."""
        raise NotImplementedError(f"{type(self).__name__} learns only when a window closes")

    def snapshot(self) -> bytes:
        """The pickled recalibrator: everything this policy has learned (adopted or its own)."""
        return pickle.dumps(self._recalibrator)

    def absorb(self, snapshots: Sequence[bytes]) -> None:
        """Adopt the snapshot with the most updates, while this process has learned nothing itself.

        Blobs are trusted pickles written by Nudge (see ``PolicyStateStore``).
        """
        if self._own_updates:
            return
        adopted = self._recalibrator.clone()
        for i, blob in enumerate(snapshots):
            if not blob:
                continue
            recalibrator = pickle.loads(blob)
            if not isinstance(recalibrator, OnlineRecalibrator):
                raise InvalidRequest(f"snapshots[{i}]", "must be an EpsilonGreedy snapshot")
            if recalibrator.total_updates > adopted.total_updates:
                adopted = recalibrator
        self._recalibrator = adopted

    def clone(self) -> EpsilonGreedy:
        return EpsilonGreedy(self.epsilon, self.learning_rate, self.seed)

    def __repr__(self) -> str:
        return (
            f"EpsilonGreedy(epsilon={self.epsilon!r}, learning_rate={self.learning_rate!r}, "
            f"seed={self.seed!r})"
        )

    def _estimate(self, key: str, prior: float) -> float:
        if 0.0 <= prior <= 1.0:
            return self._recalibrator.predict_one(key, prior)
        return prior
