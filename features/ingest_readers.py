"""Reading CSV, Parquet and JSON-lines files in chunks of rows, for batch ingest.

Nothing is guessed: a CSV's values stay text (an empty field is a missing
value), a JSON line's values keep their JSON types, a Parquet file's its
column types; the mapping says what each field is read as. A line that is not
a row — a CSV line with more or fewer fields than the header, a JSON line that
does not parse or is not an object — is handed on as a malformed row, to be
counted and quarantined like any other rejected row, never skipped.
CSV and JSON lines may be compressed (``.gz``, ``.bz2``, ``.xz``).

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "people.csv"
>>> _ = path.write_text("id,name\\n1,Ann\\n2\\n")
>>> reader = open_reader(path)
>>> reader.columns
['id', 'name']
>>> [(c.frame.to_dict("records"), c.malformed) for c in reader.chunks(100)]
... # doctest: +NORMALIZE_WHITESPACE
[([{'id': '1', 'name': 'Ann'}],
  [MalformedRow(row=2, reason='wrong_field_count', detail='has 1 fields where the header has 2',
                data={'line': ['2']})])]
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

import pandas as pd
import pyarrow.parquet as pq

from features.errors import InvalidRequest

__all__ = [
    "FORMATS",
    "Chunk",
    "FileReader",
    "MalformedRow",
    "file_format",
    "open_reader",
]

FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_COMPRESSED = (".gz", ".bz2", ".xz")
# How many rows of a JSON-lines file are looked at for its columns before anything is written.
_JSONL_HEAD_ROWS = 1_000


@dataclass(frozen=True)
class MalformedRow:
    """A line that is not a row of the file: its 1-based row number, why, and what it held."""

    row: int
    reason: str
    detail: str
    data: dict[str, Any]


@dataclass
class Chunk:
    """Up to ``n`` rows: the readable ones as a frame (``row_numbers`` beside them) and the rest."""

    frame: pd.DataFrame
    row_numbers: list[int]
    malformed: list[MalformedRow] = field(default_factory=list)
    position: int = 0
    """How far into the file this chunk ends, in the unit of :attr:`FileReader.size`."""


class FileReader(Protocol):
    columns: list[str]
    size: int
    """Bytes (CSV, JSON lines) or rows (Parquet) to read in all, for a progress bar."""
    unit: str

    def chunks(self, rows: int) -> Iterator[Chunk]: ...


def file_format(path: Path) -> str:
    """``csv``, ``parquet`` or ``jsonl``, from the file name (compression suffix aside).

    >>> file_format(Path("orders.csv.gz")), file_format(Path("profiles.parquet"))
    ('csv', 'parquet')
    """
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes = suffixes[:-1]
    kind = FORMATS.get(suffixes[-1]) if suffixes else None
    if kind is None or (kind == "parquet" and path.suffix.lower() in _COMPRESSED):
        raise InvalidRequest(
            "FILE",
            "must end in .csv, .parquet or .jsonl (CSV and JSON lines may be .gz)",
            str(path),
        )
    return kind


def open_reader(path: Path) -> FileReader:
    """A reader of ``path`` whose columns are known now, before any row is used."""
    path = Path(path)
    if not path.is_file():
        raise InvalidRequest("FILE", "must be an existing file", str(path))
    kind = file_format(path)
    if kind == "parquet":
        return _ParquetReader(path)
    if kind == "csv":
        return _CsvReader(path)
    return _JsonLinesReader(path)


def _decompressed(raw: BinaryIO, suffix: str) -> BinaryIO:
    if suffix == ".gz":
        return cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb"))
    if suffix == ".bz2":
        return cast(BinaryIO, bz2.BZ2File(raw))
    if suffix == ".xz":
        return cast(BinaryIO, lzma.LZMAFile(raw))
    return raw


class _Counted:
    """The raw file beneath an optional decompressor, whose position is the progress."""

    def __init__(self, path: Path) -> None:
        self.raw = path.open("rb")
        self.text = io.TextIOWrapper(
            # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the header.
            _decompressed(self.raw, path.suffix.lower()),
            encoding="utf-8-sig",
            newline="",
        )

    def position(self) -> int:
        return self.raw.tell()

    def close(self) -> None:
        self.text.close()
        self.raw.close()


def _unreadable(path: Path, error: Exception) -> InvalidRequest:
    if isinstance(error, UnicodeDecodeError):
        reason = "must be UTF-8 text"
    else:
        reason = (
            f"could not be read ({str(error).splitlines()[0][:120] if str(error) else error!r})"
        )
    return InvalidRequest("FILE", reason, str(path))


class _CsvReader:
    unit = "B"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size
        opened = _Counted(path)
        try:
            header = next(csv.reader(opened.text), None)
        except (OSError, EOFError, UnicodeDecodeError, csv.Error, lzma.LZMAError) as error:
            raise _unreadable(path, error) from None
        finally:
            opened.close()
        if not header:
            raise InvalidRequest("FILE", "must start with a header row of column names", str(path))
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise InvalidRequest("FILE", "must not repeat a column name in its header", repeated)
        self.columns = header

    def chunks(self, rows: int) -> Iterator[Chunk]:
        opened = _Counted(self.path)
        try:
            reader = csv.reader(opened.text)
            next(reader)
            width = len(self.columns)
            good: list[list[str]] = []
            numbers: list[int] = []
            bad: list[MalformedRow] = []
            number = 0
            for line in reader:
                if not line:
                    continue  # a blank line holds no row
                number += 1
                if len(line) == width:
                    good.append(line)
                    numbers.append(number)
                else:
                    detail = f"has {len(line)} fields where the header has {width}"
                    bad.append(MalformedRow(number, "wrong_field_count", detail, {"line": line}))
                if len(good) + len(bad) >= rows:
                    yield _chunk(good, numbers, bad, self.columns, opened.position())
                    good, numbers, bad = [], [], []
            if good or bad:
                yield _chunk(good, numbers, bad, self.columns, opened.position())
        except (OSError, EOFError, UnicodeDecodeError, csv.Error, lzma.LZMAError) as error:
            raise _unreadable(self.path, error) from None
        finally:
            opened.close()


def _chunk(
    good: list[Any], numbers: list[int], bad: list[MalformedRow], columns: list[str], at: int
) -> Chunk:
    frame = pd.DataFrame(good, columns=columns, dtype=object)
    return Chunk(frame, numbers, bad, at)


class _JsonLinesReader:
    unit = "B"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size
        # JSON lines have no header: the columns are the keys seen in the first rows.
        seen: dict[str, None] = {}
        for chunk in self.chunks(_JSONL_HEAD_ROWS):
            for name in chunk.frame.columns:
                seen[str(name)] = None
            break
        self.columns = list(seen)

    def chunks(self, rows: int) -> Iterator[Chunk]:
        opened = _Counted(self.path)
        try:
            good: list[dict[str, Any]] = []
            numbers: list[int] = []
            bad: list[MalformedRow] = []
            number = 0
            for line in opened.text:
                if not line.strip():
                    continue
                number += 1
                try:
                    value = json.loads(line)
                except (ValueError, RecursionError) as error:
                    detail = f"is not JSON ({str(error)[:80]})"
                    bad.append(MalformedRow(number, "bad_json", detail, {"line": line.rstrip()}))
                else:
                    if isinstance(value, dict):
                        good.append(value)
                        numbers.append(number)
                    else:
                        detail = f"is a JSON {type(value).__name__}, not an object"
                        bad.append(MalformedRow(number, "not_an_object", detail, {"line": value}))
                if len(good) + len(bad) >= rows:
                    yield _records(good, numbers, bad, opened.position())
                    good, numbers, bad = [], [], []
            if good or bad:
                yield _records(good, numbers, bad, opened.position())
        except (OSError, EOFError, UnicodeDecodeError, lzma.LZMAError) as error:
            raise _unreadable(self.path, error) from None
        finally:
            opened.close()


def _records(
    good: list[dict[str, Any]], numbers: list[int], bad: list[MalformedRow], at: int
) -> Chunk:
    # Object columns keep each value's JSON type (pandas would make 1 and a missing
    # value 1.0 and NaN); a key missing in one line is a missing value in that row.
    frame = pd.DataFrame(good, dtype=object) if good else pd.DataFrame()
    return Chunk(frame, numbers, bad, at)


class _ParquetReader:
    unit = "rows"

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            meta = pq.ParquetFile(path)
        except (OSError, ValueError) as error:
            raise _unreadable(path, error) from None
        self.columns = [str(name) for name in meta.schema_arrow.names]
        self.size = meta.metadata.num_rows

    def chunks(self, rows: int) -> Iterator[Chunk]:
        done = 0
        for batch in pq.ParquetFile(self.path).iter_batches(batch_size=rows):
            frame = batch.to_pandas()
            numbers = list(range(done + 1, done + len(frame) + 1))
            done += len(frame)
            yield Chunk(frame, numbers, [], done)
