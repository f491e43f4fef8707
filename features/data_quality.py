"""Data quality of every source Nudge reads: freshness, null rates, duplicates, schema drift.

A *source* is a table of the event log (``decisions``, ``outcomes``,
``profiles``: what Feast's offline store and training read) or one event type
of the customer event stream (``stream:add_to_cart``, ...: what journeys read).
Each is measured against :class:`Thresholds`:

- **freshness**: time since the newest row (its event time for a table, its
  arrival for the stream);
- **null rate** of each column (for the stream, of each payload field the
  type's schema names);
- **duplicate rate**: rows that repeat another row's key (a table's declared
  key; for the stream, the same customer, type, time and payload under another
  event id, which is a sender's retry without its id);
- **schema drift**: columns added, removed or retyped since the schema
  recorded by the first check (kept in a JSON file beside the state), so a
  change upstream is reported once it happens rather than discovered in a model.

>>> import pandas as pd
>>> from datetime import UTC, datetime
>>> frame = pd.DataFrame({
...     "customer_id": ["a", "a", "b"], "spend": [1.0, 1.0, None],
...     "event_timestamp": pd.to_datetime(["2026-12-01"] * 3, utc=True)})
>>> check = check_table("outcomes", frame, key=("customer_id",),
...     now=datetime(2026, 12, 2, tzinfo=UTC), thresholds=Thresholds())
>>> check.rows, round(check.duplicate_rate, 3), round(check.null_rates["spend"], 3)
(3, 0.333, 0.333)
>>> check.problems
['duplicate rate 0.333 over 0.01', 'null rate of spend 0.333 over 0.05']
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from features.errors import InvalidRequest
from features.event_log import EventLog
from features.event_stream import EventStream, StoredEvent

__all__ = [
    "STREAM_FIELDS",
    "TABLE_FRESHNESS",
    "TABLE_KEYS",
    "DataQualityReport",
    "SourceCheck",
    "Thresholds",
    "check_data",
    "check_stream",
    "check_table",
]

TABLE_KEYS: Mapping[str, tuple[str, ...]] = {
    "decisions": ("customer_id",),
    "outcomes": ("customer_id",),
    "profiles": ("customer_id", "event_timestamp"),
}
"""The event log's tables and the columns that identify a row of each."""

TABLE_FRESHNESS: Mapping[str, str] = {"profiles": "created_at"}
"""The column a table's freshness is read from, when not ``event_timestamp``: a profile
snapshot is as fresh as the moment it became known, whatever date it describes."""

STREAM_FIELDS: Mapping[str, tuple[str, ...]] = {
    "add_to_cart": ("cart_value",),
    "checkout_started": ("cart_value",),
    "purchase": ("value",),
    "product_view": ("sku",),
    "identify": (),
    "consent_update": (),
}
"""Payload fields each stream event type is expected to carry (others: none checked)."""

_TIMESTAMP = "event_timestamp"
_STREAM_SAMPLE = 100_000


@dataclass(frozen=True)
class Thresholds:
    """What counts as a problem; ``max_age`` None skips freshness (a finished experiment)."""

    max_age: timedelta | None = timedelta(hours=24)
    max_null_rate: float = 0.05
    max_duplicate_rate: float = 0.01

    def __post_init__(self) -> None:
        for name in ("max_null_rate", "max_duplicate_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise InvalidRequest(name, "must be a number in [0, 1]", value)
        if self.max_age is not None and self.max_age <= timedelta(0):
            raise InvalidRequest("max_age", "must be positive", str(self.max_age))


@dataclass(frozen=True)
class SourceCheck:
    """One source's measures and, in words, what broke a threshold."""

    source: str
    rows: int
    newest: str | None
    age_s: float | None
    null_rates: dict[str, float]
    duplicate_rate: float
    schema: dict[str, str]
    schema_changes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class DataQualityReport:
    checked_at: str
    thresholds: dict[str, Any]
    sources: list[SourceCheck]

    @property
    def ok(self) -> bool:
        return all(source.ok for source in self.sources)

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at,
            "ok": self.ok,
            "thresholds": self.thresholds,
            "sources": [{**asdict(source), "ok": source.ok} for source in self.sources],
        }


def check_table(
    source: str,
    frame: pd.DataFrame,
    *,
    key: Sequence[str],
    now: datetime,
    thresholds: Thresholds,
    timestamp: str = _TIMESTAMP,
) -> SourceCheck:
    """Freshness (from ``timestamp`` if the table has it), null rates and duplicate rate."""
    rows = len(frame)
    missing_key = [column for column in key if column not in frame.columns]
    if missing_key:
        raise InvalidRequest("key", f"must name columns of {source}", missing_key)
    null_rates = {
        str(column): float(frame[column].isna().mean()) if rows else 0.0 for column in frame.columns
    }
    duplicate_rate = float(frame.duplicated(subset=list(key)).mean()) if rows else 0.0
    newest = None
    if timestamp in frame.columns and rows and frame[timestamp].notna().any():
        newest = pd.Timestamp(frame[timestamp].max()).to_pydatetime()
    schema = {str(column): str(dtype) for column, dtype in frame.dtypes.items()}
    return _judged(source, rows, newest, now, null_rates, duplicate_rate, schema, thresholds)


