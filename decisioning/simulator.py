"""A seeded world of customers whose responses to message, channel and send hour are known.

Policies are judged here against ground truth: every decision's expected
reward, and the best one among its eligible candidates (the oracle), are known
exactly, so regret is measured without the noise of realised conversions.

Each customer has an engagement with each channel (one channel preferred), an
affinity for each message, a daily activity profile peaking at a preferred
hour, a time zone and the channels they can be reached on. A sent joint action
converts with probability ``sigmoid(base + message + affinity + channel +
message×channel + 2·engagement + 2·activity at the local send hour)``; the
reward is the conversion value (1) minus the channel's cost, and no send earns 0.
The offline model's prior knows the message and channel effects and part of
the affinity, but nothing of engagement, activity or the message×channel
interaction: a policy must learn those from rewards.

The world applies its own contact rules when it builds each decision's
eligible set (self-contained; the real contact policy lives elsewhere):
unreachable channels are dropped, a slot whose local send time falls in quiet
hours (21:00-08:00) is not eligible, and a customer gets at most one send per
local calendar day. Decisions arrive at random times over the simulated days,
from one seeded stream: every policy meets the same customers at the same
moments and draws the same conversion luck; only the caps depend on its choices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from decisioning._checks import check_joint_candidates, check_seed
from decisioning.types import NO_SEND, ActionScore, Context, JointAction, Policy, Selection
from features import FeatureValue
from features.errors import InvalidRequest

__all__ = [
    "CHANNELS",
    "MESSAGES",
    "SLOTS",
    "FixedAction",
    "Oracle",
    "SimulatedDecision",
    "SimulatedWorld",
    "SimulationResult",
    "simulate",
]

MESSAGES = ("welcome", "discount", "reminder")
CHANNELS = ("email", "sms", "push")
SLOTS = ("now", "+1h", "+3h", "09:00", "12:00", "18:00")
"""Send-time slots: relative ones, and the next local occurrence of a clock time."""

_RELATIVE = {"now": 0.0, "+1h": 1.0, "+3h": 3.0}
_CLOCK = {"09:00": 9.0, "12:00": 12.0, "18:00": 18.0}
_START = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday: hour 0 of the week
_ZONES = np.array([-8, -5, 0, 1, 8])  # whole-hour UTC offsets, enough for quiet hours to differ

_BASE = -4.0
_MESSAGE_EFFECT = np.array([0.0, 0.4, -0.2])
_CHANNEL_EFFECT = np.array([0.0, 0.2, -0.3])
_MESSAGE_CHANNEL = np.array(
    [
        [0.4, -0.3, 0.0],  # welcome reads best by email
        [0.0, 0.5, -0.2],  # discount works on sms
        [-0.2, 0.0, 0.6],  # reminder works as a push
    ]
)
_ENGAGEMENT_WEIGHT = 2.0
_ACTIVITY_WEIGHT = 2.0
_COST = np.array([0.002, 0.03, 0.005])
_VALUE = 1.0
_REACHABLE = np.array([0.95, 0.8, 0.7])
_MESSAGE_INDEX = {name: i for i, name in enumerate(MESSAGES)}
_CHANNEL_INDEX = {name: i for i, name in enumerate(CHANNELS)}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    result: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return result


class SimulatedWorld:
    """Customers with known responses, their observable features and the contact rules.

    >>> world = SimulatedWorld(n_customers=50, seed=1)
    >>> decision = world.decision(customer=3, hours=10.0)
    >>> decision.candidates[-1].key, len(decision.context.priors) == len(decision.candidates)
    ('no_send', True)
    >>> expected = world.expected_rewards(3, decision.candidates, decision.context.local_hours)
    >>> float(expected[-1])  # no send earns nothing
    0.0
    """

    def __init__(
        self,
        n_customers: int = 1_000,
        seed: int = 0,
        quiet_hours: tuple[int, int] = (21, 8),
        missing_share: float = 0.1,
    ) -> None:
        if isinstance(n_customers, bool) or not isinstance(n_customers, int) or n_customers < 1:
            raise InvalidRequest("n_customers", "must be a positive integer", n_customers)
        self.n_customers = n_customers
        self.seed = check_seed(seed)
        self.quiet_hours = quiet_hours
        rng = np.random.default_rng(seed)
        n = n_customers
        engagement = rng.beta(1.2, 5.0, (n, 3))
        preferred = rng.integers(3, size=n)
        engagement[np.arange(n), preferred] = rng.beta(5.0, 2.0, n)
        self.engagement = engagement
        self.affinity = rng.normal(0.0, 0.5, (n, 3))
        peak = rng.choice([8.5, 12.5, 19.0], size=n) + rng.normal(0.0, 1.0, n)
        hour = np.arange(24)
        distance = np.abs((hour[None, :] - peak[:, None] + 12.0) % 24.0 - 12.0)
        self.activity = np.exp(-0.5 * (distance / 2.0) ** 2)
        self.offset = rng.choice(_ZONES, size=n)
        self.reachable = rng.random((n, 3)) < _REACHABLE
        self.reachable[:, 0] |= ~self.reachable.any(axis=1)  # everyone has some channel
        self.prior_noise = rng.normal(0.0, 0.3, (n, 3, 3))
        hides_engagement = rng.random(n) < missing_share
        hides_activity = rng.random(n) < missing_share
        self.features: list[dict[str, FeatureValue]] = []
        for i in range(n):
            row: dict[str, FeatureValue] = {}
            if not hides_engagement[i]:
                row.update(
                    {f"engagement_{c}": float(engagement[i, j]) for j, c in enumerate(CHANNELS)}
                )
            if not hides_activity[i]:
                row.update({f"activity_hour_{h}": float(self.activity[i, h]) for h in hour})
            self.features.append(row)
        self._mean_engagement = float(engagement.mean())
        self._mean_activity = float(self.activity.mean())

    # -- ground truth ------------------------------------------------------------------------

    def conversion(
        self, customer: int, message: np.ndarray, channel: np.ndarray, hour_of_day: np.ndarray
    ) -> np.ndarray:
        """P(convert) of sends of ``message`` on ``channel`` at local ``hour_of_day`` (indices)."""
        i = customer
        logit = (
            _BASE
            + _MESSAGE_EFFECT[message]
            + self.affinity[i, message]
            + _CHANNEL_EFFECT[channel]
            + _ENGAGEMENT_WEIGHT * self.engagement[i, channel]
            + _MESSAGE_CHANNEL[message, channel]
            + _ACTIVITY_WEIGHT * self.activity[i, hour_of_day]
        )
        return _sigmoid(logit)

    def expected_rewards(
        self, customer: int, candidates: Sequence[JointAction], local_hours: Mapping[str, int]
    ) -> np.ndarray:
        """The true expected reward of each candidate for ``customer`` (no send: 0)."""
        sends = [k for k, action in enumerate(candidates) if action.is_send]
        result = np.zeros(len(candidates))
        if not sends:
            return result
        message = np.array([_MESSAGE_INDEX[str(candidates[k].message)] for k in sends])
        channel = np.array([_CHANNEL_INDEX[str(candidates[k].channel)] for k in sends])
        hour = np.array([local_hours[candidates[k].key] % 24 for k in sends])
        p = self.conversion(customer, message, channel, hour)
        result[sends] = _VALUE * p - _COST[channel]
        return result

    def prior(self, customer: int) -> np.ndarray:
        """The offline model's expected reward of each message × channel: shape (3, 3).

        It knows the message and channel effects and half of the customer's
        affinity, and assumes average engagement and activity.
        """
        i = customer
        logit = (
            _BASE
            + (_MESSAGE_EFFECT + 0.5 * self.affinity[i])[:, None]
            + (_CHANNEL_EFFECT + _ENGAGEMENT_WEIGHT * self._mean_engagement)[None, :]
            + _ACTIVITY_WEIGHT * self._mean_activity
            + self.prior_noise[i]
        )
        result: np.ndarray = _VALUE * _sigmoid(logit) - _COST[None, :]
        return result

    # -- one decision ------------------------------------------------------------------------

    def decision(
        self, customer: int, hours: float, capped_days: set[int] | frozenset[int] = frozenset()
    ) -> SimulatedDecision:
        """The context and eligible candidates of a decision ``hours`` after the start.

        ``capped_days`` holds the customer's local day numbers that already have a send.
        """
        i = customer
        offset = float(self.offset[i])
        local_now = hours + offset
        local_times = []
        for slot in SLOTS:
            if slot in _RELATIVE:
                local_times.append(local_now + _RELATIVE[slot])
            else:
                day = np.floor(local_now / 24.0)
                at = day * 24.0 + _CLOCK[slot]
                local_times.append(at if at > local_now else at + 24.0)
        quiet_start, quiet_end = self.quiet_hours
        candidates: list[JointAction] = []
        local_hours: dict[str, int] = {}
        priors: dict[str, float] = {}
        prior = self.prior(i)
        for slot, local in zip(SLOTS, local_times, strict=True):
            hour_of_day = int(np.floor(local)) % 24
            if quiet_start > quiet_end:  # the window wraps midnight
                in_quiet = hour_of_day >= quiet_start or hour_of_day < quiet_end
            else:
                in_quiet = quiet_start <= hour_of_day < quiet_end
            if in_quiet or int(np.floor(local / 24.0)) in capped_days:
                continue
            send_at = _START + timedelta(hours=local - offset)
            hour_of_week = int(np.floor(local)) % 168
            for m, message in enumerate(MESSAGES):
                for c, channel in enumerate(CHANNELS):
                    if not self.reachable[i, c]:
                        continue
                    action = JointAction(message, channel, slot, send_at)
                    candidates.append(action)
                    local_hours[action.key] = hour_of_week
                    priors[action.key] = float(prior[m, c])
        candidates.append(JointAction.no_send())
        priors[NO_SEND] = 0.0
        context = Context(f"c{i}", self.features[i], priors, local_hours)
        return SimulatedDecision(context, tuple(candidates))

    def local_day(self, customer: int, action: JointAction) -> int:
        """The customer-local day number of ``action``'s send time (for the frequency cap)."""
        if action.send_at is None:
            raise InvalidRequest("action", "must be a send", action.key)
        hours = (action.send_at - _START).total_seconds() / 3600.0 + float(self.offset[customer])
        return int(np.floor(hours / 24.0))

    def __repr__(self) -> str:
        return f"SimulatedWorld(n_customers={self.n_customers!r}, seed={self.seed!r})"


