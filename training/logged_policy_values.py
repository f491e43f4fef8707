"""What other policies would have earned on the logged decisions: off-policy evaluation.

Every decision the policy (or its exploration slice) made logs the probability
of the action it took and, for every eligible action, the policy's estimate of
its reward and its probability. That is enough to estimate, from the same log,
the value of:

- the live logging policy itself (its on-policy mean reward);
- choosing uniformly at random among each decision's eligible actions;
- the best *fixed* action: "always this action when it is eligible, else no
  send" (where no send is not allowed either, the eligible action the model
  scored highest), for every action seen, keeping the best;
- a challenger: any function from a decision to the action key it would choose.

Each by IPS, SNIPS and doubly robust (reward model: the logged estimate of each
eligible action's reward), with percentile bootstrap intervals over decisions.
The best fixed action is picked by its doubly robust value on the same data,
so its value is somewhat optimistic (the winner's curse).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from decisioning.types import NO_SEND, Decision
from features import InvalidRequest
from training.holdout_lift import Row
from training.policy_value import bootstrap_intervals, mean_with_ci

__all__ = ["ESTIMATORS", "POLICY_VALUE_COLUMNS", "LoggedFeedback"]

POLICY_VALUE_COLUMNS: tuple[str, ...] = (
    "policy",
    "label",
    "action",
    "estimator",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "effective_n",
)
"""One row per policy and estimator; ``value`` is the mean reward per decision.

``effective_n`` is ``(Σw)² / Σw²`` of the importance weights: roughly how many
decisions the estimate really rests on (n for the live policy, far fewer for a
policy that seldom agrees with the log).
"""

ESTIMATORS: dict[str, str] = {
    "on_policy": "on-policy mean",
    "ips": "IPS",
    "snips": "SNIPS",
    "dr": "doubly robust",
}
"""Each estimator's key and how the report names it."""


class LoggedFeedback:
    """The logged feedback of non-holdout decisions, gathered one decision at a time.

    Only a few numbers per decision are kept (not the decision), so a report
    over a long log holds little in memory.

    >>> from datetime import UTC, datetime
    >>> from decisioning.types import ActionScore, JointAction
    >>> at = datetime(2024, 5, 1, tzinfo=UTC)
    >>> send, skip = JointAction("m", "email", "now", at), JointAction.no_send()
    >>> scores = {send.key: ActionScore(0.2, 0.2, 0.0, 0.5), skip.key: ActionScore(0, 0, 0, 0.5)}
    >>> feedback = LoggedFeedback()
    >>> for i, (action, reward) in enumerate([(send, 1.0), (skip, 0.0), (send, 0.0), (skip, 0.0)]):
    ...     feedback.add(Decision(f"d{i}", "c", at, "j", "s", "policy", action, 0.5, 0.0,
    ...                           (send, skip), (), scores, False, "p", "m", {}), reward)
    >>> rows = feedback.policy_values(resamples=50)
    >>> [(r["policy"], r["estimator"], r["value"]) for r in rows if r["estimator"] == "ips"]
    [('live', 'ips', 0.25), ('uniform_random', 'ips', 0.25), ('best_fixed', 'ips', 0.5)]
    >>> [r["action"] for r in rows if r["policy"] == "best_fixed"][0]
    'm/email/now'
    """

    def __init__(self) -> None:
        self._keys: dict[str, int] = {}
        self._rewards: list[float] = []
        self._propensities: list[float] = []
        self._logged: list[int] = []
        self._logged_estimate: list[float] = []
        self._live_probability: list[float] = []
        self._live_estimate: list[float] = []
        self._uniform_probability: list[float] = []
        self._uniform_estimate: list[float] = []
        self._fallback: list[int] = []
        self._fallback_estimate: list[float] = []
        self._entry_rows: list[int] = []
        self._entry_keys: list[int] = []
        self._entry_estimates: list[float] = []
        self._challenger: list[int] = []
        self._challenger_estimate: list[float] = []

    def __len__(self) -> int:
        return len(self._rewards)

    def add(self, decision: Decision, reward: float, challenger_action: str | None = None) -> None:
        """Keep one decision's feedback: its realised ``reward`` and what it logged.

        ``challenger_action`` is the key of the eligible action a challenger would
        have chosen; give it for every decision or for none.
        """
        keys = [action.key for action in decision.eligible]
        logged = decision.action.key
        if logged not in keys:
            raise InvalidRequest(
                "decision",
                f"must have taken one of its eligible actions (decision {decision.decision_id})",
                logged,
            )
        propensity = min(float(decision.propensity), 1.0)  # a rounding above 1 is 1
        if not propensity > 0:
            raise InvalidRequest(
                f"decision {decision.decision_id}: propensity", "must be in (0, 1]", propensity
            )
        if challenger_action is not None and challenger_action not in keys:
            raise InvalidRequest(
                "challenger",
                f"must choose one of the eligible actions of decision {decision.decision_id}",
                challenger_action,
            )
        if self._rewards and bool(self._challenger) != (challenger_action is not None):
            raise InvalidRequest("challenger_action", "must be given for every decision or none")
        row = len(self._rewards)
        scores = decision.scores
        estimates = [scores[k].mean if k in scores else 0.0 for k in keys]
        probabilities = [scores[k].probability if k in scores else 0.0 for k in keys]
        position = keys.index(logged)
        ids = [self._keys.setdefault(k, len(self._keys)) for k in keys]
        self._rewards.append(float(reward))
        self._propensities.append(propensity)
        self._logged.append(ids[position])
        self._logged_estimate.append(estimates[position])
        self._live_probability.append(probabilities[position])
        self._live_estimate.append(
            sum(p * q for p, q in zip(probabilities, estimates, strict=True))
        )
        self._uniform_probability.append(1.0 / len(keys))
        self._uniform_estimate.append(sum(estimates) / len(keys))
        fallback = keys.index(NO_SEND) if NO_SEND in keys else int(np.argmax(estimates))
        self._fallback.append(ids[fallback])
        self._fallback_estimate.append(estimates[fallback])
        self._entry_rows.extend([row] * len(keys))
        self._entry_keys.extend(ids)
        self._entry_estimates.extend(estimates)
        if challenger_action is not None:
            choice = keys.index(challenger_action)
            self._challenger.append(ids[choice])
            self._challenger_estimate.append(estimates[choice])

    def policy_values(self, *, resamples: int = 500, seed: int = 0) -> list[Row]:
        """The :data:`POLICY_VALUE_COLUMNS` rows: live, uniform random, best fixed, challenger.

        Empty when no decision was added.
        """
        if not self._rewards:
            return []
        rewards = np.asarray(self._rewards)
        mu = np.asarray(self._propensities)
        logged = np.asarray(self._logged)
        q_logged = np.asarray(self._logged_estimate)
        targets: list[tuple[str, str, str | None, NDArray[Any], NDArray[Any]]] = [
            (
                "live",
                "Live policy (as logged)",
                None,
                np.asarray(self._live_probability) / mu,
                np.asarray(self._live_estimate),
            ),
            (
                "uniform_random",
                "Uniform random over the eligible actions",
                None,
                np.asarray(self._uniform_probability) / mu,
                np.asarray(self._uniform_estimate),
            ),
        ]
        best, best_target = self._best_fixed(rewards, mu, logged, q_logged)
        names = {i: k for k, i in self._keys.items()}
        targets.append(
            (
                "best_fixed",
                f"Always {names[best]} when eligible (best fixed action)",
                names[best],
                (best_target[0] == logged) / mu,
                best_target[1],
            )
        )
        if self._challenger:
            chosen = np.asarray(self._challenger)
            targets.append(
                (
                    "challenger",
                    "Challenger",
                    None,
                    (chosen == logged) / mu,
                    np.asarray(self._challenger_estimate),
                )
            )
        return _rows(rewards, q_logged, targets, resamples, seed)

    def _best_fixed(
        self,
        rewards: NDArray[Any],
        mu: NDArray[Any],
        logged: NDArray[Any],
        q_logged: NDArray[Any],
    ) -> tuple[int, tuple[NDArray[Any], NDArray[Any]]]:
        """The fixed action of highest doubly robust value, and its (action, estimate) per row."""
        entry_rows = np.asarray(self._entry_rows)
        entry_keys = np.asarray(self._entry_keys)
        entry_estimates = np.asarray(self._entry_estimates)
        order = np.argsort(entry_keys, kind="stable")
        bounds = np.searchsorted(entry_keys[order], np.arange(len(self._keys) + 1))
        fallback = np.asarray(self._fallback)
        fallback_q = np.asarray(self._fallback_estimate)
        best: tuple[float, int, tuple[NDArray[Any], NDArray[Any]]] | None = None
        # Keys in name order, so that a tie goes to the same action on every run.
        for key in sorted(self._keys):
            k = self._keys[key]
            where = order[bounds[k] : bounds[k + 1]]
            action, estimate = fallback.copy(), fallback_q.copy()
            action[entry_rows[where]] = k
            estimate[entry_rows[where]] = entry_estimates[where]
            weights = (action == logged) / mu
            value = float(np.mean(estimate + weights * (rewards - q_logged)))
            if best is None or value > best[0]:
                best = (value, k, (action, estimate))
        assert best is not None  # every decision has at least one eligible action
        return best[1], best[2]


