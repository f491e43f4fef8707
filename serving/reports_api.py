"""Uplift reports over HTTP: the page marketers read, the JSON behind it, each table as CSV.

Behind the admin key: the report shows revenue and results of the whole decision log,
which is not for every caller that may ask for a decision. All three routes build the
same report from the same filters, so the numbers on the page, in ``data.json`` and in
the CSV files agree. A report reads the whole log, so it is built in a worker thread:
the decisions this event loop serves meanwhile must not wait for it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from starlette.datastructures import Headers

from decisioning.engine import DecisionEngine
from features import InvalidRequest, NotFound
from serving.report_command import challenger_policy
from serving.settings import Settings
from training.uplift_report import TABLE_COLUMNS, UpliftReport, report_from_log
from training.uplift_report_html import render_uplift_html

__all__ = ["parse_since", "reports_router"]

# Reports hold figures for the whole business; neither a browser nor a proxy keeps them.
_PRIVATE = {"Cache-Control": "no-store, private"}

# Two challenges, as two headers (Chromium reads no second challenge in one header):
# API clients send a Bearer token; a browser, which cannot, asks its user for a
# password once, and then sends it with every request to the server, CSV downloads
# included. A Headers object keeps both where a dict would keep one.
_CHALLENGES = Headers(
    raw=[(b"www-authenticate", b"Bearer"), (b"www-authenticate", b'Basic realm="Nudge reports"')]
)

JourneyQuery = Annotated[
    str | None, Query(description="Only this journey (all journeys when absent).")
]
SinceQuery = Annotated[
    str | None,
    Query(
        description="Only decisions made at or after this ISO date or date-time "
        "(UTC when it names no offset), e.g. 2024-03-01 or 2024-03-01T09:30:00+01:00."
    ),
]


def parse_since(text: str | None) -> datetime | None:
    """``since`` as an aware UTC date-time; a bare date is its midnight, UTC.

    >>> parse_since("2024-03-01")
    datetime.datetime(2024, 3, 1, 0, 0, tzinfo=datetime.timezone.utc)
    >>> parse_since("2024-03-01T09:30:00+02:00")
    datetime.datetime(2024, 3, 1, 7, 30, tzinfo=datetime.timezone.utc)
    >>> parse_since(None) is None
    True
    >>> parse_since("last tuesday")
    Traceback (most recent call last):
    ...
    features.errors.InvalidRequest: `since` must be an ISO date or date-time such as \
