"""What every channel sends and returns, the one error it raises, and the ``Channel`` protocol.

>>> message = OutboundMessage("d1", "c1", "sms", "+33612345678", "Hello")
>>> message.headers
{}
>>> err = SendFailed("sms", "d1", "provider answered 503", transient=True)
>>> str(err)
'`sms` could not send message d1: provider answered 503 (transient: retry later)'
>>> isinstance(err, Unavailable), err.transient
(True, True)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from features.errors import InvalidRequest, Unavailable

__all__ = ["Channel", "OutboundMessage", "Receipt", "SendFailed"]

# The id ends up in a Message-ID header, an Idempotency-Key header and a URL token,
# so it must be safe in all three without escaping.
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class OutboundMessage:
    """One message to one customer on one channel, ready to send."""

    message_id: str
    """Stable across retries (the decision id): providers get it as idempotency key / Message-ID."""
    customer_id: str
    channel: str
    """ "email", "sms", "push", "webhook" or any configured name."""
    to: str
    """An e-mail address, an E.164 phone number, a push token, or "" for a webhook."""
    body_text: str
    subject: str | None = None
    body_html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra headers, e.g. List-Unsubscribe."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """decision_id, journey, step, message: echoed back by providers in callbacks."""

    def __post_init__(self) -> None:
        if not isinstance(self.message_id, str) or not _MESSAGE_ID.match(self.message_id):
            raise InvalidRequest(
                "message_id", "must be 1-128 letters, digits, '.', '_' or '-'", self.message_id
            )
        if not self.channel:
            raise InvalidRequest("channel", "must be a non-empty channel name", self.channel)
        # Own copies: a caller's dict changed after construction must not change a message
        # that may be waiting in a retry loop. Plain dicts keep the message picklable.
        object.__setattr__(self, "headers", dict(self.headers))
        object.__setattr__(self, "metadata", dict(self.metadata))


@dataclass(frozen=True)
class Receipt:
    """A provider accepted a message (which is not yet a delivery)."""

    message_id: str
    channel: str
    provider_id: str | None
    """The provider's own id when it gives one (SMTP: the Message-ID)."""
    accepted_at: datetime
    """UTC."""


class SendFailed(Unavailable):
    """A channel could not hand a message over.

    ``transient`` failures (timeouts, 4xx SMTP replies, HTTP 429/5xx) may succeed if
    retried; permanent ones (a refused recipient, HTTP 400) never will.
    ``retry_after`` is the provider's own hint in seconds, when it gave one.
    """

    def __init__(
        self,
        channel: str,
        message_id: str,
        detail: str,
        *,
        transient: bool,
        retry_after: float | None = None,
    ) -> None:
        self.channel = channel
        self.message_id = message_id
        self.detail = detail
        self.transient = transient
        self.retry_after = retry_after
        kind = "transient: retry later" if transient else "permanent: do not retry"
        super().__init__(f"`{channel}` could not send message {message_id}: {detail} ({kind})")


class Channel(Protocol):
    """Sends messages on one channel; ``message_id`` makes a resend recognisable as one send."""

    name: str

    def send(self, message: OutboundMessage) -> Receipt:
        """Hand one message to the provider; raises SendFailed (transient or permanent)."""
        ...

    def close(self) -> None:
        """Release connections; the instance is not used afterwards."""
        ...
