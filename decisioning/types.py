"""Plain records that flow through a decision: context in, selection and decision out.

A decision chooses one *joint action*: a message, the channel it goes on and
the send-time slot (with the moment it resolves to), or "no send".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from features import FeatureValue

__all__ = [
    "NO_SEND",
    "ActionScore",
    "Context",
    "Decision",
    "DecisionGroup",
    "Exclusion",
    "JointAction",
    "Outcome",
    "Policy",
    "Selection",
]

NO_SEND = "no_send"
"""The key of the joint action that contacts nobody."""

DecisionGroup = Literal["policy", "explore", "holdout"]
"""Who made a decision: the learning policy, the uniform exploration slice, or the holdout."""


@dataclass(frozen=True)
class JointAction:
    """One candidate of a decision: message × channel × slot, or no send (all None).

    >>> JointAction("welcome", "email", "now", None).key
    'welcome/email/now'
    >>> JointAction.no_send().key
    'no_send'
    """

    message: str | None
    channel: str | None
    slot: str | None
    send_at: datetime | None
    transactional: bool = False
    key: str = field(init=False, repr=False, compare=False)
    """ "message/channel/slot", or "no_send"; worked out once, read on every step."""

    def __post_init__(self) -> None:
        key = NO_SEND if self.message is None else f"{self.message}/{self.channel}/{self.slot}"
        object.__setattr__(self, "key", key)

    @staticmethod
    def no_send() -> JointAction:
        return JointAction(None, None, None, None)

    @property
    def is_send(self) -> bool:
        return self.message is not None


@dataclass(frozen=True)
class Exclusion:
    """A candidate the contact policy ruled out, and the rule that did it."""

    action: str
    """The joint action's key."""
    rule: str
    """e.g. ``consent``, ``suppression``, ``reachability``, ``frequency_cap``, ``quiet_hours``."""
    detail: str
    """In words, for the explanation: "email cap 3 per 7 days reached"."""


@dataclass(frozen=True)
class Context:
    """What a policy sees about one customer at one decision.

    ``priors`` holds the offline model's expected reward of each candidate, by
    joint-action key (conversion probability × value − channel cost).
    ``local_hours`` holds the customer-local hour of week (0 = Monday 00:00) of
    each candidate's send time, so a policy can use the customer's activity
    profile without knowing time zones.
    """

    customer_id: str
    features: Mapping[str, FeatureValue]
    priors: Mapping[str, float]
    local_hours: Mapping[str, int] = field(default_factory=dict)
    journey: str = "default"
    baseline: float | None = None
    """The expected reward of not contacting this customer, on the priors' scale.

    Splits each prior into the customer's level and the model's difference
    between actions, which a policy may trust less. None: the ``no_send``
    prior if it is a candidate, else the mean prior of the candidates.
    """


@dataclass(frozen=True)
class ActionScore:
    """How the policy saw one eligible candidate: the explanation of a decision."""

    prior: float
    """The offline model's expected reward."""
    mean: float
    """The policy's current estimate of the reward."""
    uncertainty: float
    """The standard deviation of that estimate (0 for a policy that keeps none)."""
    probability: float
    """The probability that the policy chooses this candidate in this context."""


@dataclass(frozen=True)
class Selection:
    """A policy's choice; the probabilities in ``scores`` sum to 1 over the candidates.

    ``propensity_error`` is the standard error of ``propensity`` when the policy
    estimates it by sampling, and 0 when it is exact.
    """

    action: str
    propensity: float
    scores: Mapping[str, ActionScore]
    explored: bool
    propensity_error: float = 0.0


class Policy(Protocol):
    """A contextual bandit policy over joint actions.

    Several processes may run the same policy: each learns from the outcomes it
    receives, publishes what it learned with :meth:`snapshot`, and takes in what
    the others learned with :meth:`absorb`.
    """

    @property
    def version(self) -> str:
        """Names the policy, its parameters and how much it has learned."""
        ...

    def select(self, context: Context, candidates: Sequence[JointAction]) -> Selection:
        """Choose one candidate; never changes learned state."""
        ...

    def update(self, context: Context, action: JointAction, reward: float, *, first: bool) -> None:
        """Learn from a reward of ``action`` taken in ``context``.

        ``first`` is True for the first reward of a decision; later calls for the
        same decision carry only the change of its reward (an attribution window
        adds conversions as they arrive).
        """
        ...

    @property
    def learns_before_close(self) -> bool:
        """Whether the policy takes each decision at once as a zero reward, then corrections.

        True: the engine teaches a pending decision as "no conversion yet" when it
        is made, each conversion as a change (``first=False``) when it arrives,
        and :meth:`forget` s a decision that was cancelled. Nothing waits, and
        nothing is optimistic: conversions arrive before the zeros of
        non-responders, so a policy that learned only the conversions as they
        came would favour whatever it chose lately. False: the engine teaches the
        whole reward once, when the attribution window closes.
        """
        ...

    def forget(self, context: Context, action: JointAction, reward: float) -> None:
        """Undo a ``first=True`` update of ``reward`` (the decision was never carried out)."""
        ...

    def snapshot(self) -> bytes:
        """What this process has learned, to share and to survive restarts."""
        ...

    def absorb(self, snapshots: Sequence[bytes]) -> None:
        """Take in what other processes (and earlier runs) learned; replaces what it took before."""
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
    journey: str
    step: str
    group: DecisionGroup
    action: JointAction
    propensity: float
    propensity_error: float
    eligible: tuple[JointAction, ...]
    excluded: tuple[Exclusion, ...]
    scores: Mapping[str, ActionScore]
    explored: bool
    policy_version: str
    model_version: str
    features: Mapping[str, FeatureValue]
    missing_features: tuple[str, ...] = ()
    idempotency_key: str | None = None
    attribution_closes_at: datetime | None = None
    time_zone: str = "UTC"
    """The customer's IANA zone the slots were resolved in."""


@dataclass(frozen=True)
class Outcome:
    """Something that happened after a decision, with the reward it is worth."""

    outcome_id: str
    decision_id: str
    event: str
    value: float
    reward: float
    occurred_at: datetime
