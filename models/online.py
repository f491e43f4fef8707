"""Online recalibration of an offline model's priors from observed rewards (river)."""

from __future__ import annotations

import math
from typing import Any

from river import linear_model, optim, utils

from features.errors import InvalidRequest

__all__ = ["OnlineRecalibrator"]

_EPS = 1e-6
_FEATURE = "prior_logit"


class _SoftLog(optim.losses.Log):
    """Log loss whose target may be any reward in [0, 1], not only 0 or 1.

    river's ``Log.gradient`` casts a single target with ``int()``, so a reward of
    0.3 would give no gradient at all. The soft-label gradient of the log loss
    with respect to the logit is ``sigmoid(z) - y``, which equals river's for 0 and 1.
    """

    def gradient(self, y_true: Any, y_pred: Any) -> Any:
        return utils.math.sigmoid(y_pred) - y_true


class OnlineRecalibrator:
    """Learns, per action, a logistic correction of the prior: ``sigmoid(a * logit(prior) + b)``.

    Each action gets its own river ``LogisticRegression`` whose single input is
    the prior's logit, starting at ``a = 1, b = 0`` so that an untrained action
    returns the prior unchanged. Rewards are clipped to [0, 1] for learning, so a
    logged reward of 2.5 (say, a basket value) teaches "rewarded", not more.

    >>> recal = OnlineRecalibrator(learning_rate=0.05)
    >>> recal.predict_one("email", 0.1)
    0.1
    >>> for _ in range(200):
    ...     recal.learn_one("email", 0.1, reward=1.0)
    >>> recal.predict_one("email", 0.1) > 0.5, recal.n_updates("email")
    (True, 200)
    """

    def __init__(self, learning_rate: float = 0.05) -> None:
        if not _is_number(learning_rate) or not (
            math.isfinite(learning_rate) and learning_rate > 0
        ):
            raise InvalidRequest("learning_rate", "must be a finite number > 0", learning_rate)
        self.learning_rate = float(learning_rate)
        # river's estimators are untyped; Any keeps mypy --strict from flagging each call.
        self._models: dict[str, Any] = {}
        self._coefs: dict[str, tuple[float, float]] = {}
        self._updates: dict[str, int] = {}

    def predict_one(self, action: str, prior: float) -> float:
        """The corrected estimate of the reward of ``action`` whose model prior is ``prior``."""
        _check_action(action)
        _check_unit("prior", prior)
        coefs = self._coefs.get(action)
        # Not river's predict_proba_one: river materialises a weight from its
        # initializer only while learning, so before the first update it would say
        # sigmoid(0) = 0.5. After it, this is river's arithmetic without its dict
        # and vector machinery, which matters as a policy scores every candidate.
        if coefs is None:
            return float(prior)
        weight, intercept = coefs
        return float(utils.math.sigmoid(weight * _logit(prior) + intercept))

    def learn_one(self, action: str, prior: float, reward: float) -> None:
        """Learn that ``action``, with model prior ``prior``, earned ``reward``."""
        _check_action(action)
        _check_unit("prior", prior)
        if not _is_number(reward) or not math.isfinite(reward):
            raise InvalidRequest("reward", "must be a finite number", reward)
        model = self._models.get(action)
        if model is None:
            model = self._models[action] = self._new_model()
        model.learn_one({_FEATURE: _logit(prior)}, min(max(float(reward), 0.0), 1.0))
        self._coefs[action] = (float(model.weights[_FEATURE]), float(model.intercept))
        self._updates[action] = self._updates.get(action, 0) + 1

    def n_updates(self, action: str) -> int:
        """How many rewards of ``action`` have been learned."""
        return self._updates.get(action, 0)

    @property
    def total_updates(self) -> int:
        """How many rewards have been learned over all actions."""
        return sum(self._updates.values())

    def clone(self) -> OnlineRecalibrator:
        """A fresh, untrained copy with the same learning rate."""
        return OnlineRecalibrator(self.learning_rate)

    def __repr__(self) -> str:
        return f"OnlineRecalibrator(learning_rate={self.learning_rate!r})"

    def _new_model(self) -> linear_model.LogisticRegression:
        # The intercept gets the same rate as the weight; river's default (0.01)
        # would ignore the learning rate the caller chose.
        return linear_model.LogisticRegression(
            optimizer=optim.SGD(self.learning_rate),
            loss=_SoftLog(),
            intercept_init=0.0,
            intercept_lr=self.learning_rate,
            initializer=optim.initializers.Constant(1.0),
        )


def _logit(prior: float) -> float:
    p = min(max(float(prior), _EPS), 1.0 - _EPS)
    return math.log(p / (1.0 - p))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_action(action: object) -> None:
    if not isinstance(action, str) or not action:
        raise InvalidRequest("action", "must be a non-empty string", action)


def _check_unit(field: str, value: object) -> None:
    # NaN fails the comparison too, so it is rejected here.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise InvalidRequest(field, "must be a number in [0, 1]", value)
