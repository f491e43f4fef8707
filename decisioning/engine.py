"""One decision end to end (features → priors → policy → log), and learning from outcomes."""

from __future__ import annotations

import pickle
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

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

__all__ = ["DecisionEngine", "OutcomeReceipt"]


@dataclass(frozen=True)
class OutcomeReceipt:
    """What became of a posted outcome.

    ``new`` is False when the same outcome was already recorded; ``learned`` is
    True when this outcome taught the policy (the first new outcome of a decision).
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

    The policy learns from the first new outcome of each decision, at most once
    (a crash between marking and saving loses that one update rather than
    counting it twice). Rewards outside [0, 1] are logged as given but clipped
    to [0, 1] for learning. Outcomes of decisions made with another model
    version are logged but not learned from: what the policy learns is a
    correction of this model's priors. Attribution windows, and the zero reward
    finalised when a window closes with no outcome, come in a later milestone.

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
    ...         occurred_at=decision.decided_at + timedelta(hours=1),
    ...     )
    ...     print(decision.action, decision.propensity, receipt.new, receipt.learned)
    ...     print(engine.policy.version)
    ...     log.close(); state.close()
    email 1.0 True True
    epsilon-greedy(epsilon=0.0,learning_rate=0.05)+1
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
        every_prior = self._model.predict_one(features)
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

        Give either ``reward`` (logged as event ``"reward"``) or ``event`` (worth
        ``value``, default 1.0). By default the outcome id is derived from the
        decision, the event and the moment, so the same outcome posted twice
        counts once.
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
            reward = 1.0 if amount is None else amount
        occurred = check_moment("occurred_at", occurred_at).astimezone(UTC)
        if outcome_id is not None:
            outcome_id = check_outcome_id(outcome_id)

        decision = self._log.get_decision(decision_id)
        if occurred < decision.decided_at:
            raise InvalidRequest(
                "occurred_at",
                f"must not be before the decision at {decision.decided_at.isoformat()}",
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
