"""The audiences report: sizes (desired and confirmed), adds/removes per sync, and failures.

>>> import tempfile, pathlib
>>> from features.sql import SQLiteDatabase
>>> from channels.audiences import AudienceStore
>>> store = AudienceStore(SQLiteDatabase(pathlib.Path(tempfile.mkdtemp()) / "a.db"))
>>> print(format_report(audience_report(store)))
no audiences yet
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from channels.audiences import AudienceStore

__all__ = ["audience_report", "format_report", "write_report"]


def audience_report(store: AudienceStore) -> dict[str, Any]:
    """Everything the report shows, as plain JSON-ready values."""
    return {
        "audiences": store.summary(),
        "syncs": store.syncs(),
        "failed_batches": [b for b in store.batches() if b["status"] != "sent" and b["error"]],
    }


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[str]:
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return lines


def format_report(report: dict[str, Any]) -> str:
    if not report["audiences"]:
        return "no audiences yet"
    lines = _table(report["audiences"], ("audience", "desired", "confirmed", "to_add", "to_remove"))
    if report["syncs"]:
        lines += ["", "syncs:"]
        lines += _table(
            report["syncs"],
            ("sync_id", "finished_at", "audience", "adds", "removes", "failures", "skipped"),
        )
    if report["failed_batches"]:
        lines += ["", "batches with failures:"]
        lines += _table(
            report["failed_batches"],
            ("batch_id", "audience", "op", "size", "status", "attempts", "error"),
        )
    return "\n".join(lines)


def write_report(store: AudienceStore, reports_dir: Path) -> tuple[Path, str]:
    """Writes ``audiences.json`` in ``reports_dir``; returns its path and the text table."""
    report = audience_report(store)
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / "audiences.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return path, format_report(report)
