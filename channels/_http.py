"""One POST to an HTTP provider, with the status mapping every HTTP channel shares."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from channels.types import SendFailed

__all__ = ["encode_json", "parse_retry_after", "post"]


def encode_json(channel: str, message_id: str, payload: object) -> bytes:
    """The request body; text that cannot be UTF-8 will never send, so it fails permanently."""
    try:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as err:
        raise SendFailed(
            channel, message_id, f"body is not UTF-8 JSON ({err})", transient=False
        ) from err


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date).

    >>> parse_retry_after("2.5"), parse_retry_after(None), parse_retry_after("soon")
    (2.5, None, None)
    >>> parse_retry_after(
    ...     "Mon, 01 Jan 2024 00:00:30 GMT", now=datetime(2024, 1, 1, tzinfo=UTC)
    ... )
    30.0
    """
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def post(
    client: httpx.Client,
    url: str,
    *,
    channel: str,
    message_id: str,
    content: bytes,
    headers: Mapping[str, str],
) -> httpx.Response:
    """POST and return a 2xx response; anything else becomes SendFailed.

    429, 5xx, timeouts and connection errors are transient; other statuses are permanent,
    redirects included (a provider URL that moved is a configuration error).
    """
    try:
        response = client.post(url, content=content, headers=dict(headers))
    except httpx.TimeoutException as err:
        raise SendFailed(channel, message_id, f"timed out ({err!r})", transient=True) from err
    except httpx.TransportError as err:
        raise SendFailed(
            channel, message_id, f"cannot reach {url} ({err!r})", transient=True
        ) from err
    status = response.status_code
    if 200 <= status < 300:
        return response
    detail = f"provider answered {status}: {response.text[:200]}"
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise SendFailed(channel, message_id, detail, transient=True, retry_after=retry_after)
    raise SendFailed(channel, message_id, detail, transient=False)