@dataclass(frozen=True)
class SimulatedDecision:
    """One decision: what the policy sees, and the eligible candidates (no send last)."""

    context: Context
    candidates: tuple[JointAction, ...]


@dataclass(frozen=True)
class SimulationResult:
    """What a policy earned in a run, decision by decision, next to what it could have earned.

    ``expected`` is the true expected reward of each chosen action, ``oracle``
    the best expected reward among that decision's eligible candidates,
    ``realised`` the reward actually drawn (what the policy learned from).
    ``customer`` is who each decision was for and ``send_day`` the customer-local
    day number of its send (-1 for no send).
    """

    policy: str
    expected: np.ndarray
    oracle: np.ndarray
    realised: np.ndarray
    propensity: np.ndarray
    chosen: tuple[str, ...]
    customer: np.ndarray
    send_day: np.ndarray

    @property
    def cumulative_reward(self) -> np.ndarray:
        """Expected reward of the choices so far."""
        result: np.ndarray = np.cumsum(self.expected)
        return result

    @property
    def cumulative_oracle(self) -> np.ndarray:
        """What choosing the best eligible candidate every time would have earned so far."""
        result: np.ndarray = np.cumsum(self.oracle)
        return result

    @property
    def regret(self) -> np.ndarray:
        """Cumulative (pseudo-)regret against the oracle on the same decisions."""
        result: np.ndarray = self.cumulative_oracle - self.cumulative_reward
        return result

    @property
    def total(self) -> float:
        return float(self.expected.sum())

    @property
    def send_share(self) -> float:
        return sum(key != NO_SEND for key in self.chosen) / max(len(self.chosen), 1)


