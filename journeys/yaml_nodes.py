"""Reading a YAML node tree with the line of every value, for errors that point at it.

``yaml.safe_load`` forgets where values came from; the node tree of
``yaml.compose`` keeps each node's position. :class:`NodeReader` walks that tree
with typed accessors: each takes the field path of the node it reads
(``steps[2].wait.timeout``), records the node's line under that path, and raises
:class:`~journeys.errors.JourneyFileError` naming the file, line and path when
the value is not what was expected.

>>> reader = NodeReader("j.yaml")
>>> root = reader.compose("name: cart\\nsteps:\\n  - 1h\\n")
>>> entries = reader.mapping(root, "", allowed=("name", "steps"))
>>> reader.string(entries["steps"], "steps")
Traceback (most recent call last):
...
journeys.errors.JourneyFileError: j.yaml:3: steps must be a string, not a list
>>> reader.lines
{'name': 1, 'steps': 3}
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, NoReturn

import yaml

from decisioning.config import parse_duration
from features.errors import InvalidRequest
from journeys.definition import Scalar
from journeys.errors import JourneyFileError

__all__ = ["NodeReader", "join"]

_STR_TAG = "tag:yaml.org,2002:str"
_DURATION_TEXT = "must be a duration like 30m, 2h, 1d"
# The longest wait, timeout, exit after or reentry_after: a year and a leap day. Longer is
# a typo (`99999999999w` does not even fit a timedelta) or a journey no one sees finish.
_MAX_DURATION = timedelta(days=366)
_MAX_DURATION_TEXT = f"must be a duration of at most {_MAX_DURATION.days} days"


def join(path: str, key: str) -> str:
    """The path of ``key`` inside ``path`` (the root's path is ``""``)."""
    return f"{path}.{key}" if path else key


def _line(node: Any) -> int:
    return int(node.start_mark.line) + 1


def _kind(node: Any) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "a value"


class NodeReader:
    """Typed reads of the nodes of one YAML text, remembering the line of every path read."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[str, int] = {}
        self._constructor = yaml.constructor.SafeConstructor()

    def fail(self, path: str, at: Any, expected: str, *got: object) -> NoReturn:
        """Raise the error of ``path``, at node ``at`` or at line ``at`` (an int)."""
        line = at if isinstance(at, int) else _line(at)
        raise JourneyFileError(self.source, line, path, expected, *got)

    def compose(self, text: str) -> Any:
        """The root node of ``text``; an empty document or a YAML syntax error is an error."""
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            line = 1 if mark is None else int(mark.line) + 1
            problem = " ".join(str(part) for part in (err.context, err.problem) if part)
            self.fail("", line, f"the file is not valid YAML: {problem}")
        except yaml.YAMLError as err:  # e.g. a character YAML does not allow
            position = getattr(err, "position", 0)
            self.fail("", text.count("\n", 0, position) + 1, f"the file is not valid YAML: {err}")
        if root is None:
            self.fail(
                "", 1, "the file is empty: a journey needs at least journey, trigger and steps"
            )
        return root

    def _record(self, path: str, node: Any) -> None:
        self.lines.setdefault(path, _line(node))

    def entries(self, node: Any, path: str) -> list[tuple[str, Any, Any]]:
        """``(key, key node, value node)`` of a mapping with string keys, each key once."""
        if not isinstance(node, yaml.MappingNode):
            self.fail(path, node, f"must be a mapping, not {_kind(node)}")
        self._constructor.flatten_mapping(node)  # resolves `<<: *anchor` merges
        seen: dict[str, int] = {}
        result = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
                got = key_node.value if isinstance(key_node, yaml.ScalarNode) else _kind(key_node)
                self.fail(join(path, str(got)), key_node, "must be a string key (quote it)", got)
            key = str(key_node.value)
            if key in seen:
                self.fail(join(path, key), key_node, f"is given twice (first on line {seen[key]})")
            seen[key] = _line(key_node)
            self._record(join(path, key), value_node)
            result.append((key, key_node, value_node))
        return result

    def mapping(
        self, node: Any, path: str, allowed: Sequence[str], required: Sequence[str] = ()
    ) -> dict[str, Any]:
        """The value nodes of a mapping by key; unknown keys and missing required keys fail."""
        values: dict[str, Any] = {}
        for key, key_node, value_node in self.entries(node, path):
            if key not in allowed:
                self.fail(
                    join(path, key), key_node, f"is not allowed here; allowed: {', '.join(allowed)}"
                )
            values[key] = value_node
        for key in required:
            if key not in values:
                self.fail(join(path, key), node, "is required")
        return values

    def sequence(self, node: Any, path: str, *, empty_ok: bool = False) -> list[Any]:
        """The item nodes of a list (``path[i]`` each); an empty list fails unless ``empty_ok``."""
        if not isinstance(node, yaml.SequenceNode):
            self.fail(path, node, f"must be a list, not {_kind(node)}")
        if not node.value and not empty_ok:
            self.fail(path, node, "must not be empty")
        for i, item in enumerate(node.value):
            self._record(f"{path}[{i}]", item)
        return list(node.value)

    def scalar(self, node: Any, path: str) -> Scalar:
        """A plain value: a string, number, boolean or null."""
        if not isinstance(node, yaml.ScalarNode):
            self.fail(path, node, f"must be a single value, not {_kind(node)}")
        try:
            value = self._constructor.construct_object(node)
        except yaml.YAMLError:
            self.fail(path, node, "must be a plain value (string, number, true/false)", node.value)
        if value is None or isinstance(value, str | int | float | bool):
            return value
        # Dates and binary: quote them to keep them as strings.
        self.fail(path, node, "must be a string, number or true/false (quote it)", node.value)

    def string(self, node: Any, path: str, expected: str = "must be a string") -> str:
        if not isinstance(node, yaml.ScalarNode):
            self.fail(path, node, f"{expected}, not {_kind(node)}")
        value = self.scalar(node, path)
        if not isinstance(value, str) or not value:
            self.fail(path, node, expected, value)
        return value

    def boolean(self, node: Any, path: str) -> bool:
        value = self.scalar(node, path)
        if not isinstance(value, bool):
            self.fail(path, node, "must be true or false", value)
        return value

    def duration(self, node: Any, path: str, *, zero_ok: bool = False) -> timedelta:
        """``30s``, ``15m``, ``2h``, ``7d`` (decisioning's durations) or ``2w``, up to a year.

        >>> reader = NodeReader("j.yaml")
        >>> reader.duration(reader.compose("400d"), "exit[0].after")
        Traceback (most recent call last):
        ...
        journeys.errors.JourneyFileError: j.yaml:1: exit[0].after must be a duration of at most \
366 days, got '400d'
        """
        if not isinstance(node, yaml.ScalarNode):
            self.fail(path, node, f"{_DURATION_TEXT}, not {_kind(node)}")
        value = self.scalar(node, path)
        if not isinstance(value, str):
            self.fail(path, node, _DURATION_TEXT, value)
        text = value.strip()
        try:
            if text.endswith("w"):
                # Weeks on top of decisioning's units: "2w" is read as "14d".
                delta = parse_duration(text[:-1] + "d", path) * 7
            else:
                delta = parse_duration(text, path)
        except InvalidRequest:
            self.fail(path, node, _DURATION_TEXT, value)
        except OverflowError:  # more days than a timedelta holds
            self.fail(path, node, _MAX_DURATION_TEXT, value)
        if delta > _MAX_DURATION:
            self.fail(path, node, _MAX_DURATION_TEXT, value)
        if delta <= timedelta(0) and not (zero_ok and delta == timedelta(0)):
            self.fail(path, node, "must be longer than zero", value)
        return delta
