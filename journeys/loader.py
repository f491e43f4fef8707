"""Journey definitions from YAML files, checked before any customer enters them.

Every mistake is a :class:`~journeys.errors.JourneyFileError` naming the file,
the line and the field path, e.g. ``journeys/cart.yaml:14: steps[2].wait.timeout
must be a duration like 30m, 2h, 1d, got 'soon'``. The first mistake found is
reported.

The format (one journey per file)::

    journey: cart_abandonment            # the name: required, unique among the files
    description: Nudge customers who left something in their cart.
    trigger:                             # required: what starts the journey
      event: add_to_cart                 # required
      where: {cart_value: {gte: 20}}     # conditions on the event's payload
      features: {recency: {lte: 6}}      # conditions on the customer's features
      # or, instead of event and where, a model's score crossing a threshold once
      # (journeys.score_trigger): score: {model: nudge-churn, above: 0.6, reset_below: 0.4}
    entry: {reentry: true, reentry_after: 7d}   # default: enter once
    goal: purchase                       # or {event: purchase, where: {...}}
    exit:                                # leave on an event, or after a time
      - {event: unsubscribe}
      - {after: 14d}
    segments:                            # named conditions on features, for branches
      big_cart: {cart_value: {gte: 100}}
    steps:                               # required, non-empty; run in order
      - id: wait_1h
        wait: 1h                         # or {duration: 1h}
      - id: first_nudge
        decide:
          candidates:                    # required: messages of the decision config
            - {message: cart_reminder, channels: [email, push]}
            - discount_10                # every channel the message may go on
          slots: [now, "+1h", "18:00"]   # default: all the config's slots
          allow_no_send: true            # default true
      - id: send_first
        send: {}                         # the decide step above; or {decision: first_nudge}
      - id: wait_click
        wait: {until: email_click, timeout: 24h, on_event: tag, on_timeout: check}
      - id: check
        branch:
          rules:                         # the first that matches wins
            - {event: email_click, goto: tag}
            - {features: {vip: true}, goto: tag}
            - {segment: big_cart, goto: tag}
          otherwise: tag                 # default: the next step
      - id: tag
        update_profile: {set: {cart_reminded: true}}
        next: wait_1h                    # any step but a branch may jump

Conditions are ``{field: value}`` (equality) or ``{field: {op: operand, ...}}``
with the operators ``eq ne gt gte lt lte in not_in exists``. Durations are a
number and a unit: ``30s``, ``15m``, ``2h``, ``7d``, ``2w``; at most 366 days.

Besides the shape of each value, the loader checks that step ids are unique,
that every ``next``, ``goto``, ``on_event``, ``on_timeout`` and ``otherwise``
names a step, that each send step has a decide step above it (``decision:``
picks one of those above, not one below: its decision is not made yet), that
branch segments are defined, and that no loop of steps runs without a wait step
in it. Whether the messages, channels and slots exist is a question
for the decision configuration: :func:`journeys.validate_against`.

>>> journey = parse_journey('''
... journey: hello
... trigger: {event: signup}
... steps:
...   - {id: pause, wait: 2h}
...   - {id: pick, decide: {candidates: [welcome]}}
...   - {id: go, send: {}}
... ''', "hello.yaml")
>>> [step.kind for step in journey.steps], journey.step("pause").duration
(['wait', 'decide', 'send'], datetime.timedelta(seconds=7200))
>>> journey.lines["steps[1].decide.candidates[0]"]
6
>>> parse_journey("journey: hello\\ntrigger: {event: signup}\\nsteps: []\\n", "hello.yaml")
Traceback (most recent call last):
...
journeys.errors.JourneyFileError: hello.yaml:3: steps must not be empty
"""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from decisioning.slots import parse_slot
from features.errors import InvalidRequest
from journeys.definition import (
    OPERATORS,
    BranchRule,
    BranchStep,
    CandidateSpec,
    Condition,
    DecideStep,
    EntryRules,
    ExitRule,
    Journey,
    Scalar,
    SendStep,
    Step,
    Trigger,
    UpdateProfileStep,
    WaitStep,
)
from journeys.errors import JourneyFileError
from journeys.graph import check_graph
from journeys.score_trigger import parse_score_trigger
from journeys.yaml_nodes import NodeReader, join