def _rows(
    rewards: NDArray[Any],
    q_logged: NDArray[Any],
    targets: list[tuple[str, str, str | None, NDArray[Any], NDArray[Any]]],
    resamples: int,
    seed: int,
) -> list[Row]:
    numerators: list[NDArray[Any]] = []
    denominators: list[NDArray[Any]] = []
    ones = np.ones_like(rewards)
    for _, _, _, weights, v_hat in targets:
        numerators += [weights * rewards, weights * rewards, v_hat + weights * (rewards - q_logged)]
        denominators += [ones, weights, ones]
    num = np.column_stack(numerators)
    den = np.column_stack(denominators)
    intervals = bootstrap_intervals(num, den, resamples=resamples, seed=seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        points = num.sum(axis=0) / den.sum(axis=0)
    n = int(rewards.size)
    rows: list[Row] = []
    for t, (policy, label, action, weights, _) in enumerate(targets):
        square = float(np.sum(weights**2))
        effective = float(np.sum(weights)) ** 2 / square if square > 0 else 0.0
        base: Row = {"policy": policy, "label": label, "action": action, "n": n}
        if policy == "live":
            on_policy = mean_with_ci(rewards)
            rows.append(
                base
                | {
                    "estimator": "on_policy",
                    "value": on_policy.mean,
                    "ci_low": _number(on_policy.ci95[0]),
                    "ci_high": _number(on_policy.ci95[1]),
                    "effective_n": float(n),
                }
            )
        for e, estimator in enumerate(("ips", "snips", "dr")):
            column = 3 * t + e
            low, high = intervals[column]
            rows.append(
                base
                | {
                    "estimator": estimator,
                    "value": _number(float(points[column])),
                    "ci_low": _number(low),
                    "ci_high": _number(high),
                    "effective_n": effective,
                }
            )
    return [{column: row[column] for column in POLICY_VALUE_COLUMNS} for row in rows]


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None
