"""The domain's one exception hierarchy.

It lives in the innermost layer because every other layer raises it; only
``serving/`` maps it to HTTP status codes. Each message names the argument and
what was expected.

>>> err = InvalidRequest("epsilon", "must be in [0, 1]", 1.2)
>>> str(err)
'`epsilon` must be in [0, 1], got 1.2'
>>> err.field
'epsilon'
>>> isinstance(err, NudgeError)
True
"""

from __future__ import annotations

from typing import Any

__all__ = ["Conflict", "InvalidRequest", "NotFound", "NudgeError", "Unavailable"]

_MISSING = object()


class NudgeError(Exception):
    """Base class of every error Nudge raises on purpose."""


class InvalidRequest(NudgeError, ValueError):
    """An input is malformed or out of range; ``field`` names it."""

    def __init__(self, field: str, expected: str, got: Any = _MISSING) -> None:
        self.field = field
        self.expected = expected
        self.got = got
        message = f"`{field}` {expected}"
        if got is not _MISSING:
            message += f", got {got!r}"
        super().__init__(message)


class NotFound(NudgeError, LookupError):
    """A named thing (decision, model, customer) does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} not found")


class Conflict(NudgeError):
    """The request contradicts state that is already recorded."""


class Unavailable(NudgeError):
    """A backend (feature store, model registry, database) cannot be reached or is not ready."""
