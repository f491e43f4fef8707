"""API-key checks on every route but the public ones, as pure ASGI middleware.

Which scope a route needs is decided by its path, in one table, so a new route
is admin-only until it is listed (deny by default). Public: ``/healthz``, and
the routes customers' mail clients and providers call, which carry their own
proof instead — signed tracking and unsubscribe links, and HMAC-signed
callbacks and webhooks.

A refused request learns nothing about why: a missing key, an unknown one, a
wrong secret and a revoked key all get the same 401, and a valid key without
the scope a 403.
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from features.sql import PostgresDatabase, SQLiteDatabase
from serving.api_keys import SCOPES, ApiKeyStore
from serving.settings import Settings

__all__ = ["PUBLIC_PREFIXES", "ApiKeyAuth", "open_api_keys", "required_scope"]

PUBLIC_PREFIXES = ("/healthz", "/t/", "/u/", "/v1/callbacks/", "/v1/webhooks/")
_ROUTE_SCOPES = (
    ("/v1/events", "ingest"),
    ("/v1/customers/", "ingest"),
    ("/v1/decide", "decide"),
    ("/v1/decisions/", "decide"),
    ("/v1/outcomes", "decide"),
)
_ALL = frozenset(SCOPES)


def required_scope(path: str) -> str | None:
    """The scope ``path`` needs; None for a public route.

    >>> required_scope("/v1/decide"), required_scope("/healthz"), required_scope("/metrics")
    ('decide', None, 'admin')
    """
    if path.startswith(PUBLIC_PREFIXES):
        return None
    for prefix, scope in _ROUTE_SCOPES:
        if _under(path, prefix):
            return scope
    return "admin"


def _under(path: str, prefix: str) -> bool:
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


def open_api_keys(settings: Settings) -> ApiKeyStore:
    """The key store: ``api_keys.db`` in the state folder, or Postgres in scale mode."""
    if settings.storage == "scale":
        return ApiKeyStore(
            PostgresDatabase(settings.postgres_dsn, schema=f"{settings.key_prefix}_auth")
        )
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return ApiKeyStore(SQLiteDatabase(settings.state_dir / "api_keys.db"))


def _text(raw: bytes) -> str:
    """A header's bytes as text: UTF-8 (what clients send a non-ASCII key as), else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _presented(headers: dict[bytes, bytes]) -> str | None:
    """The key from ``Authorization: Bearer``, ``X-API-Key``, or a browser's Basic password."""
    given = headers.get(b"x-api-key")
    if given:
        return _text(given).strip()
    authorization = _text(headers.get(b"authorization", b""))
    kind, _, value = authorization.partition(" ")
    if kind.lower() == "bearer" and value.strip():
        return value.strip()
    if kind.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8 inside
            return None
        return decoded.partition(":")[2] or None
    return None


class ApiKeyAuth:
    """401 without a valid key, 403 without the route's scope, when keys are in force.

    Keys are in force with ``auth: required``, or with ``auth: auto`` (the
    default) once the store holds an active key: a fresh embedded install on
    loopback works out of the box, and creating the first key locks it.
    ``admin_key`` (NUDGE_ADMIN_KEY) counts as a key with every scope. The scopes
    of the key that passed are left in ``request.state.auth_scopes``.
    """

    def __init__(
        self, app: ASGIApp, settings: Settings, keys: Callable[[], ApiKeyStore] | None = None
    ) -> None:
        self.app = app
        self.settings = settings
        self._open = keys or (lambda: open_api_keys(settings))
        self._keys: ApiKeyStore | None = None

    @property
    def keys(self) -> ApiKeyStore:
        if self._keys is None:
            self._keys = self._open()
        return self._keys

    def _scopes(self, presented: str | None) -> frozenset[str] | None:
        if presented is None:
            return None
        admin = self.settings.admin_key
        if admin and hmac.compare_digest(presented.encode(), admin.encode()):
            return _ALL
        return self.keys.authenticate(presented)

    def _enforced(self) -> bool:
        mode = self.settings.auth
        return mode == "required" or (mode == "auto" and self.keys.any_active())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.settings.auth == "off":
            await self.app(scope, receive, send)
            return
        needed = required_scope(scope["path"])
        if needed is None:
            await self.app(scope, receive, send)
            return
        granted = self._scopes(_presented(dict(scope["headers"])))
        scope.setdefault("state", {})["auth_scopes"] = granted or frozenset()
        if self._enforced():
            if granted is None:
                await _refuse(send, 401, "a valid API key is needed: 'Authorization: Bearer <key>'")
                return
            if needed not in granted:
                await _refuse(send, 403, f"this API key may not do this (needs scope {needed!r})")
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    headers = [(b"content-type", b"application/json")]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="nudge", Basic realm="nudge"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
