"""``nudge report uplift``: the uplift report of the decision log, written to files."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from decisioning import Decision, DecisionEngine
from features import NotFound
from serving.settings import Settings
from serving.wiring import build_runtime
from training import ModelRegistry
from training.uplift_report import report_from_log
from training.uplift_report_html import render_uplift_html

__all__ = ["WrittenReport", "challenger_policy", "write_uplift_report"]


def challenger_policy(
    settings: Settings, engine: DecisionEngine
) -> Callable[[Decision], str] | None:
    """The registry's ``challenger`` model as a greedy policy over each logged decision,
    or None when no challenger is registered."""
    registry = ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifact_root)
    try:
        challenger = registry.load(settings.model_name, "challenger")
    except NotFound:
        return None
    return lambda decision: engine.greedy_choice(decision, challenger.model)


@dataclass(frozen=True)
class WrittenReport:
    html: Path
    json: Path
    csv: dict[str, Path]
    warnings: list[str]


def write_uplift_report(
    settings: Settings, *, journey: str | None = None, since: datetime | None = None
) -> WrittenReport:
    """Build the report over the configured log and write HTML, JSON and one CSV per table.

    The champion model scores every decision, the holdout included, for the
    Qini curve (see :meth:`DecisionEngine.uplift_score`).
    """
    runtime = build_runtime(settings)
    try:
        engine = runtime.engine
        report = report_from_log(
            engine.log,
            engine.config,
            journey=journey,
            since=since,
            uplift_score=engine.uplift_score,
            challenger=challenger_policy(settings, engine),
        )
    finally:
        runtime.close()
    out = settings.reports_dir
    out.mkdir(parents=True, exist_ok=True)
    csv = {}
    for name, table in report.tables().items():
        path = out / f"uplift-{name}.csv"
        table.to_csv(path, index=False)
        csv[name] = path
    html = out / "uplift-report.html"
    html.write_text(
        render_uplift_html(report, csv_links={name: path.name for name, path in csv.items()}),
        encoding="utf-8",
    )
    data = report.to_json()
    json_path = out / "uplift-report.json"
    json_path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return WrittenReport(html, json_path, csv, list(data.get("warnings", [])))
