"""``POST /v1/events``: customer events into the stream that journeys consume.

One event, or a batch of up to :data:`MAX_BATCH` as ``{"events": [...]}``. In
a batch each event is checked on its own: the good ones are stored (in one
commit, before the answer is sent) and the bad ones reported by index with the
field that is wrong. Every event has an ``event_id``: the same event posted
again (a retry) is stored once and answered ``duplicate``; the id posted again
with another customer, type, time or payload is refused (409 for one event),
since storing neither silently nor twice would be right.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from decisioning.contact_merge import merge_contacts
from decisioning.contact_store import ContactStore
from features import Conflict, InvalidRequest
from features.event_stream import CustomerEvent, StoredEvent, check_event
from features.push import CartPusher
from features.stitching import STITCHING_EVENTS, StitchingStream

__all__ = ["FUTURE_TOLERANCE", "MAX_BATCH", "EventBody", "events_router"]

MAX_BATCH = 500
_log = logging.getLogger("nudge.events")
_STATUSES = ("accepted", "duplicate", "refused")
FUTURE_TOLERANCE = timedelta(minutes=5)
"""How far ahead of this server's clock an ``occurred_at`` may be (clock skew), as for outcomes."""


class EventBody(BaseModel):
    """One customer event: what happened, to whom, when (with its time zone)."""

    model_config = ConfigDict(extra="forbid", strict=False)

    event_id: str = Field(
        min_length=1, max_length=128, description="Unique per event; a retry is stored once."
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


def _parse(raw: object, index: int | None, now: datetime, stream: StitchingStream) -> CustomerEvent:
    where = "" if index is None else f"events[{index}]."
    body = EventBody.model_validate(raw)
    event = check_event(
        CustomerEvent(
            event_id=body.event_id,
            customer_id=body.customer_id,
            type=body.type,
            occurred_at=body.occurred_at,
            payload=body.payload,
        ),
        where,
    )
    if event.occurred_at - now > FUTURE_TOLERANCE:
        minutes = f"{FUTURE_TOLERANCE.total_seconds() / 60:g}"
        raise InvalidRequest(
            f"{where}occurred_at",
            f"must not be more than {minutes} minutes in the future",
            event.occurred_at.isoformat(),
        )
    stream.check(event, where)
    return event


_MICROSECOND = timedelta(microseconds=1)


def _reuse(event: CustomerEvent, stored: StoredEvent | None, where: str = "") -> str | None:
    """Why ``event`` is not a repeat of what its id was stored with; None if it is one."""
    if stored is None:
        return None
    payload = json.loads(json.dumps(dict(event.payload)))
    differences = [
        name
        for name, differs in (
            ("customer_id", stored.customer_id != event.customer_id),
            ("type", stored.type != event.type),
            # Read back from float seconds: equal to the microsecond, not always exactly.
            ("occurred_at", abs(stored.occurred_at - event.occurred_at) > _MICROSECOND),
            ("payload", stored.payload != payload),
        )
        if differs
    ]
    if not differences:
        return None
    return (
        f"`{where}event_id` {event.event_id!r} was already used for another event "
        f"(other {', '.join(differences)}); a retry must repeat the event unchanged"
    )


def events_router(stream_of: Any, pusher_of: Any = None, contacts_of: Any = None) -> APIRouter:
    """``stream_of(request)`` gives the process's :class:`StitchingStream`: events are
    stored under their customer's surviving id, and identify/login events link the
    identifiers in their payload (``anonymous_id``, ``device_id``, ``email``, ``phone``).
    ``pusher_of(request)``, if given, gives a :class:`CartPusher` (or None): accepted cart
    events then update the real-time cart features, after they are stored.
    ``contacts_of(request)``, if given, gives the contact store: when a login or identify
    merges customers, the merged one's consent and suppressions follow (see
    :func:`decisioning.contact_merge.merge_contacts`)."""
    router = APIRouter(tags=["events"])

    @router.post("/v1/events", status_code=202)
    async def post_events(request: Request) -> JSONResponse:
        """Store one event, or a batch ``{"events": [...]}`` (at most 500), durably.

        Answers 202 with each event's status (``accepted``, ``duplicate`` or
        ``refused`` with the field that is wrong); a single bad event is a 422, and
        a single event whose ``event_id`` was used for another event a 409.
        """
        try:
            raw = await request.json()
        except ValueError:
            raise InvalidRequest("body", "must be a JSON object") from None
        except RecursionError:
            # Thousands of nested brackets exhaust the parser's stack: a bad body, not a 500.
            raise InvalidRequest("body", "must be a JSON object, not nested this deep") from None
        stream: StitchingStream = stream_of(request)
        now = datetime.now(UTC)
        if isinstance(raw, dict) and "events" in raw:
            response = await _batch(stream, raw, now, pusher_of and pusher_of(request))
            await _merge_contacts(stream, contacts_of and contacts_of(request), None)
            return response
        try:
            event = _parse(raw, None, now, stream)
        except ValidationError as error:
            problem = _problem(None, error)
            raise InvalidRequest(problem["field"], "is not valid: " + problem["error"]) from None
        new_ids, stored, (as_stored,) = await asyncio.to_thread(_store, stream, [event])
        if event.event_id in new_ids:
            await _push(pusher_of and pusher_of(request), [as_stored])
            await _merge_contacts(stream, contacts_of and contacts_of(request), [as_stored])
            return JSONResponse({"status": "accepted", "event_id": event.event_id}, 202)
        reuse = _reuse(as_stored, stored.get(event.event_id))
        if reuse is not None:
            raise Conflict(reuse)
        return JSONResponse({"status": "duplicate", "event_id": event.event_id}, 202)

    return router


async def _batch(
    stream: StitchingStream, raw: dict[str, Any], now: datetime, pusher: CartPusher | None
) -> JSONResponse:
    others = sorted(key for key in raw if key != "events")
    if others:
        raise InvalidRequest(others[0], "must not be next to `events`: a batch holds only `events`")
    items = raw["events"]
    if not isinstance(items, list) or not items or len(items) > MAX_BATCH:
        raise InvalidRequest("events", f"must be a list of 1 to {MAX_BATCH} events")
    results: list[dict[str, Any]] = []
    good: list[tuple[int, CustomerEvent]] = []
    for index, item in enumerate(items):
        try:
            good.append((index, _parse(item, index, now, stream)))
        except (ValidationError, InvalidRequest) as error:
            results.append({"index": index, "status": "refused", **_problem(index, error)})
    new_ids, stored, as_stored = await asyncio.to_thread(
        _store, stream, [event for _, event in good]
    )
    await _push(pusher, [event for event in as_stored if event.event_id in new_ids])
    reported: set[str] = set()
    for (index, _), event in zip(good, as_stored, strict=True):
        # The same id twice in one batch is stored once: its repeat is a duplicate.
        fresh = event.event_id in new_ids and event.event_id not in reported
        reported.add(event.event_id)
        reuse = None if fresh else _reuse(event, stored.get(event.event_id), f"events[{index}].")
        if reuse is not None:
            field = f"events[{index}].event_id"
            results.append({"index": index, "status": "refused", "field": field, "error": reuse})
            continue
        status = "accepted" if fresh else "duplicate"
        results.append({"index": index, "status": status, "event_id": event.event_id})
    results.sort(key=lambda r: int(r["index"]))
    counts = {s: sum(r["status"] == s for r in results) for s in _STATUSES}
    return JSONResponse({**counts, "results": results}, status_code=202)


async def _merge_contacts(
    stream: StitchingStream, contacts: ContactStore | None, events: list[CustomerEvent] | None
) -> None:
    """Merged customers' contact profiles, after the commit that merged them; pending ones
    are found in the identity tables, so one left by a crash is done on the next call."""
    if contacts is None:
        return
    if events is not None and not any(e.type in STITCHING_EVENTS for e in events):
        return
    await asyncio.to_thread(stream.merge_contacts, partial(merge_contacts, contacts))


async def _push(pusher: CartPusher | None, events: list[CustomerEvent]) -> None:
    """Real-time cart features from events already stored: a failure here is logged, not
    answered, since the events are durable and the next snapshot brings the carts up."""
    if pusher is None or not events:
        return
    try:
        await asyncio.to_thread(pusher.push, events)
    except Exception:
        _log.exception("pushing %d events to the cart features failed", len(events))


def _store(
    stream: StitchingStream, events: list[CustomerEvent]
) -> tuple[set[str], dict[str, StoredEvent], list[CustomerEvent]]:
    """The ids of ``events`` that were new, all stored in one commit; what the others' ids
    (and ids repeated among ``events``) were stored with, read in one query; and
    ``events`` as stored (under their customers' surviving ids)."""
    if not events:
        return set(), {}, []
    new_ids, as_stored = stream.append_new(events)
    times = Counter(event.event_id for event in events)
    repeats = {event_id for event_id, n in times.items() if n > 1 or event_id not in new_ids}
    return new_ids, stream.stream.get(repeats), as_stored
