"""One column of an outside file read as one kind of value, each bad value with its reason.

:func:`read_column` turns the values a file holds (CSV text, JSON values,
Parquet's typed columns) into the kind a mapping asks for, and says for each
value it cannot take why not, as a short reason code and a sentence:

``missing``, ``not_text``, ``not_an_integer``, ``not_a_number``, ``not_a_boolean``,
``bad_timestamp``, ``naive_timestamp`` (no offset and no ``timezone`` in the
mapping: a zone is never guessed), ``nonexistent_local_time`` and
``ambiguous_local_time`` (a wall-clock time that a daylight-saving change skips
or repeats in the mapping's zone).

Timestamps come out in UTC.

>>> column = read_column(pd.Series(["2026-03-29 02:30", "2026-03-29T09:00:00Z", ""]),
...                      "timestamp", zone=ZoneInfo("Europe/Paris"))
>>> column.values.iloc[1].isoformat(), sorted((i, p[0]) for i, p in column.problems.items())
('2026-03-29T09:00:00+00:00', [(0, 'nonexistent_local_time'), (2, 'missing')])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

__all__ = ["ReadColumn", "is_missing", "plain", "read_column"]

_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})
# The span pandas' nanosecond timestamps (the profile table's) can hold.
_EARLIEST = datetime(1678, 1, 1, tzinfo=UTC)
_LATEST = datetime(2261, 12, 31, tzinfo=UTC)
_DTYPES = {
    "string": "string",
    "int": "int64",
    "float": "float64",
    "bool": "bool",
    "timestamp": "datetime64[ns, UTC]",
    "json": "object",
}

Problem = tuple[str, str]
"""A reason code and a sentence saying what was wrong."""


class _Bad(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.problem: Problem = (reason, detail)


@dataclass(frozen=True)
class ReadColumn:
    """A column's values as one kind (a placeholder where a value was bad), and the bad ones."""

    values: pd.Series
    problems: dict[int, Problem]
    """Row position → (reason, sentence), for each value that could not be taken."""


def is_missing(value: object) -> bool:
    """None, NaN, NaT or text that is blank.

    >>> [is_missing(v) for v in (None, float("nan"), pd.NaT, " ", "0", 0)]
    [True, True, True, True, False, False]
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    if isinstance(value, str):
        return not value.strip()
    return False


def plain(value: object) -> Any:
    """``value`` as a plain JSON value: NumPy scalars unwrapped, times as ISO 8601, NaN as None.

    >>> plain(np.int64(3)), plain(pd.Timestamp("2026-01-01", tz="UTC")), plain(float("nan"))
    (3, '2026-01-01T00:00:00+00:00', None)
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, np.ndarray):
        return [plain(item) for item in value.tolist()]
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def read_column(
    series: pd.Series, kind: str, *, zone: ZoneInfo | None = None, time_format: str = "iso"
) -> ReadColumn:
    """``series`` (any index) read as ``kind``; see the module's reasons for bad values."""
    series = series.reset_index(drop=True)
    fast = _typed(series, kind)
    if fast is not None:
        return fast
    parse = _timestamp_parser(zone, time_format) if kind == "timestamp" else _PARSERS[kind]
    values: list[Any] = []
    problems: dict[int, Problem] = {}
    filler = _FILLERS[kind]
    for position, raw in enumerate(series.tolist()):
        if is_missing(raw):
            problems[position] = ("missing", "is missing")
            values.append(filler)
            continue
        try:
            values.append(parse(raw))
        except _Bad as bad:
            problems[position] = bad.problem
            values.append(filler)
    if kind == "timestamp":
        column = pd.Series(pd.DatetimeIndex(values, tz=UTC).as_unit("ns"))
    else:
        column = pd.Series(values, dtype=_DTYPES[kind])
    return ReadColumn(column, problems)


def _typed(series: pd.Series, kind: str) -> ReadColumn | None:
    """The column as it is, when the file's own type is the kind asked for (Parquet)."""
    dtype = series.dtype
    if kind == "int" and pd.api.types.is_integer_dtype(dtype) and not series.hasnans:
        return ReadColumn(series.astype("int64"), {})
    if kind == "float" and pd.api.types.is_float_dtype(dtype):
        finite = np.isfinite(series.to_numpy(dtype="float64", na_value=np.nan))
        problems = {
            int(i): ("missing", "is missing") if pd.isna(series.iloc[i]) else _NOT_FINITE
            for i in np.flatnonzero(~finite)
        }
        return ReadColumn(series.astype("float64").where(finite, 0.0), problems)
    if kind == "string" and (
        isinstance(dtype, pd.StringDtype) or pd.api.types.infer_dtype(series) == "string"
    ):
        stripped = series.astype("string").str.strip()
        missing = (stripped.isna() | (stripped == "")).to_numpy(dtype=bool)
        problems = {int(i): ("missing", "is missing") for i in np.flatnonzero(missing)}
        return ReadColumn(stripped.fillna(""), problems)
    if kind == "timestamp" and isinstance(dtype, pd.DatetimeTZDtype):
        missing = series.isna().to_numpy()
        problems = {int(i): ("missing", "is missing") for i in np.flatnonzero(missing)}
        return ReadColumn(series.dt.tz_convert("UTC").dt.as_unit("ns"), problems)
    return None


