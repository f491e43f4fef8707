"""One decision end to end (features → priors → policy → log), and learning from outcomes."""

from __future__ import annotations

import pickle
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from decisioning._checks import check_candidates
from decisioning._requests import (
    check_context,
    check_customer_id,
    check_event,
    check_moment,
    check_number,
    check_outcome_id,
)
from decisioning.log import DecisionLog, PolicyStateStore
from decisioning.types import Context, Decision, Outcome, Policy
from features import FeatureSource, FeatureValue
from features.errors import Conflict, InvalidRequest
from models.prior import PriorModel

__all__ = ["DEFAULT_REWARD_BY_EVENT", "DecisionEngine", "OutcomeReceipt"]

DEFAULT_REWARD_BY_EVENT: Mapping[str, float] = MappingProxyType(
    {
        "visit": 1.0,
        "click": 1.0,
        "conversion": 1.0,
        "open": 0.0,
        "unsubscribe": 0.0,
        "complaint": 0.0,
    }
)
"""The reward each event is worth when it is posted without a ``value``."""


@dataclass(frozen=True)
class OutcomeReceipt:
    """What became of a posted outcome.

    ``outcome`` is the outcome as recorded. ``new`` is False when the same
    outcome was already recorded; ``learned`` is True when this outcome taught
    the policy (the first new outcome of a decision).
    """

    outcome: Outcome
    new: bool
    learned: bool


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _uuid_hex() -> str:
    return uuid.uuid4().hex


