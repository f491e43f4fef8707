"""Checking a journey against the decision configuration it will ask for decisions under.

The loader checks a journey on its own; whether its candidate messages, their
channels and its send-time slots exist depends on the deployment's
:class:`~decisioning.config.DecisionConfig`, so it is a separate check, run when
both are known (e.g. at start-up).

>>> from decisioning.config import DEFAULT_CONFIG, load_decision_config
>>> from journeys.loader import parse_journey
>>> journey = parse_journey('''
... journey: hello
... trigger: {event: signup}
... steps:
...   - id: pick
...     decide: {candidates: [{message: welcome, channels: [sms]}]}
... ''', "hello.yaml")
>>> validate_against(journey, load_decision_config(DEFAULT_CONFIG))
Traceback (most recent call last):
...
journeys.errors.JourneyFileError: hello.yaml:6: steps[0].decide.candidates[0].channels[0] \
must be a channel that welcome may go on (email, push), got 'sms'
"""

from __future__ import annotations

from decisioning.config import DecisionConfig
from journeys.definition import DecideStep, Journey
from journeys.errors import JourneyFileError, line_of

__all__ = ["validate_against"]


def validate_against(journey: Journey, config: DecisionConfig) -> None:
    """Every decide step's messages, channels and slots exist in ``config``; else raise.

    Raises :class:`~journeys.errors.JourneyFileError` at the first unknown one,
    with the file, line and field path of the candidate or slot.
    """
    slot_names = [slot.name for slot in config.slots]
    for i, step in enumerate(journey.steps):
        if not isinstance(step, DecideStep):
            continue
        path = f"steps[{i}].decide"
        for j, candidate in enumerate(step.candidates):
            where = f"{path}.candidates[{j}]"
            spec = config.messages.get(candidate.message)
            if spec is None:
                known = ", ".join(sorted(config.messages))
                raise _error(
                    journey,
                    f"{where}.message",
                    f"must be a message of the decision configuration ({known})",
                    candidate.message,
                )
            for k, channel in enumerate(candidate.channels or ()):
                if channel not in spec.channels:
                    allowed = ", ".join(spec.channels)
                    raise _error(
                        journey,
                        f"{where}.channels[{k}]",
                        f"must be a channel that {spec.name} may go on ({allowed})",
                        channel,
                    )
        for k, slot in enumerate(step.slots or ()):
            if slot not in slot_names:
                raise _error(
                    journey,
                    f"{path}.slots[{k}]",
                    f"must be a slot of the decision configuration ({', '.join(slot_names)})",
                    slot,
                )


def _error(journey: Journey, path: str, expected: str, got: object) -> JourneyFileError:
    return JourneyFileError(journey.source, line_of(journey.lines, path), path, expected, got)
