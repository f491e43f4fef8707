"""One decision end to end, and learning from what happened after it.

decide: check the request → holdout? → resolve slots in the customer's zone →
contact policy (consent, suppression, reachability, quiet hours, caps) →
features and the offline model's priors → exploration slice or policy →
reserve the contact (atomically) → log. learn: outcomes inside the attribution
window credit the decision's reward as they arrive; a window that closes with
no conversion credits zero, so non-responders count.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from decisioning._requests import check_event, check_moment, check_number, check_outcome_id
from decisioning.baseline import HoldoutBaseline
from decisioning.config import DecisionConfig
from decisioning.contact_policy import ContactPolicy
from decisioning.contact_store import ContactProfile, ContactStore, Send
from decisioning.holdout import Holdout
from decisioning.log import DecisionLog, PolicyStateStore
from decisioning.request import CheckedRequest, DecisionRequest, OutcomeReport, check_request
from decisioning.slots import hour_of_week, load_zone, resolve_slots
from decisioning.types import (
    NO_SEND,
    ActionScore,
    Context,
    Decision,
    DecisionGroup,
    Exclusion,
    JointAction,
    Outcome,
    Policy,
)
from features import FeatureSource, FeatureValue
from features.errors import Conflict, InvalidRequest, NudgeError
from models.prior import PriorModel

__all__ = [
    "BASELINE_STATE_KEY",
    "INFORMATIONAL_EVENTS",
    "SUPPRESSING_EVENTS",
    "DecisionEngine",
    "NoEligibleAction",
    "OutcomeReceipt",
    "SendCheck",
]

INFORMATIONAL_EVENTS = frozenset({"delivered", "open", "click", "visit", "bounce", "soft_bounce"})
"""Events that are logged (and reported) but worth no reward unless a journey says so."""
SUPPRESSING_EVENTS: Mapping[str, str] = {
    "unsubscribe": "unsubscribe",
    "complaint": "complaint",
    "hard_bounce": "hard_bounce",
}
"""Outcome events that suppress the customer on the decision's channel, and the reason."""
CANCELLED = "cancelled"
_MAX_RESERVE_ATTEMPTS = 3
RECENT_DECISIONS = 4096
"""How many of its latest decisions a worker keeps in memory for their outcomes."""
BASELINE_STATE_KEY = "holdout-baseline"
"""Where workers share the holdout baseline in the :class:`PolicyStateStore`: one for every
model version, since what the holdout earns does not depend on the model."""


class NoEligibleAction(Conflict):
    """Every candidate was excluded and the step does not allow "no send"."""


@dataclass(frozen=True)
class OutcomeReceipt:
    """What became of a posted outcome.

    ``new`` is False when the same outcome was already recorded; ``credited``
    when it changed the decision's reward (inside the attribution window);
    ``learned`` when the policy learned from it.
    """

    outcome: Outcome
    new: bool
    credited: bool
    learned: bool


@dataclass(frozen=True)
class SendCheck:
    """The contact policy's answer just before a scheduled send goes out."""

    decision_id: str
    allowed: bool
    exclusion: Exclusion | None = None


@dataclass(frozen=True, slots=True)
class _Acted:
    """What outcomes need of a decision: small, so thousands kept in memory stay cheap
    for the garbage collector (a whole Decision holds every eligible candidate)."""

    decision_id: str
    customer_id: str
    decided_at: datetime
    journey: str
    group: DecisionGroup
    action: JointAction
    prior: float
    baseline: float
    model_version: str
    features: Mapping[str, FeatureValue]
    time_zone: str
    attribution_closes_at: datetime | None

    @staticmethod
    def of(decision: Decision) -> _Acted:
        return _Acted(
            decision.decision_id,
            decision.customer_id,
            decision.decided_at,
            decision.journey,
            decision.group,
            decision.action,
            decision.scores[decision.action.key].prior,
            _baseline_of({key: score.prior for key, score in decision.scores.items()}),
            decision.model_version,
            decision.features,
            decision.time_zone,
            decision.attribution_closes_at,
        )


@dataclass(eq=False)
class _Served:
    """One model version, the policy learning on its priors, and where that learning is kept.

    Swapped as one reference, so that a decision reads a model, its version and
    its policy that belong together. A retired one keeps learning from the
    outcomes of its own decisions, without its model.
    """

    model: PriorModel | None
    version: str
    policy: Policy
    state_key: str
    unpublished: bool = False


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _uuid_hex() -> str:
    return uuid.uuid4().hex


