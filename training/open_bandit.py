"""The Open Bandit Dataset sample: two logs of one widget, read and checked before any use.

The sample (campaign "all": 80 items, 3 positions, 10,000 rows per log) ships
in the repository as ``data/obd/<log>/all.csv.gz`` (gzip of the original CSV,
400 KB for both); the dataset's README gives each CSV's sha256, which
:func:`load_open_bandit` checks on the decompressed bytes before it parses
anything, so an evaluation never runs on a truncated or edited copy. A folder
of plain ``all.csv`` files (the dataset as distributed) works too.
Each row of a log is one item shown at one position; ``propensity_score`` is the
probability that the logging policy showed that item at that position.

The folder is, in order: the ``data_dir`` argument, the ``NUDGE_OBD_DIR``
variable of ``environ`` (``os.environ`` by default), or the repository's ``data/obd``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from features import InvalidRequest, NotFound

__all__ = [
    "OBD_DIR_VARIABLE",
    "OBD_SHA256",
    "OpenBanditLog",
    "load_open_bandit",
    "obd_dir",
    "read_open_bandit_log",
]

OBD_DIR_VARIABLE = "NUDGE_OBD_DIR"
"""The environment variable that points at the dataset folder (the one holding ``bts_all``)."""

OBD_SHA256: dict[str, str] = {
    "random_all/all.csv": "7168295b6e0a9eabcf3392320a5dd434e542b68e705d5cd9491499af589812f1",
    "bts_all/all.csv": "0ad874e4dbf6902f0845dd478ad8dde5ef6903583d3ffaace78411bdad064106",
}
"""Each log's sha256, as the dataset README gives it, by path inside the folder."""

_LOG_FILES: dict[str, str] = {"random": "random_all/all.csv", "bts": "bts_all/all.csv"}
_COLUMNS = ("item_id", "position", "click", "propensity_score")
_N_ITEMS = 80
_N_POSITIONS = 3


@dataclass(frozen=True, eq=False)
class OpenBanditLog:
    """One logging policy's feedback: the item shown, at which position, a click, its propensity.

    ``position`` counts from 1, as in the files. Validated on construction
    (items in ``[0, n_items)``, positions in ``[1, n_positions]``, clicks 0/1,
    propensities in (0, 1]); errors name ``source``.

    >>> log = OpenBanditLog("bts", np.array([3, 5]), np.array([1, 2]), np.array([0.0, 1.0]),
    ...                     np.array([0.5, 0.25]), source="example")
    >>> len(log), log.click.mean()
    (2, np.float64(0.5))
    >>> OpenBanditLog("bts", np.array([80]), np.array([1]), np.array([0.0]), np.array([0.5]),
    ...               source="example.csv")
    Traceback (most recent call last):
    ...
    features.errors.InvalidRequest: `example.csv: item_id` must be whole numbers in [0, 79], got 80
    """

    policy: str
    item_id: NDArray[np.int64]
    position: NDArray[np.int64]
    click: NDArray[np.float64]
    propensity_score: NDArray[np.float64]
    source: str
    n_items: int = _N_ITEMS
    n_positions: int = _N_POSITIONS

    def __post_init__(self) -> None:
        n = len(self.item_id)
        if n == 0:
            raise InvalidRequest(self.source, "must hold at least one row")
        columns: dict[str, NDArray[np.float64]] = {}
        for name in _COLUMNS:
            values = np.asarray(getattr(self, name))
            if values.ndim != 1 or len(values) != n:
                raise InvalidRequest(f"{self.source}: {name}", f"must be 1-D with {n} rows")
            try:
                columns[name] = values.astype(np.float64)
            except (TypeError, ValueError):
                raise InvalidRequest(f"{self.source}: {name}", "must be numbers") from None
            if not np.isfinite(columns[name]).all():
                raise InvalidRequest(f"{self.source}: {name}", "must be finite (no NaN)")
        _check_whole(self.source, "item_id", columns["item_id"], 0, self.n_items - 1)
        _check_whole(self.source, "position", columns["position"], 1, self.n_positions)
        click = columns["click"]
        if not np.isin(click, (0.0, 1.0)).all():
            bad = click[~np.isin(click, (0.0, 1.0))]
            raise InvalidRequest(f"{self.source}: click", "must be 0 or 1", float(bad[0]))
        propensity = columns["propensity_score"]
        if ((propensity <= 0) | (propensity > 1)).any():
            bad = propensity[(propensity <= 0) | (propensity > 1)]
            raise InvalidRequest(
                f"{self.source}: propensity_score", "must be in (0, 1]", float(bad[0])
            )
        # Stored as read-only copies of the checked dtype, so the record stays as validated.
        for name, values in columns.items():
            stored = values.astype(np.int64) if name in ("item_id", "position") else values
            stored.flags.writeable = False
            object.__setattr__(self, name, stored)

    def __len__(self) -> int:
        return len(self.item_id)


