"""``nudge train``, ``nudge promote``, ``nudge rollback`` and ``nudge models list``.

Thin wrappers over :mod:`training.lifecycle` and :mod:`training.promotion`:
each prints its steps with their times and a short table.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from features import EventLog, InvalidRequest, Unavailable
from serving.progress import Steps
from serving.settings import Settings
from training.lifecycle import (
    FAMILIES,
    TrainedModel,
    build_training_set,
    family_name,
    log_challenger,
    registry_for,
    resolve_learner,
    train_model,
)
from training.policy_value import PolicyValue
from training.promotion import PromotionDecision, PromotionEvidence, promote, rollback
from training.registry import RegisteredModel

__all__ = [
    "TrainResult",
    "VersionRow",
    "format_evidence",
    "format_versions",
    "list_models",
    "parse_as_of",
    "promote_command",
    "rollback_command",
    "train_command",
]


@dataclass(frozen=True)
class TrainResult:
    """What ``nudge train`` trained and where it was registered."""

    trained: TrainedModel
    registered: RegisteredModel
    timings_s: dict[str, float]


@dataclass(frozen=True)
class VersionRow:
    """One line of ``nudge models list``."""

    family: str
    version: str
    aliases: tuple[str, ...]
    learner: str
    outcome: str
    created: datetime
    metrics: dict[str, float]
    last_decision: str


def parse_as_of(text: str | None) -> datetime | None:
    """``--as-of`` as an aware UTC date-time; a bare date is its midnight, UTC.

    >>> parse_as_of("2008-03-20")
    datetime.datetime(2008, 3, 20, 0, 0, tzinfo=datetime.timezone.utc)
    >>> parse_as_of("2008-03-20T12:00:00+02:00")
    datetime.datetime(2008, 3, 20, 10, 0, tzinfo=datetime.timezone.utc)
    >>> parse_as_of("last week")
    Traceback (most recent call last):
    ...
    features.errors.InvalidRequest: `as_of` must be an ISO date or date-time such as \
2008-03-20 or 2008-03-20T12:00:00Z, got 'last week'
    """
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest(
            "as_of",
            "must be an ISO date or date-time such as 2008-03-20 or 2008-03-20T12:00:00Z",
            text,
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def train_command(
    settings: Settings,
    *,
    model: str = "propensity",
    learner: str | None = None,
    as_of: datetime | None = None,
    outcome: str = "visit",
    out: TextIO | None = None,
) -> TrainResult:
    """Build the training set, fit on it and log the model as its family's challenger."""
    out = out if out is not None else sys.stdout
    family, learner = resolve_learner(model, learner, outcome)
    if not EventLog(settings.events_dir).exists("decisions"):
        raise Unavailable(
            f"no decision log in {settings.events_dir} to train on; run `nudge demo` first"
        )
    steps = Steps(3, out=out)
    known = f" as known at {as_of.isoformat()}" if as_of else ""
    with steps.step("training_set", f"Training set: Feast point-in-time features{known}"):
        training_set = build_training_set(settings, as_of=as_of)
        ignored = {name: count for name, count in training_set.ignored.items() if count}
        steps.note(
            f"{len(training_set.frame):,} decisions × {len(training_set.features)} features "
            f"from {training_set.feature_service}, snapshot {training_set.snapshot_id[:12]}"
            + (f"; left out {_counts(ignored)}" if ignored else "")
        )
    with steps.step("fit", f"Fit: {family}"):
        trained = train_model(
            settings, family, learner=learner, outcome=outcome, training_set=training_set
        )
        steps.note(
            f"{trained.config['model_class']} ({trained.learner}) on {len(trained.train):,} "
            f"customers in {trained.fit_seconds:.1f} s, judged on {len(trained.test):,} held out"
        )
    with steps.step("log", "Log: MLflow run, plots and model → registry"):
        registered = log_challenger(settings, trained)
        steps.note(
            f"{registered.name} v{registered.version} @{','.join(registered.aliases)} "
            f"(run {registered.run_id[:12]})"
        )
    print(_metric_table(trained.metrics), file=out)
    return TrainResult(trained=trained, registered=registered, timings_s=steps.timings_s)


def promote_command(
    settings: Settings,
    *,
    model: str = "propensity",
    margin: float = 0.0,
    dry_run: bool = False,
    force: bool = False,
    out: TextIO | None = None,
) -> PromotionDecision:
    """Evaluate champion and challenger on the same logs; promote, refuse or (dry run) say which."""
    out = out if out is not None else sys.stdout
    family = family_name(model)
    _check_registry(settings)
    steps = Steps(2, out=out)
    with steps.step("training_set", "Training set: the logs both models are judged on"):
        training_set = build_training_set(settings)
        steps.note(
            f"{len(training_set.frame):,} decisions, snapshot {training_set.snapshot_id[:12]}"
        )
    with steps.step("decide", f"Evaluate {family} champion and challenger by DR, and decide"):
        decision = promote(
            settings,
            family,
            margin=margin,
            force=force,
            dry_run=dry_run,
            training_set=training_set,
        )
        if decision.record_run_id:
            steps.note(f"recorded as run {decision.record_run_id[:12]} in nudge-promotions")
    if decision.evidence is not None:
        print(format_evidence(decision.evidence), file=out)
    verdict = {
        "promote": "PROMOTED" if decision.applied else "WOULD PROMOTE",
        "refuse": "REFUSED" if not dry_run else "WOULD REFUSE",
        "none": "NOTHING TO DO",
        "rollback": "ROLLED BACK",
    }[decision.action]
    print(f"{verdict}: {decision.reason}", file=out)
    if dry_run:
        print("dry run: no alias moved, nothing recorded", file=out)
    return decision


