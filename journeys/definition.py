"""What a journey is, as plain values: the parser (``journeys.loader``) builds them from YAML.

A journey starts when its trigger's event arrives (and its filters match),
runs its steps in order (``next`` and branches jump by step id), and ends at the
last step, at its goal event (the customer converted: every pending send is
cancelled) or at an exit criterion.

Conditions are small comparisons on one value, ``{field: {op: operand}}`` or
``{field: operand}`` for equality; the operators are in :data:`OPERATORS`.

>>> condition = Condition("cart_value", "gte", 20)
>>> condition.holds({"cart_value": 35.5}), condition.holds({"cart_value": 5}), condition.holds({})
(True, False, False)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

__all__ = [
    "OPERATORS",
    "BranchRule",
    "BranchStep",
    "CandidateSpec",
    "Condition",
    "DecideStep",
    "EntryRules",
    "ExitRule",
    "Journey",
    "ScoreTrigger",
    "SendStep",
    "Step",
    "Trigger",
    "UpdateProfileStep",
    "WaitStep",
    "all_hold",
]

Scalar = str | int | float | bool | None
Operator = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists"]
OPERATORS: tuple[Operator, ...] = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass(frozen=True)
class Condition:
    """``field`` compared with ``operand``; a missing field fails all but ``exists: false``."""

    field: str
    op: Operator
    operand: Scalar | tuple[Scalar, ...]

    def holds(self, values: Mapping[str, object]) -> bool:
        present = self.field in values and values[self.field] is not None
        if self.op == "exists":
            return present == bool(self.operand)
        if not present:
            return False
        value = values[self.field]
        if self.op == "eq":
            return value == self.operand
        if self.op == "ne":
            return value != self.operand
        if self.op == "in":
            return isinstance(self.operand, tuple) and value in self.operand
        if self.op == "not_in":
            return isinstance(self.operand, tuple) and value not in self.operand
        left, right = _number(value), _number(self.operand)
        if left is None or right is None:
            return False
        if self.op == "gt":
            return left > right
        if self.op == "gte":
            return left >= right
        if self.op == "lt":
            return left < right
        return left <= right


def all_hold(conditions: tuple[Condition, ...], values: Mapping[str, object]) -> bool:
    """True when every condition holds (and for no conditions at all)."""
    return all(condition.holds(values) for condition in conditions)


@dataclass(frozen=True)
class ScoreTrigger:
    """A model's score crossing ``above``; it re-arms only once the score falls below
    ``reset_below``, so noise around the threshold starts the journey once.

    ``model`` is a registered model (MLflow) served under ``alias``.
    """

    model: str
    above: float
    reset_below: float
    alias: str = "champion"


@dataclass(frozen=True)
class Trigger:
    """What starts the journey: an event (filtered on its payload) or a score crossing,
    and conditions on the customer's features.

    Exactly one of ``event`` and ``score`` is set.
    """

    event: str | None
    where: tuple[Condition, ...] = ()
    """On the event's payload."""
    features: tuple[Condition, ...] = ()
    """On the customer's features (the feature store), read when the event arrives."""
    score: ScoreTrigger | None = None


@dataclass(frozen=True)
class EntryRules:
    """Whether a customer may enter again, and how long after their last entry."""

    reentry: bool = False
    reentry_after: timedelta = timedelta(0)


@dataclass(frozen=True)
class ExitRule:
    """Leave the journey when ``event`` arrives (``where`` on its payload), or after ``after``."""

    event: str | None = None
    where: tuple[Condition, ...] = ()
    after: timedelta | None = None


@dataclass(frozen=True)
class WaitStep:
    """Wait a fixed ``duration``, or ``until`` an event arrives with a ``timeout``.

    A wait until an event goes to ``on_event`` (default: the next step) when it
    arrives and to ``on_timeout`` (default: the next step) when it does not.
    """

    id: str
    duration: timedelta | None = None
    until: str | None = None
    where: tuple[Condition, ...] = ()
    timeout: timedelta | None = None
    on_event: str | None = None
    on_timeout: str | None = None
    next: str | None = None
    kind: Literal["wait"] = "wait"


@dataclass(frozen=True)
class CandidateSpec:
    """A candidate message of a decide step, and the channels it may go on (None: all it may)."""

    message: str
    channels: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DecideStep:
    """Ask the decision API which of ``candidates`` to send, on which channel and when (or none)."""

    id: str
    candidates: tuple[CandidateSpec, ...]
    slots: tuple[str, ...] | None = None
    allow_no_send: bool = True
    next: str | None = None
    kind: Literal["decide"] = "decide"


@dataclass(frozen=True)
class SendStep:
    """Send what decide step ``decision`` chose, at its send time, after re-checking contact policy.

    ``decision`` None means the latest decide step before this one.
    """

    id: str
    decision: str | None = None
    next: str | None = None
    kind: Literal["send"] = "send"


@dataclass(frozen=True)
class BranchRule:
    """One way out of a branch: the first rule that matches wins.

    Exactly one of ``event`` (the customer had this event since entering the
    journey, with ``where`` on its payload), ``features`` (conditions on the
    customer's features and profile attributes) or ``segment`` (a segment of the
    journey, by name) is set.
    """

    goto: str
    event: str | None = None
    where: tuple[Condition, ...] = ()
    features: tuple[Condition, ...] = ()
    segment: str | None = None


@dataclass(frozen=True)
class BranchStep:
    """Go to the first matching rule's step, or to ``otherwise`` (default: the next step)."""

    id: str
    rules: tuple[BranchRule, ...]
    otherwise: str | None = None
    kind: Literal["branch"] = "branch"


@dataclass(frozen=True)
class UpdateProfileStep:
    """Set attributes on the customer's profile (the runner keeps it for branches, templates)."""

    id: str
    set: Mapping[str, Scalar] = field(default_factory=dict)
    next: str | None = None
    kind: Literal["update_profile"] = "update_profile"


Step = WaitStep | DecideStep | SendStep | BranchStep | UpdateProfileStep


@dataclass(frozen=True)
class Journey:
    """One journey: trigger, entry rules, steps in order, goal and exits."""

    name: str
    trigger: Trigger
    steps: tuple[Step, ...]
    entry: EntryRules = EntryRules()
    goal: str | None = None
    """The goal event (e.g. purchase): whenever it arrives the customer leaves, converted."""
    goal_where: tuple[Condition, ...] = ()
    exits: tuple[ExitRule, ...] = ()
    segments: Mapping[str, tuple[Condition, ...]] = field(default_factory=dict)
    description: str = ""
    source: str = ""
    """The file it was read from."""
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)
    """The 1-based line of each field path in ``source`` (``"steps[2].wait.timeout"``).

    Filled by the loader so that later checks (``journeys.validate_against``) can
    point at the offending line; empty for journeys built in code.
    """

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def has_step(self, step_id: str) -> bool:
        return any(step.id == step_id for step in self.steps)

    def following(self, step_id: str) -> str | None:
        """The step after ``step_id`` in file order (None after the last)."""
        ids = [step.id for step in self.steps]
        index = ids.index(step_id)
        return ids[index + 1] if index + 1 < len(ids) else None

    @property
    def max_duration(self) -> timedelta | None:
        """The shortest ``after`` among the exits: nobody stays in the journey longer."""
        durations = [rule.after for rule in self.exits if rule.after is not None]
        return min(durations) if durations else None
