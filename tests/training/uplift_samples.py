"""Decision logs with a known truth, built by code, for the uplift report tests (not a test module).

Each decision's customer has one feature ``x`` ~ U(0, 1). Three actions are
eligible: two messages by e-mail and no send. Each action has a true conversion
rate as a function of ``x``; a conversion is a ``purchase`` whose value is
drawn from U(20, 60) (mean 40). The logging policy picks the actions with
probabilities that also depend on ``x``, and logs them (and the true expected
rewards as its estimates), so that every estimator has a truth to meet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from decisioning.config import DecisionConfig, parse_decision_config
from decisioning.types import NO_SEND, ActionScore, Decision, JointAction, Outcome

START = datetime(2024, 5, 1, tzinfo=UTC)
WINDOW = timedelta(hours=72)
VALUE_LOW, VALUE_HIGH = 20.0, 60.0
MEAN_VALUE = (VALUE_LOW + VALUE_HIGH) / 2
EMAIL_COST = 0.01

CONFIG: DecisionConfig = parse_decision_config(
    {
        "channels": {"email": {"cost": EMAIL_COST}, "sms": {"cost": 0.05}},
        "messages": {"m1": {"channels": ["email"]}, "m2": {"channels": ["email", "sms"]}},
        "slots": ["now"],
        "holdout": {"percent": 10},
        "rewards": {
            "default": {
                "attribution_window": "72h",
                "conversions": {"purchase": "value"},
                "penalties": {"unsubscribe": 1.0},
            }
        },
    }
)

Curve = Callable[[np.ndarray], np.ndarray]
"""A function of x (an array) giving a rate or a probability per customer."""


@dataclass(frozen=True)
class JourneyTruth:
    """What is true of one synthetic journey: rates and the logging policy, as functions of x."""

    rates: Mapping[str, Curve]
    """True conversion rate of each action key (the two messages and no send)."""
    policy: Mapping[str, Curve]
    """The logging policy's probability of each action key; they sum to 1."""


def _const(c: float) -> Curve:
    return lambda x: np.full_like(x, c, dtype=float)


EFFECT = JourneyTruth(
    rates={
        "m1/email/now": lambda x: 0.04 + 0.12 * x,
        "m2/email/now": _const(0.0625),
        NO_SEND: _const(0.05),
    },
    policy={
        "m1/email/now": lambda x: 0.3 + 0.4 * x,
        "m2/email/now": lambda x: 0.6 - 0.4 * x,
        NO_SEND: _const(0.1),
    },
)
"""Sends help, m1 more so for high x: the treated (intention-to-treat) rate is about 8 %
against 5 % for the holdout (:func:`truth` gives the exact numbers)."""

NO_EFFECT = JourneyTruth(
    rates={"m1/email/now": _const(0.05), "m2/email/now": _const(0.05), NO_SEND: _const(0.05)},
    policy=EFFECT.policy,
)
"""Nothing a send does changes the 5 % conversion rate."""

UNIFORM_POLICY = {key: _const(1 / 3) for key in EFFECT.policy}
"""A logging policy that picks uniformly among the three actions."""

_GRID = (np.arange(200_000) + 0.5) / 200_000
"""Midpoints of a fine grid of x: the exact expectation over U(0, 1), to ~1e-11."""


def expected(curve: Curve) -> float:
    """E[curve(x)] for x ~ U(0, 1)."""
    return float(curve(_GRID).mean())


def reward_curve(journey: JourneyTruth, key: str) -> Curve:
    """The expected reward of ``key``: rate × mean value, minus the e-mail cost for a send."""
    cost = 0.0 if key == NO_SEND else EMAIL_COST
    return lambda x: journey.rates[key](x) * MEAN_VALUE - cost


