"""``nudge data check``: every source's freshness, null rates, duplicates and schema drift."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import TextIO

from decisioning.config import parse_duration
from features import InvalidRequest
from features.data_quality import DataQualityReport, Thresholds, check_data
from features.event_log import EventLog
from serving.journey_wiring import open_event_stream
from serving.settings import Settings

__all__ = ["data_report", "parse_max_age", "run_data_check"]


def parse_max_age(text: str) -> timedelta | None:
    """``24h``, ``7d``, ... or ``none`` (freshness not judged)."""
    if text.strip().lower() == "none":
        return None
    try:
        return parse_duration(text, "max_age")
    except (InvalidRequest, ValueError):
        raise InvalidRequest(
            "--max-age", "must be a duration like 30m, 24h, 7d, or none", text
        ) from None


def data_report(
    settings: Settings, thresholds: Thresholds, *, record_schema: bool = True
) -> DataQualityReport:
    """Check the event log and the event stream as of now.

    The event log's decisions and outcomes are a finished experiment's own log
    (Hillstrom, 2008): their freshness is not judged (their ages are still shown).
    Profiles are, by when their newest row became known (``created_at``). ``record_schema``
    compares with, and first writes, ``<state>/data_schema.json``; the server's
    periodic check reads sources without it, so that only a deliberate
    ``nudge data check`` sets the schema others are compared with.
    """
    now = datetime.now(UTC)
    event_log = EventLog(settings.events_dir) if settings.events_dir.exists() else None
    has_stream = settings.event_stream_db.exists() or settings.storage == "scale"
    stream = open_event_stream(settings) if has_stream else None
    historical = Thresholds(
        max_age=None,
        max_null_rate=thresholds.max_null_rate,
        max_duplicate_rate=thresholds.max_duplicate_rate,
    )
    try:
        return check_data(
            event_log=event_log,
            stream=stream,
            now=now,
            thresholds=thresholds,
            schema_file=settings.state_dir / "data_schema.json" if record_schema else None,
            table_thresholds=dict.fromkeys(("decisions", "outcomes"), historical),
        )
    finally:
        if stream is not None:
            stream.close()


def run_data_check(
    settings: Settings, thresholds: Thresholds, *, out: TextIO | None = None
) -> DataQualityReport:
    """:func:`data_report`, printed as a table and written to ``reports/data_quality.json``."""
    out = out if out is not None else sys.stdout
    report = data_report(settings, thresholds)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    path = settings.reports_dir / "data_quality.json"
    path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    _print(report, out)
    print(f"Wrote {path}", file=out)
    return report


def _print(report: DataQualityReport, out: TextIO) -> None:
    if not report.sources:
        print("no sources yet: run `nudge demo` or post events to /v1/events", file=out)
        return
    print(f"{'source':<24}{'rows':>10}{'age':>10}{'max null':>10}{'dupes':>8}  status", file=out)
    for source in report.sources:
        age = "-" if source.age_s is None else _age(source.age_s)
        worst = max(source.null_rates.values(), default=0.0)
        status = "ok" if source.ok else "; ".join(source.problems)
        print(
            f"{source.source:<24}{source.rows:>10,}{age:>10}{worst:>10.3f}"
            f"{source.duplicate_rate:>8.3f}  {status}",
            file=out,
        )


def _age(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"
