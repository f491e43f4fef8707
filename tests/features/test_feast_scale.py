"""Scale mode against the machine's real servers: Redis online, Postgres offline and registry.

Each repo gets a key prefix of its own (the Feast project: it ends every Redis
key) and so a Postgres schema of its own (``<prefix>_feast``); both are removed
afterwards. The embedded repo over the same tables is the reference: scale mode
must answer the same.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import psycopg
import pytest
import redis
from feast_support import (
    NOW,
    POSTGRES_DSN,
    REDIS_URL,
    D,
    H,
    Tables,
    drop_scale,
    event,
    scale_repo,
    write_tables,
)

from features import InvalidRequest
from features.definitions import (
    BEHAVIOUR_SERVICE,
    PROPENSITY_SERVICE,
    RFM_VIEW,
    SEND_TIME_SERVICE,
)
from features.feast_repo import FeatureRepo
from features.push import CartPusher

EARLY = datetime(2007, 1, 1, tzinfo=UTC)
CUSTOMERS = ["c1", "c2", "c3", "nobody"]


@dataclass
class Pair:
    scale: FeatureRepo
    embedded: FeatureRepo
    tables: Tables
    prefix: str


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("scale")
    tables = write_tables(root, [NOW - 3 * D, NOW - D, NOW])
    prefix = f"nudge_test_{uuid.uuid4().hex[:8]}"
    try:
        scale = scale_repo(root / "scale", prefix)
        embedded = FeatureRepo(root / "embedded")
        for repo in (scale, embedded):
            repo.apply(tables.profiles, tables.behaviour)
            repo.materialize(NOW, start=EARLY)
        yield Pair(scale, embedded, tables, prefix)
    finally:
        drop_scale(prefix)
    leftover = [
        k for k in redis.Redis().scan_iter(match=f"*{prefix}") if k.endswith(prefix.encode())
    ]
    assert leftover == []


def test_everything_lives_in_redis_and_postgres(pair: Pair) -> None:
    config = pair.scale.store.config
    assert (config.online_store.type, config.offline_store.type, config.registry.registry_type) == (
        "redis",
        "postgres",
        "sql",
    )
    with psycopg.connect(POSTGRES_DSN) as conn:
        tables = {
            name
            for (name,) in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (f"{pair.prefix}_feast",),
            )
        }
    assert {"customer_profiles", "customer_behaviour", "feature_views", "projects"} <= tables
    keys = list(redis.Redis().scan_iter(match=f"*{pair.prefix}"))
    assert len(keys) == 3  # one hash per customer, every view's fields in it
    assert not (pair.scale.feast_dir / "online.db").exists()


@pytest.mark.parametrize("service", [PROPENSITY_SERVICE, BEHAVIOUR_SERVICE, SEND_TIME_SERVICE])
def test_online_reads_match_the_embedded_store(pair: Pair, service: str) -> None:
    scale = pair.scale.online(service, clock=lambda: NOW).get_many(CUSTOMERS)
    embedded = pair.embedded.online(service, clock=lambda: NOW).get_many(CUSTOMERS)
    assert scale == embedded
    assert [row.customer_id for row in scale] == CUSTOMERS
    assert scale[-1].missing == pair.scale.online(service).feature_names


@pytest.mark.parametrize("service", [PROPENSITY_SERVICE, BEHAVIOUR_SERVICE, SEND_TIME_SERVICE])
def test_training_frames_match_the_embedded_store(pair: Pair, service: str) -> None:
    entities = pd.DataFrame(
        {
            "customer_id": ["c1", "c1", "c2", "c3", "nobody"],
            "event_timestamp": [NOW - 2 * D, NOW + H, NOW - 4 * D, NOW - D + H, NOW],
            "label": [1, 0, 1, 0, 1],
        }
    )
    scale = pair.scale.training_frame(entities, service=service)
    pd.testing.assert_frame_equal(scale, pair.embedded.training_frame(entities, service=service))
    assert scale["label"].tolist() == [1, 0, 1, 0, 1]


def test_ttl_holds_in_redis_too(pair: Pair) -> None:
    later = NOW + 3 * D
    row = pair.scale.online(BEHAVIOUR_SERVICE, clock=lambda: later).get("c1")
    assert row.values["purchases_365d"] is None
    assert row.values["cart_value"] == 25.0


def test_a_push_reaches_redis_within_a_second(pair: Pair) -> None:
    pusher = CartPusher(pair.scale)
    online = pair.scale.online(BEHAVIOUR_SERVICE)
    now = datetime.now(UTC)
    started = time.perf_counter()
    pusher.push([event("s1", "c3", "add_to_cart", now, cart_value=17.0)])
    row = online.get("c3")
    assert time.perf_counter() - started < 1.0
    assert (row.values["cart_value"], row.values["cart_open"]) == (17.0, 1)


def test_reapplying_and_reopening_keep_the_materialisation(pair: Pair) -> None:
    before = {v.name: v.materialization_intervals for v in pair.scale.store.list_feature_views()}
    reopened = scale_repo(pair.scale.state_dir, pair.prefix)
    reopened.apply(pair.tables.profiles, pair.tables.behaviour)
    after = {v.name: v.materialization_intervals for v in reopened.store.list_feature_views()}
    assert after == before
    assert after[RFM_VIEW][-1][1] == NOW
    row = reopened.online(BEHAVIOUR_SERVICE, clock=lambda: NOW).get("c2")
    assert row.values["email_sent_7d"] == 1
    reopened.materialize_incremental(NOW + D)
    intervals = {v.name: v.materialization_intervals for v in reopened.store.list_feature_views()}
    assert intervals[RFM_VIEW][-1] == (NOW, NOW + D)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"redis_url": None}, r"`storage` 'scale' needs redis_url and postgres_dsn"),
        ({"key_prefix": "Bad-Prefix"}, r"`key_prefix` must be a lower-case identifier"),
        ({"redis_url": "http://cache:6379"}, r"`redis_url` must be a redis:// or rediss:// URL"),
        ({"redis_url": "redis://cache:6379/x"}, r"`redis_url` must name a numbered database"),
    ],
)
def test_bad_scale_settings_are_rejected(
    tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    settings: dict[str, object] = {
        "storage": "scale",
        "redis_url": REDIS_URL,
        "postgres_dsn": POSTGRES_DSN,
        "key_prefix": "nudge_test_bad",
        **kwargs,
    }
    with pytest.raises(InvalidRequest, match=match):
        _ = FeatureRepo(tmp_path, **settings).backend  # type: ignore[arg-type]


def test_an_unknown_storage_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match=r"`storage` must be 'embedded' or 'scale'"):
        FeatureRepo(tmp_path, storage="cloud")  # type: ignore[arg-type]


def test_rejected_settings_leave_no_schema_behind(tmp_path: Path) -> None:
    prefix = f"nudge_test_{uuid.uuid4().hex[:8]}"
    with pytest.raises(InvalidRequest):
        _ = FeatureRepo(
            tmp_path,
            storage="scale",
            redis_url="http://nowhere",
            postgres_dsn=POSTGRES_DSN,
            key_prefix=prefix,
        ).backend
    with psycopg.connect(POSTGRES_DSN) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (f"{prefix}_feast",)
        ).fetchone()
    assert found is None
