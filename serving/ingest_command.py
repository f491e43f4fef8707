"""``nudge ingest FILE --source NAME --mapping MAPPING.yaml``: a file into the events or profiles.

Events go into the event stream the API and the journeys share (``event_stream.db``,
or Postgres in scale mode), through the identity graph as ``POST /v1/events``
does; profiles into the event log's ``profiles`` table under the state folder.
Rejected rows go to ``<state>/quarantine/<source>-<time>.jsonl``. Exit code 0
when every row was accepted, 1 when some were rejected, 2 on an error (a bad
mapping, an unreadable file) before anything was stored.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from serving.settings import Settings

if TYPE_CHECKING:
    from features.batch_ingest import IngestReport

__all__ = ["add_ingest_parser", "run_ingest"]


def add_ingest_parser(commands: Any) -> argparse.ArgumentParser:
    """The ``ingest`` subcommand's arguments (``commands``: argparse's subparsers)."""
    ingest: argparse.ArgumentParser = commands.add_parser(
        "ingest",
        help="import a CSV, Parquet or JSON-lines file into the events or the customer profiles",
    )
    ingest.add_argument("file", type=Path, help="the file (.csv, .parquet, .jsonl; .gz allowed)")
    ingest.add_argument(
        "--source", required=True, help="where the data comes from (names event ids, quarantine)"
    )
    ingest.add_argument(
        "--mapping", required=True, type=Path, help="YAML: columns → event or profile fields"
    )
    ingest.add_argument("--state-dir", type=Path, help="state folder (default .nudge)")
    ingest.add_argument("--storage", choices=["embedded", "scale"])
    ingest.add_argument("--no-progress", action="store_true", help="no progress bar")
    ingest.add_argument("--json", action="store_true", help="print the report as JSON")
    return ingest


def run_ingest(
    settings: Settings,
    file: Path,
    *,
    source: str,
    mapping: Path,
    progress: bool = True,
    as_json: bool = False,
    out: TextIO | None = None,
) -> IngestReport:
    """Import ``file`` and print what happened; the report says what was rejected and why."""
    # Imported here: the CLI builds its parser from this module, and pandas is slow to import.
    from features.batch_ingest import ingest_file
    from features.event_log import EventLog
    from features.ingest_mapping import load_mapping
    from serving.journey_wiring import open_stitching_stream

    out = out if out is not None else sys.stdout
    checked = load_mapping(mapping)  # a bad mapping stops here, before anything is opened
    quarantine = settings.state_dir / "quarantine"
    if checked.target == "events":
        stream = open_stitching_stream(settings)
        try:
            report = ingest_file(
                file,
                checked,
                source=source,
                into=stream,
                quarantine_dir=quarantine,
                progress=progress,
            )
        finally:
            stream.stream.close()
    else:
        report = ingest_file(
            file,
            checked,
            source=source,
            into=EventLog(settings.events_dir),
            quarantine_dir=quarantine,
            progress=progress,
        )
    print(json.dumps(report.to_dict(), indent=2) if as_json else report.summary(), file=out)
    return report
