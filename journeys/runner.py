"""The journey runner: events in, steps carried out once each, messages out at their send time.

One pass (:meth:`JourneyRunner.run_once`) reads the new events from the
event stream — each one can start a journey (its trigger), wake a customer
who waits for it, end a journey at its goal (crediting the conversion to the
journey's sends and cancelling the ones still pending) or at an exit — and
then moves on every instance whose timer has come.

Exactly once, across crashes:
- an event and everything it changes commit together with the stream offset;
- a step's effects are idempotent: a decide step's idempotency key is the
  instance, step and visit, so the decision API returns the same decision when
  the step runs again after a crash; a send is claimed in the ledger in its
  own commit before the channel is called, and a claim found unconfirmed after
  a crash is sent again with the same message id (providers and the test
  servers recognise it) and counted as in doubt;
- an instance moves on only if nobody moved it since it was read.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from channels import Channel, SendFailed, TemplateRenderer, TrackingLinks, compose
from features import FeatureSource
from features.behaviour import ACTIVITY_TYPES
from features.errors import NudgeError, Unavailable
from features.event_stream import EventStream, StoredEvent
from journeys.decisions import ContactChange, DecisionService, StepDecision, request_for
from journeys.definition import (
    BranchStep,
    DecideStep,
    Journey,
    SendStep,
    Step,
    UpdateProfileStep,
    WaitStep,
    all_hold,
)
from journeys.score_trigger import ScoreTriggers, decision_context
from journeys.store import FINAL_SEND_STATES, Instance, JourneyStore, SendRecord

__all__ = ["ADDRESS_FIELDS", "JourneyRunner", "RunStats"]

_log = logging.getLogger("nudge.journeys")

ADDRESS_FIELDS: Mapping[str, str] = {"email": "email", "phone": "sms", "push_token": "push"}
"""Payload fields of identify and profile_update events that are where a channel reaches the
customer; every other field of those events becomes a profile attribute."""
PROFILE_EVENTS = frozenset({"identify", "profile_update"})
CONSENT_EVENT = "consent_update"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")
RESCORE_EVENTS = ACTIVITY_TYPES
"""Events that change the features a score trigger's model reads (RFM recency and activity)."""
MAX_EVENTS_KEPT = 50
MAX_TRANSITIONS = 100
"""Steps one instance may take in one go; a journey that loops without waiting stops here."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class RunStats:
    """What one pass did."""

    events: int = 0
    entered: int = 0
    steps: int = 0
    decided: int = 0
    no_send: int = 0
    """Decisions that chose no send: holdout, policy, or every candidate excluded."""
    sent: int = 0
    blocked: int = 0
    failed: int = 0
    ended: int = 0
    retried: int = 0

    def add(self, other: RunStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def busy(self) -> bool:
        return bool(self.events or self.steps or self.entered or self.ended or self.retried)


@dataclass(frozen=True)
class _Next:
    step: str | None


@dataclass(frozen=True)
class _Wait:
    until: datetime
    waiting_for: str | None = None


class _Moved(Exception):
    """Another runner moved the instance first: redo the event from the stream."""


class JourneyRunner:
    """Runs ``journeys`` over the events of ``stream``, keeping their state in ``store``."""

    def __init__(
        self,
        *,
        journeys: Mapping[str, Journey],
        store: JourneyStore,
        stream: EventStream,
        decisions: DecisionService,
        channels: Mapping[str, Channel],
        renderer: TemplateRenderer,
        links: TrackingLinks,
        features: FeatureSource | None = None,
        clock: Callable[[], datetime] = _utc_now,
        runner_id: str | None = None,
        consumer: str = "journeys",
        send_lease: timedelta = timedelta(seconds=30),
        retry_delay: timedelta = timedelta(seconds=30),
        max_send_attempts: int = 5,
        max_send_delay: timedelta = timedelta(hours=6),
        max_trigger_age: timedelta = timedelta(hours=24),
        batch: int = 500,
        scores: ScoreTriggers | None = None,
        rescore_on: frozenset[str] = RESCORE_EVENTS,
    ) -> None:
        self.journeys = dict(journeys)
        self.scores = scores
        self.rescore_on = rescore_on
        self.store = store
        self.stream = stream
        self.decisions = decisions
        self.channels = dict(channels)
        self.renderer = renderer
        self.links = links
        self.features = features
        self.clock = clock
        self.runner_id = runner_id or uuid.uuid4().hex
        self.consumer = consumer
        self.send_lease = send_lease
        self.retry_delay = retry_delay
        self.max_send_attempts = max_send_attempts
        self.max_send_delay = max_send_delay
        self.batch = batch
        self.max_trigger_age = max_trigger_age
        self._names = tuple(sorted(self.journeys))
        self._by_trigger: dict[str, list[Journey]] = {}
        for journey in self.journeys.values():
            if journey.trigger.event is not None:
                self._by_trigger.setdefault(journey.trigger.event, []).append(journey)

    # -- the loop -----------------------------------------------------------------------

    def run_once(self) -> RunStats:
        """Handle the waiting events, then move on every instance that is due."""
        stats = RunStats()
        self.consume(stats)
        self.advance_due(stats)
        return stats

    def run(
        self,
        stop: threading.Event,
        *,
        poll_s: float = 0.2,
        on_pass: Callable[[RunStats], None] | None = None,
    ) -> RunStats:
        """Run passes until ``stop`` is set, resting ``poll_s`` when there was nothing to do."""
        total = RunStats()
        while not stop.is_set():
            try:
                stats = self.run_once()
            except Unavailable as error:
                _log.warning("journeys: %s; trying again", error)
                stop.wait(max(poll_s, 1.0))
                continue
            total.add(stats)
            if on_pass is not None:
                on_pass(stats)
            if not stats.busy:
                stop.wait(poll_s)
        return total

    # -- events -------------------------------------------------------------------------

    def consume(self, stats: RunStats) -> None:
        """Every new event of the stream, each committed with its offset."""
        while True:
            events = self.stream.read(self.store.offset(self.consumer), self.batch)
            for event in events:
                try:
                    with self.store.transaction():
                        self._handle(event, stats)
                        self.store.set_offset(self.consumer, event.offset)
                except _Moved:
                    return  # the next pass reads the event again, and the instance anew
                stats.events += 1
            if len(events) < self.batch:
                return

    def _handle(self, event: StoredEvent, stats: RunStats) -> None:
        now = self.clock()
        customer = event.customer_id
        if event.type in PROFILE_EVENTS:
            self._update_profile(event)
        elif event.type == CONSENT_EVENT:
            self._update_consent(event)
        for instance in self.store.instances_of(customer):
            journey = self.journeys.get(instance.journey)
            if instance.status != "active" or journey is None:
                continue
            self._on_event(journey, instance, event, now, stats)
        for journey in self._by_trigger.get(event.type, ()):
            if self._enter(journey, event, now):
                stats.entered += 1
        if self.scores is not None and event.type in self.rescore_on:
            # The event may have moved the customer's score: rescore them now, in this
            # commit, rather than wait for the scheduled pass (``nudge journeys score``).
            crossings = self.scores.observe([customer], now)
            stats.entered += sum(crossing.entered for crossing in crossings)

    def _update_profile(self, event: StoredEvent) -> None:
        """Addresses and attributes into the journey store; reachability and zone to contacts."""
        customer, payload = event.customer_id, event.payload
        addresses: list[tuple[str, str]] = []
        for name, channel in ADDRESS_FIELDS.items():
            if name not in payload:
                continue
            address = _address(name, payload[name])
            if address is None:
                _log.warning(
                    "journeys: %s %s: `%s` is not a usable address, got %r",
                    event.type,
                    event.event_id,
                    name,
                    payload[name],
                )
                continue
            addresses.append((channel, address))
        if addresses:
            self.store.set_addresses(customer, addresses)
        attributes = {
            k: v for k, v in payload.items() if k not in ADDRESS_FIELDS and k != "time_zone"
        }
        if attributes:
            self.store.set_attributes(customer, attributes)
        zone = payload.get("time_zone")
        self._change_contact(
            event,
            ContactChange(
                customer,
                event.occurred_at,
                reachable=dict.fromkeys(_reachable(addresses, self.channels), True),
                time_zone=zone if isinstance(zone, str) and zone else None,
            ),
        )

    def _update_consent(self, event: StoredEvent) -> None:
        """``{channel: email, consent: opted_in}`` or ``{channels: {email: opted_out, ...}}``."""
        payload = event.payload
        given = payload.get("channels")
        if not isinstance(given, Mapping):
            given = {payload.get("channel"): payload.get("consent")}
        consent: dict[str, bool] = {}
        for channel, state in given.items():
            if not isinstance(channel, str) or state not in ("opted_in", "opted_out"):
                _log.warning(
                    "journeys: consent_update %s: expected a channel and opted_in or opted_out, "
                    "got %r: %r",
                    event.event_id,
                    channel,
                    state,
                )
                continue
            consent[channel] = state == "opted_in"
        self._change_contact(
            event, ContactChange(event.customer_id, event.occurred_at, consent=consent)
        )

    def _change_contact(self, event: StoredEvent, change: ContactChange) -> None:
        if change.empty:
            return
        try:
            self.decisions.update_contact(change)
        except Unavailable:
            raise  # the event is handled again on the next pass
        except NudgeError as error:
            _log.warning(
                "journeys: %s %s left the contact profile as it was: %s",
                event.type,
                event.event_id,
                error,
            )

    def _on_event(
        self,
        journey: Journey,
        instance: Instance,
        event: StoredEvent,
        now: datetime,
        stats: RunStats,
    ) -> None:
        began = _began(instance)
        if began is not None and event.occurred_at < began:
            # Read late (the runner was behind), but it happened before the journey began
            # for them: a purchase last week is not this journey's goal.
            return
        state = copy.deepcopy(dict(instance.state))
        seen = list(state.get("events", []))
        seen.append({"type": event.type, "payload": dict(event.payload)})
        state["events"] = seen[-MAX_EVENTS_KEPT:]
        moved = instance.moved(state=state)
        payload = event.payload
        if journey.goal == event.type and all_hold(journey.goal_where, payload):
            self._credit_goal(moved, event)
            moved = self._end(moved, "goal", f"goal:{event.type}", now)
            stats.ended += 1
        elif any(
            rule.event == event.type and all_hold(rule.where, payload) for rule in journey.exits
        ):
            moved = self._end(moved, "exited", f"exit:{event.type}", now)
            stats.ended += 1
        elif instance.waiting_for == event.type and self._wait_matches(journey, instance, payload):
            state["resumed"] = {"step": instance.step_id, "event_id": event.event_id}
            moved = moved.moved(wake_at=now, waiting_for=None)
        if self.store.save(moved) is None:
            raise _Moved(instance.instance_id)

    @staticmethod
    def _wait_matches(journey: Journey, instance: Instance, payload: Mapping[str, Any]) -> bool:
        if instance.step_id is None:
            return False
        if not journey.has_step(instance.step_id):
            return False
        step = journey.step(instance.step_id)
        return isinstance(step, WaitStep) and all_hold(step.where, payload)

    def _enter(self, journey: Journey, event: StoredEvent, now: datetime) -> bool:
        if not all_hold(journey.trigger.where, event.payload):
            return False
        if now - event.occurred_at > self.max_trigger_age:
            # A cart abandoned last month is no reason to write today (a backfill, a replay).
            return False
        customer = event.customer_id
        if journey.trigger.features and not all_hold(
            journey.trigger.features, self._values(customer)
        ):
            return False
        earlier = self.store.instances_of(customer, journey.name)
        if any(instance.status == "active" for instance in earlier):
            return False
        if earlier and not journey.entry.reentry:
            return False
        if earlier and now - max(i.entered_at for i in earlier) < journey.entry.reentry_after:
            return False
        digest = hashlib.sha256(f"{journey.name}\0{customer}\0{event.event_id}".encode())
        return self.store.enter(
            Instance(
                instance_id=digest.hexdigest()[:32],
                journey=journey.name,
                customer_id=customer,
                entered_at=now,
                step_id=journey.steps[0].id,
                wake_at=now,
                state={
                    "trigger": {
                        "event_id": event.event_id,
                        "payload": dict(event.payload),
                        "occurred_at": event.occurred_at.isoformat(),
                    },
                    "events": [],
                    "visits": {},
                    "decisions": {},
                },
            )
        )

    def _credit_goal(self, instance: Instance, event: StoredEvent) -> None:
        """The conversion goes back to the decision API for every message the journey sent."""
        value = event.payload.get("value", event.payload.get("revenue"))
        amount = float(value) if isinstance(value, int | float) else None
        for record in self.store.sends_of(instance.instance_id):
            if record.status != "sent":
                continue
            try:
                self.decisions.record_outcome(
                    record.decision_id,
                    event=event.type,
                    occurred_at=event.occurred_at,
                    value=amount,
                    outcome_id=f"{event.event_id}:{record.decision_id}",
                )
            except Unavailable:
                raise  # the event is handled again on the next pass
            except NudgeError as error:
                _log.warning(
                    "journeys: conversion of %s not recorded: %s", record.decision_id, error
                )

    def _end(self, instance: Instance, status: str, reason: str, now: datetime) -> Instance:
        """The instance ends; sends it decided but did not make are cancelled."""
        for record in self.store.sends_of(instance.instance_id):
            if record.status in ("scheduled", "retry"):
                self.decisions.cancel(record.decision_id)
                self.store.finish_send(record.decision_id, "cancelled", now, detail=reason)
        return instance.moved(
            status=status,
            wake_at=None,
            waiting_for=None,
            ended_at=now,
            end_reason=reason,
        )

    # -- timers and steps ---------------------------------------------------------------

    def advance_due(self, stats: RunStats) -> None:
        """Move on every instance whose timer has come (in batches, earliest first)."""
        while True:
            now = self.clock()
            due = self.store.due(now, self.batch, journeys=self._names)
            for instance in due:
                self._advance(instance, now, stats)
            if len(due) < self.batch:
                return

    def _advance(self, instance: Instance, now: datetime, stats: RunStats) -> None:
        journey = self.journeys[instance.journey]  # due() only returns loaded journeys
        if instance.step_id is not None and not journey.has_step(instance.step_id):
            # The journey was changed under this customer: they leave it rather than stall it.
            _log.warning(
                "journeys: %s was at step %r, which %s no longer has; ended",
                instance.customer_id,
                instance.step_id,
                journey.name,
            )
            self._save(
                self._end(instance, "exited", f"step_removed:{instance.step_id}", now), stats
            )
            return
        deadline = (
            None if journey.max_duration is None else instance.entered_at + journey.max_duration
        )
        if deadline is not None and now >= deadline:
            self._save(self._end(instance, "exited", "max_duration", now), stats)
            return
        state: dict[str, Any] = copy.deepcopy(dict(instance.state))
        step_id = instance.step_id
        try:
            for _ in range(MAX_TRANSITIONS):
                if step_id is None:
                    ended = instance.moved(state=state, step_id=None)
                    self._save(self._end(ended, "completed", "completed", now), stats)
                    return
                result = self._run_step(journey, instance, journey.step(step_id), state, now, stats)
                if isinstance(result, _Wait):
                    until = result.until if deadline is None else min(result.until, deadline)
                    moved = instance.moved(
                        step_id=step_id, wake_at=until, waiting_for=result.waiting_for, state=state
                    )
                    self.store.save(moved)
                    return
                stats.steps += 1
                step_id = result.step
        except Unavailable as error:
            # The step runs again later; what the steps before it did is kept.
            _log.warning(
                "journeys: %s at %s/%s: %s", instance.customer_id, journey.name, step_id, error
            )
            stats.retried += 1
            self.store.save(
                instance.moved(step_id=step_id, wake_at=now + self.retry_delay, state=state)
            )
            return
        _log.error(
            "journeys: %s in %s took %d steps without waiting; ended",
            instance.customer_id,
            journey.name,
            MAX_TRANSITIONS,
        )
        self._save(self._end(instance.moved(state=state), "exited", "loop", now), stats)

    def _save(self, instance: Instance, stats: RunStats) -> None:
        if self.store.save(instance) is not None and instance.status != "active":
            stats.ended += 1

    def _run_step(
        self,
        journey: Journey,
        instance: Instance,
        step: Step,
        state: dict[str, Any],
        now: datetime,
        stats: RunStats,
    ) -> _Next | _Wait:
        following = journey.following(step.id)
        if isinstance(step, WaitStep):
            return self._wait(step, state, now, following)
        if isinstance(step, DecideStep):
            return self._decide(journey, instance, step, state, stats, following)
        if isinstance(step, SendStep):
            return self._send(journey, instance, step, state, now, stats, following)
        if isinstance(step, BranchStep):
            return self._branch(journey, instance, step, state, following)
        if isinstance(step, UpdateProfileStep):
            self.store.set_attributes(instance.customer_id, step.set)
            return _Next(step.next or following)
        raise AssertionError(f"unknown step {step!r}")

    @staticmethod
    def _wait(
        step: WaitStep, state: dict[str, Any], now: datetime, following: str | None
    ) -> _Next | _Wait:
        waiting = state.get("wait")
        if waiting is None or waiting.get("step") != step.id:
            length = step.duration if step.duration is not None else step.timeout
            assert length is not None  # the loader requires one
            until = now + length
            state["wait"] = {"step": step.id, "until": until.timestamp()}
            return _Wait(until, step.until)
        resumed = state.get("resumed")
        if step.until is not None and resumed is not None and resumed.get("step") == step.id:
            state.pop("wait", None)
            state.pop("resumed", None)
            return _Next(step.on_event or step.next or following)
        until = datetime.fromtimestamp(float(waiting["until"]), UTC)
        if now < until:
            return _Wait(until, step.until)
        state.pop("wait", None)
        state.pop("resumed", None)
        return _Next((step.on_timeout if step.until else None) or step.next or following)

    def _decide(
        self,
        journey: Journey,
        instance: Instance,
        step: DecideStep,
        state: dict[str, Any],
        stats: RunStats,
        following: str | None,
    ) -> _Next:
        visits: dict[str, int] = state.setdefault("visits", {})
        visit = visits.get(step.id, 0) + 1
        decision = self.decisions.decide(
            request_for(
                step,
                customer_id=instance.customer_id,
                journey=journey.name,
                idempotency_key=f"{instance.instance_id}:{step.id}:{visit}",
                context=decision_context(state),
            )
        )
        visits[step.id] = visit
        state.setdefault("decisions", {})[step.id] = decision.as_json()
        stats.decided += 1
        if not decision.sends:
            stats.no_send += 1
        if decision.sends and decision.decision_id is not None:
            assert decision.channel is not None
            assert decision.message is not None
            self.store.schedule_send(
                SendRecord(
                    decision_id=decision.decision_id,
                    instance_id=instance.instance_id,
                    customer_id=instance.customer_id,
                    step_id=step.id,
                    channel=decision.channel,
                    message=decision.message,
                    send_at=decision.send_at or self.clock(),
                    updated_at=self.clock(),
                )
            )
        return _Next(step.next or following)

    @staticmethod
    def _decide_step_of(journey: Journey, step: SendStep) -> str | None:
        if step.decision is not None:
            return step.decision
        latest = None
        for candidate in journey.steps:
            if candidate.id == step.id:
                return latest
            if isinstance(candidate, DecideStep):
                latest = candidate.id
        return latest

    def _send(
        self,
        journey: Journey,
        instance: Instance,
        step: SendStep,
        state: dict[str, Any],
        now: datetime,
        stats: RunStats,
        following: str | None,
    ) -> _Next | _Wait:
        onward = _Next(step.next or following)
        source = self._decide_step_of(journey, step)
        chosen = state.get("decisions", {}).get(source) if source else None
        if chosen is None:
            return onward
        decision = StepDecision.from_json(chosen)
        if not decision.sends or decision.decision_id is None:
            return onward
        decision_id = decision.decision_id
        record = self.store.send_record(decision_id)
        if record is None or record.status in FINAL_SEND_STATES:
            return onward
        if record.send_at > now:
            return _Wait(record.send_at)
        if record.status == "retry" and record.updated_at is not None:
            retry_at = record.updated_at + self.retry_delay * min(2 ** (record.attempts - 1), 32)
            if retry_at > now:
                return _Wait(retry_at)
        if record.status != "sending" and now - record.send_at > self.max_send_delay:
            # (A send in doubt may have gone out already: it is finished, not cancelled.)
            self.decisions.cancel(decision_id)
            self.store.finish_send(decision_id, "cancelled", now, detail="too late to send")
            return onward
        if record.status != "sending":
            verdict = self.decisions.check_send(decision_id)
            if not verdict.allowed:
                # The decision API has cancelled the decision and freed its cap.
                self.store.finish_send(decision_id, "blocked", now, detail=verdict.rule)
                stats.blocked += 1
                return onward
        claimed = self.store.claim_send(
            decision_id, self.runner_id, now, self.send_lease.total_seconds()
        )
        if claimed is None:
            return _Wait(now + self.send_lease)  # another runner is sending it right now
        return self._deliver(journey, instance, claimed, state, now, stats, onward)

    def _deliver(
        self,
        journey: Journey,
        instance: Instance,
        record: SendRecord,
        state: dict[str, Any],
        now: datetime,
        stats: RunStats,
        onward: _Next,
    ) -> _Next | _Wait:
        decision_id = record.decision_id
        channel = self.channels.get(record.channel)
        address = self.store.address(instance.customer_id, record.channel)
        problem = None
        if channel is None:
            problem = f"no {record.channel!r} channel is configured"
        elif address is None and record.channel in ADDRESS_FIELDS.values():
            problem = f"no {record.channel} address on file"
        if problem is not None or channel is None:
            self.store.finish_send(decision_id, "failed", now, detail=problem)
            self.decisions.cancel(decision_id)
            stats.failed += 1
            return onward
        variables = {
            **dict(state.get("trigger", {}).get("payload", {})),
            **self._values(instance.customer_id),
            "customer_id": instance.customer_id,
        }
        message = compose(
            self.renderer,
            self.links,
            message_id=decision_id,
            customer_id=instance.customer_id,
            message=record.message,
            channel=record.channel,
            to=address or "",
            variables=variables,
            metadata={
                "decision_id": decision_id,
                "journey": journey.name,
                "step": record.step_id,
                "message": record.message,
            },
        )
        try:
            receipt = channel.send(message)
        except SendFailed as error:
            if error.transient and record.attempts < self.max_send_attempts:
                self.store.finish_send(decision_id, "retry", now, detail=str(error))
                stats.retried += 1
                return _Wait(now + self.retry_delay * min(2 ** (record.attempts - 1), 32))
            self.store.finish_send(decision_id, "failed", now, detail=str(error))
            self.decisions.cancel(decision_id)
            stats.failed += 1
            return onward
        self.store.finish_send(decision_id, "sent", now, provider_id=receipt.provider_id)
        stats.sent += 1
        try:
            self.decisions.record_outcome(
                decision_id,
                event="delivered",
                occurred_at=now,
                outcome_id=f"{decision_id}:delivered",
            )
        except NudgeError as error:  # the message went out; the receipt is informational
            _log.warning("journeys: delivery of %s not recorded: %s", decision_id, error)
        return onward

    def _branch(
        self,
        journey: Journey,
        instance: Instance,
        step: BranchStep,
        state: dict[str, Any],
        following: str | None,
    ) -> _Next:
        values: dict[str, Any] | None = None
        for rule in step.rules:
            if rule.event is not None:
                if any(
                    seen["type"] == rule.event and all_hold(rule.where, seen.get("payload", {}))
                    for seen in state.get("events", [])
                ):
                    return _Next(rule.goto)
                continue
            if values is None:
                values = {
                    **dict(state.get("trigger", {}).get("payload", {})),
                    **self._values(instance.customer_id),
                }
            conditions = rule.features if rule.segment is None else journey.segments[rule.segment]
            if all_hold(conditions, values):
                return _Next(rule.goto)
        return _Next(step.otherwise or following)

    def _values(self, customer_id: str) -> dict[str, Any]:
        """The customer's features, overridden by the profile attributes journeys keep."""
        values: dict[str, Any] = {}
        if self.features is not None:
            values.update(
                {k: v for k, v in self.features.get(customer_id).values.items() if v is not None}
            )
        values.update(self.store.attributes(customer_id))
        return values


