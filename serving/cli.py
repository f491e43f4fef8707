"""The ``nudge`` command.

>>> parser = build_parser()
>>> args = parser.parse_args(["demo", "--sample", "6000", "--port", "8100"])
>>> args.command, args.sample, args.port
('demo', 6000, 8100)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from features import NotFound, NudgeError, Unavailable
from serving.ingest_command import add_ingest_parser
from serving.settings import Settings

__all__ = ["build_parser", "main"]


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, help="state folder (default .nudge)")
    parser.add_argument("--seed", type=int, help="seed for data sampling, splits and the policy")


def _add_server(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8000)")
    parser.add_argument("--policy", choices=["linear_ts", "epsilon_greedy", "uniform"])
    parser.add_argument("--epsilon", type=float, help="epsilon_greedy's exploration rate")
    parser.add_argument("--workers", type=int, help="API worker processes (default 1)")
    parser.add_argument(
        "--storage",
        choices=["embedded", "scale"],
        help="embedded SQLite (default) or scale mode (Redis + Postgres)",
    )
    parser.add_argument("--decision-config", type=Path, help="decision configuration YAML")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nudge", description="Nudge: decisioning for marketing automation."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo", help="run the whole loop on the Hillstrom experiment and write reports/"
    )
    _add_common(demo)
    _add_server(demo)
    demo.add_argument("--sample", type=int, help="use a stratified sample of N customers")
    demo.add_argument("--data", type=Path, help="Hillstrom CSV (default data/hillstrom.csv.gz)")
    demo.add_argument("--reports-dir", type=Path, help="where reports go (default reports)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")

    serve = commands.add_parser("serve", help="run the decision API until stopped")
    _add_common(serve)
    _add_server(serve)

    report = commands.add_parser("report", help="reports over the decision log")
    report_commands = report.add_subparsers(dest="report_command", required=True)
    uplift = report_commands.add_parser(
        "uplift", help="uplift against the holdout, policy values; HTML, JSON and CSV files"
    )
    _add_common(uplift)
    uplift.add_argument("--journey", help="only this journey")
    uplift.add_argument("--since", help="only decisions from this ISO date or date-time on")
    uplift.add_argument("--reports-dir", type=Path, help="where the files go (default reports)")
    uplift.add_argument("--decision-config", type=Path, help="the server's decision configuration")
    uplift.add_argument("--storage", choices=["embedded", "scale"])

    alerts = commands.add_parser("alerts", help="monitoring alerts")
    alert_commands = alerts.add_subparsers(dest="alerts_command", required=True)
    check = alert_commands.add_parser("check", help="judge every alert now and print the result")
    _add_common(check)
    check.add_argument(
        "--decision-config", type=Path, help="the decision configuration the server runs with"
    )
    check.add_argument("--storage", choices=["embedded", "scale"])
    check.add_argument("--url", help="a running server (http://host:port) whose latency to judge")

    keys = commands.add_parser("keys", help="API keys: create, list, revoke")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create a key and print it (shown once)")
    create.add_argument("name", help="who or what uses the key, e.g. journeys")
    create.add_argument(
        "--scopes", required=True, help="comma-separated: ingest, decide, admin (admin: all)"
    )
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    for sub in (create, revoke, key_commands.add_parser("list", help="every key, no secrets")):
        _add_common(sub)
        sub.add_argument("--storage", choices=["embedded", "scale"])

    add_ingest_parser(commands)

    features = commands.add_parser("features", help="the feature store")
    feature_commands = features.add_subparsers(dest="features_command", required=True)
    refresh = feature_commands.add_parser(
        "refresh",
        help="behaviour snapshots from the event stream and decision log, then feast apply "
        "and an incremental materialisation",
    )
    _add_common(refresh)
    refresh.add_argument("--days", type=int, default=0, help="also snapshot each earlier day")
    refresh.add_argument("--storage", choices=["embedded", "scale"])
    refresh.add_argument("--feature-store", choices=["embedded", "scale"])

    data = commands.add_parser("data", help="data quality of the event log and event stream")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    data_check = data_commands.add_parser(
        "check",
        help="freshness, null rates, duplicate rates and schema drift per source; "
        "exit 1 when a threshold is broken",
    )
    _add_common(data_check)
    data_check.add_argument(
        "--max-age", default="24h", help="stream events older than this are stale (or none)"
    )
    data_check.add_argument("--max-null-rate", type=float, default=0.05)
    data_check.add_argument("--max-duplicate-rate", type=float, default=0.01)

    journeys = commands.add_parser("journeys", help="journeys: validate the files, run them")
    journey_commands = journeys.add_subparsers(dest="journeys_command", required=True)
    validate = journey_commands.add_parser(
        "validate", help="check journey files against the decision configuration"
    )
    _add_common(validate)
    validate.add_argument("files", nargs="*", type=Path, help="files (default: --journeys-dir)")
    validate.add_argument("--journeys-dir", type=Path, help="folder of journey YAML files")
    validate.add_argument("--decision-config", type=Path, help="decision configuration YAML")
    status = journey_commands.add_parser(
        "status", help="customers per journey and status, sends per channel and status"
    )
    _add_common(status)
    status.add_argument("--storage", choices=["embedded", "scale"])
    run = journey_commands.add_parser(
        "run", help="run the journeys: consume events, decide, send, until stopped"
    )
    _add_common(run)
    run.add_argument("--journeys-dir", type=Path, help="folder of journey YAML files")
    run.add_argument("--decision-config", type=Path, help="decision configuration YAML")
    run.add_argument("--channels-config", type=Path, help="channel senders YAML")
    run.add_argument("--storage", choices=["embedded", "scale"])
    run.add_argument("--api", help="a running decision API (http://host:port); default in process")
    run.add_argument("--public-url", help="base URL of tracked and unsubscribe links")
    run.add_argument("--once", action="store_true", help="one pass, then stop")
    run.add_argument(
        "--until-idle", action="store_true", help="stop when nothing is left to do now"
    )

    score = journey_commands.add_parser(
        "score", help="score every customer for the score triggers; start journeys on crossings"
    )
    _add_common(score)
    score.add_argument("--journeys-dir", type=Path, help="folder of journey YAML files")
    score.add_argument("--storage", choices=["embedded", "scale"])
    churn = journey_commands.add_parser(
        "train-churn", help="train nudge-churn on the event stream and log it to MLflow"
    )
    _add_common(churn)
    churn.add_argument("--horizon-days", type=int, default=60, help="churned: no purchase within")
    churn.add_argument("--synthetic", type=int, help="train on a synthetic history of N customers")
    churn.add_argument("--champion", action="store_true", help="make it the champion now")

    audiences = commands.add_parser("audiences", help="ad audiences of the `type: ads` channel")
    audience_commands = audiences.add_subparsers(dest="audiences_command", required=True)
    audience_sync = audience_commands.add_parser(
        "sync", help="ship audience adds/removes to the ad network, every --every seconds"
    )
    audience_sync.add_argument("--every", type=float, default=60.0, help="seconds between syncs")
    audience_sync.add_argument("--once", action="store_true", help="one sync, then exit")
    audience_report = audience_commands.add_parser(
        "report", help="audience sizes, adds/removes per sync, failures; reports/audiences.json"
    )
    for sub in (audience_sync, audience_report):
        _add_common(sub)
        sub.add_argument("--channels-config", type=Path, help="channels YAML with a type: ads")
        sub.add_argument("--channel", help="the ads channel's name (default: the first)")
        sub.add_argument("--reports-dir", type=Path, help="where reports go (default reports)")

    models = commands.add_parser("models", help="registered models and the online learners' state")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    snapshot = model_commands.add_parser(
        "snapshot", help="log what the champion's policy has learned online to MLflow"
    )
    _add_common(snapshot)
    snapshot.add_argument("--storage", choices=["embedded", "scale"])
    snapshot.add_argument(
        "--policy",
        choices=["linear_ts", "epsilon_greedy", "uniform"],
        help="the policy the server runs (default linear_ts)",
    )
    snapshot.add_argument("--epsilon", type=float, help="epsilon_greedy's rate the server runs")
    restore = model_commands.add_parser(
        "restore", help="write a snapshot back in place of the stored state (API stopped)"
    )
    _add_common(restore)
    restore.add_argument("run_id", help="the snapshot's MLflow run id")
    restore.add_argument("--storage", choices=["embedded", "scale"])
    _add_lifecycle(commands, model_commands)
    return parser


def _add_lifecycle(commands: Any, model_commands: Any) -> None:
    """``train``, ``promote``, ``rollback`` and ``models list``."""
    families = ["propensity", "uplift"]
    train = commands.add_parser(
        "train", help="train a model from the feature store and log it as the challenger"
    )
    _add_common(train)
    train.add_argument("--model", choices=families, default="propensity", help="model family")
    train.add_argument(
        "--learner",
        choices=["arm", "calibrated", "t", "dr"],
        help="propensity: arm (default) or calibrated; uplift: dr (default) or t",
    )
    train.add_argument("--as-of", help="train on the data as known at this ISO date-time")
    train.add_argument(
        "--outcome", choices=["visit", "conversion", "spend"], default="visit", help="reward"
    )
    promote = commands.add_parser(
        "promote", help="make the challenger the champion if it is better on the same logs"
    )
    _add_common(promote)
    promote.add_argument("--model", choices=families, default="propensity", help="model family")
    promote.add_argument(
        "--margin", type=float, default=0.0, help="by how much the lower bound must win"
    )
    promote.add_argument("--dry-run", action="store_true", help="decide, change nothing")
    promote.add_argument("--force", action="store_true", help="promote whatever the evidence")
    rollback = commands.add_parser("rollback", help="return to the previous champion")
    _add_common(rollback)
    rollback.add_argument("--model", choices=families, default="propensity", help="model family")
    listing = model_commands.add_parser("list", help="versions, aliases and key metrics")
    _add_common(listing)
    listing.add_argument("--model", choices=families, help="only this family")


def _settings_from(args: argparse.Namespace) -> Settings:
    names = (
        "state_dir",
        "reports_dir",
        "host",
        "port",
        "policy",
        "epsilon",
        "seed",
        "workers",
        "storage",
        "decision_config",
        "journeys_dir",
        "channels_config",
        "public_url",
        "feature_store",
    )
    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in names if getattr(args, name, None) is not None
    }
    return Settings(**overrides)


def _quiet_libraries() -> None:
    # Feast and MLflow announce themselves loudly; the steps say what matters.
    # Feast resets the DeprecationWarning filter when it is imported, and
    # SQLAlchemy installs its own, so both are imported (every command needs them
    # anyway) before our filters go in front.
    import feast.feature_view  # noqa: F401
    import sqlalchemy.exc

    warnings.filterwarnings("ignore", category=sqlalchemy.exc.SADeprecationWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    for name in ("feast", "mlflow", "alembic", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _serve(settings: Settings) -> None:
    import uvicorn

    from serving.app import create_app
    from serving.wiring import build_runtime

    # Wire the backends before the server starts, so a missing model or feature
    # store is one clear error here rather than a traceback from inside uvicorn.
    runtime = build_runtime(settings)
    where = f"http://{settings.host}:{settings.port}"
    if settings.workers == 1:
        print(f"Nudge decision API on {where} (docs at /docs)")
        app = create_app(settings, runtime_factory=lambda _: runtime)
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
        return
    runtime.close()
    # Each worker is a fresh process that rebuilds its settings from NUDGE_* variables.
    os.environ.update(settings.as_env())
    print(f"Nudge decision API on {where} with {settings.workers} workers (docs at /docs)")
    uvicorn.run(
        "serving.asgi:create_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level="warning",
    )


def _lifecycle(settings: Settings, args: argparse.Namespace) -> int:
    from serving import train_command

    if args.command == "train":
        as_of = train_command.parse_as_of(args.as_of)
        train_command.train_command(
            settings, model=args.model, learner=args.learner, as_of=as_of, outcome=args.outcome
        )
    elif args.command == "promote":
        decision = train_command.promote_command(
            settings, model=args.model, margin=args.margin, dry_run=args.dry_run, force=args.force
        )
        # Like a check: a refusal is exit 1, so a script can tell it from a promotion.
        return 1 if decision.action == "refuse" else 0
    elif args.command == "rollback":
        train_command.rollback_command(settings, model=args.model)
    else:
        train_command.list_models(settings, model=args.model)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # One OpenMP thread per process: LightGBM's spinning threads otherwise fight the
    # API workers for two cores (PERFORMANCE.md).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _quiet_libraries()
    try:
        settings = _settings_from(args)
        if args.command == "demo":
            from serving.pipeline import run_demo

            run_demo(
                settings, sample=args.sample, data_path=args.data, progress=not args.no_progress
            )
        elif args.command == "serve":
            _serve(settings)
        elif args.command == "report":
            from serving.report_command import write_uplift_report
            from serving.reports_api import parse_since

            written = write_uplift_report(
                settings, journey=args.journey, since=parse_since(args.since)
            )
            for warning in written.warnings:
                print(f"note: {warning}")
            print(f"Wrote {written.html}, {written.json} and {len(written.csv)} CSV files")
        elif args.command == "alerts":
            from serving.alerts import check_findings, format_findings

            findings = check_findings(settings, args.url)
            print(format_findings(findings, url=args.url))
            # Like a monitoring probe: 1 when something fires, so scripts can act on it.
            return 1 if any(f.firing for f in findings) else 0
        elif args.command == "keys":
            from serving.keys_command import run_keys_command

            run_keys_command(settings, args)
        elif args.command == "ingest":
            from serving.ingest_command import run_ingest

            report = run_ingest(
                settings,
                args.file,
                source=args.source,
                mapping=args.mapping,
                progress=not args.no_progress,
                as_json=args.json,
            )
            return 1 if report.rejected_rows else 0
        elif args.command == "features":
            from serving.features_command import refresh_features

            result = refresh_features(settings, days=args.days)
            print(
                f"{result.rows:,} behaviour rows for {result.customers:,} customers "
                f"({result.snapshots} snapshot(s)) are online"
            )
        elif args.command == "data":
            from features.data_quality import Thresholds
            from serving.data_command import parse_max_age, run_data_check

            thresholds = Thresholds(
                max_age=parse_max_age(args.max_age),
                max_null_rate=args.max_null_rate,
                max_duplicate_rate=args.max_duplicate_rate,
            )
            return 0 if run_data_check(settings, thresholds).ok else 1
        elif args.command == "journeys":
            from serving.journeys_command import journey_status, run_journeys, validate_journeys

            if args.journeys_command == "validate":
                return 1 if validate_journeys(settings, args.files) else 0
            if args.journeys_command == "status":
                journey_status(settings)
                return 0
            if args.journeys_command in ("score", "train-churn"):
                from serving.score_command import score_journeys, train_churn

                if args.journeys_command == "score":
                    score_journeys(settings)
                else:
                    train_churn(
                        settings,
                        horizon_days=args.horizon_days,
                        synthetic=args.synthetic,
                        champion=args.champion,
                    )
                return 0
            run_journeys(settings, api_url=args.api, once=args.once, until_idle=args.until_idle)
        elif args.command == "audiences":
            from serving.audiences_command import audiences_report, sync_audiences

            if args.audiences_command == "report":
                audiences_report(settings, channel=args.channel)
                return 0
            failures = sync_audiences(
                settings, channel=args.channel, every=args.every, once=args.once
            )
            return 1 if failures else 0
        elif args.command in ("train", "promote", "rollback") or (
            args.command == "models" and args.models_command == "list"
        ):
            return _lifecycle(settings, args)
        elif args.command == "models" and args.models_command == "snapshot":
            from serving.online_state import snapshot_state

            print(snapshot_state(settings).describe())
        elif args.command == "models" and args.models_command == "restore":
            from serving.online_state import describe_restore, restore_state

            print(describe_restore(settings, args.run_id, restore_state(settings, args.run_id)))
    except NudgeError as error:
        print(f"nudge: {error}", file=sys.stderr)
        runs_engine = args.command == "serve" or (
            args.command == "journeys" and args.journeys_command == "run" and not args.api
        )
        if isinstance(error, NotFound | Unavailable) and runs_engine:
            print(
                f"nudge: nothing to serve in {settings.state_dir}; run `nudge demo` first",
                file=sys.stderr,
            )
        return 2
    except ValidationError as error:
        for problem in error.errors():
            field = ".".join(str(part) for part in problem["loc"])
            print(f"nudge: setting `{field}`: {problem['msg']}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
