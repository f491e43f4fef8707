"""The error of a journey file: which file, which line, which field, and what was expected.

>>> err = JourneyFileError("journeys/cart.yaml", 14, "steps[2].wait.timeout",
...                        "must be a duration like 30m, 2h, 1d", "soon")
>>> str(err)
"journeys/cart.yaml:14: steps[2].wait.timeout must be a duration like 30m, 2h, 1d, got 'soon'"
>>> err.field, err.line, isinstance(err, InvalidRequest)
('steps[2].wait.timeout', 14, True)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from features.errors import InvalidRequest

__all__ = ["JourneyFileError", "line_of"]

_MISSING: Any = object()
_PARENT = re.compile(r"(\.[^.\[]*|\[\d+\])$")


class JourneyFileError(InvalidRequest):
    """A journey definition is wrong at ``source``:``line`` (1-based), in ``field``.

    ``field`` is the path of the offending value (``steps[2].wait.timeout``), or
    ``""`` for the file as a whole (empty, not YAML, not a mapping). ``line`` is
    None only for journeys built in code rather than read from a file.
    """

    def __init__(
        self, source: str, line: int | None, field: str, expected: str, got: Any = _MISSING
    ) -> None:
        if got is _MISSING:
            super().__init__(field, expected)
        else:
            super().__init__(field, expected, got)
        self.source = source
        self.line = line
        where = source if line is None else f"{source}:{line}"
        message = f"{where}: {field} {expected}" if field else f"{where}: {expected}"
        if got is not _MISSING:
            message += f", got {got!r}"
        self.args = (message,)


def line_of(lines: Mapping[str, int], path: str) -> int | None:
    """The line of ``path``, or of the nearest enclosing path the loader recorded.

    >>> line_of({"steps[1]": 7}, "steps[1].decide.slots[0]"), line_of({}, "steps")
    (7, None)
    """
    while path:
        if path in lines:
            return lines[path]
        parent = _PARENT.sub("", path)
        if parent == path:
            return None
        path = parent
    return None
