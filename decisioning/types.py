"""Plain records that flow through a decision: context in, selection and decision out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from features import FeatureValue

__all__ = ["ActionScore", "Context", "Decision", "Outcome", "Policy", "Selection"]


@dataclass(frozen=True)
class Context:
    """What a policy sees about one customer at one decision.

    ``priors`` holds the model's estimate of the reward of each candidate action.
    """

    customer_id: str
    features: Mapping[str, FeatureValue]
    priors: Mapping[str, float]


@dataclass(frozen=True)
class ActionScore:
    """How the policy saw one eligible candidate."""

    prior: float
    """The model's estimate of the reward before online correction."""
    mean: float
    """The policy's current estimate of the reward."""
    probability: float
    """The probability that the policy chooses this candidate in this context."""


@dataclass(frozen=True)
class Selection:
    """A policy's choice; the probabilities in ``scores`` sum to 1 over the candidates."""

    action: str
    propensity: float
    scores: Mapping[str, ActionScore]
    explored: bool


class Policy(Protocol):
    """A bandit policy over a small set of actions."""

    @property
    def version(self) -> str:
        """Names the policy, its parameters and how much it has learned."""
        ...

    def select(self, context: Context, candidates: tuple[str, ...]) -> Selection:
        """Choose one candidate; never changes learned state."""
        ...

    def update(self, context: Context, action: str, reward: float) -> None:
        """Learn from the reward of ``action`` taken in ``context``."""
        ...

    def clone(self) -> Policy:
        """A fresh, untrained copy with the same parameters."""
        ...


@dataclass(frozen=True)
class Decision:
    """One logged decision: bandit feedback that off-policy evaluation can use later."""

    decision_id: str
    customer_id: str
    decided_at: datetime
    candidates: tuple[str, ...]
    action: str
    propensity: float
    scores: Mapping[str, ActionScore]
    explored: bool
    policy_version: str
    model_version: str
    features: Mapping[str, FeatureValue]
    missing_features: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Outcome:
    """Something that happened after a decision, with the reward it is worth."""

    outcome_id: str
    decision_id: str
    event: str
    value: float
    reward: float
    occurred_at: datetime
