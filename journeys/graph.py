"""Where each step of a journey can go next, and the checks on that graph.

A step goes to its ``next`` (or the step below it); a branch to each rule's
``goto`` and to ``otherwise`` (or the step below); a wait until an event to
``on_event`` and ``on_timeout`` (each defaulting like ``next``). After the last
step the journey ends.

>>> from datetime import timedelta
>>> from journeys.definition import Journey, Trigger, WaitStep, UpdateProfileStep
>>> journey = Journey("j", Trigger("signup"), (
...     WaitStep("pause", duration=timedelta(hours=1)),
...     UpdateProfileStep("tag", {"seen": True}, next="pause"),
... ))
>>> transitions(journey, 1)
[('pause', 'steps[1].next')]
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from journeys.definition import BranchStep, DecideStep, Journey, SendStep, WaitStep
from journeys.errors import JourneyFileError, line_of

__all__ = ["check_graph", "transitions"]


def transitions(journey: Journey, index: int) -> list[tuple[str, str | None]]:
    """``(step id, field path)`` of each step that step ``index`` can go to.

    The path is the field naming the target, or None for the step below.
    """
    step = journey.steps[index]
    path = f"steps[{index}]"
    below = journey.steps[index + 1].id if index + 1 < len(journey.steps) else None

    def default() -> list[tuple[str, str | None]]:
        if step.kind != "branch" and step.next is not None:
            return [(step.next, f"{path}.next")]
        return [] if below is None else [(below, None)]

    if isinstance(step, BranchStep):
        result: list[tuple[str, str | None]] = [
            (rule.goto, f"{path}.branch.rules[{i}].goto") for i, rule in enumerate(step.rules)
        ]
        if step.otherwise is not None:
            return [*result, (step.otherwise, f"{path}.branch.otherwise")]
        return result + default()
    if isinstance(step, WaitStep) and step.until is not None:
        result = []
        for target, key in ((step.on_event, "on_event"), (step.on_timeout, "on_timeout")):
            result += default() if target is None else [(target, f"{path}.wait.{key}")]
        return result
    return default()


def check_graph(journey: Journey, references: Sequence[tuple[str, str]]) -> None:
    """Jumps name steps, sends have a decide step above, and every loop of steps has a wait.

    ``references`` are the ``(field path, step id)`` of every jump in the file.
    """
    ids = [step.id for step in journey.steps]
    for path, target in references:
        if target not in ids:
            raise _error(journey, path, f"must name a step ({', '.join(ids)})", target)
    _check_sends(journey)
    _check_loops(journey)


def _error(journey: Journey, path: str, expected: str, *got: object) -> JourneyFileError:
    return JourneyFileError(journey.source, line_of(journey.lines, path), path, expected, *got)


def _check_sends(journey: Journey) -> None:
    """A send sends the decision of a decide step above it: below, it has not been made yet."""
    decides = {step.id: i for i, step in enumerate(journey.steps) if isinstance(step, DecideStep)}
    above: list[str] = []
    for i, step in enumerate(journey.steps):
        if isinstance(step, DecideStep):
            above.append(step.id)
        if not isinstance(step, SendStep):
            continue
        if step.decision is None and not above:
            raise _error(journey, f"steps[{i}].send", "needs a decide step above it")
        if step.decision is not None and step.decision not in above:
            known = ", ".join(above) if above else "there are none"
            if step.decision in decides:
                known += f"; {step.decision} is steps[{decides[step.decision]}], below it"
            raise _error(
                journey,
                f"steps[{i}].send.decision",
                f"must name a decide step above it ({known})",
                step.decision,
            )


def _check_loops(journey: Journey) -> None:
    """A loop through steps that never wait would run forever without pausing."""
    index = {step.id: i for i, step in enumerate(journey.steps)}
    edges = {
        i: [(index[target], path) for target, path in transitions(journey, i)]
        for i, step in enumerate(journey.steps)
        if not isinstance(step, WaitStep)
    }
    for start in edges:
        edges[start] = [(j, path) for j, path in edges[start] if j in edges]
    done: set[int] = set()
    for start in edges:
        if start in done:
            continue
        # Depth first without recursion: `trail` is the path walked from `start`.
        trail = [start]
        pending = [iter(edges[start])]
        while pending:
            item = next(pending[-1], None)
            if item is None:
                done.add(trail.pop())
                pending.pop()
                continue
            target = item[0]
            if target in trail:
                raise _loop_error(journey, edges, [*trail[trail.index(target) :], target])
            if target not in done:
                trail.append(target)
                pending.append(iter(edges[target]))


def _loop_error(
    journey: Journey, edges: dict[int, list[tuple[int, str | None]]], loop: list[int]
) -> JourneyFileError:
    # The step below is always further down, so a loop has a jump back up (or to itself):
    # that jump is the field to blame.
    back = [
        path
        for here, there in itertools.pairwise(loop)
        for target, path in edges[here]
        if target == there and path is not None and there <= here
    ]
    names = " -> ".join(journey.steps[i].id for i in loop)
    return _error(journey, back[0], f"makes a loop with no wait step in it ({names})")