def _stream(
    world: SimulatedWorld, n_decisions: int, seed: int, per_day: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Who is decided for, when (hours from the start), and the conversion luck of each decision."""
    rng = np.random.default_rng([seed, 0x5EED])
    customers = rng.integers(world.n_customers, size=n_decisions)
    # From the second day on, so that every local day number (customers west of UTC) is >= 0.
    hours = 24.0 + np.sort(rng.uniform(0.0, 24.0 * n_decisions / per_day, n_decisions))
    luck = rng.random(n_decisions)
    return customers, hours, luck


def simulate(
    policy: Policy,
    n_decisions: int = 20_000,
    seed: int = 0,
    world: SimulatedWorld | None = None,
    decisions_per_day: float = 1_000.0,
) -> SimulationResult:
    """Run ``policy`` for ``n_decisions``, teaching it each realised reward at once.

    >>> from decisioning.uniform import UniformRandom
    >>> world = SimulatedWorld(n_customers=100, seed=0)
    >>> result = simulate(UniformRandom(seed=0), n_decisions=200, seed=0, world=world)
    >>> bool(result.regret[-1] > 0), len(result.chosen)
    (True, 200)
    """
    if isinstance(n_decisions, bool) or not isinstance(n_decisions, int) or n_decisions < 1:
        raise InvalidRequest("n_decisions", "must be a positive integer", n_decisions)
    check_seed(seed)
    world = world if world is not None else SimulatedWorld(seed=seed)
    customers, hours, luck = _stream(world, n_decisions, seed, decisions_per_day)
    capped: dict[int, set[int]] = {}
    expected = np.zeros(n_decisions)
    oracle = np.zeros(n_decisions)
    realised = np.zeros(n_decisions)
    propensity = np.zeros(n_decisions)
    send_day = np.full(n_decisions, -1)
    chosen: list[str] = []
    for n in range(n_decisions):
        i = int(customers[n])
        days = capped.setdefault(i, set())
        decision = world.decision(i, float(hours[n]), days)
        context, candidates = decision.context, decision.candidates
        truth = world.expected_rewards(i, candidates, context.local_hours)
        selection = policy.select(context, candidates)
        k = next(j for j, a in enumerate(candidates) if a.key == selection.action)
        action = candidates[k]
        reward = 0.0
        if action.is_send:
            c = _CHANNEL_INDEX[str(action.channel)]
            probability = (truth[k] + _COST[c]) / _VALUE
            reward = _VALUE * float(luck[n] < probability) - float(_COST[c])
            send_day[n] = world.local_day(i, action)
            days.add(int(send_day[n]))
        policy.update(context, action, reward, first=True)
        expected[n] = truth[k]
        oracle[n] = truth.max()
        realised[n] = reward
        propensity[n] = selection.propensity
        chosen.append(selection.action)
    return SimulationResult(
        policy.version,
        expected,
        oracle,
        realised,
        propensity,
        tuple(chosen),
        customers,
        send_day,
    )


class Oracle:
    """Knows the world: always sends the eligible candidate of highest true expected reward.

    A yardstick, not a policy to deploy; it learns nothing.
    """

    def __init__(self, world: SimulatedWorld) -> None:
        self.world = world

    @property
    def version(self) -> str:
        return "oracle"

    def select(self, context: Context, candidates: Sequence[JointAction]) -> Selection:
        chosen, keys = check_joint_candidates(candidates)
        customer = int(context.customer_id.removeprefix("c"))
        truth = self.world.expected_rewards(customer, chosen, context.local_hours)
        best = int(np.argmax(truth))
        scores = {
            key: ActionScore(context.priors[key], float(t), 0.0, float(k == best))
            for k, (key, t) in enumerate(zip(keys, truth, strict=True))
        }
        return Selection(keys[best], 1.0, scores, explored=False)

    def update(self, context: Context, action: JointAction, reward: float, *, first: bool) -> None:
        """Knows everything already."""

    @property
    def learns_before_close(self) -> bool:
        """A yardstick learns nothing, early or late."""
        return False

    def forget(self, context: Context, action: JointAction, reward: float) -> None:
        """Nothing to take back."""

    def snapshot(self) -> bytes:
        return b""

    def absorb(self, snapshots: Sequence[bytes]) -> None:
        """Nothing to take in."""

    def clone(self) -> Oracle:
        return Oracle(self.world)


class FixedAction:
    """Always the same joint action (by key) when it is eligible, else no send."""

    def __init__(self, key: str) -> None:
        self.key = key

    @property
    def version(self) -> str:
        return f"fixed({self.key})"

    def select(self, context: Context, candidates: Sequence[JointAction]) -> Selection:
        _, keys = check_joint_candidates(candidates)
        pick = self.key if self.key in keys else NO_SEND
        if pick not in keys:
            raise InvalidRequest("candidates", f"must include {self.key!r} or no_send", list(keys))
        scores = {
            key: ActionScore(context.priors[key], context.priors[key], 0.0, float(key == pick))
            for key in keys
        }
        return Selection(pick, 1.0, scores, explored=False)

    def update(self, context: Context, action: JointAction, reward: float, *, first: bool) -> None:
        """Learns nothing."""

    @property
    def learns_before_close(self) -> bool:
        """A yardstick learns nothing, early or late."""
        return False

    def forget(self, context: Context, action: JointAction, reward: float) -> None:
        """Nothing to take back."""

    def snapshot(self) -> bytes:
        return b""

    def absorb(self, snapshots: Sequence[bytes]) -> None:
        """Nothing to take in."""

    def clone(self) -> FixedAction:
        return FixedAction(self.key)

    @staticmethod
    def best(
        world: SimulatedWorld,
        n_decisions: int = 20_000,
        seed: int = 0,
        decisions_per_day: float = 1_000.0,
    ) -> FixedAction:
        """The fixed joint action of highest total expected reward over the run's decisions.

        Chosen in hindsight from the true rewards wherever the action is eligible
        by quiet hours and reachability (caps depend on the history, so they are
        left out of the choice; the run itself applies them).
        """
        customers, hours, _ = _stream(world, n_decisions, seed, decisions_per_day)
        totals: dict[str, float] = {}
        for i, at in zip(customers.tolist(), hours.tolist(), strict=True):
            decision = world.decision(i, at)
            truth = world.expected_rewards(i, decision.candidates, decision.context.local_hours)
            for action, value in zip(decision.candidates, truth.tolist(), strict=True):
                totals[action.key] = totals.get(action.key, 0.0) + value
        return FixedAction(max(totals, key=lambda key: totals[key]))

    def __repr__(self) -> str:
        return f"FixedAction({self.key!r})"