class DecisionEngine:
    """Makes joint decisions under the contact policy, logs them, and learns from outcomes.

    Decisions are logged with the exact probability of the chosen joint action
    over the eligible set, the eligible set itself, every exclusion with its
    rule, and each candidate's score: the explanation is the log record.

    What the policy learns is kept per worker in ``state`` (see
    :class:`PolicyStateStore`): :meth:`sync` publishes this worker's learning
    and takes in everyone else's; a server calls it every second or so.

    Outcomes of decisions made with another model version are logged and
    credited but not learned from: the policy's features include that model's priors.
    :meth:`swap_model` puts a new model in service while requests run; the
    versions this engine served before keep learning from their own decisions'
    outcomes, under their own state keys.
    """

    def __init__(
        self,
        *,
        config: DecisionConfig,
        features: FeatureSource,
        model: PriorModel,
        model_version: str,
        policy: Policy,
        log: DecisionLog,
        state: PolicyStateStore,
        contacts: ContactStore,
        state_key: str = "policy",
        seed: int = 0,
        clock: Callable[[], datetime] = _utc_now,
        new_id: Callable[[], str] = _uuid_hex,
        worker_id: str | None = None,
        future_tolerance: timedelta = timedelta(minutes=5),
        skew_tolerance: timedelta = timedelta(seconds=2),
    ) -> None:
        self._config = config
        self._features = features
        self._log = log
        self._state = state
        self._contacts = contacts
        self._clock = clock
        self._new_id = new_id
        self._worker = worker_id or _uuid_hex()
        self._future_tolerance = future_tolerance
        self._skew_tolerance = skew_tolerance
        self._contact_policy = ContactPolicy(config.contact)
        self._default_zone = load_zone(config.contact.default_time_zone, "default_time_zone")
        self._holdout = Holdout(config.holdout_percent, config.holdout_salt)
        self._baseline = HoldoutBaseline()
        self._baseline_unpublished = False
        self._rng = np.random.default_rng(seed)
        # One lock for reading and teaching the policy: its posterior must not be
        # read half-updated, and the exploration coin is one seeded sequence.
        self._lock = threading.Lock()
        # Publishing and absorbing, and swapping the model, one at a time: a
        # snapshot taken before a swap must not be published after the swap's own.
        self._sync_lock = threading.Lock()
        _check_model_arms(config, model)
        self._served = _Served(model, model_version, policy, state_key)
        # Versions served before, by version: outcomes of their decisions still come in.
        self._retired: dict[str, _Served] = {}
        # Outcomes mostly answer recent decisions of this worker: keeping those at
        # hand saves decoding them from the log (about a third of an outcome's cost).
        self._recent: OrderedDict[str, _Acted] = OrderedDict()
        self._recent_lock = threading.Lock()
        self._record_holdout_share()
        self.sync()

    # -- read-only views ------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        """The policy learning on the model in service."""
        return self._served.policy

    @property
    def log(self) -> DecisionLog:
        return self._log

    @property
    def state(self) -> PolicyStateStore:
        """Where workers share what they learned (policies and the holdout baseline)."""
        return self._state

    @property
    def contacts(self) -> ContactStore:
        return self._contacts

    @property
    def config(self) -> DecisionConfig:
        return self._config

    @property
    def model_version(self) -> str:
        """The version of the model in service."""
        return self._served.version

    @property
    def state_key(self) -> str:
        """Where the policy of the model in service keeps what it learns."""
        return self._served.state_key

    @property
    def baseline(self) -> HoldoutBaseline:
        return self._baseline

    @property
    def holdout(self) -> Holdout:
        return self._holdout

    @property
    def worker_id(self) -> str:
        return self._worker

    # -- deciding -------------------------------------------------------------------

    def decide(self, request: DecisionRequest) -> Decision:
        """Choose one joint action (or no send) for the request's customer, and log it."""
        now = self._now()
        # One read: the model, its version and its policy stay together for this
        # decision even if a new model is swapped in meanwhile.
        served = self._served
        checked = check_request(request, self._config, now)
        if checked.idempotency_key is not None:
            earlier = self._log.find_idempotent(checked.idempotency_key)
            if earlier is not None:
                return _same_customer(earlier, checked)
        profile = self._contacts.profile(checked.customer_id)
        zone = checked.zone or self._zone_of(profile)
        row = self._features.get(checked.customer_id)
        features = {**row.values, **checked.context}
        missing = tuple(name for name in row.missing if name not in checked.context)
        every_prior = self._predict(served, features, checked.context)

        if checked.allow_no_send and self._holdout.contains(checked.customer_id):
            decision = self._holdout_decision(
                served, checked, now, zone, features, missing, every_prior
            )
            recorded = self._log.record_decision(decision)
            self._remember(recorded)
            return recorded

        candidates = self._candidates(checked, now, zone)
        excluded_by_race: list[Exclusion] = []
        for _ in range(_MAX_RESERVE_ATTEMPTS):
            sends = self._contacts.sends(checked.customer_id)
            eligible, excluded = self._contact_policy.evaluate(profile, sends, candidates, zone)
            excluded = [*excluded_by_race, *excluded]
            if not checked.allow_no_send:
                eligible = [a for a in eligible if a.is_send]
            if not eligible:
                raise NoEligibleAction(
                    "no candidate is eligible and the step does not allow no send: "
                    + "; ".join(f"{e.action} ({e.rule}: {e.detail})" for e in excluded[:10])
                )
            decision = self._choose(
                served, checked, now, zone, eligible, excluded, features, missing, every_prior
            )
            blocked = self._reserve(decision)
            if blocked is None:
                break
            # Another decision for this customer took the cap's last place since we
            # read the sends: the choice is remade over what is still eligible.
            excluded_by_race = [blocked]
            candidates = [a for a in candidates if a.key != decision.action.key]
        else:
            raise Conflict(
                f"could not reserve a contact for customer {checked.customer_id!r}: "
                "concurrent decisions kept taking the cap; try again"
            )
        try:
            recorded = self._log.record_decision(decision)
        except BaseException:
            self._contacts.release(decision.decision_id)
            raise
        if recorded.decision_id != decision.decision_id:
            # The same idempotency key won a race from another request: one decision stands.
            self._contacts.release(decision.decision_id)
            self._remember(recorded)
            return recorded
        acted = self._remember(recorded)
        if served.policy.learns_before_close:
            # Pending counts as "no conversion yet"; conversions correct it as they come.
            self._learn(acted, 0.0, first=True)
        return recorded

    def _remember(self, decision: Decision) -> _Acted:
        acted = _Acted.of(decision)
        with self._recent_lock:
            self._recent[decision.decision_id] = acted
            if len(self._recent) > RECENT_DECISIONS:
                self._recent.popitem(last=False)
        return acted

    def _decision(self, decision_id: str) -> _Acted:
        with self._recent_lock:
            acted = self._recent.get(decision_id)
        return acted if acted is not None else _Acted.of(self._log.get_decision(decision_id))

    def _zone_of(self, profile: ContactProfile) -> ZoneInfo:
        if profile.time_zone:
            try:
                return load_zone(profile.time_zone, "time_zone")
            except InvalidRequest:
                pass  # a stored zone that no longer exists falls back to the default
        return self._default_zone

    def _predict(
        self,
        served: _Served,
        features: Mapping[str, FeatureValue],
        supplied: Mapping[str, FeatureValue],
    ) -> dict[str, float]:
        assert served.model is not None  # only the model in service decides
        try:
            return served.model.predict_one(features)
        except InvalidRequest as err:
            blamed = _blame_context(err, supplied)
            if blamed is None:
                raise
            raise blamed from err

    def _candidates(
        self, checked: CheckedRequest, now: datetime, zone: ZoneInfo
    ) -> list[JointAction]:
        slots = resolve_slots(checked.slots, now, zone, self._config.horizon)
        slots.extend(checked.explicit_slots)
        candidates = [
            JointAction(
                message, channel, slot, send_at, self._config.messages[message].transactional
            )
            for message, channel in checked.pairs
            for slot, send_at in slots
        ]
        if checked.allow_no_send:
            candidates.append(JointAction.no_send())
        return candidates

    def _priors(
        self, actions: list[JointAction], every_prior: Mapping[str, float], journey: str
    ) -> dict[str, float]:
        value = self._config.reward_for(journey).prior_value
        control = self._config.control_arm
        baseline = every_prior.get(control, 0.0) if control is not None else 0.0
        priors: dict[str, float] = {}
        for action in actions:
            if not action.is_send:
                priors[action.key] = baseline * value
                continue
            arm = self._config.messages[str(action.message)].model_arm
            probability = every_prior.get(arm, baseline) if arm is not None else baseline
            priors[action.key] = probability * value - self._cost(action)
        return priors

    def _scale(self, journey: str) -> float:
        # The policy learns in units of one conversion's value, so that one prior
        # precision and noise level suit a journey worth 1.0 and one worth 40.0 alike.
        value = self._config.reward_for(journey).prior_value
        return value if value > 0 else 1.0

    def _cost(self, action: JointAction) -> float:
        if action.channel is None:
            return 0.0
        return self._config.channels[action.channel].cost

    def _choose(
        self,
        served: _Served,
        checked: CheckedRequest,
        now: datetime,
        zone: ZoneInfo,
        eligible: list[JointAction],
        excluded: list[Exclusion],
        features: dict[str, FeatureValue],
        missing: tuple[str, ...],
        every_prior: Mapping[str, float],
    ) -> Decision:
        priors = self._priors(eligible, every_prior, checked.journey)
        scale = self._scale(checked.journey)
        # Many candidates share a send time: each distinct one is converted once.
        hours: dict[datetime, int] = {}
        local_hours = {}
        for a in eligible:
            if a.send_at is not None:
                hour = hours.get(a.send_at)
                if hour is None:
                    hour = hours[a.send_at] = hour_of_week(a.send_at, zone)
                local_hours[a.key] = hour
        scaled = {key: prior / scale for key, prior in priors.items()}
        context = Context(
            checked.customer_id,
            features,
            scaled,
            local_hours,
            checked.journey,
            baseline=_baseline_of(scaled),
        )
        share = self._config.exploration
        k = len(eligible)
        with self._lock:
            selection = served.policy.select(context, eligible)
            policy_version = served.policy.version
            explore = bool(self._rng.random() < share)
            uniform_pick = int(self._rng.integers(k))
        by_key = {a.key: a for a in eligible}
        chosen = eligible[uniform_pick].key if explore else selection.action
        # The logged probability is the whole logging policy's: the uniform slice
        # and the learning policy mixed, over the eligible set only.
        scores = {
            key: ActionScore(
                prior=priors[key],
                mean=s.mean * scale,
                uncertainty=s.uncertainty * scale,
                probability=share / k + (1.0 - share) * s.probability,
            )
            for key, s in selection.scores.items()
        }
        group: DecisionGroup = "explore" if explore else "policy"
        action = by_key[chosen]
        return Decision(
            decision_id=self._new_id(),
            customer_id=checked.customer_id,
            decided_at=now,
            journey=checked.journey,
            step=checked.step,
            group=group,
            action=action,
            propensity=scores[chosen].probability,
            propensity_error=(1.0 - share) * selection.propensity_error,
            eligible=tuple(eligible),
            excluded=tuple(excluded),
            scores=scores,
            explored=explore or selection.explored,
            policy_version=policy_version,
            model_version=served.version,
            features=features,
            missing_features=missing,
            idempotency_key=checked.idempotency_key,
            attribution_closes_at=self._closes_at(action, now, checked.journey),
            time_zone=str(zone.key),
        )

    def _holdout_decision(
        self,
        served: _Served,
        checked: CheckedRequest,
        now: datetime,
        zone: ZoneInfo,
        features: dict[str, FeatureValue],
        missing: tuple[str, ...],
        every_prior: Mapping[str, float],
    ) -> Decision:
        action = JointAction.no_send()
        prior = self._priors([action], every_prior, checked.journey)[NO_SEND]
        return Decision(
            decision_id=self._new_id(),
            customer_id=checked.customer_id,
            decided_at=now,
            journey=checked.journey,
            step=checked.step,
            group="holdout",
            action=action,
            propensity=1.0,
            propensity_error=0.0,
            eligible=(action,),
            excluded=(),
            scores={NO_SEND: ActionScore(prior, prior, 0.0, 1.0)},
            explored=False,
            policy_version=served.policy.version,
            model_version=served.version,
            features=features,
            missing_features=missing,
            idempotency_key=checked.idempotency_key,
            attribution_closes_at=self._closes_at(action, now, checked.journey),
            time_zone=str(zone.key),
        )

    def _closes_at(self, action: JointAction, now: datetime, journey: str) -> datetime:
        # The window opens when the message goes out, not when it was decided.
        opens = action.send_at if action.send_at is not None else now
        return opens + self._config.reward_for(journey).attribution_window

    def _reserve(self, decision: Decision) -> Exclusion | None:
        action = decision.action
        if not action.is_send or action.transactional:
            return None
        assert action.channel is not None
        assert action.send_at is not None
        send = Send(decision.decision_id, action.channel, action.send_at)
        full = self._contacts.reserve(decision.customer_id, send, self._config.contact.caps)
        if full is None:
            return None
        scope = full.channel or "all channels"
        return Exclusion(
            action.key, "frequency_cap", f"{scope} cap {full.limit} per {full.window} reached"
        )

    def uplift_score(self, decision: Decision) -> float | None:
        """The champion model's best incremental value over no contact for the decision's
        customer, from the features logged with it: the score of an uplift (Qini) curve.

        Scored the same way for every group, the holdout included, so that a
        curve can rank treated and control customers alike. None when no
        configured message has a model arm.
        """
        model = self._served.model
        assert model is not None  # the model in service always has one
        every_prior = model.predict_one(decision.features)
        control = self._config.control_arm
        baseline = every_prior.get(control, 0.0) if control is not None else 0.0
        lifts = [
            every_prior[m.model_arm] - baseline
            for m in self._config.messages.values()
            if m.model_arm is not None and m.model_arm in every_prior
        ]
        return max(lifts) if lifts else None

    def greedy_choice(self, decision: Decision, model: PriorModel) -> str:
        """The eligible action ``model`` would have chosen for the decision, greedily.

        What a challenger model would do on the logged decisions, for
        off-policy evaluation: its expected reward of each action the decision
        could take, from the features logged with it.
        """
        every_prior = model.predict_one(decision.features)
        priors = self._priors(list(decision.eligible), every_prior, decision.journey)
        return max(priors, key=priors.__getitem__)

    # -- at send time -------------------------------------------------------------------

    def check_send(self, decision_id: str) -> SendCheck:
        """Re-check consent, suppression, reachability and quiet hours just before sending.

        A send that is no longer allowed is cancelled (see :meth:`cancel`) with
        the rule that stopped it.
        """
        decision = self._decision(decision_id)
        if not decision.action.is_send:
            raise InvalidRequest("decision_id", "must be a decision that sends", decision_id)
        if self._cancelled(decision_id):
            return SendCheck(
                decision_id,
                False,
                Exclusion(decision.action.key, CANCELLED, "the decision was cancelled"),
            )
        profile = self._contacts.profile(decision.customer_id)
        # The customer's zone now: one that changed since the decision moves quiet hours.
        zone = (
            self._zone_of(profile)
            if profile.time_zone
            else load_zone(decision.time_zone, "time_zone")
        )
        exclusion = self._contact_policy.check_send(profile, decision.action, zone)
        if exclusion is None:
            return SendCheck(decision_id, True)
        self.cancel(decision_id)
        return SendCheck(decision_id, False, exclusion)

    def cancel(self, decision_id: str) -> bool:
        """The decision was not carried out (send blocked, journey exited first): learn nothing.

        Closes its attribution window (so that no zero reward is finalised for
        an action that never happened), gives back its contact reservation,
        logs a ``cancelled`` outcome and takes back what the policy learned from
        it. False, writing nothing, when its window had already closed (too
        late: what it taught stands) or it was already cancelled. A cancelled
        decision, holdout or not, leaves the reports: it was never acted on.
        """
        decision = self._decision(decision_id)
        # Closing first is the atomic test: of racing cancels (or a cancel racing
        # the window's end) exactly one goes on.
        if not self._log.close_window(decision_id):
            return False
        self._contacts.release(decision_id)
        self._log.record_outcome(
            Outcome(
                outcome_id=f"{decision_id}:{CANCELLED}",
                decision_id=decision_id,
                event=CANCELLED,
                value=0.0,
                reward=0.0,
                occurred_at=max(self._now(), decision.decided_at),
            )
        )
        if decision.group != "holdout" and self._served.policy.learns_before_close:
            # Take back the pending zero taught at the decision, and any conversion since.
            scale = self._scale(decision.journey)
            context = _context_of(decision, scale)
            credited = self._log.credited_reward(decision_id) or 0.0
            opening = self._opening(decision) / scale
            with self._lock:
                learner = self._learner(decision)
                if learner is not None:
                    learner.policy.forget(context, decision.action, opening)
                    if credited:
                        learner.policy.update(
                            context, decision.action, -credited / scale, first=False
                        )
                    learner.unpublished = True
        return True

    # -- learning ---------------------------------------------------------------------

    def record_outcome(
        self,
        decision_id: str,
        *,
        event: str,
        occurred_at: datetime,
        value: float | None = None,
        outcome_id: str | None = None,
    ) -> OutcomeReceipt:
        """Log what happened after a decision; inside its window, credit the reward and learn.

        ``event`` is a conversion or penalty event of the decision's journey (see
        the reward configuration), or an informational one (open, click, …). An
        unsubscribe, complaint or hard bounce also suppresses the customer on the
        decision's channel. The same outcome posted twice counts once; an outcome
        id posted again with other content is a ``Conflict``.
        """
        if not isinstance(decision_id, str) or not decision_id:
            raise InvalidRequest("decision_id", "must be a non-empty string", decision_id)
        event = check_event(event)
        known = set(self._config.events | INFORMATIONAL_EVENTS) | set(SUPPRESSING_EVENTS)
        known.discard(CANCELLED)
        if event not in known:
            raise InvalidRequest("event", f"must be one of {sorted(known)}", event)
        amount = None if value is None else check_number("value", value)
        occurred = check_moment("occurred_at", occurred_at)
        if occurred - self._now() > self._future_tolerance:
            raise InvalidRequest(
                "occurred_at",
                f"must not be in the future (more than {self._future_tolerance} past now)",
                occurred_at.isoformat(),
            )
        if outcome_id is not None:
            outcome_id = check_outcome_id(outcome_id)
        decision = self._decision(decision_id)
        if decision.decided_at - occurred > self._skew_tolerance:
            raise InvalidRequest(
                "occurred_at",
                f"must not be before the decision at {decision.decided_at.isoformat()}",
                occurred_at.isoformat(),
            )
        spec = self._config.reward_for(decision.journey)
        reward = spec.reward_of(event, amount)
        outcome = Outcome(
            outcome_id=outcome_id or f"{decision_id}:{event}:{occurred.isoformat()}",
            decision_id=decision_id,
            event=event,
            value=reward if amount is None else amount,
            reward=reward,
            occurred_at=occurred,
        )
        new = self._log.record_outcome(outcome)
        if not new:
            recorded = self._log.get_outcome(outcome.outcome_id)
            if recorded is not None:
                _check_same_outcome(recorded, outcome)
                outcome = recorded
            return OutcomeReceipt(outcome, new=False, credited=False, learned=False)
        reason = SUPPRESSING_EVENTS.get(event)
        if reason is not None and decision.action.channel is not None:
            self._contacts.suppress(decision.customer_id, decision.action.channel, reason, occurred)
        # The window opens when the message goes out: a purchase before that was not its doing.
        opens = decision.action.send_at or decision.decided_at
        in_window = opens - occurred <= self._skew_tolerance and (
            decision.attribution_closes_at is None or occurred <= decision.attribution_closes_at
        )
        if not in_window or reward == 0.0 or self._cancelled(decision_id):
            return OutcomeReceipt(outcome, new=True, credited=False, learned=False)
        self._log.credit(decision_id, reward)
        # A policy that learns at the window's close gets the whole reward then.
        learned = self._served.policy.learns_before_close and self._learn(
            decision, reward, first=False
        )
        return OutcomeReceipt(outcome, new=True, credited=True, learned=learned)

    def record_outcomes(
        self, reports: Sequence[OutcomeReport]
    ) -> list[OutcomeReceipt | NudgeError]:
        """A batch of outcomes, each accepted or refused on its own, written in one commit.

        A refused outcome (unknown decision, bad event, conflict) is returned as
        its error in its place; the others are kept.
        """
        results: list[OutcomeReceipt | NudgeError] = []
        with self._log.transaction():
            for report in reports:
                try:
                    results.append(
                        self.record_outcome(
                            report.decision_id,
                            event=report.event,
                            occurred_at=report.occurred_at,
                            value=report.value,
                            outcome_id=report.outcome_id,
                        )
                    )
                except NudgeError as error:
                    results.append(error)
        return results

    def _cancelled(self, decision_id: str) -> bool:
        return self._log.get_outcome(f"{decision_id}:{CANCELLED}") is not None

    def finalise_due(self, limit: int = 1000) -> int:
        """Close the attribution windows that have ended; a decision with no conversion earns zero.

        Returns how many windows this call closed. Safe to run in every worker at once.
        """
        closed = 0
        for decision in self._log.due_windows(self._now(), limit):
            if not self._log.close_window(decision.decision_id):
                continue
            closed += 1
            credited = self._log.credited_reward(decision.decision_id)
            if decision.group == "holdout":
                with self._lock:
                    self._baseline.update(decision.journey, credited or 0.0)
                    self._baseline_unpublished = True
                continue
            if credited is None:
                self._log.credit(decision.decision_id, 0.0)
            if not self._served.policy.learns_before_close:
                self._learn(_Acted.of(decision), credited or 0.0, first=True)
        return closed

    def _learner(self, decision: _Acted) -> _Served | None:
        """The policy that learns from ``decision``: the one of its model version, if this
        engine served that version. Call with ``self._lock`` held, so that a swap cannot
        come between choosing the policy and teaching it."""
        # Holdout decisions are the control, not the policy's; another model
        # version's decisions carry priors this policy's features do not share.
        if decision.group == "holdout":
            return None
        served = self._served
        if decision.model_version == served.version:
            return served
        return self._retired.get(decision.model_version)

    def _opening(self, decision: _Acted) -> float:
        """What a decision is worth before any conversion: minus its cost, and for an
        uplift-aware journey minus what the holdout earns without contact."""
        reward = -self._cost(decision.action)
        if self._config.reward_for(decision.journey).uplift_aware:
            reward -= self._baseline.get(decision.journey)
        return reward

    def _learn(self, decision: _Acted, reward: float, first: bool) -> bool:
        if decision.group == "holdout":
            return False
        if first:
            reward += self._opening(decision)
        scale = self._scale(decision.journey)
        context = _context_of(decision, scale)
        with self._lock:
            learner = self._learner(decision)
            if learner is None:
                return False
            learner.policy.update(context, decision.action, reward / scale, first=first)
            learner.unpublished = True
        return True

    def context_of(self, decision: Decision) -> Context:
        """What the policy saw of the chosen action at the decision: the context to learn from."""
        return _context_of(_Acted.of(decision), self._scale(decision.journey))

    # -- sharing what was learned -------------------------------------------------------------

    def sync(self) -> None:
        """Publish this worker's learning and take in every other worker's (and earlier runs').

        A worker that has learned nothing since it last published writes nothing,
        so idle workers, and processes that never learn, leave no trace in the store.
        The holdout baseline is shared the same way, under :data:`BASELINE_STATE_KEY`.
        """
        with self._sync_lock:
            self._publish()
            served = self._served
            others = self._others_under(served.state_key)
            baselines = self._others_under(BASELINE_STATE_KEY)
            with self._lock:
                served.policy.absorb(others)
                self._baseline.absorb(baselines)

    # -- changing the model -------------------------------------------------------------------

    def swap_model(self, model: PriorModel, model_version: str, state_key: str) -> None:
        """Serve ``model`` from now on; requests in flight finish with the model they began with.

        Each model version has its own policy state (``state_key``): what a
        policy learned is tied to the priors of the model it learned on. The
        policy in service is published under its key and retired (it keeps
        learning from the outcomes of its own decisions, and publishing them),
        and the new version's policy starts from what is stored under its key:
        nothing for a new version (it starts from the model's priors), everything
        learned before for a version that comes back (a rollback). Raises
        ``InvalidRequest`` (and changes nothing) when the model lacks an arm the
        configuration names. Swapping to the version in service does nothing.
        """
        _check_model_arms(self._config, model)
        with self._sync_lock:
            current = self._served
            if model_version == current.version:
                return
            others = self._others_under(state_key)
            with self._lock:
                # A version this engine served before comes back with its own learning
                # (in memory, and the same as its store row under this worker's id).
                earlier = self._retired.pop(model_version, None)
                policy = current.policy.clone() if earlier is None else earlier.policy
                policy.absorb(others)
                self._retired[current.version] = _Served(
                    None, current.version, current.policy, current.state_key, current.unpublished
                )
                self._served = _Served(
                    model,
                    model_version,
                    policy,
                    state_key,
                    earlier is not None and earlier.unpublished,
                )
            # Published now, so that another process rolling back finds it at once.
            self._publish()

    def _publish(self) -> None:
        """Publish what changed: each served version's policy under its key, and the baseline.

        Call with ``self._sync_lock`` held.
        """
        with self._lock:
            changed = [s for s in (self._served, *self._retired.values()) if s.unpublished]
            blobs = [(s.state_key, s.policy.snapshot()) for s in changed]
            for served in changed:
                served.unpublished = False
            baseline = self._baseline.snapshot() if self._baseline_unpublished else None
            self._baseline_unpublished = False
        for key, blob in blobs:
            self._state.publish(key, self._worker, blob)
        if baseline is not None:
            self._state.publish(BASELINE_STATE_KEY, self._worker, baseline)

    def _others_under(self, key: str) -> list[bytes]:
        return [blob for worker, blob in self._state.collect(key).items() if worker != self._worker]

    def close(self) -> None:
        """Publish what this worker learned; the stores are closed by their owner."""
        self.sync()

    # -- helpers -------------------------------------------------------------------------

    def _record_holdout_share(self) -> None:
        changes = self._log.holdout_changes()
        percent = self._config.holdout_percent
        if not changes or changes[-1][1] != percent:
            self._log.record_holdout_change(self._now(), percent)

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("the engine's clock must return a time-zone-aware datetime")
        return now.astimezone(UTC)


