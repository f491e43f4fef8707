"""The decision API: FastAPI routes over one DecisionEngine.

Routes are ``async def`` on purpose: the engine's work is short and CPU-bound,
and a plain ``def`` route would pay a thread-pool hop per request (PERFORMANCE.md).
A background task shares what this worker learned with the others and closes
attribution windows every ``sync_interval`` seconds; others evaluate alerts,
put a new champion in service (:class:`ModelWatcher`) and snapshot the online
state to MLflow (:class:`StateSnapshotter`), each on its own schedule so that
loading a model or logging a run never delays the sharing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from decisioning import CandidateMessage, Decision, DecisionRequest, OutcomeReport
from decisioning.contact_merge import merge_contacts
from decisioning.contact_store import ContactStore
from decisioning.slots import load_zone
from features import InvalidRequest, NudgeError
from serving.alerts import AlertMonitor
from serving.auth import ApiKeyAuth
from serving.body_limit import BodySizeLimit
from serving.errors import install_error_handlers, printable, status_for
from serving.events_api import events_router
from serving.journey_wiring import open_cart_pusher, open_stitching_stream
from serving.metrics import ApiMetrics
from serving.model_reload import ModelWatcher
from serving.monitoring import observe_recorded
from serving.online_state import StateSnapshotter
from serving.reports_api import reports_router
from serving.schemas import (
    CancelResponse,
    ChannelContactState,
    ContactProfileResponse,
    ContactUpdate,
    DecideRequest,
    DecideResponse,
    HealthResponse,
    OutcomeBatch,
    OutcomeBatchItem,
    OutcomeBatchResponse,
    OutcomeRequest,
    OutcomeResponse,
    SendCheckResponse,
)
from serving.settings import Settings
from serving.tracking_api import tracking_router
from serving.webhooks_api import webhooks_router
from serving.wiring import Runtime, build_runtime

__all__ = ["create_app", "freeze_startup_heap", "to_response"]

_log = logging.getLogger("nudge.api")
FINALISE_BATCH = 1000


def freeze_startup_heap() -> None:
    """Exempt everything loaded at start-up from the cyclic garbage collector.

    Feast, MLflow, LightGBM and pandas leave hundreds of thousands of long-lived
    objects; every full collection walked them all, a 200+ ms pause measured in
    the middle of decisions (reports/bench_decide.json). Frozen, a collection
    only walks what requests allocate.
    """
    gc.collect()
    gc.freeze()


def to_response(decision: Decision) -> dict[str, Any]:
    """A logged decision as the API shows it: the choice and its whole explanation.

    A plain dict in the shape of :class:`DecideResponse`, written with orjson:
    building 55 pydantic score models per request cost more than the policy's choice.
    """
    action = decision.action
    return {
        "decision_id": decision.decision_id,
        "customer_id": decision.customer_id,
        "journey": decision.journey,
        "step": decision.step,
        "group": decision.group,
        "action": {
            "key": action.key,
            "message": action.message,
            "channel": action.channel,
            "slot": action.slot,
            "send_at": action.send_at,
            "transactional": action.transactional,
        },
        "propensity": decision.propensity,
        "propensity_error": decision.propensity_error,
        "explored": decision.explored,
        "policy_version": decision.policy_version,
        "model_version": decision.model_version,
        "decided_at": decision.decided_at,
        "attribution_closes_at": decision.attribution_closes_at,
        "time_zone": decision.time_zone,
        "eligible": [a.key for a in decision.eligible],
        "scores": {
            key: {
                "prior": s.prior,
                "mean": s.mean,
                "uncertainty": s.uncertainty,
                "probability": s.probability,
            }
            for key, s in decision.scores.items()
        },
        "excluded": [
            {"action": e.action, "rule": e.rule, "detail": e.detail} for e in decision.excluded
        ],
        "missing_features": list(decision.missing_features),
    }


def _json(body: dict[str, Any]) -> Response:
    # Returning the dict would make FastAPI validate it against response_model
    # (which documents the shape) on the hot path.
    return Response(orjson.dumps(body), media_type="application/json")


def create_app(
    settings: Settings,
    runtime_factory: Callable[[Settings], Runtime] = build_runtime,
) -> FastAPI:
    """Build the API; the backends are wired at start-up from ``settings``."""
    metrics = ApiMetrics()

    async def keep_in_sync(runtime: Runtime) -> None:
        # In a worker thread: closing a thousand windows must not stall the
        # requests this event loop is serving meanwhile.
        while True:
            await asyncio.sleep(settings.sync_interval)
            try:
                await asyncio.to_thread(runtime.engine.sync)
                while await asyncio.to_thread(runtime.engine.finalise_due, FINALISE_BATCH) == (
                    FINALISE_BATCH
                ):
                    pass  # a backlog (say, after a restart) is worked off batch by batch
            except Exception:  # a store hiccup must not end the loop for good
                _log.exception("sharing policy state or closing windows failed; retrying")

    async def keep_watch(monitor: AlertMonitor) -> None:
        # In a worker thread: reading the log and the Feast registry takes a while.
        while True:
            await asyncio.sleep(settings.alert_interval)
            try:
                await asyncio.to_thread(monitor.run, datetime.now(UTC))
            except Exception:  # a store hiccup must not end monitoring for good
                _log.exception("refreshing gauges or evaluating alerts failed; retrying")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = runtime_factory(settings)
        app.state.runtime = runtime
        app.state.stitching = open_stitching_stream(settings)
        app.state.events = app.state.stitching.stream
        app.state.cart_pusher = await asyncio.to_thread(open_cart_pusher, settings)
        # Merges whose contact profiles a crash left unmerged.
        await asyncio.to_thread(
            app.state.stitching.merge_contacts, partial(merge_contacts, runtime.engine.contacts)
        )
        freeze_startup_heap()
        metrics.set_gauges(metrics.model_info, {(runtime.model_name, runtime.model_version): 1.0})
        monitor = AlertMonitor(settings, runtime, metrics)
        snapshotter = StateSnapshotter(settings, runtime, metrics)
        tasks = [
            asyncio.create_task(keep_in_sync(runtime)),
            asyncio.create_task(keep_watch(monitor)),
        ]
        if settings.model_reload_interval > 0:
            tasks.append(asyncio.create_task(ModelWatcher(settings, runtime, metrics).run()))
        if settings.snapshot_interval > 0:
            tasks.append(asyncio.create_task(snapshotter.run()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await asyncio.to_thread(monitor.close)  # waits for a round still in its thread
            await asyncio.to_thread(snapshotter.close)
            app.state.events.close()
            runtime.close()

    app = FastAPI(
        title="Nudge decision API",
        version="0.2.0",
        summary="Whether to contact a customer, with which message, on which channel, and when.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Added last, so it runs first: a request without a key is refused before anything else.
    app.add_middleware(ApiKeyAuth, settings=settings)
    app.include_router(reports_router(settings))
    app.include_router(
        events_router(
            lambda request: request.app.state.stitching,
            lambda request: request.app.state.cart_pusher,
            lambda request: runtime_of(request).engine.contacts,
        )
    )
    app.include_router(webhooks_router(settings, lambda request: request.app.state.stitching))
    app.include_router(
        tracking_router(
            settings,
            lambda request: runtime_of(request).engine,
            lambda request: request.app.state.events,
            metrics,
        )
    )

    def runtime_of(request: Request) -> Runtime:
        runtime: Runtime = request.app.state.runtime
        return runtime

    @app.post("/v1/decide", response_model=DecideResponse, tags=["decisions"])
    async def decide(body: DecideRequest, request: Request) -> Response:
        """Choose message × channel × send time (or no send) under the contact policy, and log it.

        The response explains the choice: every eligible candidate's score and
        probability, every excluded candidate with its rule, and the versions.
        """
        started = time.perf_counter()
        decision = runtime_of(request).engine.decide(
            DecisionRequest(
                customer_id=body.customer_id,
                candidates=[
                    CandidateMessage(c.message, None if c.channels is None else tuple(c.channels))
                    for c in body.candidates
                ],
                journey=body.journey,
                step=body.step,
                allow_no_send=body.allow_no_send,
                slots=body.slots,
                time_zone=body.time_zone,
                context=body.context,
                idempotency_key=body.idempotency_key,
            )
        )
        metrics.decision_latency.observe(time.perf_counter() - started)
        metrics.observe_decision(decision)
        return _json(to_response(decision))

    @app.get("/v1/decisions/{decision_id}", response_model=DecideResponse, tags=["decisions"])
    async def get_decision(decision_id: str, request: Request) -> Response:
        """A logged decision with its explanation."""
        return _json(to_response(runtime_of(request).engine.log.get_decision(decision_id)))

    @app.post(
        "/v1/decisions/{decision_id}/send-check",
        response_model=SendCheckResponse,
        tags=["decisions"],
    )
    async def send_check(decision_id: str, request: Request) -> SendCheckResponse:
        """Just before sending: is this send still allowed (consent, suppression, quiet hours)?"""
        check = runtime_of(request).engine.check_send(decision_id)
        if check.exclusion is None:
            return SendCheckResponse(decision_id=decision_id, allowed=True)
        metrics.send_blocked.labels(rule=check.exclusion.rule).inc()
        return SendCheckResponse(
            decision_id=decision_id,
            allowed=False,
            rule=check.exclusion.rule,
            detail=check.exclusion.detail,
        )

    @app.post(
        "/v1/decisions/{decision_id}/cancel", response_model=CancelResponse, tags=["decisions"]
    )
    async def cancel(decision_id: str, request: Request) -> CancelResponse:
        """The decision was not carried out (e.g. the customer converted before send_at).

        Frees its contact-cap reservation; the policy learns nothing from it.
        """
        cancelled = runtime_of(request).engine.cancel(decision_id)
        return CancelResponse(decision_id=decision_id, cancelled=cancelled)

    @app.post("/v1/outcomes", response_model=OutcomeResponse, status_code=202, tags=["decisions"])
    async def outcomes(body: OutcomeRequest, request: Request) -> OutcomeResponse:
        """Record what happened after a decision; the same outcome posted twice counts once."""
        receipt = runtime_of(request).engine.record_outcome(
            body.decision_id,
            event=body.event,
            occurred_at=body.occurred_at,
            value=body.value,
            outcome_id=body.outcome_id,
        )
        observe_recorded(metrics, runtime_of(request).engine.log, receipt)
        return OutcomeResponse(
            outcome_id=receipt.outcome.outcome_id,
            decision_id=receipt.outcome.decision_id,
            new=receipt.new,
            credited=receipt.credited,
            learned=receipt.learned,
        )

    @app.post("/v1/outcomes/batch", response_model=OutcomeBatchResponse, tags=["decisions"])
    async def outcome_batch(body: OutcomeBatch, request: Request) -> OutcomeBatchResponse:
        """Many outcomes in one request and one commit; a bad one is reported by its index
        and does not stop the others."""
        results = runtime_of(request).engine.record_outcomes(
            [
                OutcomeReport(o.decision_id, o.event, o.occurred_at, o.value, o.outcome_id)
                for o in body.outcomes
            ]
        )
        items: list[OutcomeBatchItem] = []
        for index, result in enumerate(results):
            if isinstance(result, NudgeError):
                items.append(
                    OutcomeBatchItem(
                        index=index, status=status_for(result), error=printable(str(result))
                    )
                )
                continue
            observe_recorded(metrics, runtime_of(request).engine.log, result)
            items.append(
                OutcomeBatchItem(
                    index=index,
                    status=202,
                    outcome_id=result.outcome.outcome_id,
                    new=result.new,
                    credited=result.credited,
                    learned=result.learned,
                )
            )
        refused = sum(item.status != 202 for item in items)
        return OutcomeBatchResponse(accepted=len(items) - refused, refused=refused, results=items)

    @app.put(
        "/v1/customers/{customer_id}/contact",
        response_model=ContactProfileResponse,
        tags=["contact policy"],
    )
    async def update_contact(
        customer_id: str, body: ContactUpdate, request: Request
    ) -> ContactProfileResponse:
        """Change consent, reachability, suppression or time zone; effective for the next decision
        and for every send not yet made."""
        engine = runtime_of(request).engine
        known = engine.config.channels
        for channel in body.channels:
            if channel not in known:
                raise InvalidRequest(f"channels.{channel}", f"must be one of {sorted(known)}")
        if body.time_zone is not None:
            load_zone(body.time_zone, "time_zone")
        at = body.at or datetime.now(UTC)
        contacts = engine.contacts
        for channel, change in body.channels.items():
            if change.consent is not None:
                contacts.set_consent(customer_id, channel, change.consent == "opted_in", at)
            if change.reachable is not None:
                contacts.set_reachable(customer_id, channel, change.reachable)
            if change.suppressed is not None:
                contacts.suppress(customer_id, channel, change.suppressed, at)
        if body.time_zone is not None:
            contacts.set_time_zone(customer_id, body.time_zone)
        return _profile(engine.contacts, customer_id, known)

    @app.get(
        "/v1/customers/{customer_id}/contact",
        response_model=ContactProfileResponse,
        tags=["contact policy"],
    )
    async def get_contact(customer_id: str, request: Request) -> ContactProfileResponse:
        engine = runtime_of(request).engine
        return _profile(engine.contacts, customer_id, engine.config.channels)

    @app.get("/healthz", response_model=HealthResponse, tags=["operations"])
    async def healthz(request: Request) -> HealthResponse:
        runtime = runtime_of(request)
        return HealthResponse(
            status="ok",
            model_name=runtime.model_name,
            # The engine's, not the start-up one: a new champion is swapped in while serving.
            model_version=runtime.engine.model_version,
            policy_version=runtime.engine.policy.version,
            decisions_logged=runtime.engine.log.count_decisions(),
            worker_id=runtime.engine.worker_id,
            storage=settings.storage,
        )

    @app.get("/metrics", tags=["operations"])
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _profile(
    contacts: ContactStore, customer_id: str, channels: Mapping[str, object]
) -> ContactProfileResponse:
    profile = contacts.profile(customer_id)
    names = sorted(set(profile.channels) | set(channels))
    states = {name: profile.channel(name) for name in names}
    return ContactProfileResponse(
        customer_id=customer_id,
        time_zone=profile.time_zone,
        channels={
            name: ChannelContactState(
                consent=state.consent, suppressed=state.suppressed, reachable=state.reachable
            )
            for name, state in states.items()
        },
    )
