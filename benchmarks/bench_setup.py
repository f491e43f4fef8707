"""The state a decision benchmark runs on: a Hillstrom sample, its features and model, contacts.

The first three steps of ``nudge demo`` (ingest, Feast features, LightGBM in
MLflow) run into a scratch folder; the demo's serve-and-replay steps are left
out because the benchmark serves by itself. The decision configuration is the
benchmark's own: 3 messages × 3 channels × 6 slots = 54 joint actions plus no
send, with every contact rule switched on.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import redis
import yaml

from decisioning.contact_store import ChannelState, ContactProfile
from features import PROFILE_FEATURES, EventLog, FeatureRepo, ingest_hillstrom
from serving.pipeline import _training_entities
from serving.settings import Settings
from serving.wiring import open_stores
from training import ModelRegistry, train_propensity

__all__ = [
    "CHANNELS",
    "MESSAGES",
    "SLOTS",
    "TIME_ZONE",
    "BenchState",
    "bench_config",
    "build_state",
    "clear_sends",
    "drop_scale_state",
    "load_contacts",
    "make_settings",
    "quiet_window",
]

CHANNELS = {"email": 0.01, "sms": 0.05, "push": 0.0}
"""Channel → cost of one send, in units of one conversion."""
MESSAGES = {"mens": "mens_email", "womens": "womens_email", "new_arrivals": None}
"""Message → the model arm whose prediction is its prior (None: the no-e-mail baseline)."""
SLOTS = ["now", "+1h", "+3h", "09:00", "12:00", "18:00"]
TIME_ZONE = "Europe/London"
CAPS = [
    {"channel": "email", "limit": 3, "window": "7d"},
    {"channel": "sms", "limit": 1, "window": "1d"},
    {"channel": "push", "limit": 2, "window": "1d"},
    {"limit": 5, "window": "7d"},
]


@dataclass(frozen=True)
class BenchState:
    """Where the benchmark's state lives and what it holds."""

    settings: Settings
    """Embedded-mode settings over the scratch state folder and the bench configuration."""
    customers: list[str]
    """Every customer in the sample: features, model priors and contact profiles known."""
    quiet_hours: tuple[str, str]
    timings_s: dict[str, float]


def quiet_window(now: datetime, zone: str = TIME_ZONE) -> tuple[str, str]:
    """A two-hour quiet window starting on the local hour two hours from ``now``.

    Narrow on purpose: it takes the "+3h" slot (and any wall-clock slot inside
    it) out of every decision made within the next hour, and leaves the rest.

    >>> quiet_window(datetime(2024, 5, 1, 13, 20, tzinfo=UTC))  # 14:20 in London
    ('16:00', '18:00')
    """
    local = now.astimezone(ZoneInfo(zone)) + timedelta(hours=2)
    start = local.replace(minute=0, second=0, microsecond=0)
    end = start + timedelta(hours=2)
    return f"{start:%H:%M}", f"{end:%H:%M}"


def bench_config(quiet: tuple[str, str]) -> dict[str, object]:
    """The decision configuration: 54 joint actions and no send, every contact rule on."""
    return {
        "channels": {name: {"cost": cost} for name, cost in CHANNELS.items()},
        "messages": {
            name: {"channels": list(CHANNELS), **({"model_arm": arm} if arm else {})}
            for name, arm in MESSAGES.items()
        },
        "control_arm": "no_email",
        "slots": SLOTS,
        "horizon": "24h",
        "default_time_zone": TIME_ZONE,
        "quiet_hours": {"start": quiet[0], "end": quiet[1]},
        "caps": CAPS,
        "holdout": {"percent": 5, "salt": "nudge-bench"},
        "exploration": 0.05,
        "rewards": {
            "default": {
                "attribution_window": "72h",
                "conversions": {"conversion": 1.0},
                "penalties": {"unsubscribe": 1.0, "complaint": 2.0},
            }
        },
    }


def make_settings(**values: Any) -> Settings:
    """``Settings(**values)``; mypy without pydantic's plugin cannot see the defaults."""
    return Settings(**values)


def build_state(root: Path, *, customers: int, seed: int = 0) -> BenchState:
    """Ingest a stratified Hillstrom sample, materialise its features, train and register."""
    settings = make_settings(
        state_dir=root / "state", reports_dir=root / "reports", seed=seed, storage="embedded"
    )
    timings: dict[str, float] = {}
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with _timed(timings, "ingest"):
        events = EventLog(settings.events_dir)
        log = ingest_hillstrom(events, sample=customers, seed=seed)
    with _timed(timings, "features"):
        repo = FeatureRepo(settings.state_dir)
        repo.apply(events.path("profiles"))
        # As the demo does: the online store holds what was known when the campaign ended.
        repo.materialize(end=log.campaign_end, start=log.campaign_start - timedelta(days=400))
        frame = repo.training_frame(_training_entities(log))
    with _timed(timings, "train"):
        trained = train_propensity(frame, features=PROFILE_FEATURES, seed=seed)
        ModelRegistry(
            settings.mlflow_tracking_uri, settings.mlflow_artifact_root
        ).log_propensity_model(trained, name=settings.model_name, alias=settings.model_alias)
    quiet = quiet_window(datetime.now(UTC))
    config_path = root / "bench_decisions.yaml"
    config_path.write_text(
        "# Written by benchmarks/bench_decide.py: 3 messages x 3 channels x 6 slots.\n"
        + yaml.safe_dump(bench_config(quiet), sort_keys=False),
        encoding="utf-8",
    )
    settings = settings.model_copy(update={"decision_config": config_path})
    ids = log.decisions["customer_id"].astype(str).tolist()
    with _timed(timings, "contacts"):
        load_contacts(settings, ids)
    return BenchState(settings=settings, customers=ids, quiet_hours=quiet, timings_s=timings)


def load_contacts(settings: Settings, customer_ids: list[str]) -> int:
    """Every customer opted in and reachable on all three channels, in the bench's zone."""
    reachable = ChannelState(consent="opted_in", reachable=True)
    stores = open_stores(settings)
    try:
        return stores.contacts.load_profiles(
            ContactProfile(customer, dict.fromkeys(CHANNELS, reachable), TIME_ZONE)
            for customer in customer_ids
        )
    finally:
        stores.close()


def clear_sends(settings: Settings) -> int:
    """Forget every reserved send, so that a run starts with no caps taken.

    Without it every customer would reach the overall cap a few runs in and
    later runs would measure decisions among "no send" alone. This reaches into
    the stores' layout (the ``contact_sends`` table; the ``contact:send*`` keys
    documented in ``decisioning/redis_contact.py``): a benchmark's shortcut.
    """
    if settings.storage == "scale":
        client = redis.Redis.from_url(settings.redis_url)
        try:
            return _delete_keys(client, f"{settings.key_prefix}:contact:send*")
        finally:
            client.close()
    conn = sqlite3.connect(settings.contact_db, timeout=30)
    try:
        with conn:
            return conn.execute("DELETE FROM contact_sends").rowcount
    finally:
        conn.close()


def drop_scale_state(settings: Settings) -> None:
    """Delete the run's Redis keys and drop its Postgres schema (``key_prefix``)."""
    client = redis.Redis.from_url(settings.redis_url)
    try:
        _delete_keys(client, f"{settings.key_prefix}:*")
    finally:
        client.close()
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {settings.key_prefix} CASCADE")


def _delete_keys(client: redis.Redis, pattern: str) -> int:
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += int(client.delete(*batch))
            batch = []
    if batch:
        deleted += int(client.delete(*batch))
    return deleted


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - started, 3)