__all__ = ["load_journey", "load_journeys", "parse_journey"]

_TOP = ("journey", "description", "trigger", "entry", "goal", "exit", "segments", "steps")
_KINDS = ("wait", "decide", "send", "branch", "update_profile")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_NAME_TEXT = "must be a name of letters, digits, _, - and ."
_NUMERIC_OPS = ("gt", "gte", "lt", "lte")


def load_journey(path: Path) -> Journey:
    """The journey in the YAML file ``path``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidRequest(
            "path", f"must be a readable UTF-8 journey file ({err})", str(path)
        ) from err
    return parse_journey(text, str(path))


def load_journeys(directory: Path) -> dict[str, Journey]:
    """Every journey in the ``*.yaml`` and ``*.yml`` files of ``directory``, by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidRequest("directory", "must be a directory of journey files", str(directory))
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    journeys: dict[str, Journey] = {}
    for file in files:
        journey = load_journey(file)
        if journey.name in journeys:
            raise JourneyFileError(
                journey.source,
                journey.lines.get("journey"),
                "journey",
                f"must be unique; {journeys[journey.name].source} already defines it",
                journey.name,
            )
        journeys[journey.name] = journey
    return journeys


def parse_journey(text: str, source: str) -> Journey:
    """The journey that the YAML ``text`` defines; ``source`` names it in errors."""
    return _Parser(NodeReader(source)).journey(text)


