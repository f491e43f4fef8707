"""Ingest the Hillstrom experiment into the event log: the quickstart's first step.

The profile snapshots, the table the feature store reads, go through batch
import (:func:`features.batch_ingest.ingest_frame` with
``features/mappings/hillstrom.yaml``), the path ``nudge ingest`` takes: the
same checks, the same UTC times, the same idempotence. The decisions and
outcomes are the experiment's own logged feedback, fixed by the seed's
timeline; each run writes them whole.
"""

from __future__ import annotations

from pathlib import Path

from features.batch_ingest import PROFILES_TABLE, ingest_frame
from features.errors import InvalidRequest
from features.event_log import EventLog
from features.hillstrom import HillstromLog, build_hillstrom_log, load_hillstrom
from features.ingest_mapping import load_mapping

__all__ = ["HILLSTROM_MAPPING", "HILLSTROM_TABLES", "ingest_hillstrom"]

HILLSTROM_TABLES: tuple[str, ...] = ("profiles", "decisions", "outcomes")
HILLSTROM_MAPPING = Path(__file__).resolve().parent / "mappings" / "hillstrom.yaml"


def ingest_hillstrom(
    event_log: EventLog,
    *,
    path: Path | None = None,
    sample: int | None = None,
    seed: int = 0,
    quarantine_dir: Path | None = None,
) -> HillstromLog:
    """Load the experiment, place it on a timeline and write its three tables.

    ``seed`` drives both the sample and the decision times, so one number
    reproduces the whole run. Rejected profile rows would go to
    ``quarantine_dir`` (default: ``quarantine`` beside the event log's folder);
    the loader has checked every value already, so one is a bug and raises.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as root:
    ...     events = EventLog(Path(root) / "events")
    ...     log = ingest_hillstrom(events, sample=1_000, seed=3)
    ...     [events.exists(name) for name in HILLSTROM_TABLES], len(events.read("decisions"))
    ([True, True, True], 1000)
    """
    log = build_hillstrom_log(load_hillstrom(path, sample=sample, seed=seed), seed=seed)
    report = ingest_frame(
        log.profiles,
        load_mapping(HILLSTROM_MAPPING),
        source="hillstrom",
        into=event_log,
        quarantine_dir=quarantine_dir or event_log.root.parent / "quarantine",
    )
    if report.rejected_rows:
        raise InvalidRequest(
            PROFILES_TABLE,
            f"lost {report.rejected_rows} Hillstrom profile rows; see {report.quarantine}",
        )
    for name in HILLSTROM_TABLES:
        if name != PROFILES_TABLE:
            event_log.write(name, getattr(log, name))
    return log
