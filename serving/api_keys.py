"""API keys with scopes, stored hashed, in SQLite (embedded) or Postgres (scale mode).

A key reads ``nk_<key id>_<secret>``. Only the SHA-256 of the secret is
stored: the secret is 32 random bytes, so a fast hash is enough (there is no
password to stretch) and a stolen table lets nobody call the API. The id
finds the row; the secret is compared in constant time.

Scopes: ``ingest`` (events, contact profiles), ``decide`` (decisions and their
outcomes) and ``admin`` (reports, metrics, API docs; it implies the others).

>>> import tempfile, pathlib
>>> from features.sql import SQLiteDatabase
>>> keys = ApiKeyStore(SQLiteDatabase(pathlib.Path(tempfile.mkdtemp()) / "keys.db"))
>>> created = keys.create("journeys", ["decide"])
>>> created.secret.startswith("nk_" + created.key_id + "_")
True
>>> sorted(keys.authenticate(created.secret) or ())
['decide']
>>> keys.authenticate(created.secret[:-1] + "x") is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from features import InvalidRequest, NotFound
from features.sql import SqlDatabase

__all__ = ["SCOPES", "ApiKey", "ApiKeyStore", "CreatedKey", "parse_scopes"]

SCOPES = ("ingest", "decide", "admin")
_PREFIX = "nk_"
_CACHE_SECONDS = 5.0
"""How long a worker trusts what it read of a key: a revoked key stops within this."""

_TABLES = {
    "sqlite": """CREATE TABLE IF NOT EXISTS api_keys (
        key_id TEXT PRIMARY KEY, name TEXT NOT NULL, secret_sha256 TEXT NOT NULL,
        scopes TEXT NOT NULL, created_at REAL NOT NULL, revoked_at REAL)""",
    "postgres": """CREATE TABLE IF NOT EXISTS api_keys (
        key_id TEXT PRIMARY KEY, name TEXT NOT NULL, secret_sha256 TEXT NOT NULL,
        scopes TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION)""",
}


def parse_scopes(scopes: Iterable[str] | str, field: str = "scopes") -> frozenset[str]:
    """``"ingest,decide"`` or a list, checked; ``admin`` implies every scope.

    >>> sorted(parse_scopes("admin"))
    ['admin', 'decide', 'ingest']
    """
    items = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    names = {item.strip() for item in items if item.strip()}
    unknown = sorted(names - set(SCOPES))
    if not names or unknown:
        raise InvalidRequest(field, f"must be one or more of {', '.join(SCOPES)}", unknown or "")
    return frozenset(SCOPES) if "admin" in names else frozenset(names)


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    scopes: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class CreatedKey:
    """A new key: ``secret`` is shown once and never stored."""

    key_id: str
    name: str
    scopes: frozenset[str]
    secret: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyStore:
    """Create, list, revoke and check API keys; reads are cached for a few seconds."""

    def __init__(self, db: SqlDatabase) -> None:
        self._db = db
        db.execute(_TABLES[db.dialect])
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, str | None, frozenset[str]]] = {}
        self._active: tuple[float, bool] | None = None

    def create(self, name: str, scopes: Iterable[str] | str) -> CreatedKey:
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise InvalidRequest("name", "must be 1 to 100 characters", name)
        granted = parse_scopes(scopes)
        key_id = secrets.token_hex(6)
        secret = f"{_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        self._db.execute(
            "INSERT INTO api_keys (key_id, name, secret_sha256, scopes, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (key_id, name.strip(), _digest(secret), ",".join(sorted(granted)), time.time()),
        )
        with self._lock:
            self._active = None
        return CreatedKey(key_id, name.strip(), granted, secret)

    def list(self) -> list[ApiKey]:
        rows = self._db.query(
            "SELECT key_id, name, scopes, created_at, revoked_at FROM api_keys ORDER BY created_at"
        )
        return [
            ApiKey(
                key_id=str(key_id),
                name=str(name),
                scopes=frozenset(str(scopes).split(",")),
                created_at=datetime.fromtimestamp(created, UTC),
                revoked_at=None if revoked is None else datetime.fromtimestamp(revoked, UTC),
            )
            for key_id, name, scopes, created, revoked in rows
        ]

    def revoke(self, key_id: str) -> None:
        changed = self._db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
            (time.time(), key_id),
        )
        if not changed and not self._db.query("SELECT 1 FROM api_keys WHERE key_id = ?", (key_id,)):
            raise NotFound("API key", key_id)
        with self._lock:
            self._cache.pop(key_id, None)
            self._active = None

    def any_active(self) -> bool:
        """Whether any key is in force (then every route but the public ones needs one)."""
        now = time.monotonic()
        with self._lock:
            if self._active is not None and now - self._active[0] < _CACHE_SECONDS:
                return self._active[1]
        active = bool(self._db.query("SELECT 1 FROM api_keys WHERE revoked_at IS NULL LIMIT 1"))
        with self._lock:
            self._active = (now, active)
        return active

    def authenticate(self, presented: str) -> frozenset[str] | None:
        """The scopes of a valid, unrevoked key; None for anything else, whatever it was."""
        if not presented.startswith(_PREFIX):
            return None
        key_id, _, _ = presented[len(_PREFIX) :].partition("_")
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key_id)
        if cached is None or now - cached[0] >= _CACHE_SECONDS:
            rows = self._db.query(
                "SELECT secret_sha256, scopes FROM api_keys "
                "WHERE key_id = ? AND revoked_at IS NULL",
                (key_id,),
            )
            digest, scopes = (
                (str(rows[0][0]), frozenset(str(rows[0][1]).split(",")))
                if rows
                else (None, frozenset[str]())
            )
            cached = (now, digest, scopes)
            with self._lock:
                if len(self._cache) > 10_000:  # unknown ids must not grow it without bound
                    self._cache.clear()
                self._cache[key_id] = cached
        _, digest, scopes = cached
        if digest is None or not hmac.compare_digest(digest, _digest(presented)):
            return None
        return scopes

    def close(self) -> None:
        self._db.close()
