"""Checks that turn array-like inputs into numpy arrays or say which argument is wrong.

>>> finite_numbers("rewards", [0, 1.5], length=None)
array([0. , 1.5])
>>> one_dimensional("p", [0.1], length=2, length_of="`y`")
Traceback (most recent call last):
...
features.errors.InvalidRequest: `p` must have the same length as `y` (2), got 1
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from features import InvalidRequest

__all__ = ["finite_numbers", "one_dimensional"]


def one_dimensional(
    field: str, values: Any, *, length: int | None, length_of: str = "reward"
) -> NDArray[Any]:
    """A 1-d array; non-empty, or of ``length`` when given (``length_of`` names what sets it)."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise InvalidRequest(field, "must be one-dimensional", f"{array.ndim} dimensions")
    if length is None and array.size == 0:
        raise InvalidRequest(field, "must not be empty")
    if length is not None and array.size != length:
        expected = (
            f"must have the same length as {length_of} ({length})"
            if length_of.startswith("`")
            else f"must have one entry per {length_of} ({length})"
        )
        raise InvalidRequest(field, expected, array.size)
    return array


def finite_numbers(
    field: str, values: Any, *, length: int | None, length_of: str = "reward"
) -> NDArray[np.float64]:
    """A 1-d float array with no NaN or infinity."""
    array = one_dimensional(field, values, length=length, length_of=length_of)
    try:
        numbers = array.astype(np.float64)
    except (TypeError, ValueError):
        raise InvalidRequest(field, "must be numbers", f"dtype {array.dtype}") from None
    if not np.isfinite(numbers).all():
        raise InvalidRequest(field, "must be finite (no NaN or infinity)")
    return numbers
