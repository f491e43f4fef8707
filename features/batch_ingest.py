"""Batch import: a CSV, Parquet or JSON-lines file into the event stream or the profile table.

A mapping (:mod:`features.ingest_mapping`) says which column feeds which field
of Nudge's event schema or profile schema. Every row read is either accepted —
stored, or found already stored — or rejected with a reason and the field,
counted, and written with the original row to a quarantine file
(``<quarantine_dir>/<source>-<time>.jsonl``); ``accepted + rejected == read``
always holds, and a report that broke it would raise.

Events go into the :class:`~features.event_stream.EventStream` (through the
identity graph when given a :class:`~features.stitching.StitchingStream`), a
commit per chunk of rows, each chunk in time order. Their ids come from the
mapping's ``event_id`` column, or are a hash of the source's name and the
row's content, so that importing the same file again stores nothing twice; an
id already stored for another event is rejected (``event_id_reused``). An
event more than five minutes in the future is rejected, as the API does; a
late or out-of-order one keeps its own ``occurred_at`` (UTC).

Profile rows go into the event log's ``profiles`` table, the Parquet file the
feature repo's ``customer_profile`` view reads, kept in ``event_timestamp``
order: a snapshot imported late lands where its time puts it, and a point-in-time
read sees it only from then on. A row is keyed by (``customer_id``,
``event_timestamp``): the same row again changes nothing (the table is not even
rewritten), a row with new values for a stored key replaces it (a correction),
and two rows of one import with the same key and different values keep the first
and reject the other (``duplicate_key``), since neither is known to be right.
The table is written once at the end, atomically.

A bad mapping, a missing column or an unreadable file is an ``InvalidRequest``
before any row is stored.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from features.errors import InvalidRequest
from features.event_changes import changed_fields
from features.event_log import EventLog
from features.event_stream import CustomerEvent, EventStream, StoredEvent, check_event
from features.ingest_mapping import IngestMapping, TargetField, check_columns, target_schema
from features.ingest_readers import MalformedRow, open_reader
from features.ingest_values import plain, read_column
from features.stitching import StitchingStream

__all__ = [
    "CHUNK_ROWS",
    "FUTURE_TOLERANCE",
    "PROFILES_TABLE",
    "IngestReport",
    "Rejection",
    "check_source",
    "ingest_file",
    "ingest_frame",
]

CHUNK_ROWS = 10_000
FUTURE_TOLERANCE = timedelta(minutes=5)
"""How far ahead of this machine's clock an event may be (clock skew), as for the API."""
PROFILES_TABLE = "profiles"
_SOURCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_KEY = ["customer_id", "event_timestamp"]

Destination = EventStream | StitchingStream | EventLog


def check_source(source: str) -> str:
    """``source`` if it is a usable source name (it names quarantine files and event ids).

    >>> check_source("crm-eu")
    'crm-eu'
    >>> check_source("../x")
    Traceback (most recent call last):
    ...
    features.errors.InvalidRequest: `--source` must be 1 to 64 letters, digits, '_', '.' or '-', \
starting with a letter or digit, got '../x'
    """
    if not isinstance(source, str) or not _SOURCE.fullmatch(source):
        raise InvalidRequest(
            "--source",
            "must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit",
            source,
        )
    return source


@dataclass(frozen=True)
class Rejection:
    """A row that was not stored: where it was, why (a reason code and a sentence), what it held."""

    row: int
    """1-based, counting rows only (a header and blank lines are not rows)."""
    reason: str
    field: str
    detail: str
    data: Mapping[str, Any]

    def to_json(self) -> str:
        line = {
            "row": self.row,
            "reason": self.reason,
            "field": self.field,
            "error": f"`{self.field}` {self.detail}",
            "data": plain(dict(self.data)),
        }
        return json.dumps(line, ensure_ascii=False, default=str)