_NOT_FINITE = ("not_a_number", "must be a finite number")


def _text(raw: Any) -> str:
    if isinstance(raw, str):
        return raw.strip()
    if isinstance(raw, bool | np.bool_ | int | float | np.integer | np.floating):
        return str(plain(raw))
    raise _Bad("not_text", f"must be text, not {type(raw).__name__}")


def _integer(raw: Any) -> int:
    if isinstance(raw, bool | np.bool_):
        raise _Bad("not_an_integer", "must be a whole number, not a boolean")
    if isinstance(raw, int | np.integer):
        return int(raw)
    number = _float(raw, "not_an_integer", "must be a whole number")
    if not number.is_integer():
        raise _Bad("not_an_integer", "must be a whole number")
    return int(number)


def _float(raw: Any, reason: str = "not_a_number", rule: str = "must be a finite number") -> float:
    if isinstance(raw, bool | np.bool_):
        raise _Bad(reason, f"{rule}, not a boolean")
    if isinstance(raw, int | float | np.integer | np.floating):
        number = float(raw)
    elif isinstance(raw, str):
        try:
            number = float(raw.strip())
        except ValueError:
            raise _Bad(reason, rule) from None
    else:
        raise _Bad(reason, f"{rule}, not {type(raw).__name__}")
    if not math.isfinite(number):
        raise _Bad(reason, rule)
    return number


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool | np.bool_):
        return bool(raw)
    if isinstance(raw, int | np.integer) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        text = raw.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise _Bad("not_a_boolean", "must be true/false, yes/no or 1/0")


def _json(raw: Any) -> Any:
    return plain(raw)


def _timestamp_parser(zone: ZoneInfo | None, time_format: str) -> Callable[[Any], datetime]:
    divisor = 1000.0 if time_format == "unix_ms" else 1.0

    def parse(raw: Any) -> datetime:
        if time_format != "iso":
            seconds = _float(raw, "bad_timestamp", f"must be {time_format} time (a number)")
            try:
                moment = datetime.fromtimestamp(seconds / divisor, UTC)
            except (OverflowError, OSError, ValueError):
                raise _Bad("bad_timestamp", "is out of range") from None
            return _in_range(moment)
        if isinstance(raw, pd.Timestamp):
            moment = raw.to_pydatetime()
        elif isinstance(raw, datetime):
            moment = raw
        elif isinstance(raw, str):
            try:
                moment = datetime.fromisoformat(raw.strip())
            except ValueError:
                raise _Bad("bad_timestamp", "must be an ISO 8601 date-time") from None
        else:
            hint = " (for seconds since 1970 give the field `format: unix`)"
            numeric = isinstance(raw, int | float | np.number) and not isinstance(raw, bool)
            raise _Bad(
                "bad_timestamp",
                f"must be an ISO 8601 date-time, not {type(raw).__name__}"
                + (hint if numeric else ""),
            )
        if moment.utcoffset() is not None:
            return _in_range(moment.astimezone(UTC))
        if zone is None:
            raise _Bad(
                "naive_timestamp",
                "has no time zone offset and the mapping names no `timezone` to read it in",
            )
        return _in_range(_localised(moment, zone))

    return parse


def _localised(naive: datetime, zone: ZoneInfo) -> datetime:
    """``naive`` read on ``zone``'s clocks, in UTC, unless a clock change makes it unclear."""
    earlier = naive.replace(tzinfo=zone, fold=0)
    later = naive.replace(tzinfo=zone, fold=1)
    if earlier.utcoffset() != later.utcoffset():
        back = earlier.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
        if back != naive:
            raise _Bad(
                "nonexistent_local_time",
                f"does not exist in {zone.key}: the clocks skip it (daylight saving)",
            )
        raise _Bad(
            "ambiguous_local_time",
            f"happens twice in {zone.key} (clocks go back); give it an offset",
        )
    return earlier.astimezone(UTC)


def _in_range(moment: datetime) -> datetime:
    if not _EARLIEST <= moment <= _LATEST:
        raise _Bad("bad_timestamp", "must be between the years 1678 and 2261")
    return moment


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "string": _text,
    "int": _integer,
    "float": _float,
    "bool": _boolean,
    "json": _json,
}
_FILLERS: dict[str, Any] = {
    "string": "",
    "int": 0,
    "float": 0.0,
    "bool": False,
    "timestamp": pd.NaT,
    "json": None,
}
