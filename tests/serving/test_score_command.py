"""nudge journeys score over a feature store: Feast's point-in-time read gives the features
the churn score uses, the same as computed straight from the events, and winback starts."""

from __future__ import annotations

import io
import shutil
from datetime import UTC, datetime

import pandas as pd
import pytest
from demo_support import DemoRun

from features.behaviour import behaviour_snapshots
from serving.journey_wiring import open_event_stream, open_journey_store
from serving.score_command import _features_now, score_journeys, train_churn
from serving.settings import Settings
from training.churn import CHURN_FEATURES
from training.churn_synthetic import synthetic_history


@pytest.fixture
def settings(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("score")
    shutil.copytree(demo_run.settings.state_dir, root / "state")
    settings = demo_run.settings.model_copy(update={"state_dir": root / "state"})
    stream = open_event_stream(settings)
    try:
        stream.append(synthetic_history(150, end=datetime.now(UTC), seed=5))
    finally:
        stream.close()
    train_churn(settings, synthetic=400, champion=True, out=io.StringIO())
    return settings


def test_features_come_through_feast_and_equal_the_events(settings: Settings) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    frame, source = _features_now(settings, now, io.StringIO())
    assert source.startswith("Feast get_historical_features (behaviour_v1")
    stream = open_event_stream(settings)
    try:
        direct = behaviour_snapshots([now], events=list(stream.read(0, limit=1_000_000)))
    finally:
        stream.close()
    columns = list(CHURN_FEATURES)
    computed = direct.set_index("customer_id")[columns].sort_index().astype(float)
    # Feast also has the customers the demo's decision log knows; these are the stream's.
    through_feast = frame.set_index("customer_id")[columns].astype(float).loc[computed.index]
    assert len(computed) > 100
    pd.testing.assert_frame_equal(through_feast, computed, check_names=False)


def test_the_score_pass_starts_winback_once_per_crossing(settings: Settings) -> None:
    out = io.StringIO()
    entered = score_journeys(settings, out=out)
    assert "features: Feast get_historical_features" in out.getvalue()
    assert entered > 0
    store = open_journey_store(settings)
    try:
        assert store.counts()["active:winback"] == entered
    finally:
        store.close()
    assert score_journeys(settings, out=io.StringIO()) == 0  # nobody crosses twice
