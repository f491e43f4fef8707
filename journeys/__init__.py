"""Journeys: YAML journey definitions and their durable runner (see issue 6).

>>> sorted(load_journeys(DEFAULT_JOURNEYS_DIR))
['cart_abandonment', 'onboarding', 'winback']
"""

from pathlib import Path

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
    ScoreTrigger,
    SendStep,
    Step,
    Trigger,
    UpdateProfileStep,
    WaitStep,
    all_hold,
)
from journeys.errors import JourneyFileError
from journeys.loader import load_journey, load_journeys, parse_journey
from journeys.score_state import ScoreState, ScoreStateStore
from journeys.score_trigger import Crossing, Scorer, ScoreTriggers, next_state
from journeys.validation import validate_against

DEFAULT_JOURNEYS_DIR = Path(__file__).with_name("definitions")
"""The journeys that ship with Nudge."""

__all__ = [
    "DEFAULT_JOURNEYS_DIR",
    "OPERATORS",
    "BranchRule",
    "BranchStep",
    "CandidateSpec",
    "Condition",
    "Crossing",
    "DecideStep",
    "EntryRules",
    "ExitRule",
    "Journey",
    "JourneyFileError",
    "ScoreState",
    "ScoreStateStore",
    "ScoreTrigger",
    "ScoreTriggers",
    "Scorer",
    "SendStep",
    "Step",
    "Trigger",
    "UpdateProfileStep",
    "WaitStep",
    "all_hold",
    "load_journey",
    "load_journeys",
    "next_state",
    "parse_journey",
    "validate_against",
]
