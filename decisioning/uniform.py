"""The baseline policy: every candidate equally likely, nothing learned."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from decisioning._checks import (
    check_finite,
    check_joint_action,
    check_joint_candidates,
    check_priors,
    check_seed,
)
from decisioning.types import ActionScore, Context, JointAction, Selection

__all__ = ["UniformRandom"]


class UniformRandom:
    """Chooses uniformly at random among the candidates; the yardstick every policy must beat.

    Every choice is random, so every selection is reported as ``explored``. Its
    logs are the cleanest data for off-policy evaluation of other policies.
    Its scores report the model's prior as the mean, with no uncertainty.

    >>> from decisioning.types import JointAction
    >>> email, sms = JointAction("hi", "email", "now", None), JointAction("hi", "sms", "now", None)
    >>> policy = UniformRandom(seed=3)
    >>> pick = policy.select(Context("c1", {}, {email.key: 0.2, sms.key: 0.1}), (email, sms))
    >>> pick.propensity, pick.explored
    (0.5, True)
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = check_seed(seed)
        self._rng = np.random.default_rng(self.seed)

    @property
    def version(self) -> str:
        return "uniform-random"

    def select(self, context: Context, candidates: Sequence[JointAction]) -> Selection:
        _, keys = check_joint_candidates(candidates)
        priors = check_priors(context.priors, keys)
        probability = 1.0 / len(keys)
        scores = {
            key: ActionScore(prior, prior, 0.0, probability)
            for key, prior in zip(keys, priors, strict=True)
        }
        action = keys[int(self._rng.integers(len(keys)))]
        return Selection(action=action, propensity=probability, scores=scores, explored=True)

    def update(self, context: Context, action: JointAction, reward: float, *, first: bool) -> None:
        """Learns nothing: the baseline must stay the same however much it is used.

        The arguments are still checked, so a caller's mistake shows with any policy.
        """
        check_joint_action("action", action)
        check_finite("reward", reward)

    @property
    def learns_before_close(self) -> bool:
        """Learns each decision once, from its whole reward when its window closes."""
        return False

    def forget(self, context: Context, action: JointAction, reward: float) -> None:
        """Never needed: nothing is learned before a window closes."""
        raise NotImplementedError(f"{type(self).__name__} learns only when a window closes")

    def snapshot(self) -> bytes:
        """Nothing learned, nothing to share."""
        return b""

    def absorb(self, snapshots: Sequence[bytes]) -> None:
        """Nothing to take in."""

    def clone(self) -> UniformRandom:
        return UniformRandom(self.seed)

    def __repr__(self) -> str:
        return f"UniformRandom(seed={self.seed!r})"
