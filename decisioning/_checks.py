"""Input checks shared by the policies and the engine, so each message is written once."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import TypeGuard

from decisioning.types import JointAction
from features.errors import InvalidRequest

__all__ = [
    "check_candidates",
    "check_finite",
    "check_joint_action",
    "check_joint_candidates",
    "check_non_negative",
    "check_positive",
    "check_priors",
    "check_seed",
    "check_unit_interval",
    "is_finite_number",
]

_MISSING = object()


def check_candidates(candidates: object, known: Collection[str]) -> tuple[str, ...]:
    """``candidates`` as a tuple, if it is a non-empty, duplicate-free subset of ``known``."""
    # A bare string is a sequence of characters, never a list of actions.
    if isinstance(candidates, str) or not isinstance(candidates, Collection):
        raise _bad_candidates(candidates, known)
    chosen = tuple(candidates)
    if (
        not chosen
        or len(set(chosen)) != len(chosen)
        or not all(isinstance(a, str) and a in known for a in chosen)
    ):
        raise _bad_candidates(list(chosen), known)
    return chosen


def _bad_candidates(got: object, known: Collection[str]) -> InvalidRequest:
    expected = f"must be a non-empty list of distinct actions, each one of {sorted(known)}"
    return InvalidRequest("candidates", expected, got)


def check_unit_interval(field: str, value: object) -> float:
    """``value`` as a float, if it is a number in [0, 1] (NaN fails the comparison)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise InvalidRequest(field, "must be a number in [0, 1]", value)
    return float(value)


def check_seed(seed: object) -> int:
    """``seed`` if numpy can seed a generator with it."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidRequest("seed", "must be a non-negative integer", seed)
    return seed


def is_finite_number(value: object) -> TypeGuard[int | float]:
    """True for an int or a finite float (bools are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_joint_candidates(candidates: object) -> tuple[tuple[JointAction, ...], tuple[str, ...]]:
    """``candidates`` and their keys, if it is a non-empty sequence of distinct joint actions."""
    if not isinstance(candidates, Sequence) or isinstance(candidates, str):
        raise _bad_joint_candidates(candidates)
    chosen = tuple(candidates)
    if not chosen or not all(isinstance(a, JointAction) for a in chosen):
        raise _bad_joint_candidates(list(chosen))
    keys = tuple(a.key for a in chosen)
    if len(set(keys)) != len(keys):
        raise _bad_joint_candidates(list(keys))
    return chosen, keys


def _bad_joint_candidates(got: object) -> InvalidRequest:
    return InvalidRequest(
        "candidates", "must be a non-empty sequence of JointActions with distinct keys", got
    )


def check_joint_action(field: str, action: object) -> JointAction:
    """``action`` if it is a JointAction."""
    if not isinstance(action, JointAction):
        raise InvalidRequest(field, "must be a JointAction", action)
    return action


def check_priors(priors: Mapping[str, object], keys: Sequence[str]) -> list[float]:
    """The prior (an expected reward: any finite number) of each key, in order."""
    values = []
    for key in keys:
        value = priors.get(key, _MISSING)
        # x - x is 0.0 for a finite float only (NaN and infinities give NaN).
        if type(value) is not float or value - value != 0.0:
            if value is _MISSING:
                raise InvalidRequest(f"priors.{key}", "must be given for every candidate")
            if not is_finite_number(value):
                raise InvalidRequest(f"priors.{key}", "must be a finite number", value)
            value = float(value)
        values.append(value)
    return values


def check_finite(field: str, value: object) -> float:
    """``value`` as a float, if it is a finite number."""
    if not is_finite_number(value):
        raise InvalidRequest(field, "must be a finite number", value)
    return float(value)


def check_positive(field: str, value: object) -> float:
    """``value`` as a float, if it is a finite number > 0."""
    if not is_finite_number(value) or not value > 0:
        raise InvalidRequest(field, "must be a finite number > 0", value)
    return float(value)


def check_non_negative(field: str, value: object) -> float:
    """``value`` as a float, if it is a finite number >= 0."""
    if not is_finite_number(value) or not value >= 0:
        raise InvalidRequest(field, "must be a finite number >= 0", value)
    return float(value)