def check_stream(
    stream: EventStream, *, now: datetime, thresholds: Thresholds, limit: int = _STREAM_SAMPLE
) -> list[SourceCheck]:
    """One check per event type among the stream's newest ``limit`` events."""
    after = max(0, stream.last_offset() - limit)
    events: list[StoredEvent] = []
    while batch := stream.read(after, limit=5_000):
        events.extend(batch)
        after = batch[-1].offset
    by_type: dict[str, list[StoredEvent]] = defaultdict(list)
    for event in events:
        by_type[event.type].append(event)
    checks = []
    for kind, typed in sorted(by_type.items()):
        fields = STREAM_FIELDS.get(kind, ())
        null_rates = {
            f"payload.{name}": sum(e.payload.get(name) is None for e in typed) / len(typed)
            for name in fields
        }
        contents = Counter(
            (e.customer_id, e.occurred_at, json.dumps(dict(e.payload), sort_keys=True))
            for e in typed
        )
        duplicates = sum(n - 1 for n in contents.values())
        newest = max(e.received_at or e.occurred_at for e in typed)
        keys = sorted({name for e in typed for name in e.payload})
        schema = {f"payload.{name}": "json" for name in keys}
        checks.append(
            _judged(
                f"stream:{kind}",
                len(typed),
                newest,
                now,
                null_rates,
                duplicates / len(typed),
                schema,
                thresholds,
            )
        )
    return checks


def check_data(
    *,
    event_log: EventLog | None,
    stream: EventStream | None,
    now: datetime,
    thresholds: Thresholds,
    schema_file: Path | None = None,
    table_thresholds: Mapping[str, Thresholds] | None = None,
) -> DataQualityReport:
    """Check every source there is; compare schemas with ``schema_file`` (written the
    first time, and for sources it does not know yet)."""
    sources: list[SourceCheck] = []
    if event_log is not None:
        for name, key in TABLE_KEYS.items():
            if event_log.exists(name):
                limits = (table_thresholds or {}).get(name, thresholds)
                sources.append(
                    check_table(
                        name,
                        event_log.read(name),
                        key=key,
                        now=now,
                        thresholds=limits,
                        timestamp=TABLE_FRESHNESS.get(name, _TIMESTAMP),
                    )
                )
    if stream is not None:
        sources.extend(check_stream(stream, now=now, thresholds=thresholds))
    if schema_file is not None:
        sources = _with_drift(sources, schema_file)
    return DataQualityReport(
        checked_at=now.isoformat(),
        thresholds={
            "max_age_s": None if thresholds.max_age is None else thresholds.max_age.total_seconds(),
            "max_null_rate": thresholds.max_null_rate,
            "max_duplicate_rate": thresholds.max_duplicate_rate,
        },
        sources=sources,
    )


def _judged(
    source: str,
    rows: int,
    newest: datetime | None,
    now: datetime,
    null_rates: dict[str, float],
    duplicate_rate: float,
    schema: dict[str, str],
    thresholds: Thresholds,
) -> SourceCheck:
    problems = []
    age_s = None if newest is None else (now - newest).total_seconds()
    if rows == 0:
        problems.append("no rows")
    max_age = None if thresholds.max_age is None else thresholds.max_age.total_seconds()
    if max_age is not None and age_s is not None and age_s > max_age:
        problems.append(f"newest row {_duration(age_s)} old, over {_duration(max_age)}")
    if duplicate_rate > thresholds.max_duplicate_rate:
        problems.append(
            f"duplicate rate {duplicate_rate:.3f} over {thresholds.max_duplicate_rate:g}"
        )
    for column, rate in null_rates.items():
        if rate > thresholds.max_null_rate:
            problems.append(f"null rate of {column} {rate:.3f} over {thresholds.max_null_rate:g}")
    return SourceCheck(
        source=source,
        rows=rows,
        newest=None if newest is None else newest.isoformat(),
        age_s=age_s,
        null_rates=null_rates,
        duplicate_rate=duplicate_rate,
        schema=schema,
        problems=problems,
    )


def _with_drift(sources: Iterable[SourceCheck], schema_file: Path) -> list[SourceCheck]:
    try:
        known: dict[str, dict[str, str]] = (
            json.loads(schema_file.read_text()) if schema_file.exists() else {}
        )
    except ValueError:
        raise InvalidRequest(
            "schema_file", "must be the JSON a data check wrote", str(schema_file)
        ) from None
    checked = []
    for source in sources:
        before = known.get(source.source)
        if before is None:
            known[source.source] = source.schema
            checked.append(source)
            continue
        changes = _schema_changes(before, source.schema, stream=source.source.startswith("stream:"))
        problems = source.problems + [f"schema drift: {change}" for change in changes]
        checked.append(
            SourceCheck(**{**asdict(source), "schema_changes": changes, "problems": problems})
        )
    schema_file.parent.mkdir(parents=True, exist_ok=True)
    schema_file.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")
    return checked


def _schema_changes(before: dict[str, str], now: dict[str, str], *, stream: bool) -> list[str]:
    changes = [f"{column} added ({now[column]})" for column in sorted(set(now) - set(before))]
    if not stream:
        # A stream sample may simply hold no event with an optional field this time.
        changes += [f"{column} removed" for column in sorted(set(before) - set(now))]
    changes += [
        f"{column} {before[column]} → {now[column]}"
        for column in sorted(set(before) & set(now))
        if before[column] != now[column]
    ]
    return changes


def _duration(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} d"
    if seconds >= 3_600:
        return f"{seconds / 3_600:.1f} h"
    return f"{seconds:.0f} s"