class _Parser:
    def __init__(self, reader: NodeReader) -> None:
        self.r = reader
        self.references: list[tuple[str, str]] = []
        """(path, step id) of every jump, checked once all the steps are known."""

    def journey(self, text: str) -> Journey:
        r = self.r
        root = r.compose(text)
        if not isinstance(root, yaml.MappingNode):
            r.fail("", root, f"the file must be a mapping with the keys {', '.join(_TOP)}")
        doc = r.mapping(root, "", _TOP, required=("journey", "trigger", "steps"))
        name = r.string(doc["journey"], "journey", _NAME_TEXT)
        if not _NAME.fullmatch(name):
            r.fail("journey", doc["journey"], _NAME_TEXT, name)
        trigger = self.trigger(doc["trigger"])
        entry = self.entry(doc["entry"]) if "entry" in doc else EntryRules()
        description = ""
        if "description" in doc and r.scalar(doc["description"], "description") is not None:
            description = r.string(doc["description"], "description")
        goal, goal_where = self.goal(doc["goal"]) if "goal" in doc else (None, ())
        exits = (
            tuple(
                self.exit(item, f"exit[{i}]")
                for i, item in enumerate(r.sequence(doc["exit"], "exit", empty_ok=True))
            )
            if "exit" in doc
            else ()
        )
        segments: dict[str, tuple[Condition, ...]] = {}
        if "segments" in doc:
            for key, _, value in r.entries(doc["segments"], "segments"):
                segments[key] = self.conditions(value, join("segments", key))
        steps = self.steps(doc["steps"], segments)
        journey = Journey(
            name=name,
            trigger=trigger,
            steps=steps,
            entry=entry,
            goal=goal,
            goal_where=goal_where,
            exits=exits,
            segments=MappingProxyType(segments),
            description=description,
            source=r.source,
            lines=MappingProxyType(r.lines),
        )
        check_graph(journey, self.references)
        return journey

    # -- the journey's settings -------------------------------------------------------------

    def trigger(self, node: Any) -> Trigger:
        spec = self.r.mapping(node, "trigger", ("event", "where", "features", "score"))
        if "score" in spec:
            if "event" in spec:
                self.r.fail("trigger.score", spec["score"], "must not be given with trigger.event")
            if "where" in spec:
                self.r.fail("trigger.where", spec["where"], "is only allowed with trigger.event")
            return Trigger(
                event=None,
                features=self.optional_conditions(spec, "trigger", "features"),
                score=parse_score_trigger(self.r, spec["score"], "trigger.score"),
            )
        if "event" not in spec:
            self.r.fail("trigger.event", node, "is required (or trigger.score)")
        return Trigger(
            event=self.r.string(spec["event"], "trigger.event", "must be an event name"),
            where=self.optional_conditions(spec, "trigger", "where"),
            features=self.optional_conditions(spec, "trigger", "features"),
        )

    def entry(self, node: Any) -> EntryRules:
        spec = self.r.mapping(node, "entry", ("reentry", "reentry_after"))
        reentry = self.r.boolean(spec["reentry"], "entry.reentry") if "reentry" in spec else False
        after = EntryRules().reentry_after
        if "reentry_after" in spec:
            if not reentry:
                self.r.fail("entry.reentry_after", spec["reentry_after"], "needs reentry: true")
            after = self.r.duration(spec["reentry_after"], "entry.reentry_after", zero_ok=True)
        return EntryRules(reentry=reentry, reentry_after=after)

    def goal(self, node: Any) -> tuple[str, tuple[Condition, ...]]:
        if isinstance(node, yaml.ScalarNode):
            return self.r.string(node, "goal", "must be an event name or {event, where}"), ()
        spec = self.r.mapping(node, "goal", ("event", "where"), ("event",))
        event = self.r.string(spec["event"], "goal.event", "must be an event name")
        return event, self.optional_conditions(spec, "goal", "where")

    def exit(self, node: Any, path: str) -> ExitRule:
        spec = self.r.mapping(node, path, ("event", "where", "after"))
        if ("event" in spec) == ("after" in spec):
            self.r.fail(path, node, "must have exactly one of event and after")
        if "after" in spec:
            if "where" in spec:
                self.r.fail(join(path, "where"), spec["where"], "is only allowed with event")
            return ExitRule(after=self.r.duration(spec["after"], join(path, "after")))
        return ExitRule(
            event=self.r.string(spec["event"], join(path, "event"), "must be an event name"),
            where=self.optional_conditions(spec, path, "where"),
        )

    # -- conditions -------------------------------------------------------------------------

    def optional_conditions(
        self, spec: dict[str, Any], path: str, key: str
    ) -> tuple[Condition, ...]:
        return self.conditions(spec[key], join(path, key)) if key in spec else ()

    def conditions(self, node: Any, path: str) -> tuple[Condition, ...]:
        """``{field: value}`` (equality) or ``{field: {op: operand, ...}}``."""
        result: list[Condition] = []
        for name, _, value in self.r.entries(node, path):
            where = join(path, name)
            if isinstance(value, yaml.SequenceNode):
                self.r.fail(where, value, "must be a value or {operator: operand}; a list needs in")
            if not isinstance(value, yaml.MappingNode):
                result.append(Condition(name, "eq", self.r.scalar(value, where)))
                continue
            comparisons = self.r.entries(value, where)
            if not comparisons:
                self.r.fail(where, value, f"must have an operator: {', '.join(OPERATORS)}")
            for op, op_node, operand in comparisons:
                if op not in OPERATORS:
                    self.r.fail(
                        join(where, op), op_node, f"is not an operator; use {', '.join(OPERATORS)}"
                    )
                result.append(Condition(name, op, self.operand(op, operand, join(where, op))))
        return tuple(result)

    def operand(self, op: str, node: Any, path: str) -> Scalar | tuple[Scalar, ...]:
        if op in ("in", "not_in"):
            return tuple(
                self.r.scalar(item, f"{path}[{i}]")
                for i, item in enumerate(self.r.sequence(node, path))
            )
        value = self.r.scalar(node, path)
        if op == "exists" and not isinstance(value, bool):
            self.r.fail(path, node, "must be true or false", value)
        if op in _NUMERIC_OPS and (isinstance(value, bool) or not isinstance(value, int | float)):
            self.r.fail(path, node, "must be a number", value)
        return value

    # -- steps ------------------------------------------------------------------------------

    def steps(self, node: Any, segments: dict[str, tuple[Condition, ...]]) -> tuple[Step, ...]:
        items = self.r.sequence(node, "steps")
        steps: list[Step] = []
        first_use: dict[str, str] = {}
        for i, item in enumerate(items):
            path = f"steps[{i}]"
            step = self.step(item, path, segments)
            if step.id in first_use:
                self.r.fail(
                    f"{path}.id",
                    self.r.lines[f"{path}.id"],
                    f"must be unique; {first_use[step.id]} already uses it",
                    step.id,
                )
            first_use[step.id] = path
            steps.append(step)
        return tuple(steps)

    def step(self, node: Any, path: str, segments: dict[str, tuple[Condition, ...]]) -> Step:
        r = self.r
        spec = r.mapping(node, path, ("id", *_KINDS, "next"), ("id",))
        step_id = r.string(spec["id"], f"{path}.id", "must be a step id")
        if not _NAME.fullmatch(step_id):
            r.fail(f"{path}.id", spec["id"], _NAME_TEXT, step_id)
        kinds = [key for key in spec if key in _KINDS]
        if not kinds:
            r.fail(path, node, f"must have one of {', '.join(_KINDS)}")
        if len(kinds) > 1:
            r.fail(join(path, kinds[1]), spec[kinds[1]], f"is a second kind; {kinds[0]} is given")
        kind = kinds[0]
        next_id = None
        if "next" in spec:
            if kind == "branch":
                r.fail(f"{path}.next", spec["next"], "is not allowed on a branch; use otherwise")
            next_id = self.reference(spec["next"], f"{path}.next")
        where = join(path, kind)
        body = spec[kind]
        if kind == "wait":
            return self.wait(step_id, body, where, next_id)
        if kind == "decide":
            return self.decide(step_id, body, where, next_id)
        if kind == "send":
            return self.send(step_id, body, where, next_id)
        if kind == "branch":
            return self.branch(step_id, body, where, segments)
        return self.update_profile(step_id, body, where, next_id)

    def reference(self, node: Any, path: str) -> str:
        step_id = self.r.string(node, path, "must be a step id")
        self.references.append((path, step_id))
        return step_id

    def wait(self, step_id: str, node: Any, path: str, next_id: str | None) -> WaitStep:
        r = self.r
        if isinstance(node, yaml.ScalarNode):  # `wait: 1h`
            r.lines.setdefault(join(path, "duration"), r.lines[path])
            return WaitStep(step_id, duration=r.duration(node, path), next=next_id)
        keys = ("duration", "until", "where", "timeout", "on_event", "on_timeout")
        spec = r.mapping(node, path, keys)
        if ("duration" in spec) == ("until" in spec):
            r.fail(path, node, "must have exactly one of duration and until")
        if "duration" in spec:
            for key in keys[2:]:
                if key in spec:
                    r.fail(join(path, key), spec[key], "is only allowed with until")
            return WaitStep(
                step_id, duration=r.duration(spec["duration"], join(path, "duration")), next=next_id
            )
        if "timeout" not in spec:
            r.fail(join(path, "timeout"), node, "is required with until (how long to wait)")
        return WaitStep(
            step_id,
            until=r.string(spec["until"], join(path, "until"), "must be an event name"),
            where=self.optional_conditions(spec, path, "where"),
            timeout=r.duration(spec["timeout"], join(path, "timeout")),
            on_event=self.optional_reference(spec, path, "on_event"),
            on_timeout=self.optional_reference(spec, path, "on_timeout"),
            next=next_id,
        )

    def optional_reference(self, spec: dict[str, Any], path: str, key: str) -> str | None:
        return self.reference(spec[key], join(path, key)) if key in spec else None

    def decide(self, step_id: str, node: Any, path: str, next_id: str | None) -> DecideStep:
        r = self.r
        spec = r.mapping(node, path, ("candidates", "slots", "allow_no_send"), ("candidates",))
        candidates_path = join(path, "candidates")
        candidates: list[CandidateSpec] = []
        seen: set[str] = set()
        for i, item in enumerate(r.sequence(spec["candidates"], candidates_path)):
            candidate = self.candidate(item, f"{candidates_path}[{i}]")
            if candidate.message in seen:
                r.fail(f"{candidates_path}[{i}]", item, "repeats a message", candidate.message)
            seen.add(candidate.message)
            candidates.append(candidate)
        slots = None
        if "slots" in spec:
            slots = tuple(
                self.slot(item, f"{path}.slots[{i}]")
                for i, item in enumerate(r.sequence(spec["slots"], join(path, "slots")))
            )
            for i, slot in enumerate(slots):
                if slot in slots[:i]:
                    r.fail(
                        f"{path}.slots[{i}]", r.lines[f"{path}.slots[{i}]"], "repeats a slot", slot
                    )
        allow_no_send = (
            r.boolean(spec["allow_no_send"], join(path, "allow_no_send"))
            if "allow_no_send" in spec
            else True
        )
        return DecideStep(step_id, tuple(candidates), slots, allow_no_send, next_id)

    def candidate(self, node: Any, path: str) -> CandidateSpec:
        r = self.r
        if isinstance(node, yaml.ScalarNode):  # `- discount_10`: every channel it may go on
            r.lines.setdefault(join(path, "message"), r.lines[path])
            return CandidateSpec(
                r.string(node, path, "must be a message name or {message, channels}")
            )
        spec = r.mapping(node, path, ("message", "channels"), ("message",))
        message = r.string(spec["message"], join(path, "message"), "must be a message name")
        if "channels" not in spec:
            return CandidateSpec(message)
        channels_path = join(path, "channels")
        channels = tuple(
            r.string(item, f"{channels_path}[{i}]", "must be a channel name")
            for i, item in enumerate(r.sequence(spec["channels"], channels_path))
        )
        for i, channel in enumerate(channels):
            if channel in channels[:i]:
                r.fail(
                    f"{channels_path}[{i}]",
                    r.lines[f"{channels_path}[{i}]"],
                    "repeats a channel",
                    channel,
                )
        return CandidateSpec(message, channels)

    def slot(self, node: Any, path: str) -> str:
        expected = 'must be a slot like now, "+1h" or "18:00" (quote times)'
        text = self.r.string(node, path, expected)
        try:
            parse_slot(text)
        except InvalidRequest:
            self.r.fail(path, node, expected, text)
        return text

    def send(self, step_id: str, node: Any, path: str, next_id: str | None) -> SendStep:
        if isinstance(node, yaml.ScalarNode) and self.r.scalar(node, path) is None:
            return SendStep(step_id, next=next_id)  # `send:` alone
        spec = self.r.mapping(node, path, ("decision",))
        decision = (
            self.r.string(spec["decision"], join(path, "decision"), "must be a decide step id")
            if "decision" in spec
            else None
        )
        return SendStep(step_id, decision, next_id)

    def branch(
        self, step_id: str, node: Any, path: str, segments: dict[str, tuple[Condition, ...]]
    ) -> BranchStep:
        r = self.r
        spec = r.mapping(node, path, ("rules", "otherwise"), ("rules",))
        rules_path = join(path, "rules")
        rules = tuple(
            self.rule(item, f"{rules_path}[{i}]", segments)
            for i, item in enumerate(r.sequence(spec["rules"], rules_path))
        )
        return BranchStep(step_id, rules, self.optional_reference(spec, path, "otherwise"))

    def rule(self, node: Any, path: str, segments: dict[str, tuple[Condition, ...]]) -> BranchRule:
        r = self.r
        spec = r.mapping(node, path, ("event", "where", "features", "segment", "goto"), ("goto",))
        tests = [key for key in ("event", "features", "segment") if key in spec]
        if len(tests) != 1:
            r.fail(path, node, "must have exactly one of event, features and segment")
        if "where" in spec and "event" not in spec:
            r.fail(join(path, "where"), spec["where"], "is only allowed with event")
        goto = self.reference(spec["goto"], join(path, "goto"))
        if "event" in spec:
            return BranchRule(
                goto,
                event=r.string(spec["event"], join(path, "event"), "must be an event name"),
                where=self.optional_conditions(spec, path, "where"),
            )
        if "features" in spec:
            return BranchRule(
                goto, features=self.conditions(spec["features"], join(path, "features"))
            )
        segment = r.string(spec["segment"], join(path, "segment"), "must be a segment name")
        if segment not in segments:
            known = ", ".join(segments) if segments else "none are defined"
            r.fail(
                join(path, "segment"),
                spec["segment"],
                f"must be one of segments ({known})",
                segment,
            )
        return BranchRule(goto, segment=segment)

    def update_profile(
        self, step_id: str, node: Any, path: str, next_id: str | None
    ) -> UpdateProfileStep:
        r = self.r
        spec = r.mapping(node, path, ("set",), ("set",))
        values = {
            key: r.scalar(value, join(join(path, "set"), key))
            for key, _, value in r.entries(spec["set"], join(path, "set"))
        }
        if not values:
            r.fail(join(path, "set"), spec["set"], "must set at least one attribute")
        return UpdateProfileStep(step_id, MappingProxyType(values), next_id)
