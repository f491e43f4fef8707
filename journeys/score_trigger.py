"""Journeys that start when a model's score crosses a threshold, once per crossing.

A score trigger (``trigger: {score: {model: nudge-churn, above: 0.6,
reset_below: 0.4}}``) fires when a customer's score rises above ``above``
while the trigger is armed for them; it then stays disarmed until the score
falls below ``reset_below`` (hysteresis), so a score wobbling around the
threshold starts the journey once. Scores come from a :class:`Scorer` per
model (the MLflow champion on Feast features, see ``training.churn``), on a
schedule for every customer (``nudge journeys score``) and in real time for
one customer when the runner consumes an event of theirs.

>>> trigger = ScoreTrigger("nudge-churn", above=0.6, reset_below=0.4)
>>> state, fired = None, []
>>> for score in (0.5, 0.61, 0.59, 0.62, 0.45, 0.39, 0.7):
...     state, crossed = next_state(trigger, state, score, now=0.0)
...     fired.append(crossed)
>>> fired
[False, True, False, False, False, False, True]
>>> state.crossings
2
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from features.errors import InvalidRequest, NudgeError
from journeys.definition import Journey, ScoreTrigger, all_hold
from journeys.score_state import ScoreState, ScoreStateStore
from journeys.store import Instance, JourneyStore
from journeys.yaml_nodes import NodeReader, join

__all__ = [
    "MODEL_NAME",
    "Crossing",
    "ScoreTriggers",
    "Scorer",
    "decision_context",
    "next_state",
    "parse_score_trigger",
]

_log = logging.getLogger("nudge.journeys")

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
"""A registered model's name as the registry takes it (``nudge-churn``)."""
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_KEYS = ("model", "above", "reset_below", "alias")


class Scorer(Protocol):
    """One model's scores for customers; customers it cannot score are left out."""

    def score(self, customer_ids: Sequence[str]) -> dict[str, float]: ...


def parse_score_trigger(r: NodeReader, node: Any, path: str) -> ScoreTrigger:
    """``{model, above, reset_below, alias}`` of a journey file; errors name file:line:field.

    >>> r = NodeReader("w.yaml")
    >>> parse_score_trigger(r, r.compose("{model: nudge-churn, above: 0.6, reset_below: 0.7}"),
    ...                     "trigger.score")
    Traceback (most recent call last):
    ...
    journeys.errors.JourneyFileError: w.yaml:1: trigger.score.reset_below must be below \
above (0.6), got 0.7
    """
    spec = r.mapping(node, path, _KEYS, ("model", "above", "reset_below"))
    model = r.string(spec["model"], join(path, "model"), "must be a registered model name")
    if not MODEL_NAME.fullmatch(model):
        r.fail(
            join(path, "model"),
            spec["model"],
            "must be a registered model name of letters, digits, _, - and .",
            model,
        )
    alias = "champion"
    if "alias" in spec:
        alias = r.string(spec["alias"], join(path, "alias"), "must be a model alias")
        if not _ALIAS.fullmatch(alias):
            r.fail(join(path, "alias"), spec["alias"], "must be a model alias like champion", alias)
    above = _probability(r, spec["above"], join(path, "above"), upper_open=True)
    reset_below = _probability(r, spec["reset_below"], join(path, "reset_below"))
    if reset_below >= above:
        expected = f"must be below above ({above})"
        r.fail(join(path, "reset_below"), spec["reset_below"], expected, reset_below)
    return ScoreTrigger(model=model, above=above, reset_below=reset_below, alias=alias)


def _probability(r: NodeReader, node: Any, path: str, *, upper_open: bool = False) -> float:
    value = r.scalar(node, path)
    if isinstance(value, bool) or not isinstance(value, int | float):
        r.fail(path, node, "must be a number between 0 and 1", value)
    number = float(value)
    if not (0.0 <= number < 1.0 if upper_open else 0.0 <= number <= 1.0):
        interval = "[0, 1)" if upper_open else "[0, 1]"
        r.fail(path, node, f"must be a score in {interval}", value)
    return number


def next_state(
    trigger: ScoreTrigger, state: ScoreState | None, score: float, now: float
) -> tuple[ScoreState, bool]:
    """The trigger's state after ``score``, and whether this score is a crossing.

    A customer never scored before is armed.
    """
    armed = True if state is None else state.armed
    crossings = 0 if state is None else state.crossings
    if armed and score > trigger.above:
        return ScoreState(score, False, crossings + 1, now), True
    if not armed and score < trigger.reset_below:
        armed = True
    return ScoreState(score, armed, crossings, now), False


@dataclass(frozen=True)
class Crossing:
    """A customer's score rose above a journey's threshold: the ``number``-th time."""

    journey: str
    customer_id: str
    score: float
    number: int
    entered: bool
    """Whether the customer entered the journey (entry rules may keep them out)."""


