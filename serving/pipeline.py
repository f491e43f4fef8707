"""The main job: the whole Nudge loop on the Hillstrom experiment, step by step.

ingest → Feast features → LightGBM training in MLflow → the decision API →
replay of held-out customers through it → uplift report.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from decisioning.config import DEFAULT_CONFIG, load_decision_config
from decisioning.contact_store import ChannelState, ContactProfile
from features import (
    ARMS,
    PROFILE_FEATURES,
    EventLog,
    FeatureRepo,
    HillstromLog,
    Unavailable,
    ingest_hillstrom,
)
from serving.api_process import ApiProcess, port_in_use
from serving.progress import Steps
from serving.replay import ReplayResult, replay
from serving.settings import Settings
from serving.wiring import open_stores
from training import (
    ModelRegistry,
    PropensityTrainingResult,
    arm_lift,
    ips_value,
    mean_with_ci,
    render_report,
    train_propensity,
)
from training.lifecycle import PROPENSITY_FAMILY
from training.training_set import SPLIT_RULE, holdout_mask

HILLSTROM_DECISIONS = Path(__file__).with_name("hillstrom_decisions.yaml")

__all__ = ["DemoResult", "run_demo"]

CONTROL_ARM = "no_email"
LOGGING_PROPENSITY = 1.0 / 3.0


@dataclass
class DemoResult:
    summary: dict[str, Any]
    summary_path: Path
    report_path: Path


def _training_entities(log: HillstromLog) -> pd.DataFrame:
    """One row per logged decision: when, which arm, and whether the customer visited."""
    outcomes = log.outcomes[["customer_id", "visit"]]
    entities = log.decisions[["customer_id", "decided_at", "arm"]].merge(
        outcomes, on="customer_id", how="left", validate="one_to_one"
    )
    return entities.rename(columns={"decided_at": "event_timestamp"})


def _load_contacts(settings: Settings, customer_ids: pd.Series) -> int:
    """Everyone in the experiment was on the mailing list: opted in and reachable by e-mail."""
    email = ChannelState(consent="opted_in", reachable=True)
    stores = open_stores(settings)
    try:
        return stores.contacts.load_profiles(
            ContactProfile(str(customer_id), {"email": email}) for customer_id in customer_ids
        )
    finally:
        stores.close()


def _policy_values(
    trained: PropensityTrainingResult, replayed: ReplayResult
) -> dict[str, dict[str, Any]]:
    test = trained.test
    greedy = trained.model.predict_frame(test[list(PROFILE_FEATURES)]).idxmax(axis=1)
    values = {
        "nudge_replay": replayed.value(),
        # The whole replay includes the policy's learning; its second half shows
        # what it does once it has learned.
        "nudge_replay_late": mean_with_ci(replayed.rewards[len(replayed.rewards) // 2 :]),
        "explore_replay": mean_with_ci(replayed.explore_rewards),
        "holdout_replay": mean_with_ci(replayed.holdout_rewards),
        "nudge_ips": ips_value(
            test["arm"].to_numpy(),
            test["visit"].to_numpy(dtype=float),
            [LOGGING_PROPENSITY] * len(test),
            greedy.to_numpy(),
        ),
        # The logging policy was uniform random, so its on-policy value is the plain mean.
        "random": mean_with_ci(test["visit"].to_numpy(dtype=float)),
    }
    for arm in ARMS:
        values[arm] = mean_with_ci(test.loc[test["arm"] == arm, "visit"].to_numpy(dtype=float))
    return {name: value.to_dict() for name, value in values.items()}


def _print_table(values: dict[str, dict[str, Any]], out: TextIO) -> None:
    print(f"\n{'policy':<18}{'visit rate':>12}{'95 % CI':>22}{'n':>9}", file=out)
    for name, value in values.items():
        low, high = value["ci95"]
        print(
            f"{name:<18}{value['mean']:>12.4f}{f'[{low:.4f}, {high:.4f}]':>22}{value['n']:>9,}",
            file=out,
        )
    print(file=out)


def run_demo(
    settings: Settings,
    *,
    sample: int | None = None,
    data_path: Path | None = None,
    out: TextIO | None = None,
    progress: bool = True,
) -> DemoResult:
    """Run the main job end to end and write ``demo_summary.json`` and ``uplift.html``."""
    out = out if out is not None else sys.stdout
    if settings.decision_config == DEFAULT_CONFIG:
        settings = settings.model_copy(update={"decision_config": HILLSTROM_DECISIONS})
    if port_in_use(settings.host, settings.port):
        # Found out now rather than after a minute of ingest and training.
        raise Unavailable(
            f"port {settings.port} on {settings.host} is already in use; "
            "choose another with --port or NUDGE_PORT"
        )
    steps = Steps(6, out=out)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)

    with steps.step("ingest", "Ingest: Hillstrom experiment → event log"):
        event_log = EventLog(settings.events_dir)
        log = ingest_hillstrom(event_log, path=data_path, sample=sample, seed=settings.seed)
        steps.note(
            f"{len(log.decisions):,} customers, {len(log.profiles):,} profile snapshots, "
            f"{int(log.outcomes['visit'].sum()):,} visits → {settings.events_dir}"
        )
        loaded = _load_contacts(settings, log.decisions["customer_id"])
        steps.note(f"contact store: {loaded:,} customers opted in to e-mail")

    with steps.step("features", "Features: feast apply, materialize, point-in-time training set"):
        repo = FeatureRepo(settings.state_dir)
        repo.apply(event_log.path("profiles"))
        # The replay plays the campaign as if it were happening now, so the online
        # store holds what was known when the campaign ended, not the later snapshots.
        repo.materialize(end=log.campaign_end, start=log.campaign_start - pd.Timedelta(days=400))
        frame = repo.training_frame(_training_entities(log))
        steps.note(f"training set: {len(frame):,} rows × {len(PROFILE_FEATURES)} features")

    with steps.step("train", "Train: LightGBM P(visit | customer, arm) → MLflow registry"):
        # The lifecycle's fixed holdout, not a seeded split: `nudge promote` judges a
        # challenger against this champion on customers neither of them trained on.
        trained = train_propensity(
            frame,
            features=PROFILE_FEATURES,
            seed=settings.seed,
            test_mask=holdout_mask(frame["customer_id"]),
        )
        registry = ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifact_root)
        registered = registry.log_propensity_model(
            trained,
            name=settings.model_name,
            alias=settings.model_alias,
            experiment=settings.experiment,
            params={"sample": sample or "all", "data_seed": settings.seed},
            tags={
                "nudge.family": PROPENSITY_FAMILY,
                "nudge.learner": "arm",
                "nudge.outcome": "visit",
                "nudge.control": CONTROL_ARM,
                "nudge.split": SPLIT_RULE,
            },
        )
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in sorted(trained.metrics.items()))
        steps.note(f"{registered.name} v{registered.version} @{registered.alias}: {metrics}")

    api = ApiProcess(settings)
    try:
        with steps.step("serve", f"Serve: start the decision API on {api.base_url}"):
            api.start()
            health = api.health()
            steps.note(
                f"serving model v{health['model_version']}, policy {health['policy_version']}"
            )
        with steps.step("replay", "Replay: held-out customers through POST /v1/decide"):
            replayed = replay(api.client, trained.test, progress=progress)
            # The last attribution windows close a few seconds after the last
            # decision; the server finalises their zero rewards once they have.
            window = load_decision_config(settings.decision_config).reward_for("hillstrom")
            time.sleep(window.attribution_window.total_seconds() + 2 * settings.sync_interval)
            steps.note(
                f"{replayed.decisions:,} decisions, {replayed.matched:,} matched the logged arm "
                f"and were posted to /v1/outcomes; explored {replayed.explored:,} times"
            )
    finally:
        api.stop()

    with steps.step("report", "Report: policy values, lift and Qini curves"):
        values = _policy_values(trained, replayed)
        test = trained.test
        control = test.loc[test["arm"] == CONTROL_ARM, "visit"].to_numpy(dtype=float)
        lifts = {
            arm: arm_lift(test.loc[test["arm"] == arm, "visit"].to_numpy(dtype=float), control)
            for arm in ARMS
            if arm != CONTROL_ARM
        }
        summary: dict[str, Any] = {
            "data": {
                "source": "Hillstrom MineThatData e-mail experiment (2008)",
                "rows": len(log.decisions),
                "train_rows": len(trained.train),
                "test_rows": len(test),
            },
            "policy_value": values,
            "lift_vs_no_email": {arm: lift.to_dict() for arm, lift in lifts.items()},
            "model": {
                "name": registered.name,
                "version": registered.version,
                "alias": registered.alias,
                "run_id": registered.run_id,
                "metrics": trained.metrics,
            },
            "replay": {
                "decisions": replayed.decisions,
                "matched": replayed.matched,
                "explored": replayed.explored,
                "groups": dict(sorted(replayed.groups.items())),
                "chosen": dict(sorted(replayed.chosen.items())),
            },
            "timings_s": steps.timings_s,
        }
        report_path = settings.reports_dir / "uplift.html"
        report_path.write_text(render_report(summary, trained.qini_curves), encoding="utf-8")
    summary["timings_s"]["total"] = round(sum(steps.timings_s.values()), 3)
    summary_path = settings.reports_dir / "demo_summary.json"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    _print_table(values, out)
    print(f"Wrote {summary_path} and {report_path}", file=out)
    return DemoResult(summary=summary, summary_path=summary_path, report_path=report_path)
