"""``POST /v1/events``: customer events into the stream that journeys consume.

One event, or a batch of up to :data:`MAX_BATCH` as ``{"events": [...]}``. In
a batch each event is checked on its own: the good ones are stored (in one
commit, before the answer is sent) and the bad ones reported by index with the
field that is wrong. The same ``event_id`` posted again is stored once.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from features import InvalidRequest
from features.event_stream import CustomerEvent, EventStream, check_event

__all__ = ["MAX_BATCH", "EventBody", "events_router"]

MAX_BATCH = 500


class EventBody(BaseModel):
    """One customer event: what happened, to whom, when (with its time zone)."""

    model_config = ConfigDict(extra="forbid", strict=False)

    event_id: str | None = Field(
        None, min_length=1, max_length=128, description="Unique per event; a repeat is stored once."
    )
    customer_id: str = Field(min_length=1, max_length=128)
    type: str = Field(min_length=1, max_length=128, description="add_to_cart, purchase, ...")
    occurred_at: datetime = Field(description="ISO 8601 with an offset, e.g. 2026-12-01T09:00Z.")
    payload: dict[str, Any] = Field(default_factory=dict)


def _problem(index: int | None, error: ValidationError | InvalidRequest) -> dict[str, Any]:
    prefix = "" if index is None else f"events[{index}]."
    if isinstance(error, InvalidRequest):
        return {"field": error.field, "error": str(error)}
    first = error.errors()[0]
    # A batch item that is not an object has no location of its own: name the item.
    field = (prefix + ".".join(str(part) for part in first["loc"])).rstrip(".") or "body"
    return {"field": field, "error": f"`{field}` {first['msg'].lower()}"}


def _parse(raw: object, index: int | None) -> CustomerEvent:
    body = EventBody.model_validate(raw)
    event = CustomerEvent(
        event_id=body.event_id or uuid.uuid4().hex,
        customer_id=body.customer_id,
        type=body.type,
        occurred_at=body.occurred_at,
        payload=body.payload,
    )
    return check_event(event, "" if index is None else f"events[{index}].")


def events_router(stream_of: Any) -> APIRouter:
    """``stream_of(request)`` gives the process's :class:`EventStream`."""
    router = APIRouter(tags=["events"])

    @router.post("/v1/events", status_code=202)
    async def post_events(request: Request) -> JSONResponse:
        """Store one event, or a batch ``{"events": [...]}`` (at most 500), durably.

        Answers 202 with each event's status (``accepted``, ``duplicate`` or
        ``refused`` with the field that is wrong); a single bad event is a 422.
        """
        try:
            raw = await request.json()
        except ValueError:
            raise InvalidRequest("body", "must be a JSON object") from None
        stream: EventStream = stream_of(request)
        if isinstance(raw, dict) and "events" in raw:
            items = raw["events"]
            if not isinstance(items, list) or not items or len(items) > MAX_BATCH:
                raise InvalidRequest("events", f"must be a list of 1 to {MAX_BATCH} events")
            results: list[dict[str, Any]] = []
            good: list[tuple[int, CustomerEvent]] = []
            for index, item in enumerate(items):
                try:
                    good.append((index, _parse(item, index)))
                except (ValidationError, InvalidRequest) as error:
                    results.append({"index": index, "status": "refused", **_problem(index, error)})
            new_ids = await asyncio.to_thread(_append, stream, [event for _, event in good])
            reported: set[str] = set()
            for index, event in good:
                # The same id twice in one batch is stored once: its repeat is a duplicate.
                fresh = event.event_id in new_ids and event.event_id not in reported
                reported.add(event.event_id)
                status = "accepted" if fresh else "duplicate"
                results.append({"index": index, "status": status, "event_id": event.event_id})
            results.sort(key=lambda r: int(r["index"]))
            counts = {s: sum(r["status"] == s for r in results) for s in ("accepted", "duplicate")}
            return JSONResponse(
                {**counts, "refused": len(items) - len(good), "results": results}, status_code=202
            )
        try:
            event = _parse(raw, None)
        except ValidationError as error:
            problem = _problem(None, error)
            raise InvalidRequest(problem["field"], "is not valid: " + problem["error"]) from None
        new_ids = await asyncio.to_thread(_append, stream, [event])
        status = "accepted" if event.event_id in new_ids else "duplicate"
        return JSONResponse({"status": status, "event_id": event.event_id}, status_code=202)

    return router


def _append(stream: EventStream, events: list[CustomerEvent]) -> set[str]:
    """The ids of ``events`` that were new, all stored in one commit."""
    if not events:
        return set()
    return stream.append_new(events)