class ScoreTriggers:
    """The score-triggered journeys of ``journeys``, scored by ``scorers`` (by model name).

    ``values`` reads a customer's features for the trigger's ``features``
    conditions. Call :meth:`observe` inside the journey store's transaction so a
    crossing and its entry commit together.
    """

    def __init__(
        self,
        *,
        journeys: Mapping[str, Journey],
        store: JourneyStore,
        scorers: Mapping[str, Scorer],
        values: Callable[[str], Mapping[str, Any]] | None = None,
    ) -> None:
        self.journeys = {
            name: journey for name, journey in journeys.items() if journey.trigger.score is not None
        }
        self.store = store
        self.states = ScoreStateStore(store.db)
        self.scorers = dict(scorers)
        self.values = values
        for journey in self.journeys.values():
            model = journey.trigger.score.model  # type: ignore[union-attr]
            if model not in self.scorers:
                raise InvalidRequest(
                    "scorers",
                    f"must score model {model!r}, which journey {journey.name!r} triggers on",
                    sorted(self.scorers),
                )

    def observe(self, customer_ids: Sequence[str], now: datetime) -> list[Crossing]:
        """Score ``customer_ids`` for every score trigger, record it, enter on each crossing."""
        crossings: list[Crossing] = []
        by_model: dict[str, dict[str, float]] = {}
        for journey in self.journeys.values():
            trigger = journey.trigger.score
            assert trigger is not None
            if trigger.model not in by_model:
                try:
                    by_model[trigger.model] = self.scorers[trigger.model].score(customer_ids)
                except NudgeError as error:
                    # One model failing must not stall the event stream behind it; the
                    # scheduled pass scores these customers again.
                    who = ", ".join(customer_ids[:5])
                    _log.warning("journeys: %s could not score %s: %s", trigger.model, who, error)
                    by_model[trigger.model] = {}
            scores = by_model[trigger.model]
            for customer in customer_ids:
                if customer in scores:
                    crossing = self._observe_one(journey, trigger, customer, scores[customer], now)
                    if crossing is not None:
                        crossings.append(crossing)
        return crossings

    def score_all(
        self, customer_ids: Iterable[str], now: datetime, *, chunk: int = 500
    ) -> list[Crossing]:
        """The scheduled pass: every customer, ``chunk`` at a time, each chunk one commit."""
        crossings: list[Crossing] = []
        batch: list[str] = []
        for customer in customer_ids:
            batch.append(customer)
            if len(batch) >= chunk:
                crossings.extend(self._commit(batch, now))
                batch = []
        if batch:
            crossings.extend(self._commit(batch, now))
        return crossings

    def _commit(self, customer_ids: Sequence[str], now: datetime) -> list[Crossing]:
        with self.store.transaction():
            return self.observe(customer_ids, now)

    def _observe_one(
        self, journey: Journey, trigger: ScoreTrigger, customer: str, score: float, now: datetime
    ) -> Crossing | None:
        before = self.states.get(journey.name, customer)
        state, crossed = next_state(trigger, before, score, now.timestamp())
        features = journey.trigger.features
        if (
            crossed
            and features
            and self.values is not None
            and not all_hold(features, self.values(customer))
        ):
            # Not a crossing of this trigger: it stays armed for when they hold.
            state = ScoreState(score, True, state.crossings - 1, state.updated_at)
            crossed = False
        self.states.put(journey.name, customer, state)
        if not crossed:
            return None
        entered = self._enter(journey, trigger, customer, score, state.crossings, now)
        _log.info(
            "journeys: %s score %.3f crossed %s for %s (%s)",
            trigger.model,
            score,
            trigger.above,
            customer,
            "entered" if entered else "entry rules kept them out",
        )
        return Crossing(journey.name, customer, score, state.crossings, entered)

    def _enter(
        self,
        journey: Journey,
        trigger: ScoreTrigger,
        customer: str,
        score: float,
        number: int,
        now: datetime,
    ) -> bool:
        earlier = self.store.instances_of(customer, journey.name)
        if any(instance.status == "active" for instance in earlier):
            return False
        if earlier and not journey.entry.reentry:
            return False
        if earlier and now - max(i.entered_at for i in earlier) < journey.entry.reentry_after:
            return False
        # The crossing's number names the entry: the same crossing seen twice (a batch
        # and a real-time rescore racing) enters once.
        key = f"{journey.name}\0{customer}\0score:{trigger.model}:{number}"
        payload = {"trigger_model": trigger.model, "trigger_score": round(score, 6)}
        return self.store.enter(
            Instance(
                instance_id=hashlib.sha256(key.encode()).hexdigest()[:32],
                journey=journey.name,
                customer_id=customer,
                entered_at=now,
                step_id=journey.steps[0].id,
                wake_at=now,
                state={
                    "trigger": {
                        "score": {
                            "model": trigger.model,
                            "alias": trigger.alias,
                            "score": score,
                            "above": trigger.above,
                            "crossing": number,
                        },
                        "payload": payload,
                    },
                    "events": [],
                    "visits": {},
                    "decisions": {},
                },
            )
        )


def decision_context(state: Mapping[str, Any]) -> dict[str, float | str] | None:
    """What a decide step of a score-triggered instance tells the decision log: the score.

    >>> decision_context({"trigger": {"score": {"model": "nudge-churn", "score": 0.71}}})
    {'trigger_model': 'nudge-churn', 'trigger_score': 0.71}
    >>> decision_context({"trigger": {"event_id": "e1"}}) is None
    True
    """
    score = state.get("trigger", {}).get("score")
    if not isinstance(score, Mapping):
        return None
    return {"trigger_model": str(score["model"]), "trigger_score": float(score["score"])}
