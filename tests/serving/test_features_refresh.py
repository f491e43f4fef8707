"""nudge features refresh: behaviour features from the event stream reach the online store,
embedded and on the real Redis and Postgres (scale), through the repo the settings name."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from demo_support import DemoRun
from feast_support import drop_scale

from features import EventLog
from features.definitions import BEHAVIOUR_SERVICE, PROPENSITY_SERVICE
from features.event_stream import CustomerEvent
from serving.cli import main
from serving.features_command import refresh_features
from serving.journey_wiring import open_event_stream
from serving.settings import Settings
from serving.wiring import open_feature_repo

NOW = datetime.now(UTC).replace(microsecond=0)


def events(buyer: str, browser: str) -> list[CustomerEvent]:
    day = timedelta(days=1)
    return [
        CustomerEvent("r1", buyer, "purchase", NOW - 10 * day, {"value": 30.0}),
        CustomerEvent("r2", buyer, "purchase", NOW - 2 * day, {"value": 12.5}),
        CustomerEvent(
            "r3", buyer, "add_to_cart", NOW - 3600 * timedelta(seconds=1), {"cart_value": 40.0}
        ),
        CustomerEvent("r4", browser, "page_view", NOW - 2 * day, {}),
    ]


@pytest.fixture
def settings(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("refresh")
    shutil.copytree(demo_run.settings.state_dir, root / "state")
    settings = demo_run.settings.model_copy(update={"state_dir": root / "state"})
    stream = open_event_stream(settings)
    try:
        stream.append(events(*demo_customers(demo_run)), now=NOW)
    finally:
        stream.close()
    return settings


def demo_customers(demo_run: DemoRun) -> tuple[str, str]:
    """Two customers of the demo's sample (its profiles are online)."""
    decisions = EventLog(demo_run.settings.events_dir).read("decisions")
    first, second = (str(c) for c in decisions["customer_id"].head(2))
    return first, second


def check_online(settings: Settings, buyer: str, browser: str) -> None:
    repo = open_feature_repo(settings)
    row, quiet = repo.online(BEHAVIOUR_SERVICE).get_many([buyer, browser])
    assert row.values["purchases_90d"] == 2
    assert row.values["spend_90d"] == pytest.approx(42.5)
    assert row.values["cart_value"] == pytest.approx(40.0)
    assert quiet.values["purchases_90d"] == 0
    # The profile view the served model reads is still there, beside the new ones.
    assert repo.online(PROPENSITY_SERVICE).get(buyer).values["recency"] is not None


def test_refresh_fills_the_embedded_online_store(
    settings: Settings, demo_run: DemoRun, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["features", "refresh", "--state-dir", str(settings.state_dir)]) == 0
    assert "are online" in capsys.readouterr().out
    check_online(settings, *demo_customers(demo_run))
    # Again: the same snapshot time replaces itself, nothing doubles.
    again = refresh_features(settings)
    assert again.snapshots == 1
    check_online(settings, *demo_customers(demo_run))


@pytest.fixture
def scale(settings: Settings) -> Iterator[Settings]:
    prefix = f"nudge_test_{uuid.uuid4().hex[:8]}"
    try:
        yield settings.model_copy(update={"feature_store": "scale", "key_prefix": prefix})
    finally:
        drop_scale(prefix)


def test_refresh_fills_redis_and_postgres_in_scale_mode(scale: Settings, demo_run: DemoRun) -> None:
    refresh_features(scale, now=NOW)
    check_online(scale, *demo_customers(demo_run))


def test_a_bad_days_value_is_refused_by_name(settings: Settings) -> None:
    assert (
        main(["features", "refresh", "--days", "-1", "--state-dir", str(settings.state_dir)]) == 2
    )