def truth(journey: JourneyTruth) -> dict[str, float]:
    """Exact expectations: treated and holdout rates, effect, and policies' mean rewards."""
    keys = list(journey.rates)
    treated = expected(lambda x: sum(journey.policy[k](x) * journey.rates[k](x) for k in keys))
    holdout = expected(journey.rates[NO_SEND])
    return {
        "treated_rate": treated,
        "holdout_rate": holdout,
        "effect": treated - holdout,
        "live_value": expected(
            lambda x: sum(journey.policy[k](x) * reward_curve(journey, k)(x) for k in keys)
        ),
        "uniform_value": expected(
            lambda x: sum(reward_curve(journey, k)(x) for k in keys) / len(keys)
        ),
        **{f"fixed:{k}": expected(reward_curve(journey, k)) for k in keys},
    }


@dataclass
class SyntheticLog:
    decisions: list[Decision] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    xs: dict[str, float] = field(default_factory=dict)
    """Each decision's x, by decision id."""


def synthetic_log(
    journeys: Mapping[str, tuple[JourneyTruth, int]],
    *,
    seed: int = 0,
    holdout: float = 0.10,
    days: int = 10,
    holdout_scores: bool = True,
    log: SyntheticLog | None = None,
) -> SyntheticLog:
    """``n`` decisions per journey (``journeys[name] = (truth, n)``), a share ``holdout`` held out.

    With ``holdout_scores``, holdout decisions log the send candidates' priors as
    well (probability 0), so that the Qini curve can score them.
    """
    rng = np.random.default_rng(seed)
    out = log if log is not None else SyntheticLog()
    actions = {
        "m1/email/now": JointAction("m1", "email", "now", None),
        "m2/email/now": JointAction("m2", "email", "now", None),
        NO_SEND: JointAction.no_send(),
    }
    keys = list(actions)
    for name, (journey, n) in journeys.items():
        x = rng.random(n)
        held = rng.random(n) < holdout
        policy = np.column_stack([journey.policy[k](x) for k in keys])
        rates = np.column_stack([journey.rates[k](x) for k in keys])
        rewards = np.column_stack([reward_curve(journey, k)(x) for k in keys])
        draws = rng.random(n)
        picks = (draws[:, None] > np.cumsum(policy, axis=1)).sum(axis=1)
        converts = rng.random(n)
        values = rng.uniform(VALUE_LOW, VALUE_HIGH, n)
        delays = rng.uniform(0, 48, n)
        decided = rng.uniform(0, days * 24, n)
        for i in range(n):
            decision_id = f"{name}-{seed}-{i}"
            at = START + timedelta(hours=float(decided[i]))
            scores = {
                k: ActionScore(
                    prior=float(rewards[i, j]),
                    mean=float(rewards[i, j]),
                    uncertainty=0.0,
                    probability=float(policy[i, j]),
                )
                for j, k in enumerate(keys)
            }
            if held[i]:
                pick = keys.index(NO_SEND)
                group: Any = "holdout"
                eligible: tuple[JointAction, ...] = (actions[NO_SEND],)
                propensity = 1.0
                if holdout_scores:
                    scores = {
                        k: ActionScore(s.prior, s.mean, 0.0, 1.0 if k == NO_SEND else 0.0)
                        for k, s in scores.items()
                    }
                else:
                    scores = {NO_SEND: ActionScore(scores[NO_SEND].prior, 0.0, 0.0, 1.0)}
            else:
                pick = int(min(picks[i], len(keys) - 1))
                group = "policy"
                eligible = tuple(actions.values())
                propensity = float(policy[i, pick])
            out.decisions.append(
                Decision(
                    decision_id=decision_id,
                    customer_id=f"c-{decision_id}",
                    decided_at=at,
                    journey=name,
                    step="s",
                    group=group,
                    action=actions[keys[pick]],
                    propensity=propensity,
                    propensity_error=0.0,
                    eligible=eligible,
                    excluded=(),
                    scores=scores,
                    explored=False,
                    policy_version="synthetic",
                    model_version="m-1",
                    features={"x": float(x[i])},
                    attribution_closes_at=at + WINDOW,
                )
            )
            out.xs[decision_id] = float(x[i])
            if converts[i] < rates[i, pick]:
                value = float(values[i])
                out.outcomes.append(
                    Outcome(
                        f"o-{decision_id}",
                        decision_id,
                        "purchase",
                        value,
                        value,
                        at + timedelta(hours=float(delays[i])),
                    )
                )
    return out
