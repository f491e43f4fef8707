"""Input checks shared by the policies and the engine, so each message is written once."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import TypeGuard

from features.errors import InvalidRequest

__all__ = ["check_candidates", "check_seed", "check_unit_interval", "is_finite_number"]


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