def _check_whole(source: str, name: str, values: NDArray[np.float64], low: int, high: int) -> None:
    bad = (values != np.round(values)) | (values < low) | (values > high)
    if bad.any():
        got = float(values[bad][0])
        raise InvalidRequest(
            f"{source}: {name}",
            f"must be whole numbers in [{low}, {high}]",
            int(got) if got.is_integer() else got,
        )


def obd_dir(data_dir: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The dataset folder: ``data_dir``, else ``$NUDGE_OBD_DIR``, else the repository's copy.

    >>> obd_dir("/data/obd")
    PosixPath('/data/obd')
    >>> obd_dir(environ={"NUDGE_OBD_DIR": "/elsewhere"})
    PosixPath('/elsewhere')
    >>> obd_dir(environ={}).parts[-2:]
    ('data', 'obd')
    """
    if data_dir is not None:
        return Path(data_dir)
    variables = os.environ if environ is None else environ
    if variables.get(OBD_DIR_VARIABLE):
        return Path(variables[OBD_DIR_VARIABLE])
    return Path(__file__).resolve().parents[1] / "data" / "obd"


def load_open_bandit(
    policy: Literal["random", "bts"],
    data_dir: Path | str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> OpenBanditLog:
    """The log of ``policy`` ("random" or "bts"), its sha256 checked against the README's.

    Raises :class:`~features.NotFound` naming the file when it is missing and
    :class:`~features.InvalidRequest` naming it when its checksum or contents
    are wrong. See :func:`obd_dir` for where the folder is looked for.
    """
    if policy not in _LOG_FILES:
        raise InvalidRequest("policy", f"must be one of {sorted(_LOG_FILES)}", policy)
    relative = _LOG_FILES[policy]
    return read_open_bandit_log(
        obd_dir(data_dir, environ) / relative, policy=policy, sha256=OBD_SHA256[relative]
    )


def read_open_bandit_log(path: Path, *, policy: str, sha256: str | None) -> OpenBanditLog:
    """One ``all.csv`` (or its ``all.csv.gz``) as an :class:`OpenBanditLog`; the CSV's
    sha256 is checked first unless ``None``."""
    if not path.is_file():
        packed = path.with_name(path.name + ".gz")
        if not packed.is_file():
            raise NotFound("Open Bandit Dataset file", str(path))
        path = packed
    try:
        content = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as error:
        raise InvalidRequest(str(path), "must be a readable gzip file", str(error)) from None
    if sha256 is not None:
        actual = hashlib.sha256(content).hexdigest()
        if actual != sha256:
            raise InvalidRequest(
                str(path), f"must have the sha256 the dataset README gives ({sha256})", actual
            )
    try:
        frame = pd.read_csv(io.BytesIO(content), usecols=lambda column: column in _COLUMNS)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InvalidRequest(str(path), "must be a readable CSV file", str(error)) from None
    missing = [column for column in _COLUMNS if column not in frame.columns]
    if missing:
        raise InvalidRequest(str(path), f"must have the columns {list(_COLUMNS)}", missing)
    return OpenBanditLog(
        policy=policy,
        item_id=_numbers(frame, "item_id", path),
        position=_numbers(frame, "position", path),
        click=_numbers(frame, "click", path),
        propensity_score=_numbers(frame, "propensity_score", path),
        source=str(path),
    )


def _numbers(frame: pd.DataFrame, column: str, path: Path) -> NDArray[Any]:
    """A column as floats; :class:`OpenBanditLog` checks and converts them."""
    values: NDArray[Any] = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise InvalidRequest(f"{path}: {column}", "must be numbers with no blanks")
    return values