def rollback_command(
    settings: Settings, *, model: str = "propensity", out: TextIO | None = None
) -> PromotionDecision:
    """Point the family's champion back at the previous champion in the records."""
    out = out if out is not None else sys.stdout
    family = family_name(model)
    _check_registry(settings)
    steps = Steps(1, out=out)
    with steps.step("rollback", f"Rollback: {family}@champion to the previous champion"):
        decision = rollback(settings, family)
        steps.note(f"recorded as run {(decision.record_run_id or '')[:12]} in nudge-promotions")
    print(f"ROLLED BACK: {decision.reason}", file=out)
    return decision


def list_models(
    settings: Settings, *, model: str | None = None, out: TextIO | None = None
) -> list[VersionRow]:
    """Every version of every family (or of ``model``), with aliases and key metrics."""
    out = out if out is not None else sys.stdout
    families = FAMILIES if model is None else (family_name(model),)
    _check_registry(settings)
    registry = registry_for(settings)
    registered = set(registry.names())
    rows: list[VersionRow] = []
    for family in families:
        if family not in registered:
            continue
        for info in registry.versions(family):
            metrics = dict(registry.run(info.run_id).data.metrics)
            rows.append(
                VersionRow(
                    family=family,
                    version=info.version,
                    aliases=info.aliases,
                    learner=info.tags.get("nudge.learner", info.tags.get("nudge.model", "?")),
                    outcome=info.tags.get("nudge.outcome", "visit"),
                    created=info.created,
                    metrics=metrics,
                    last_decision=info.tags.get("nudge.last_decision", ""),
                )
            )
    print(format_versions(rows), file=out)
    return rows


def format_versions(rows: Sequence[VersionRow]) -> str:
    """The ``nudge models list`` table.

    >>> row = VersionRow("nudge-uplift", "2", ("champion",), "dr", "visit",
    ...                  datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
    ...                  {"qini_mens": 0.0123}, "promote")
    >>> print(format_versions([row]))
    model         version  aliases   learner  outcome  created           decision  key metrics
    nudge-uplift  2        champion  dr       visit    2026-01-02 03:04  promote   qini mens 0.0123
    """
    if not rows:
        return "no models registered yet; train one with `nudge train`"
    header = ("model", "version", "aliases", "learner", "outcome", "created", "decision")
    table = [header] + [
        (
            row.family,
            row.version,
            ",".join(row.aliases) or "-",
            row.learner,
            row.outcome,
            row.created.strftime("%Y-%m-%d %H:%M"),
            row.last_decision or "-",
        )
        for row in rows
    ]
    widths = [max(len(line[k]) for line in table) for k in range(len(header))]
    lines = []
    for k, line in enumerate(table):
        cells = "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        extra = "key metrics" if k == 0 else _key_metrics(rows[k - 1].metrics)
        lines.append(f"{cells}  {extra}")
    return "\n".join(lines)


def format_evidence(evidence: PromotionEvidence) -> str:
    """Champion and challenger side by side: DR and IPS with intervals, and the difference."""
    lines = [
        f"{evidence.n:,} held-out customers, reward {evidence.outcome}, "
        f"logging policy {_value(evidence.logged)}",
        f"{'':<12}{'version':>8}  {'DR (bootstrap 95 % CI)':<30}IPS (95 % CI)",
    ]
    for candidate in (evidence.champion, evidence.challenger):
        lines.append(
            f"{candidate.role:<12}{'v' + candidate.version:>8}  "
            f"{_value(candidate.dr):<30}{_value(candidate.ips)}"
        )
    lines.append(f"{'difference':<12}{'':>8}  {_value(evidence.difference)}")
    lines.extend(f"note: {warning}" for warning in evidence.warnings)
    return "\n".join(lines)


def _value(value: PolicyValue) -> str:
    low, high = value.ci95
    return f"{value.mean:.4f} [{low:.4f}, {high:.4f}]"


def _key_metrics(metrics: dict[str, float]) -> str:
    parts = []
    aucs = [value for key, value in metrics.items() if key.startswith("auc_")]
    if aucs:
        parts.append(f"auc {sum(aucs) / len(aucs):.3f}")
    qinis = sorted(
        (key.removeprefix("qini_"), value)
        for key, value in metrics.items()
        if key.startswith("qini_")
    )
    if qinis:
        parts.append("qini " + ", ".join(f"{name} {value:.4f}" for name, value in qinis))
    return "; ".join(parts) or "-"


def _metric_table(metrics: dict[str, float]) -> str:
    names = sorted(metrics)
    width = max(len(name) for name in names)
    return "\n".join(f"  {name:<{width}}  {metrics[name]:.4f}" for name in names)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{count:,} {name.replace('_', ' ')}" for name, count in counts.items())


def _check_registry(settings: Settings) -> None:
    # Checked first: opening MLflow's store would create an empty one as a side effect.
    if not settings.mlflow_db.exists():
        raise Unavailable(
            f"no model registry at {settings.mlflow_db}; train a model with `nudge train` first"
        )
