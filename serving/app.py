"""The decision API: FastAPI routes over one DecisionEngine.

Routes are ``async def`` on purpose: the engine's work is short and CPU-bound,
and a plain ``def`` route would pay a thread-pool hop per request (PERFORMANCE.md).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from decisioning import Decision
from serving.body_limit import BodySizeLimit
from serving.errors import install_error_handlers
from serving.metrics import ApiMetrics
from serving.schemas import (
    CandidateScore,
    DecideRequest,
    DecideResponse,
    HealthResponse,
    OutcomeRequest,
    OutcomeResponse,
)
from serving.settings import Settings
from serving.wiring import Runtime, build_runtime

__all__ = ["create_app"]


def _to_response(decision: Decision) -> DecideResponse:
    return DecideResponse(
        decision_id=decision.decision_id,
        customer_id=decision.customer_id,
        action=decision.action,
        propensity=decision.propensity,
        explored=decision.explored,
        policy_version=decision.policy_version,
        model_version=decision.model_version,
        decided_at=decision.decided_at,
        scores={
            action: CandidateScore(prior=s.prior, mean=s.mean, probability=s.probability)
            for action, s in decision.scores.items()
        },
        missing_features=list(decision.missing_features),
    )


def create_app(
    settings: Settings,
    runtime_factory: Callable[[Settings], Runtime] = build_runtime,
) -> FastAPI:
    """Build the API; the backends are wired at start-up from ``settings``."""
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = runtime_factory(settings)
        app.state.runtime = runtime
        metrics.model_info.labels(name=runtime.model_name, version=runtime.model_version).set(1)
        try:
            yield
        finally:
            runtime.close()

    app = FastAPI(
        title="Nudge decision API",
        version="0.1.0",
        summary="Whether to contact a customer, with which message — and learning from outcomes.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)

    def runtime_of(request: Request) -> Runtime:
        runtime: Runtime = request.app.state.runtime
        return runtime

    @app.post("/v1/decide", response_model=DecideResponse, tags=["decisions"])
    async def decide(body: DecideRequest, request: Request) -> Response:
        """Choose one action for one customer, log it with its propensity, and return why."""
        started = time.perf_counter()
        decision = runtime_of(request).engine.decide(
            body.customer_id, candidates=body.candidates, context=body.context
        )
        metrics.decision_latency.observe(time.perf_counter() - started)
        metrics.decisions.labels(
            action=decision.action, explored=str(decision.explored).lower()
        ).inc()
        for feature in decision.missing_features:
            metrics.missing_features.labels(feature=feature).inc()
        # Serialised here: returning the model would make FastAPI validate it a
        # second time against response_model, on the hot path.
        return Response(_to_response(decision).model_dump_json(), media_type="application/json")

    @app.post("/v1/outcomes", response_model=OutcomeResponse, status_code=202, tags=["decisions"])
    async def outcomes(body: OutcomeRequest, request: Request) -> OutcomeResponse:
        """Record what happened after a decision; the same outcome posted twice counts once."""
        receipt = runtime_of(request).engine.record_outcome(
            body.decision_id,
            occurred_at=body.occurred_at,
            reward=body.reward,
            event=body.event,
            value=body.value,
            outcome_id=body.outcome_id,
        )
        metrics.outcomes.labels(event=receipt.outcome.event, new=str(receipt.new).lower()).inc()
        if receipt.learned:
            metrics.reward.observe(receipt.outcome.reward)
        return OutcomeResponse(
            outcome_id=receipt.outcome.outcome_id,
            decision_id=receipt.outcome.decision_id,
            new=receipt.new,
            learned=receipt.learned,
        )

    @app.get("/healthz", response_model=HealthResponse, tags=["operations"])
    async def healthz(request: Request) -> HealthResponse:
        runtime = runtime_of(request)
        return HealthResponse(
            status="ok",
            model_name=runtime.model_name,
            model_version=runtime.model_version,
            policy_version=runtime.engine.policy.version,
            decisions_logged=runtime.engine.log.count_decisions(),
        )

    @app.get("/metrics", tags=["operations"])
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
