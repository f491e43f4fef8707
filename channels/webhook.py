"""A generic outbound webhook, signed so that the receiver can trust it, and the check it runs.

The signature is ``sha256=<hex HMAC-SHA256 of f"{timestamp}.{body}">`` in
``X-Nudge-Signature``, with the unix time in ``X-Nudge-Timestamp``; binding the
timestamp into the signature lets a receiver reject old requests replayed later.

>>> body = b'{"message_id":"d1"}'
>>> signature = sign_payload("s3cret", 1_700_000_000, body)
>>> signature[:7]
'sha256='
>>> verify_signature("s3cret", "1700000000", body, signature, now=1_700_000_100)
>>> verify_signature("s3cret", "1700000000", body, signature, now=1_700_000_400)
Traceback (most recent call last):
...
features.errors.InvalidRequest: `X-Nudge-Timestamp` must be within 300 s of now (1700000400), got '1700000000'
"""  # noqa: E501

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from channels._http import encode_json, post
from channels._recent import RecentReceipts
from channels.types import OutboundMessage, Receipt, SendFailed
from features.errors import InvalidRequest

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookChannel",
    "sign_payload",
    "verify_signature",
]

TIMESTAMP_HEADER = "X-Nudge-Timestamp"
SIGNATURE_HEADER = "X-Nudge-Signature"


def sign_payload(secret: str, timestamp: int | str, body: bytes | str) -> str:
    """The ``X-Nudge-Signature`` value of ``body`` sent at ``timestamp``."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    signed = str(timestamp).encode("ascii") + b"." + raw
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str,
    timestamp: str | int,
    body: bytes | str,
    signature: str,
    *,
    now: float,
    tolerance: float = 300,
) -> None:
    """Raise InvalidRequest naming the header unless ``signature`` signs ``body`` recently.

    ``now`` is unix seconds; a timestamp further than ``tolerance`` seconds from it, in
    either direction, is rejected before the signature is even checked.
    """
    try:
        sent = int(str(timestamp))
    except ValueError:
        raise InvalidRequest(TIMESTAMP_HEADER, "must be unix seconds", timestamp) from None
    if abs(now - sent) > tolerance:
        raise InvalidRequest(
            TIMESTAMP_HEADER, f"must be within {tolerance:g} s of now ({now:.0f})", str(timestamp)
        )
    expected = sign_payload(secret, sent, body)
    # compare_digest: a byte-by-byte compare would leak how much of a forgery was right.
    if not hmac.compare_digest(expected.encode("ascii"), str(signature).encode("utf-8")):
        raise InvalidRequest(
            SIGNATURE_HEADER, 'must be "sha256=" and the hex HMAC-SHA256 of "{timestamp}.{body}"'
        )


class WebhookChannel:
    """POSTs the whole message as JSON to ``url``, signed with ``secret``.

    Also sends ``Idempotency-Key: {message_id}`` so that a receiver can drop a resend.
    Status mapping as for HttpProviderChannel: 2xx accepted, 429/5xx/timeouts transient,
    other statuses permanent.

    >>> channel = WebhookChannel("http://127.0.0.1:9/hook", secret="s3cret")
    >>> channel.name
    'webhook'
    >>> channel.close()
    """

    def __init__(
        self,
        url: str,
        *,
        secret: str,
        name: str = "webhook",
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise InvalidRequest("secret", "must be a non-empty string to sign webhooks")
        self.url = url
        self.name = name
        self.timeout = timeout
        self._secret = secret
        self._clock = clock
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)
        self._recent = RecentReceipts()
        self._closed = threading.Event()

    def send(self, message: OutboundMessage) -> Receipt:
        if self._closed.is_set():
            raise SendFailed(self.name, message.message_id, "channel is closed", transient=False)
        already = self._recent.get(message.message_id)
        if already is not None:
            return already
        body = encode_json(self.name, message.message_id, _as_json(message))
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message.message_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign_payload(self._secret, timestamp, body),
        }
        post(
            self._client,
            self.url,
            channel=self.name,
            message_id=message.message_id,
            content=body,
            headers=headers,
        )
        receipt = Receipt(message.message_id, self.name, None, datetime.now(UTC))
        self._recent.remember(receipt)
        return receipt

    def close(self) -> None:
        self._closed.set()
        self._client.close()


def _as_json(message: OutboundMessage) -> dict[str, object]:
    return {
        "message_id": message.message_id,
        "customer_id": message.customer_id,
        "channel": message.channel,
        "to": message.to,
        "subject": message.subject,
        "body_text": message.body_text,
        "body_html": message.body_html,
        "headers": dict(message.headers),
        "metadata": dict(message.metadata),
    }
