"""What comes back from a sent message: opens, clicks, unsubscribes and provider callbacks.

Tracked links are signed (``channels.TrackingLinks``), so nobody can post an
outcome for someone else's message by guessing a URL. Each becomes an outcome
of the message's decision: an open or a click is informational (counted once
per message), an unsubscribe suppresses the channel and is the journey's
penalty. The unsubscribe link asks for a click on a button (a mail scanner that
follows every link must not unsubscribe anyone); the ``List-Unsubscribe-Post``
one-click POST of RFC 8058 unsubscribes at once.

Provider callbacks (delivered, bounced, complained, opened, clicked) are
checked against the shared secret and the timestamp, replays refused, and each
event counts once (its outcome id is the provider's event id, or for delivery
and suppression events the message's own).

Opens, clicks, unsubscribes, complaints and hard bounces also go into the
customer event stream (``email_open``, ``email_click``, ``sms_click``, ...,
``unsubscribe``, ``complaint``, ``hard_bounce``), so that a journey can branch
or exit on them. The event id is the outcome id: a repeat is stored once, and
one whose outcome was recorded before its event (a crash in between) still
gets its event when it comes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Header, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from channels import CallbackVerifier, TrackingLinks
from decisioning import Decision
from decisioning.engine import DecisionEngine, OutcomeReceipt
from features import Conflict, InvalidRequest, NotFound, NudgeError
from features.event_stream import MAX_ID_LENGTH, CustomerEvent, EventStream
from serving.journey_wiring import tracking_secret
from serving.metrics import ApiMetrics
from serving.monitoring import observe_recorded
from serving.settings import Settings

__all__ = ["tracking_router"]

# The smallest transparent GIF: what an open pixel answers, whatever happened.
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
_NO_STORE = {"Cache-Control": "no-store, private"}
# Once per message: a second open or a second unsubscribe adds nothing.
_ONCE_PER_MESSAGE = frozenset({"delivered", "hard_bounce", "complaint", "unsubscribe", "open"})
# Outcomes a journey may wait for; opens and clicks are named by channel (email_click).
_BY_CHANNEL = frozenset({"open", "click"})
_STREAMED = _BY_CHANNEL | {"unsubscribe", "complaint", "hard_bounce"}
_NOT_VALID = "<p>It may have been cut or changed.</p>"


def _customer_event(
    decision: Decision, event: str, outcome_id: str, occurred_at: datetime, url: str | None
) -> CustomerEvent:
    """The stream's copy of an outcome, for the decision's customer."""
    channel = decision.action.channel
    kind = f"{channel}_{event}" if event in _BY_CHANNEL and channel else event
    payload: dict[str, Any] = {
        "decision_id": decision.decision_id,
        "channel": channel,
        "message": decision.action.message,
    }
    if url is not None:
        payload["url"] = url
    # A click's outcome id holds its target URL, often longer than an event id may be.
    event_id = (
        outcome_id
        if len(outcome_id) <= MAX_ID_LENGTH
        else "outcome-" + hashlib.sha256(outcome_id.encode()).hexdigest()
    )
    return CustomerEvent(event_id, decision.customer_id, kind, occurred_at, payload)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<body style='font-family:sans-serif;max-width:32em;margin:3em auto'>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>",
        status_code=status,
        headers=_NO_STORE,
    )


def tracking_router(
    settings: Settings,
    engine_of: Callable[[Request], DecisionEngine],
    stream_of: Callable[[Request], EventStream],
    metrics: ApiMetrics,
) -> APIRouter:
    """The routes; ``engine_of`` / ``stream_of`` give the process's engine and event stream,
    and ``metrics`` counts these outcomes as ``POST /v1/outcomes`` counts its own."""
    router = APIRouter(tags=["tracking"])
    links = TrackingLinks(tracking_secret(settings), settings.public_url)
    verifier = CallbackVerifier(settings.callback_secret) if settings.callback_secret else None

    def record(
        request: Request,
        message_id: str,
        event: str,
        outcome_id: str,
        occurred_at: datetime,
        url: str | None = None,
    ) -> OutcomeReceipt | None:
        """Record the outcome, count it, and stream it; None when it was recorded before
        at another moment (it still counts once). Raises what the engine raises for an
        outcome it refuses (an unknown decision, ...): then nothing is streamed."""
        engine = engine_of(request)
        receipt: OutcomeReceipt | None
        try:
            receipt = engine.record_outcome(
                message_id, event=event, occurred_at=occurred_at, outcome_id=outcome_id
            )
        except Conflict:
            receipt = None
        decision = None
        if event in _STREAMED:
            decision = engine.log.get_decision(message_id)
            # Also for a repeat: the event id makes it a no-op once the event is stored.
            stream_of(request).append(
                [_customer_event(decision, event, outcome_id, occurred_at, url)]
            )
        if receipt is not None:
            observe_recorded(metrics, engine.log, receipt, decision)
        return receipt

    async def record_link(request: Request, token: str, kind: str) -> tuple[str, str | None]:
        link = links.parse(token)
        if link.kind != kind:
            raise InvalidRequest("token", f"must be a {kind} link", link.kind)
        event = "click" if kind == "click" else kind
        outcome_id = f"{link.message_id}:{event}"
        if event == "click":
            outcome_id += f":{link.target_url}"
        await asyncio.to_thread(
            record, request, link.message_id, event, outcome_id, datetime.now(UTC), link.target_url
        )
        return link.message_id, link.target_url

    @router.get("/t/o/{token}.gif", include_in_schema=False)
    async def open_pixel(token: str, request: Request) -> Response:
        """An e-mail was opened (its images loaded): record it and answer a blank pixel."""
        # A broken image in someone's mail helps nobody: the pixel is always there.
        with contextlib.suppress(NudgeError):
            await record_link(request, token, "open")
        return Response(PIXEL, media_type="image/gif", headers=_NO_STORE)

    @router.get("/t/c/{token}", include_in_schema=False)
    async def click(token: str, request: Request) -> Response:
        """A tracked link was followed: record the click and send the browser on."""
        try:
            _, target = await record_link(request, token, "click")
        except (InvalidRequest, NotFound):
            return _page("This link is not valid", _NOT_VALID, 404)
        assert target is not None
        return RedirectResponse(target, status_code=302, headers=_NO_STORE)

    @router.get("/u/{token}", include_in_schema=False)
    async def unsubscribe_page(token: str) -> HTMLResponse:
        try:
            link = links.parse(token)
        except InvalidRequest:
            link = None
        if link is None or link.kind != "unsubscribe":
            # A click or open token is signed too, but the POST would refuse it.
            return _page("This link is not valid", _NOT_VALID, 404)
        # An empty action posts to this page's own URL, whatever path prefix a proxy added.
        return _page(
            "Unsubscribe",
            "<p>Stop receiving these messages?</p>"
            "<form method=post action=''><button type=submit>Unsubscribe</button></form>",
        )

    @router.post("/u/{token}", include_in_schema=False)
    async def unsubscribe(token: str, request: Request) -> HTMLResponse:
        """The customer unsubscribed (the page's button, or a mail client's one-click POST)."""
        try:
            await record_link(request, token, "unsubscribe")
        except (InvalidRequest, NotFound):
            return _page("This link is not valid", _NOT_VALID, 404)
        return _page("You are unsubscribed", "<p>You will not get these messages again.</p>")

    @router.post("/v1/callbacks/{provider}", tags=["callbacks"])
    async def provider_callback(
        provider: str,
        request: Request,
        x_nudge_timestamp: str = Header(""),
        x_nudge_signature: str = Header(""),
    ) -> dict[str, Any]:
        """Delivery events from an e-mail, SMS or push provider, signed with the shared secret."""
        if verifier is None:
            raise HTTPException(403, "provider callbacks are off: set NUDGE_CALLBACK_SECRET")
        body = await request.body()
        try:
            events = verifier.accept(provider, x_nudge_timestamp, body, x_nudge_signature)
        except InvalidRequest as error:
            if error.field in ("X-Nudge-Signature", "X-Nudge-Timestamp"):
                raise HTTPException(
                    401, "the callback's signature or timestamp is not valid"
                ) from None
            raise
        results: list[dict[str, Any]] = []
        for event in events:
            outcome_id = (
                f"{event.message_id}:{event.event}"
                if event.event in _ONCE_PER_MESSAGE
                else f"{provider}:{event.provider_event_id}"
            )
            try:
                receipt = await asyncio.to_thread(
                    record, request, event.message_id, event.event, outcome_id, event.occurred_at
                )
                # None: the runner (or an earlier callback) recorded it already, at another moment.
                new = receipt is not None and receipt.new
                results.append({"id": event.provider_event_id, "status": "accepted", "new": new})
            except NudgeError as error:
                results.append(
                    {"id": event.provider_event_id, "status": "refused", "error": str(error)}
                )
        return {
            "accepted": sum(r["status"] == "accepted" for r in results),
            "refused": sum(r["status"] == "refused" for r in results),
            "results": results,
        }

    return router