def _reachable(addresses: list[tuple[str, str]], channels: Mapping[str, Channel]) -> list[str]:
    """The channels the addresses reach; an ``ads`` channel matches on e-mail or phone hashes."""
    reached = [channel for channel, _ in addresses]
    if "ads" in channels and any(channel in ("email", "sms") for channel in reached):
        reached.append("ads")
    return reached


def _address(field: str, value: object) -> str | None:
    """An e-mail address (trimmed, domain lower-cased) or an E.164 number; None if not usable.

    >>> _address("email", " Ann.Lee+cart@Example.COM "), _address("email", "x@y\\r\\nBcc: z@w.org")
    ('Ann.Lee+cart@example.com', None)
    >>> _address("phone", "+44 7700 900123"), _address("phone", "07700 900123")
    ('+447700900123', None)
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if field == "email":
        if not _EMAIL.match(text) or any(ord(c) < 32 for c in text):
            return None
        local, domain = text.rsplit("@", 1)
        return f"{local}@{domain.lower()}"
    if field == "phone":
        digits = re.sub(r"[\s().-]", "", text)
        return digits if _PHONE.match(digits) else None
    return text if text and text.isprintable() and len(text) <= 4096 else None


def _began(instance: Instance) -> datetime | None:
    """When the journey began for the customer: the trigger event's time, or the entry for
    a score crossing; None for instances stored before the trigger's time was kept."""
    trigger = instance.state.get("trigger")
    if not isinstance(trigger, Mapping):
        return None
    occurred = trigger.get("occurred_at")
    if isinstance(occurred, str):
        return datetime.fromisoformat(occurred)
    return instance.entered_at if "score" in trigger else None