@dataclass
class IngestReport:
    """What one import did: rows read, accepted (stored or already stored), rejected by reason."""

    source: str
    target: str
    file: str | None = None
    read: int = 0
    stored: int = 0
    """Rows written: events appended, profile rows added or corrected."""
    duplicate: int = 0
    """Rows accepted that were stored already (by an earlier import, or earlier in this one)."""
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(reason, field) → rows."""
    quarantine: Path | None = None
    seconds: float = 0.0

    @property
    def accepted(self) -> int:
        return self.stored + self.duplicate

    @property
    def rejected_rows(self) -> int:
        return sum(self.rejected.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "file": self.file,
            "read": self.read,
            "accepted": self.accepted,
            "stored": self.stored,
            "duplicate": self.duplicate,
            "rejected": self.rejected_rows,
            "rejected_by_reason": [
                {"reason": reason, "field": name, "rows": rows}
                for (reason, name), rows in self.rejected.most_common()
            ],
            "quarantine": None if self.quarantine is None else str(self.quarantine),
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        """The report as a few lines for a terminal.

        >>> report = IngestReport("crm", "events", "orders.csv", read=5, stored=3, duplicate=1)
        >>> report.rejected[("naive_timestamp", "occurred_at")] = 1
        >>> print(report.summary())
        orders.csv → events (source crm): 5 rows read in 0.0 s
          accepted  4  (3 stored, 1 already stored)
          rejected  1
            naive_timestamp  occurred_at  1
        """
        where = self.file or "frame"
        width = len(f"{self.read:,}")
        lines = [
            f"{where} → {self.target} (source {self.source}): "
            f"{self.read:,} rows read in {self.seconds:.1f} s",
            f"  accepted  {self.accepted:>{width},}  "
            f"({self.stored:,} stored, {self.duplicate:,} already stored)",
            f"  rejected  {self.rejected_rows:>{width},}",
        ]
        if self.rejected:
            reasons = self.rejected.most_common()
            reason_width = max(len(reason) for (reason, _), _ in reasons)
            field_width = max(len(name) for (_, name), _ in reasons)
            lines += [
                f"    {reason:<{reason_width}}  {name:<{field_width}}  {rows:,}"
                for (reason, name), rows in reasons
            ]
        if self.quarantine is not None:
            lines.append(f"  rejected rows and their reasons: {self.quarantine}")
        return "\n".join(lines)


class _Quarantine:
    """The rejected rows' file, opened at the first one."""

    def __init__(self, folder: Path, source: str, started: datetime) -> None:
        self.folder = Path(folder)
        self.stem = f"{source}-{started:%Y%m%dT%H%M%SZ}"
        self.path: Path | None = None
        self._file: IO[str] | None = None

    def add(self, rejection: Rejection) -> None:
        if self._file is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{self.stem}.jsonl"
            n = 1
            while path.exists():  # two imports from one source in one second
                n += 1
                path = self.folder / f"{self.stem}-{n}.jsonl"
            self.path = path
            self._file = path.open("x", encoding="utf-8")
        self._file.write(rejection.to_json() + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def ingest_file(
    path: Path,
    mapping: IngestMapping,
    *,
    source: str,
    into: Destination,
    quarantine_dir: Path,
    progress: bool = False,
    chunk_rows: int = CHUNK_ROWS,
    now: datetime | None = None,
) -> IngestReport:
    """Import ``path`` (CSV, Parquet or JSON lines) through ``mapping`` into ``into``.

    ``into`` is the event stream for a mapping whose target is ``events``, the
    event log for ``profiles``. ``now`` is for tests (the future check).
    """
    path = Path(path)
    check_source(source)
    reader = open_reader(path)
    check_columns(mapping, reader.columns)
    run = _Run(mapping, source, into, quarantine_dir, now)
    run.report.file = str(path)
    with tqdm(
        total=reader.size,
        unit=reader.unit,
        unit_scale=reader.unit == "B",
        desc=f"ingest {path.name}",
        disable=not progress,
        mininterval=1.0,
        leave=False,
    ) as bar:
        try:
            for chunk in reader.chunks(chunk_rows):
                run.add(chunk.frame, chunk.row_numbers, chunk.malformed)
                bar.update(chunk.position - bar.n)
                report = run.report
                bar.set_postfix(accepted=report.accepted, rejected=report.rejected_rows)
        except BaseException:
            run.abandon()
            raise
    return run.finish()


def ingest_frame(
    frame: pd.DataFrame,
    mapping: IngestMapping,
    *,
    source: str,
    into: Destination,
    quarantine_dir: Path,
    now: datetime | None = None,
) -> IngestReport:
    """Import the rows of ``frame`` as :func:`ingest_file` imports a file's (row 1 is the first)."""
    check_source(source)
    check_columns(mapping, [str(name) for name in frame.columns])
    run = _Run(mapping, source, into, quarantine_dir, now)
    try:
        for start in range(0, len(frame), CHUNK_ROWS * 10):
            part = frame.iloc[start : start + CHUNK_ROWS * 10].reset_index(drop=True)
            run.add(part, list(range(start + 1, start + len(part) + 1)), [])
    except BaseException:
        run.abandon()
        raise
    return run.finish()


Reject = Callable[[int, str, str, str], None]
"""``reject(position in chunk, field, reason, detail)``."""


class _Run:
    """One import: reads each chunk's fields, rejects what is bad, hands the rest to the sink."""

    def __init__(
        self,
        mapping: IngestMapping,
        source: str,
        into: Destination,
        quarantine_dir: Path,
        now: datetime | None,
    ) -> None:
        self.mapping = mapping
        self.schema = target_schema(mapping.target)
        self.started = time.perf_counter()
        self.report = IngestReport(source, mapping.target)
        self.quarantine = _Quarantine(quarantine_dir, source, datetime.now(UTC))
        self.sink: _EventSink | _ProfileSink
        if mapping.target == "events":
            if not isinstance(into, EventStream | StitchingStream):
                raise InvalidRequest("into", "must be the event stream for target events")
            self.sink = _EventSink(into, source, now or datetime.now(UTC))
        else:
            if not isinstance(into, EventLog):
                raise InvalidRequest("into", "must be the event log for target profiles")
            self.sink = _ProfileSink(into, self.schema, now or datetime.now(UTC))

    def reject(self, rejection: Rejection) -> None:
        self.report.rejected[(rejection.reason, rejection.field)] += 1
        self.quarantine.add(rejection)

    def add(self, frame: pd.DataFrame, rows: list[int], malformed: Sequence[MalformedRow]) -> None:
        self.report.read += len(frame) + len(malformed)
        for bad in malformed:
            self.reject(Rejection(bad.row, bad.reason, "row", bad.detail, bad.data))
        if frame.empty:
            return

        def reject(position: int, name: str, reason: str, detail: str) -> None:
            data = {str(k): v for k, v in frame.iloc[position].to_dict().items()}
            self.reject(Rejection(rows[position], reason, name, detail, data))

        columns, payload, problems = self._read(frame)
        for position, (name, reason, detail) in sorted(problems.items()):
            reject(position, name, reason, detail)
        good = [position for position in range(len(frame)) if position not in problems]
        self.sink.add(frame, rows, good, columns, payload, reject, self.report)

    def _read(
        self, frame: pd.DataFrame
    ) -> tuple[
        dict[str, pd.Series],
        dict[str, tuple[list[Any], set[int]]],
        dict[int, tuple[str, str, str]],
    ]:
        """Each mapped field read as its kind; the payload's values (and where each is
        missing); the first problem of each bad row, in schema order."""
        zone = self.mapping.zone
        problems: dict[int, tuple[str, str, str]] = {}
        columns: dict[str, pd.Series] = {}
        for name, target in self.schema.items():
            source = self.mapping.fields.get(name)
            if source is None:
                continue
            read = read_column(
                _values(frame, source.column, source.value),
                target.kind,
                zone=zone,
                time_format=source.format,
            )
            columns[name] = read.values
            for position, (reason, detail) in read.problems.items():
                problems.setdefault(position, (name, reason, detail))
        payload: dict[str, tuple[list[Any], set[int]]] = {}
        for key, source in self.mapping.payload.items():
            read = read_column(
                _values(frame, source.column, source.value),
                source.kind,
                zone=zone,
                time_format=source.format,
            )
            missing = set()
            for position, (reason, detail) in read.problems.items():
                if reason == "missing":
                    missing.add(position)  # a missing payload value is left out, not refused
                else:
                    problems.setdefault(position, (f"payload.{key}", reason, detail))
            payload[key] = ([plain(v) for v in read.values.tolist()], missing)
        return columns, payload, problems

    def abandon(self) -> None:
        self.quarantine.close()

    def finish(self) -> IngestReport:
        try:
            self.sink.finish(self.report)
        finally:
            self.quarantine.close()
        report = self.report
        report.quarantine = self.quarantine.path
        report.seconds = time.perf_counter() - self.started
        if report.accepted + report.rejected_rows != report.read:
            # Every row read must be accounted for; a gap means a row was dropped.
            raise AssertionError(
                f"ingest lost track of rows: {report.read} read, {report.accepted} accepted, "
                f"{report.rejected_rows} rejected"
            )
        return report


def _values(frame: pd.DataFrame, column: str | None, value: Any) -> pd.Series:
    if column is not None:
        return frame[column]
    return pd.Series([value] * len(frame), dtype=object)


class _EventSink:
    def __init__(self, into: EventStream | StitchingStream, source: str, now: datetime) -> None:
        self.stitching = into if isinstance(into, StitchingStream) else None
        self.stream = into.stream if isinstance(into, StitchingStream) else into
        self.source = source
        self.now = now

    def add(
        self,
        frame: pd.DataFrame,
        rows: list[int],
        good: list[int],
        columns: dict[str, pd.Series],
        payload: dict[str, tuple[list[Any], set[int]]],
        reject: Reject,
        report: IngestReport,
    ) -> None:
        given_ids = columns["event_id"].tolist() if "event_id" in columns else None
        records = frame.to_dict("records") if given_ids is None else []
        customers = columns["customer_id"].tolist()
        types = columns["type"].tolist()
        times = list(columns["occurred_at"].array.to_pydatetime())
        first_of: dict[str, tuple[int, CustomerEvent]] = {}
        batch: list[tuple[int, CustomerEvent]] = []
        for position in good:
            event = CustomerEvent(
                event_id=(
                    given_ids[position]
                    if given_ids is not None
                    else _hashed_id(self.source, records[position])
                ),
                customer_id=customers[position],
                type=types[position],
                occurred_at=times[position],
                payload={
                    key: values[position]
                    for key, (values, missing) in payload.items()
                    if position not in missing
                },
            )
            if event.occurred_at - self.now > FUTURE_TOLERANCE:
                reject(position, "occurred_at", "in_the_future", "is more than 5 minutes ahead")
                continue
            try:
                check_event(event)
                if self.stitching is not None:
                    self.stitching.check(event)
            except InvalidRequest as error:
                reject(position, error.field, "invalid", _detail(error))
                continue
            first = first_of.get(event.event_id)
            if first is None:
                first_of[event.event_id] = (position, event)
                batch.append((position, event))
                continue
            changes = changed_fields(event, _as_stored(first[1]))
            if changes:
                detail = f"is row {rows[first[0]]}'s too, with other {', '.join(changes)}"
                reject(position, "event_id", "event_id_reused", detail)
            else:
                report.duplicate += 1
        if not batch:
            return
        # In time order: a consumer reading the stream meets each customer's events
        # as they happened, however the file was sorted.
        batch.sort(key=lambda item: item[1].occurred_at)
        new, as_stored = self._append([event for _, event in batch])
        repeats = self.stream.get([e.event_id for e in as_stored if e.event_id not in new])
        for (position, _), event in zip(batch, as_stored, strict=True):
            if event.event_id in new:
                report.stored += 1
                continue
            stored = repeats.get(event.event_id)
            changes = ["event"] if stored is None else changed_fields(event, stored)
            if changes:
                detail = f"was stored before for another event (other {', '.join(changes)})"
                reject(position, "event_id", "event_id_reused", detail)
            else:
                report.duplicate += 1

    def _append(self, events: list[CustomerEvent]) -> tuple[set[str], list[CustomerEvent]]:
        if self.stitching is not None:
            return self.stitching.append_new(events)
        return self.stream.append_new(events), events

    def finish(self, report: IngestReport) -> None:
        return None


def _as_stored(event: CustomerEvent) -> StoredEvent:
    return StoredEvent(
        event.event_id, event.customer_id, event.type, event.occurred_at, dict(event.payload)
    )


def _detail(error: InvalidRequest) -> str:
    return str(error).removeprefix(f"`{error.field}` ")


def _hashed_id(source: str, record: Mapping[Any, Any]) -> str:
    """A stable id for a row without one: the same row from the same source, the same id.

    >>> _hashed_id("crm", {"a": "1", "b": "x"}) == _hashed_id("crm", {"b": "x", "a": "1"})
    True
    >>> _hashed_id("crm", {"a": "1"})[:4]
    'crm:'
    """
    content = {str(key): plain(value) for key, value in record.items()}
    text = json.dumps([source, content], sort_keys=True, ensure_ascii=False, default=str)
    return f"{source}:{hashlib.sha256(text.encode('utf-8')).hexdigest()[:40]}"


_DTYPES = {
    "string": "string",
    "int": "int64",
    "float": "float64",
    "bool": "bool",
    "timestamp": "datetime64[ns, UTC]",
}


class _ProfileSink:
    def __init__(self, log: EventLog, schema: Mapping[str, TargetField], now: datetime) -> None:
        self.log = log
        self.now = now
        self.dtypes = {name: _DTYPES[target.kind] for name, target in schema.items()}
        self.pieces: list[pd.DataFrame] = []
        # (customer, event time in ns) → (row, content hash) of the row this import keeps.
        self.seen: dict[tuple[str, int], tuple[int, int]] = {}
        if log.exists(PROFILES_TABLE):
            import pyarrow.parquet as pq

            stored = set(pq.read_schema(log.path(PROFILES_TABLE)).names)
            if stored != set(self.dtypes):
                raise InvalidRequest(
                    "target",
                    f"is the profiles table {log.path(PROFILES_TABLE)}, whose columns "
                    f"{sorted(stored)} are not the profile schema's {sorted(self.dtypes)}",
                )

    def add(
        self,
        frame: pd.DataFrame,
        rows: list[int],
        good: list[int],
        columns: dict[str, pd.Series],
        payload: dict[str, tuple[list[Any], set[int]]],
        reject: Reject,
        report: IngestReport,
    ) -> None:
        if "created_at" not in columns:
            # Known from this import on: a backfill of past snapshots must not look as if
            # it had been known at their event time, or training "as of" a past date
            # would see it.
            stamps = columns["event_timestamp"]
            created = pd.Series([self.now] * len(stamps), index=stamps.index)
            columns = {**columns, "created_at": created}
        piece = pd.DataFrame({name: columns[name] for name in self.dtypes}).iloc[good]
        hashes = pd.util.hash_pandas_object(piece, index=False).tolist()
        stamps = piece["event_timestamp"].array.asi8.tolist()
        keys = list(zip(piece["customer_id"].tolist(), stamps, strict=True))
        clash = piece.duplicated(_KEY).to_numpy()
        if self.seen:
            clash |= np.fromiter((key in self.seen for key in keys), bool, len(keys))
        if not clash.any():  # the usual case, without a row-by-row look
            firsts = zip([rows[p] for p in good], hashes, strict=True)
            self.seen.update(zip(keys, firsts, strict=True))
            self.pieces.append(piece)
            return
        keep: list[int] = []
        for i, ((customer, stamp), content) in enumerate(zip(keys, hashes, strict=True)):
            position = good[i]
            first = self.seen.get((customer, stamp))
            if first is None:
                self.seen[(customer, stamp)] = (rows[position], content)
                keep.append(i)
            elif first[1] == content:
                report.duplicate += 1
            else:
                detail = (
                    f"has the customer_id and event_timestamp of row {first[0]}, with other "
                    "values; the first is kept"
                )
                reject(position, "customer_id", "duplicate_key", detail)
        self.pieces.append(piece.iloc[keep])

    def finish(self, report: IngestReport) -> None:
        if not self.pieces:
            return
        new = pd.concat(self.pieces, ignore_index=True).astype(self.dtypes)
        if new.empty:
            return
        if not self.log.exists(PROFILES_TABLE):
            report.stored += len(new)
            self._write(new)
            return
        old = self.log.read(PROFILES_TABLE)[list(self.dtypes)].astype(self.dtypes)
        # The same values imported again are the same fact: the stored row, with the
        # time it first became known, stands; only a change carries a new created_at.
        facts = [name for name in self.dtypes if name != "created_at"]
        old_hashes = pd.util.hash_pandas_object(old[facts], index=False).to_numpy()
        # Each new row's stored twin, by position (the last, should a key repeat).
        twins = old[_KEY].assign(_at=range(len(old))).drop_duplicates(_KEY, keep="last")
        at = new[_KEY].merge(twins, on=_KEY, how="left")["_at"].to_numpy()
        ours = pd.util.hash_pandas_object(new[facts], index=False).to_numpy()
        found = ~np.isnan(at)
        unchanged = np.zeros(len(new), dtype=bool)
        unchanged[found] = old_hashes[at[found].astype(np.int64)] == ours[found]
        report.duplicate += int(unchanged.sum())
        report.stored += int((~unchanged).sum())
        if unchanged.all():
            return  # nothing new: the table is left as it is, not even rewritten
        changed = new[~unchanged]
        replaced = old[_KEY].merge(changed[_KEY], on=_KEY, how="left", indicator=True)
        kept = old[(replaced["_merge"] == "left_only").to_numpy()]
        self._write(pd.concat([kept, changed], ignore_index=True))

    def _write(self, table: pd.DataFrame) -> None:
        ordered = table.sort_values("event_timestamp", kind="stable", ignore_index=True)
        self.log.write(PROFILES_TABLE, ordered)