class DecisionEngine:
    """Makes decisions for customers, logs them, and teaches the policy from their outcomes.

    The policy's learned state is restored from ``state`` on construction and
    saved after every update, so it survives restarts. A decision is logged only
    when everything before it succeeded.

    Which outcome teaches: the policy learns from the first new outcome of each
    decision, at most once (a crash between marking and saving loses that one
    update rather than counting it twice); later outcomes of the decision are
    logged only. Outcomes of decisions made with another model version are
    logged but not learned from: what the policy learns is a correction of this
    model's priors. Attribution windows, and the zero reward finalised when a
    window closes with no outcome, come in a later milestone.

    Events map to rewards explicitly through ``reward_by_event`` (default
    :data:`DEFAULT_REWARD_BY_EVENT`: a visit, click or conversion is worth 1.0;
    an open, unsubscribe or complaint 0.0). An event outside the mapping is
    rejected; an event posted with a ``value`` is worth that value instead.
    Rewards outside [0, 1] are logged as given but clipped to [0, 1] for learning.

    An outcome's ``occurred_at`` may be at most ``future_tolerance`` (default
    5 minutes) past the engine's clock, and at most ``skew_tolerance`` (default
    2 seconds) before its decision: callers often truncate times to whole
    seconds, and their clocks are not ours. Posting an outcome id again with the
    same content is a harmless repeat; with different content, a ``Conflict``.

    >>> import pathlib, tempfile
    >>> from datetime import timedelta
    >>> from decisioning import EpsilonGreedy, SQLiteDecisionLog, SQLitePolicyStateStore
    >>> from features import FeatureRow
    >>> class Features:
    ...     def get(self, customer_id):
    ...         return FeatureRow(customer_id, {"recency": 3})
    >>> class Model:
    ...     actions = ("email", "sms")
    ...     def predict_one(self, features):
    ...         return {"email": 0.2, "sms": 0.1}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     log = SQLiteDecisionLog(pathlib.Path(tmp) / "nudge.db")
    ...     state = SQLitePolicyStateStore(pathlib.Path(tmp) / "nudge.db")
    ...     engine = DecisionEngine(
    ...         features=Features(), model=Model(), model_version="v1",
    ...         policy=EpsilonGreedy(epsilon=0.0), log=log, state=state,
    ...     )
    ...     decision = engine.decide("c1")
    ...     receipt = engine.record_outcome(
    ...         decision.decision_id, event="click",
    ...         occurred_at=decision.decided_at + timedelta(seconds=1),
    ...     )
    ...     print(decision.action, decision.propensity, receipt.new, receipt.learned)
    ...     print(receipt.outcome.reward, engine.policy.version)
    ...     log.close(); state.close()
    email 1.0 True True
    1.0 epsilon-greedy(epsilon=0.0,learning_rate=0.05)+1
    """

    def __init__(
        self,
        *,
        features: FeatureSource,
        model: PriorModel,
        model_version: str,
        policy: Policy,
        log: DecisionLog,
        state: PolicyStateStore,
        actions: Sequence[str] | None = None,
        state_key: str = "policy",
        clock: Callable[[], datetime] = _utc_now,
        new_id: Callable[[], str] = _uuid_hex,
        reward_by_event: Mapping[str, float] | None = None,
        future_tolerance: timedelta = timedelta(minutes=5),
        skew_tolerance: timedelta = timedelta(seconds=2),
    ) -> None:
        self._features = features
        self._model = model
        self._model_version = model_version
        self._log = log
        self._state = state
        self._state_key = state_key
        self._clock = clock
        self._new_id = new_id
        self._actions = _check_actions(model.actions if actions is None else actions, model)
        self._reward_by_event = _check_reward_by_event(
            DEFAULT_REWARD_BY_EVENT if reward_by_event is None else reward_by_event
        )
        self._future_tolerance = _check_tolerance("future_tolerance", future_tolerance)
        self._skew_tolerance = _check_tolerance("skew_tolerance", skew_tolerance)
        # One lock for reading and teaching the policy: a river model must not be
        # read while learn_one swaps its weight vector, and saving under the same
        # lock keeps the stored state in the order the updates happened.
        self._lock = threading.Lock()
        self._policy = self._restore(policy)

    @property
    def policy(self) -> Policy:
        """The live policy (read it; teach it only through :meth:`record_outcome`)."""
        return self._policy

    @property
    def log(self) -> DecisionLog:
        return self._log

    @property
    def actions(self) -> tuple[str, ...]:
        """The actions a decision chooses among when no candidates are given."""
        return self._actions

    @property
    def model_version(self) -> str:
        return self._model_version

    @property
    def reward_by_event(self) -> Mapping[str, float]:
        """The events an outcome may name, and the reward each is worth without a ``value``."""
        return self._reward_by_event

    def decide(
        self,
        customer_id: str,
        candidates: Sequence[str] | None = None,
        context: Mapping[str, FeatureValue] | None = None,
    ) -> Decision:
        """Choose one of ``candidates`` (default: every action) for the customer and log it.

        ``context`` holds request-time features; they override the store's.
        """
        customer_id = check_customer_id(customer_id)
        chosen = (
            self._actions if candidates is None else check_candidates(candidates, self._actions)
        )
        supplied = check_context(context)
        decided_at = self._now()
        row = self._features.get(customer_id)
        features = {**row.values, **supplied}
        missing = tuple(name for name in row.missing if name not in supplied)
        try:
            every_prior = self._model.predict_one(features)
        except InvalidRequest as err:
            blamed = _blame_context(err, supplied)
            if blamed is None:
                raise
            raise blamed from err
        priors = {a: every_prior[a] for a in chosen}
        with self._lock:
            selection = self._policy.select(Context(customer_id, features, priors), chosen)
            policy_version = self._policy.version
        decision = Decision(
            decision_id=self._new_id(),
            customer_id=customer_id,
            decided_at=decided_at,
            candidates=chosen,
            action=selection.action,
            propensity=selection.propensity,
            scores=dict(selection.scores),
            explored=selection.explored,
            policy_version=policy_version,
            model_version=self._model_version,
            features=features,
            missing_features=missing,
        )
        self._log.record_decision(decision)
        return decision

    def record_outcome(
        self,
        decision_id: str,
        *,
        occurred_at: datetime,
        reward: float | None = None,
        event: str | None = None,
        value: float | None = None,
        outcome_id: str | None = None,
    ) -> OutcomeReceipt:
        """Log what happened after a decision and, the first time, teach the policy.

        Give either ``reward`` (logged as event ``"reward"``) or ``event``, one of
        :attr:`reward_by_event` (worth ``value`` if given, else the event's reward).
        By default the outcome id is derived from the decision, the event and the
        moment, so the same outcome posted twice counts once; an outcome id posted
        again with another decision, event, value or reward is a ``Conflict``.
        """
        if not isinstance(decision_id, str) or not decision_id:
            raise InvalidRequest("decision_id", "must be a non-empty string", decision_id)
        if reward is None and event is None:
            raise InvalidRequest("reward", "or `event` must be given")
        if reward is not None and event is not None:
            raise InvalidRequest("event", "must not be given together with `reward`", event)
        amount = None if value is None else check_number("value", value)
        if reward is not None:
            reward = check_number("reward", reward)
            event = "reward"
        else:
            event = check_event(event)
            if event not in self._reward_by_event:
                raise InvalidRequest(
                    "event", f"must be one of {sorted(self._reward_by_event)}", event
                )
            reward = self._reward_by_event[event] if amount is None else amount
        occurred = check_moment("occurred_at", occurred_at)
        # Differences, not sums: a moment near the ends of the calendar cannot overflow.
        if occurred - self._now() > self._future_tolerance:
            raise InvalidRequest(
                "occurred_at",
                f"must not be in the future (more than {_span(self._future_tolerance)} past now)",
                occurred_at.isoformat(),
            )
        if outcome_id is not None:
            outcome_id = check_outcome_id(outcome_id)

        decision = self._log.get_decision(decision_id)
        if decision.decided_at - occurred > self._skew_tolerance:
            raise InvalidRequest(
                "occurred_at",
                f"must not be before the decision at {decision.decided_at.isoformat()} "
                f"(by more than {_span(self._skew_tolerance)})",
                occurred_at.isoformat(),
            )
        outcome = Outcome(
            # In UTC, so the same moment posted with two offsets is one outcome.
            outcome_id=outcome_id or f"{decision_id}:{event}:{occurred.isoformat()}",
            decision_id=decision_id,
            event=event,
            value=reward if amount is None else amount,
            reward=reward,
            occurred_at=occurred,
        )
        new = self._log.record_outcome(outcome)
        if not new:
            # Nothing was written, and nothing will be: a repeat teaches nothing,
            # and a contradiction is refused.
            recorded = self._log.get_outcome(outcome.outcome_id)
            if recorded is not None:
                _check_same_outcome(recorded, outcome)
                outcome = recorded
        learned = (
            new
            and decision.model_version == self._model_version
            and self._log.mark_learned(decision_id)
        )
        if learned:
            self._learn(decision, reward)
        return OutcomeReceipt(outcome=outcome, new=new, learned=learned)

    def _learn(self, decision: Decision, reward: float) -> None:
        # The decision-time features and priors, not today's: the reward answers
        # the choice made then.
        priors = {action: score.prior for action, score in decision.scores.items()}
        context = Context(decision.customer_id, decision.features, priors)
        with self._lock:
            self._policy.update(context, decision.action, reward)
            self._state.put(self._state_key, pickle.dumps(self._policy))

    def _restore(self, policy: Policy) -> Policy:
        blob = self._state.get(self._state_key)
        if blob is None:
            return policy
        # Only Nudge writes this store (see PolicyStateStore), so unpickling is trusted.
        restored = pickle.loads(blob)
        if type(restored) is not type(policy) or restored.clone().version != policy.clone().version:
            raise Conflict(
                f"the policy state stored under {self._state_key!r} is for "
                f"{getattr(restored, 'version', type(restored).__name__)}, not the configured "
                f"{policy.clone().version}; use another state key or remove the stored state"
            )
        return restored

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("the engine's clock must return a time-zone-aware datetime")
        return now.astimezone(UTC)