2024-03-01 or 2024-03-01T09:30:00Z, got 'last tuesday'
    """
    if text is None or not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest(
            "since",
            "must be an ISO date or date-time such as 2024-03-01 or 2024-03-01T09:30:00Z",
            text,
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def reports_router(settings: Settings) -> APIRouter:
    """``GET /reports``, ``/reports/data.json`` and ``/reports/{table}.csv``, behind the admin key.

    Include it in the app with ``app.include_router(reports_router(settings))``; the engine
    is read from ``request.app.state.runtime`` at request time.
    """

    def require_admin(
        request: Request,
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> None:
        if "admin" in getattr(request.state, "auth_scopes", ()):
            return  # an API key with the admin scope, checked by ApiKeyAuth
        key = settings.admin_key
        if not key:
            raise HTTPException(
                status_code=403,
                detail="reports are disabled: no admin key is configured; set NUDGE_ADMIN_KEY "
                "and send it as 'Authorization: Bearer <key>'",
            )
        given = _presented_key(authorization)
        # Constant time, so the key cannot be guessed from how fast a wrong one is refused.
        if given is None or not hmac.compare_digest(given, key.encode("utf-8")):
            raise HTTPException(
                status_code=401,
                detail="send the admin key as 'Authorization: Bearer <key>' (or, from a "
                "browser, as the password of any user name)",
                headers=_CHALLENGES,
            )

    router = APIRouter(prefix="/reports", tags=["reports"], dependencies=[Depends(require_admin)])

    @router.get("", response_class=HTMLResponse)
    async def report_page(
        request: Request, journey: JourneyQuery = None, since: SinceQuery = None
    ) -> Response:
        """The uplift report as one self-contained HTML page (charts need no network)."""
        filters = _filters(journey, since)
        base = request.scope.get("root_path", "") + "/reports"
        query = _query_string(journey, since)

        def render() -> str:
            report = _build(request, filters, settings)
            links = {name: f"{base}/{name}.csv{query}" for name in report.tables()}
            return render_uplift_html(report, csv_links=links)

        page = await asyncio.to_thread(render)
        return HTMLResponse(page, headers=_PRIVATE)

    @router.get("/data.json")
    async def report_data(
        request: Request, journey: JourneyQuery = None, since: SinceQuery = None
    ) -> Response:
        """The same report as JSON: every number the page shows."""
        filters = _filters(journey, since)

        def build() -> bytes:
            data: dict[str, Any] = _build(request, filters, settings).to_json()
            return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)

        body = await asyncio.to_thread(build)
        return Response(body, media_type="application/json", headers=_PRIVATE)

    @router.get("/{table}.csv")
    async def report_table(
        table: str, request: Request, journey: JourneyQuery = None, since: SinceQuery = None
    ) -> Response:
        """One table of the report as CSV, its header row the table's columns."""
        if table not in TABLE_COLUMNS:
            unknown = NotFound("report table", table)
            unknown.args = (f"{unknown}; the tables are: {', '.join(TABLE_COLUMNS)}",)
            raise unknown
        filters = _filters(journey, since)

        def build() -> str:
            frame = _build(request, filters, settings).tables()[table]
            text: str = frame.to_csv(index=False, lineterminator="\n")
            return text

        text = await asyncio.to_thread(build)
        return Response(
            text,
            media_type="text/csv; charset=utf-8",
            headers={
                **_PRIVATE,
                "Content-Disposition": f'attachment; filename="uplift-{table}.csv"',
            },
        )

    return router


def _presented_key(authorization: str | None) -> bytes | None:
    """The key a request presents: a Bearer token, or a Basic password (any user name).

    The bytes as sent (the server decoded the header as latin-1), so that a key with
    non-ASCII characters matches when a client sends it as UTF-8.

    >>> _presented_key("Bearer s3cret")
    b's3cret'
    >>> _presented_key("Basic " + base64.b64encode(b"anna:s3cret").decode())
    b's3cret'
    >>> [_presented_key(h) for h in (None, "Bearer ", "Basic !!", "Basic YW5uYQ==", "Digest x")]
    [None, None, None, None, None]
    """
    scheme, _, value = (authorization or "").strip().partition(" ")
    raw = value.strip().encode("latin-1", errors="replace")
    if scheme.lower() == "bearer":
        return raw or None
    if scheme.lower() == "basic":
        try:
            user_and_password = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return None
        _, colon, password = user_and_password.partition(b":")
        return password if colon and password else None
    return None


_Filters = tuple[str | None, datetime | None]


def _filters(journey: str | None, since: str | None) -> _Filters:
    try:
        return (journey or None), parse_since(since)
    except InvalidRequest as error:
        # A query parameter, located as FastAPI locates its own: ["query", "since"].
        raise RequestValidationError(
            [{"loc": ("query", error.field), "msg": str(error), "type": "value_error"}]
        ) from None


def _query_string(journey: str | None, since: str | None) -> str:
    """The filters again, for links from the page to its CSV files.

    >>> _query_string("spring", "2024-03-01T00:00:00+01:00")
    '?journey=spring&since=2024-03-01T00%3A00%3A00%2B01%3A00'
    >>> _query_string(None, "")
    ''
    """
    params = {name: value for name, value in (("journey", journey), ("since", since)) if value}
    return f"?{urlencode(params)}" if params else ""


def _build(request: Request, filters: _Filters, settings: Settings) -> UpliftReport:
    # The same report as `nudge report uplift`: the champion scores the Qini
    # curve, and a registered challenger is evaluated beside the live policy.
    engine: DecisionEngine = request.app.state.runtime.engine
    journey, since = filters
    return report_from_log(
        engine.log,
        engine.config,
        journey=journey,
        since=since,
        uplift_score=engine.uplift_score,
        challenger=challenger_policy(settings, engine),
    )