def _context_of(decision: _Acted, scale: float) -> Context:
    # Decision-time features and prior, not today's: the reward answers the choice
    # made then. Only the chosen action is needed to learn.
    action = decision.action
    local_hours = {}
    if action.send_at is not None:
        zone = load_zone(decision.time_zone, "time_zone")
        local_hours[action.key] = hour_of_week(action.send_at, zone)
    priors = {action.key: decision.prior / scale}
    return Context(
        decision.customer_id,
        decision.features,
        priors,
        local_hours,
        decision.journey,
        baseline=decision.baseline / scale,
    )


def _baseline_of(priors: Mapping[str, float]) -> float:
    """The customer's expected reward without contact: the no-send prior, else the mean prior.

    Worked out from the eligible candidates' priors, the same way when choosing
    and when learning, so that each action's ``prior_lift`` is the same both times.
    """
    if NO_SEND in priors:
        return priors[NO_SEND]
    return sum(priors.values()) / len(priors) if priors else 0.0


def _check_model_arms(config: DecisionConfig, model: PriorModel) -> None:
    """Every arm the configuration names must be one the model scores, or priors would be wrong."""
    actions = set(model.actions)
    for name, message in config.messages.items():
        if message.model_arm is not None and message.model_arm not in actions:
            raise InvalidRequest(
                f"messages.{name}.model_arm",
                f"must be one of the model's actions {sorted(actions)}",
                message.model_arm,
            )
    if config.control_arm is not None and config.control_arm not in actions:
        raise InvalidRequest(
            "control_arm",
            f"must be one of the model's actions {sorted(actions)}",
            config.control_arm,
        )


def _same_customer(decision: Decision, checked: CheckedRequest) -> Decision:
    """The decision recorded under the request's key, if the request is the same one."""
    for what, recorded, asked in (
        ("customer", decision.customer_id, checked.customer_id),
        ("journey", decision.journey, checked.journey),
        ("step", decision.step, checked.step),
    ):
        if recorded != asked:
            raise Conflict(
                f"idempotency key {checked.idempotency_key!r} was used for another {what} "
                f"({recorded!r}, not {asked!r}); use a new key for a new request"
            )
    return decision


def _blame_context(
    error: InvalidRequest, supplied: Mapping[str, FeatureValue]
) -> InvalidRequest | None:
    """``error`` restated against ``context.<key>``, if the caller's context gave the value."""
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