def _check_actions(actions: Sequence[str], model: PriorModel) -> tuple[str, ...]:
    known = set(model.actions)
    chosen = tuple(actions) if not isinstance(actions, str) else ()
    if not chosen or len(set(chosen)) != len(chosen) or not set(chosen) <= known:
        raise InvalidRequest(
            "actions",
            f"must be a non-empty list of distinct actions the model scores, {sorted(known)}",
            actions,
        )
    return chosen


def _check_reward_by_event(reward_by_event: object) -> Mapping[str, float]:
    if not isinstance(reward_by_event, Mapping):
        raise InvalidRequest(
            "reward_by_event", "must be a mapping of event names to rewards", reward_by_event
        )
    checked: dict[str, float] = {}
    for event, reward in reward_by_event.items():
        checked[check_event(event)] = check_number(f"reward_by_event[{event!r}]", reward)
    return MappingProxyType(checked)


def _check_tolerance(field: str, tolerance: object) -> timedelta:
    if not isinstance(tolerance, timedelta) or tolerance < timedelta(0):
        raise InvalidRequest(field, "must be a non-negative timedelta", tolerance)
    return tolerance


def _span(delta: timedelta) -> str:
    """``delta`` in words, in its largest whole unit: "5 minutes", "2 seconds", "0.5 seconds"."""
    seconds = delta.total_seconds()
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds:g} seconds"


def _blame_context(
    error: InvalidRequest, supplied: Mapping[str, FeatureValue]
) -> InvalidRequest | None:
    """``error`` restated against ``context.<key>``, if the caller's context gave the value."""
    # Models name a feature they cannot use as features['name'] (ArmPropensityModel
    # does); the caller knows it as the context key they sent.
    for key, value in supplied.items():
        if error.field == f"features[{key!r}]":
            return InvalidRequest(f"context.{key}", error.expected, value)
    return None


def _check_same_outcome(recorded: Outcome, posted: Outcome) -> None:
    differences = [
        f"{name} {getattr(recorded, name)!r}, not {getattr(posted, name)!r}"
        for name in ("decision_id", "event", "value", "reward")
        if getattr(recorded, name) != getattr(posted, name)
    ]
    if differences:
        raise Conflict(
            f"outcome {posted.outcome_id!r} was already recorded with different values: "
            + "; ".join(differences)
        )
