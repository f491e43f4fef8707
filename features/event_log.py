"""A folder of named Parquet tables: the event log that Feast's offline store reads.

Writes are atomic (a temporary file in the same folder, then ``os.replace``), so
a reader, or Feast materialising from the table, sees the old table or the new
one and never half of either, even if the writer crashes.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pandas as pd

from features.errors import InvalidRequest, NotFound

__all__ = ["EventLog"]

_NAME = re.compile(r"[A-Za-z0-9_]+")


class EventLog:
    """Named tables stored as ``<root>/<name>.parquet``.

    >>> import tempfile
    >>> frame = pd.DataFrame({"customer_id": ["h00001"], "arm": ["no_email"]})
    >>> with tempfile.TemporaryDirectory() as root:
    ...     log = EventLog(Path(root))
    ...     path = log.write("decisions", frame)
    ...     path.name, log.exists("decisions"), log.read("decisions")["arm"].tolist()
    ('decisions.parquet', True, ['no_email'])
    """

    def __init__(self, root: Path) -> None:
        # Absolute from the start: table paths are handed to Feast, which reads a
        # relative one against its own repo folder rather than the working directory.
        self.root = Path(root).expanduser().resolve()

    def path(self, name: str) -> Path:
        """Where table ``name`` is (or would be) stored.

        >>> EventLog(Path("/tmp/x")).path("outcomes").name
        'outcomes.parquet'
        """
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidRequest("name", "must be letters, digits or underscores", name)
        return self.root / f"{name}.parquet"

    def exists(self, name: str) -> bool:
        """Whether table ``name`` has been written."""
        return self.path(name).is_file()

    def write(self, name: str, frame: pd.DataFrame) -> Path:
        """Replace table ``name`` with ``frame`` (its index is not kept) and return its path."""
        target = self.path(name)
        self.root.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.root, prefix=f".{name}.", suffix=".tmp")
        os.close(handle)
        try:
            frame.to_parquet(temporary, index=False)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    def read(self, name: str) -> pd.DataFrame:
        """The whole of table ``name``; ``NotFound`` if it was never written."""
        target = self.path(name)
        if not target.is_file():
            raise NotFound("table", name)
        return pd.read_parquet(target)
