"""What became of each logged decision inside its attribution window: the facts reports count.

A decision *converted* when one of its journey's conversion events (see
``RewardSpec.conversions``) happened no later than its window closed; its
revenue is the sum of those conversions' values. Its *reward* is what the policy
learns from it: every reward credited inside the window (conversions, and
penalties such as an unsubscribe, as the engine recorded them) minus what the
chosen channel costs. A decision with a ``cancelled`` outcome was never carried
out: reports leave it out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from decisioning.config import DecisionConfig
from decisioning.engine import CANCELLED
from decisioning.types import Decision, Outcome

__all__ = ["CANCELLED", "DecisionResult", "decision_result", "outcomes_by_decision"]


@dataclass(frozen=True, slots=True)
class DecisionResult:
    """One decision's outcome as the reports count it."""

    converted: bool
    revenue: float
    reward: float
    cancelled: bool


def outcomes_by_decision(outcomes: Iterable[Outcome]) -> dict[str, list[Outcome]]:
    """The outcomes grouped by the decision they follow, each group in the given order.

    >>> from datetime import UTC, datetime
    >>> at = datetime(2024, 5, 1, tzinfo=UTC)
    >>> grouped = outcomes_by_decision(
    ...     [Outcome("o1", "d1", "open", 0, 0, at), Outcome("o2", "d2", "purchase", 9, 9, at)]
    ... )
    >>> {d: [o.outcome_id for o in os] for d, os in grouped.items()}
    {'d1': ['o1'], 'd2': ['o2']}
    """
    grouped: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        grouped[outcome.decision_id].append(outcome)
    return dict(grouped)


def decision_result(
    decision: Decision, outcomes: Sequence[Outcome], config: DecisionConfig
) -> DecisionResult:
    """Converted, revenue and reward of ``decision`` from its ``outcomes``.

    Outcomes after the window closed count for nothing: the engine did not credit
    them either. A decision without a window (none is logged) counts every outcome.

    >>> from datetime import UTC, datetime, timedelta
    >>> from decisioning.config import DEFAULT_CONFIG, load_decision_config
    >>> from decisioning.types import JointAction
    >>> at = datetime(2024, 5, 1, tzinfo=UTC)
    >>> email = JointAction("welcome", "email", "now", at)
    >>> d = Decision("d1", "c1", at, "default", "s", "policy", email, 0.5, 0.0, (email,), (),
    ...              {}, False, "p", "m", {}, attribution_closes_at=at + timedelta(days=3))
    >>> config = load_decision_config(DEFAULT_CONFIG)
    >>> inside = Outcome("o1", "d1", "conversion", 1.0, 1.0, at + timedelta(days=1))
    >>> late = Outcome("o2", "d1", "conversion", 1.0, 1.0, at + timedelta(days=4))
    >>> decision_result(d, [inside, late], config)  # e-mail costs 0.01
    DecisionResult(converted=True, revenue=1.0, reward=0.99, cancelled=False)
    """
    conversions = config.reward_for(decision.journey).conversions
    closes = decision.attribution_closes_at
    converted = False
    cancelled = False
    revenue = 0.0
    credited = 0.0
    for outcome in outcomes:
        if outcome.event == CANCELLED:
            cancelled = True
            continue
        if closes is not None and outcome.occurred_at > closes:
            continue
        credited += outcome.reward
        if outcome.event in conversions:
            converted = True
            revenue += outcome.value
    channel = decision.action.channel
    spec = None if channel is None else config.channels.get(channel)
    cost = 0.0 if spec is None else spec.cost
    return DecisionResult(converted, revenue, credited - cost, cancelled)
