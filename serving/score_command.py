"""``nudge journeys train-churn`` and ``nudge journeys score``: the churn model and its triggers.

``train-churn`` fits ``nudge-churn`` on the event stream (or, with
``synthetic``, on a seeded synthetic history: the Hillstrom demo has no
purchase history) and logs it to MLflow. ``score`` is the scheduled pass of
the score triggers (run it from cron, e.g. hourly): it takes a behaviour
snapshot of every customer from the event stream now, scores them with each
trigger's registered model and starts the journey for every crossing.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from typing import TextIO

import pandas as pd

from features.behaviour import behaviour_snapshots, read_stream
from features.errors import InvalidRequest, NotFound
from journeys import ScoreTriggers, load_journeys
from serving.settings import Settings

__all__ = ["score_journeys", "train_churn"]


def train_churn(
    settings: Settings,
    *,
    horizon_days: int = 60,
    references: int = 3,
    synthetic: int | None = None,
    champion: bool = False,
    out: TextIO | None = None,
) -> dict[str, float]:
    """Fit ``nudge-churn`` on ``references`` reference dates 30 days apart; log and register it."""
    out = out or sys.stdout  # read at call time: tests and callers may have replaced it
    from serving.journey_wiring import open_event_stream
    from training.churn import churn_training_set, log_churn_model, train_churn_model
    from training.churn_synthetic import synthetic_history
    from training.lifecycle import registry_for

    started = time.perf_counter()
    if synthetic is not None:
        end = datetime.now(UTC)
        events = synthetic_history(synthetic, end=end, seed=settings.seed)
        source = f"a synthetic history of {synthetic:,} customers"
    else:
        stream = open_event_stream(settings)
        try:
            events = list(read_stream(stream))
        finally:
            stream.close()
        if not events:
            raise InvalidRequest("events", "must not be empty: the event stream has no events")
        end = max(event.occurred_at for event in events)
        source = f"{len(events):,} events of the event stream"
    dates = [end - timedelta(days=horizon_days + 30 * k) for k in range(references)]
    data = churn_training_set(events, dates, horizon_days=horizon_days)
    trained = train_churn_model(data, seed=settings.seed)
    registered = log_churn_model(
        registry_for(settings), trained, horizon_days=horizon_days, champion=champion
    )
    m = trained.metrics
    print(
        f"nudge-churn v{registered.version} ({', '.join(registered.aliases)}) from {source}: "
        f"{int(m['train_rows']):,} train / {int(m['test_rows']):,} held-out rows, "
        f"AUC {m['auc']:.3f}, log loss {m['log_loss']:.3f}, "
        f"calibration error {m['calibration_error']:.3f}, churn rate {m['base_rate']:.2f} "
        f"({time.perf_counter() - started:.1f} s)",
        file=out,
    )
    return trained.metrics


def score_journeys(settings: Settings, *, out: TextIO | None = None) -> int:
    """Score every customer for every score trigger; returns the number of entries."""
    out = out or sys.stdout  # read at call time: tests and callers may have replaced it
    from serving.journey_wiring import (
        _features,
        online_values,
        open_journey_store,
    )
    from training.churn_scorer import FrameScorer, load_scoring_model
    from training.lifecycle import registry_for

    started = time.perf_counter()
    journeys = {
        name: journey
        for name, journey in load_journeys(settings.journeys_dir).items()
        if journey.trigger.score is not None
    }
    if not journeys:
        print(f"no journey in {settings.journeys_dir} has a score trigger", file=out)
        return 0
    # The models first: a missing one fails now, not after a minute of materialising.
    registry = registry_for(settings)
    models = {}
    for journey in journeys.values():
        trigger = journey.trigger.score
        assert trigger is not None
        if trigger.model not in models:
            models[trigger.model] = load_scoring_model(registry, trigger.model, trigger.alias)
    now = datetime.now(UTC)
    snapshot, source = _features_now(settings, now, out)
    print(f"features: {source}", file=out)
    scorers = {name: FrameScorer(loaded.model, snapshot) for name, loaded in models.items()}
    customers = sorted({c for scorer in scorers.values() for c in scorer.customers})
    store = open_journey_store(settings)
    try:
        features = (
            _features(settings) if any(j.trigger.features for j in journeys.values()) else None
        )
        triggers = ScoreTriggers(
            journeys=journeys,
            store=store,
            scorers=scorers,
            values=None if features is None else online_values(features),
        )
        crossings = triggers.score_all(customers, now)
        entered = sum(crossing.entered for crossing in crossings)
        for name in sorted(journeys):
            counts = triggers.states.counts(name)
            print(
                f"{name}: {len(customers):,} customers scored, "
                f"{sum(c.journey == name for c in crossings):,} crossed, "
                f"{sum(c.journey == name and c.entered for c in crossings):,} entered; "
                f"{counts['armed']:,} armed, {counts['disarmed']:,} waiting to re-arm",
                file=out,
            )
    finally:
        store.close()
    print(f"scored in {time.perf_counter() - started:.1f} s", file=out)
    return entered


def _features_now(settings: Settings, now: datetime, out: TextIO) -> tuple[pd.DataFrame, str]:
    """Every customer's behaviour features as of ``now``, and where they came from.

    Through the feature store when there is one (the demo's profile table): a
    snapshot is taken and materialised (``nudge features refresh``), then read back
    with Feast's point-in-time ``get_historical_features``, so the scores use the
    features training and serving see. Without one, straight from the event stream.
    """
    from features.definitions import BEHAVIOUR_SERVICE
    from serving.features_command import refresh_features
    from serving.journey_wiring import open_event_stream
    from serving.wiring import open_feature_repo

    try:
        refreshed = refresh_features(settings, now=now, out=out)
    except NotFound:
        stream = open_event_stream(settings)
        try:
            return behaviour_snapshots([now], events=read_stream(stream)), "the event stream"
        finally:
            stream.close()
    entities = pd.DataFrame(
        {
            "customer_id": pd.Series(refreshed.customer_ids, dtype="string"),
            "event_timestamp": pd.Timestamp(now),
        }
    )
    frame = open_feature_repo(settings).training_frame(entities, service=BEHAVIOUR_SERVICE)
    return frame, f"Feast get_historical_features ({BEHAVIOUR_SERVICE}, {settings.feature_store})"
