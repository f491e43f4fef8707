"""Builds a journey runner from the settings: stores, event stream, channels, decisions.

Embedded mode keeps journey state in ``journeys.db`` and the event stream in
``event_stream.db`` under the state folder; scale mode keeps both in Postgres
(schema ``<key_prefix>_journeys``), so several runners share them. The runner
reaches decisions in its own process (the champion model, like ``nudge serve``)
or, given ``api_url``, over HTTP.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from channels import Channel, TemplateRenderer, TrackingLinks, build_channels, load_channels_config
from decisioning.config import DecisionConfig
from features import FeatureSource, InvalidRequest, NotFound, NudgeError
from features.event_stream import EventStream
from features.identity import IdentityGraph
from features.push import CartPusher
from features.sql import PostgresDatabase, SqlDatabase, SQLiteDatabase
from features.stitching import StitchingStream
from journeys import DecideStep, Journey, load_journeys, validate_against
from journeys.decisions import DecisionService, EngineDecisions
from journeys.http_decisions import HttpDecisions
from journeys.runner import JourneyRunner
from journeys.score_trigger import ScoreTriggers
from journeys.store import JourneyStore
from serving.settings import Settings
from serving.wiring import open_feature_repo

__all__ = [
    "JourneyRuntime",
    "build_journey_runtime",
    "identity_key",
    "open_cart_pusher",
    "open_event_stream",
    "open_journey_store",
    "open_stitching_stream",
    "tracking_secret",
]

_log = logging.getLogger("nudge.journeys")


def _database(settings: Settings, path: Path) -> SqlDatabase:
    if settings.storage == "scale":
        return PostgresDatabase(settings.postgres_dsn, schema=f"{settings.key_prefix}_journeys")
    return SQLiteDatabase(path)


def open_journey_store(settings: Settings) -> JourneyStore:
    return JourneyStore(_database(settings, settings.journeys_db))


def open_event_stream(settings: Settings) -> EventStream:
    return EventStream(_database(settings, settings.event_stream_db))


def tracking_secret(settings: Settings) -> str:
    """The key that signs tracked links: the setting, or one made once and kept in state_dir.

    The API (which reads the links) and the runner (which writes them) must share
    it; a file in the state folder they share does that with nothing to configure.
    """
    return settings.tracking_secret or _state_secret(settings, "tracking.key")


def identity_key(settings: Settings) -> bytes:
    """The key of identifier hashes: the setting, or one made once and kept in state_dir."""
    return (settings.identity_key or _state_secret(settings, "identity.key")).encode()


def _state_secret(settings: Settings, name: str) -> str:
    path = settings.state_dir / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process made it first
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def open_cart_pusher(settings: Settings) -> CartPusher | None:
    """Real-time cart features for the events API; None until the behaviour views are
    applied (the Hillstrom demo has none), so that events are still accepted."""
    try:
        return CartPusher(open_feature_repo(settings))
    except NotFound:
        _log.info("no behaviour feature views applied: cart events update no online features")
        return None


def open_stitching_stream(settings: Settings) -> StitchingStream:
    """The event stream with the identity graph in its database, as the events API uses it."""
    stream = open_event_stream(settings)
    graph = IdentityGraph(
        stream.db, identity_key(settings), default_region=settings.phone_region, listeners=[stream]
    )
    return StitchingStream(stream, graph)


@dataclass
class JourneyRuntime:
    runner: JourneyRunner
    journeys: dict[str, Journey]
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception:  # closing the rest matters more than one failure
                _log.exception("closing a journey backend failed")


def _features(settings: Settings) -> FeatureSource | None:
    """The online features, for triggers, branches and templates; None without a feature store."""

    try:
        return open_feature_repo(settings).online()
    except NudgeError as error:
        _log.warning("journeys: no feature store (%s); feature conditions see nothing", error)
        return None


def _score_triggers(
    settings: Settings, journeys: dict[str, Journey], store: JourneyStore, stream: EventStream
) -> ScoreTriggers | None:
    """Real-time rescoring for the score-triggered journeys, on the customer's history now.

    Without the model registered the runner still runs: those journeys then start
    only from the scheduled ``nudge journeys score``, and a warning says so, rather
    than every journey stopping for the want of one model. The trigger's
    ``features`` conditions read the online store when there is one.
    """
    from training.churn_scorer import HistoryScorer, load_scoring_model
    from training.lifecycle import registry_for

    triggers = {
        m.trigger.score.model: m.trigger.score for m in journeys.values() if m.trigger.score
    }
    if not triggers:
        return None
    try:
        registry = registry_for(settings)
        scorers = {
            name: HistoryScorer(load_scoring_model(registry, name, t.alias).model, stream)
            for name, t in triggers.items()
        }
    except NudgeError as error:
        _log.warning("journeys: no real-time scoring for %s (%s)", ", ".join(triggers), error)
        return None
    features = _features(settings)
    return ScoreTriggers(
        journeys=journeys,
        store=store,
        scorers=scorers,
        values=None if features is None else online_values(features),
    )


def online_values(features: FeatureSource) -> Callable[[str], dict[str, object]]:
    """A customer's present feature values, for a score trigger's ``features`` conditions."""

    def values(customer_id: str) -> dict[str, object]:
        return {k: v for k, v in features.get(customer_id).values.items() if v is not None}

    return values


def _check_channels(
    journeys: dict[str, Journey],
    config: DecisionConfig,
    channels: dict[str, Channel],
    source: Path,
) -> None:
    """Every channel a journey may decide on has a sender, or nothing starts.

    Found at start-up, a missing sender is a configuration mistake; found at send
    time, it would be a message lost.
    """
    for journey in journeys.values():
        for step in journey.steps:
            if not isinstance(step, DecideStep):
                continue
            for candidate in step.candidates:
                for channel in candidate.channels or config.messages[candidate.message].channels:
                    if channel not in channels:
                        raise InvalidRequest(
                            f"channels.{channel}",
                            f"must be configured in {source}: journey {journey.name!r} step "
                            f"{step.id!r} may send {candidate.message!r} on it",
                        )


def build_journey_runtime(
    settings: Settings,
    *,
    api_url: str | None = None,
    channels: dict[str, Channel] | None = None,
) -> JourneyRuntime:
    """Everything ``nudge journeys run`` runs with; the caller closes it."""
    from decisioning import load_decision_config

    config = load_decision_config(settings.decision_config)
    journeys = load_journeys(settings.journeys_dir)
    for journey in journeys.values():
        validate_against(journey, config)
    closers: list[Callable[[], None]] = []
    runtime: JourneyRuntime | None = None
    try:
        decisions: DecisionService
        if api_url is None:
            from serving.wiring import build_runtime

            engine_runtime = build_runtime(settings)
            closers.append(engine_runtime.close)
            decisions = EngineDecisions(engine_runtime.engine)
        else:
            decisions = HttpDecisions(api_url, api_key=settings.api_key or settings.admin_key)
            closers.append(decisions.close)
        if channels is None:
            channels = build_channels(
                load_channels_config(settings.channels_config), state_dir=settings.state_dir
            )
        for channel in channels.values():
            closers.append(channel.close)
        _check_channels(journeys, config, channels, settings.channels_config)
        store = open_journey_store(settings)
        closers.append(store.close)
        stream = open_event_stream(settings)
        closers.append(stream.close)
        runner = JourneyRunner(
            journeys=journeys,
            store=store,
            stream=stream,
            decisions=decisions,
            channels=channels,
            renderer=TemplateRenderer(),
            links=TrackingLinks(tracking_secret(settings), settings.public_url),
            features=_features(settings),
            send_lease=timedelta(seconds=settings.send_lease_s),
            scores=_score_triggers(settings, journeys, store, stream),
        )
        runtime = JourneyRuntime(runner, journeys, closers)
        return runtime
    finally:
        if runtime is None:
            JourneyRuntime(None, {}, closers).close()  # type: ignore[arg-type]
