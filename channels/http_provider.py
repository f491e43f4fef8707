"""SMS and push through an HTTP provider's webhook, with the message id as idempotency key."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import httpx

from channels._http import encode_json, post
from channels._recent import RecentReceipts
from channels.types import OutboundMessage, Receipt, SendFailed

__all__ = ["HttpProviderChannel"]


class HttpProviderChannel:
    """POSTs ``{"message_id", "to", "body", "subject", "metadata"}`` as JSON to ``url``.

    Headers: ``Idempotency-Key: {message_id}``, and ``Authorization: Bearer {token}`` when
    a token is set. A 2xx answer is a Receipt whose ``provider_id`` is the JSON answer's
    ``id``, when there is one; 429, 5xx, timeouts and connection errors are transient
    (with the provider's Retry-After); any other status is permanent.

    >>> channel = HttpProviderChannel("http://127.0.0.1:9/sms", name="sms", token="t")
    >>> channel.name, channel.url
    ('sms', 'http://127.0.0.1:9/sms')
    >>> channel.close()
    """

    def __init__(
        self, url: str, *, name: str, token: str | None = None, timeout: float = 5.0
    ) -> None:
        self.url = url
        self.name = name
        self.token = token
        self.timeout = timeout
        # One pooled client: a TLS handshake per SMS would cost more than the request.
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)
        self._recent = RecentReceipts()
        self._closed = threading.Event()

    def send(self, message: OutboundMessage) -> Receipt:
        if self._closed.is_set():
            raise SendFailed(self.name, message.message_id, "channel is closed", transient=False)
        already = self._recent.get(message.message_id)
        if already is not None:
            return already
        payload = {
            "message_id": message.message_id,
            "to": message.to,
            "body": message.body_text,
            "subject": message.subject,
            "metadata": dict(message.metadata),
        }
        headers = {"Content-Type": "application/json", "Idempotency-Key": message.message_id}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        response = post(
            self._client,
            self.url,
            channel=self.name,
            message_id=message.message_id,
            content=encode_json(self.name, message.message_id, payload),
            headers=headers,
        )
        receipt = Receipt(message.message_id, self.name, _provider_id(response), datetime.now(UTC))
        self._recent.remember(receipt)
        return receipt

    def close(self) -> None:
        self._closed.set()
        self._client.close()


def _provider_id(response: httpx.Response) -> str | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    ident = answer.get("id") if isinstance(answer, dict) else None
    return None if ident is None else str(ident)
