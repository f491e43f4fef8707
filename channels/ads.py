"""The ``ads`` channel: a journey's send puts the customer in an ad audience, not an inbox.

Identifiers leave Nudge the way customer-match APIs (Google, Meta) expect them:
normalised (``features.identity``: e-mail trimmed and lower-cased, phone in
E.164) and then SHA-256 hex, unsalted — the network matches on the hash of the
same normalised value, so a salt would match no one.

>>> import hashlib
>>> hash_email("  Ann@Example.com ") == hashlib.sha256(b"ann@example.com").hexdigest()
True
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import httpx

from channels._http import encode_json, post
from channels.audiences import AudienceStore, Batch
from channels.types import OutboundMessage, Receipt, SendFailed
from features.errors import InvalidRequest
from features.identity import normalise_email, normalise_phone
from features.sql import PostgresDatabase, SQLiteDatabase

__all__ = [
    "AdsChannel",
    "AudienceApiChannel",
    "AudienceSpec",
    "batch_message",
    "hash_email",
    "hash_phone",
    "hashed_identifiers",
    "open_ads_channel",
]

AudienceKind = Literal["retargeting", "acquisition"]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hash_email(raw: object) -> str:
    """SHA-256 hex of the normalised address; the same address in any case hashes the same.

    >>> hash_email(" Ann@Example.com") == hash_email("ann@example.com")
    True
    >>> len(hash_email("ann@example.com"))
    64
    """
    return _sha256(normalise_email(raw))


def hash_phone(raw: object, default_region: str | None = None) -> str:
    """SHA-256 hex of the number in E.164 (with its ``+``, as Google's customer match wants).

    >>> hash_phone("07911 123456", "GB") == hash_phone("+44 7911 123456")
    True
    """
    return _sha256(normalise_phone(raw, default_region))


def hashed_identifiers(
    email: object = None, phone: object = None, default_region: str | None = None
) -> dict[str, str]:
    """``{"em": ..., "ph": ...}`` for what is given; a malformed one raises InvalidRequest."""
    ids: dict[str, str] = {}
    if email:
        ids["em"] = hash_email(email)
    if phone:
        ids["ph"] = hash_phone(phone, default_region)
    return ids


@dataclass(frozen=True)
class AudienceSpec:
    """One audience in the ad network.

    ``retargeting``: people a journey sent to it; a purchase (or goal) removes them.
    ``acquisition``: prospecting/look-alike seeds; recent buyers are kept out of it.
    """

    name: str
    network_id: str
    kind: AudienceKind = "retargeting"

    def __post_init__(self) -> None:
        if self.kind not in ("retargeting", "acquisition"):
            raise InvalidRequest(
                f"audiences.{self.name}.kind", "must be retargeting or acquisition", self.kind
            )
        if not self.network_id:
            raise InvalidRequest(
                f"audiences.{self.name}.network_id", "must be non-empty", self.network_id
            )


class AdsChannel:
    """A send adds the customer to an audience; the next sync ships the change.

    The audience is the message's ``metadata["audience"]``, else the one named for
    the message in ``by_message``, else ``default_audience``. ``to`` may carry the
    customer's e-mail or phone, hashed at once; otherwise the identifiers the sync
    learnt from identify/profile events are used. The receipt means "queued for the
    audience", as a provider's 202 means "queued for delivery".
    """

    def __init__(
        self,
        store: AudienceStore,
        *,
        default_audience: str,
        by_message: Mapping[str, str] | None = None,
        name: str = "ads",
        default_region: str | None = None,
        owns_store: bool = False,
    ) -> None:
        self.store = store
        self.owns_store = owns_store
        self.default_audience = default_audience
        self.by_message = dict(by_message or {})
        self.name = name
        self.default_region = default_region

    def send(self, message: OutboundMessage) -> Receipt:
        now = datetime.now(UTC)
        audience = message.metadata.get("audience") or self.by_message.get(
            message.metadata.get("message", ""), self.default_audience
        )
        if message.to:
            try:
                ids = (
                    hashed_identifiers(email=message.to)
                    if "@" in message.to
                    else hashed_identifiers(phone=message.to, default_region=self.default_region)
                )
            except InvalidRequest as err:
                raise SendFailed(self.name, message.message_id, str(err), transient=False) from err
            self.store.set_identity(message.customer_id, ids, now)
        reason = f"send:{message.metadata.get('journey', '')}:{message.message_id}"
        self.store.want(audience, message.customer_id, now, reason)
        return Receipt(message.message_id, self.name, f"audience:{audience}", now)

    def close(self) -> None:
        if self.owns_store:
            self.store.close()


def open_audience_store(path: Path, postgres: tuple[str, str] | None = None) -> AudienceStore:
    """SQLite at ``path``, or ``(dsn, schema)`` in Postgres (scale mode: shared by processes)."""
    if postgres is not None:
        dsn, schema = postgres
        return AudienceStore(PostgresDatabase(dsn, schema))
    return AudienceStore(SQLiteDatabase(Path(path)))


def open_ads_channel(
    path: Path,
    *,
    name: str,
    default_audience: str,
    by_message: Mapping[str, str],
    postgres: tuple[str, str] | None = None,
) -> AdsChannel:
    """The channel over its audience store (what ``type: ads`` builds)."""
    store = open_audience_store(path, postgres)
    return AdsChannel(
        store, default_audience=default_audience, by_message=by_message, name=name, owns_store=True
    )


def batch_message(batch: Batch, network_id: str) -> OutboundMessage:
    """A batch as an OutboundMessage, so RetryingChannel can retry it like any send.

    Only hashes go in the body: the customer ids stay in Nudge.
    """
    body = json.dumps(
        {"batch_id": batch.batch_id, "members": [dict(m.ids) for m in batch.members]},
        separators=(",", ":"),
    )
    return OutboundMessage(
        batch.batch_id,
        "audience",
        "ads",
        network_id,
        body,
        metadata={"op": batch.op, "audience": batch.audience},
    )


class AudienceApiChannel:
    """POSTs a batch to ``{url}/audiences/{network_id}/members:add`` (or ``:remove``).

    Body ``{"batch_id", "members": [{"em": sha256, "ph": sha256}, ...]}`` and the header
    ``Idempotency-Key: {batch_id}``: a batch resent after a crash is the same batch.
    Statuses map as for every HTTP channel (429/5xx transient, other 4xx permanent).

    >>> api = AudienceApiChannel("http://127.0.0.1:9", token="t")
    >>> api.endpoint("123", "add")
    'http://127.0.0.1:9/audiences/123/members:add'
    >>> api.close()
    """

    def __init__(
        self, url: str, *, token: str | None = None, name: str = "ads", timeout: float = 10.0
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.name = name
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)
        self._closed = threading.Event()

    def endpoint(self, network_id: str, op: str) -> str:
        return f"{self.url}/audiences/{network_id}/members:{op}"

    def send(self, message: OutboundMessage) -> Receipt:
        if self._closed.is_set():
            raise SendFailed(self.name, message.message_id, "channel is closed", transient=False)
        op = message.metadata.get("op")
        if op not in ("add", "remove"):
            raise SendFailed(self.name, message.message_id, f"unknown op {op!r}", transient=False)
        headers = {"Content-Type": "application/json", "Idempotency-Key": message.message_id}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        post(
            self._client,
            self.endpoint(message.to, op),
            channel=self.name,
            message_id=message.message_id,
            content=encode_json(self.name, message.message_id, json.loads(message.body_text)),
            headers=headers,
        )
        return Receipt(message.message_id, self.name, None, datetime.now(UTC))

    def close(self) -> None:
        self._closed.set()
        self._client.close()
