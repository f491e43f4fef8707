"""Identity: identifiers normalised, hashed with a key, and stitched to one customer.

A customer is reached under several identifiers over time: an ``anonymous_id``
from the web, a ``device_id`` from the app, an ``email`` and a ``phone``.
An ``identify`` (or login) event names the customer and the identifiers seen
with them; :class:`IdentityGraph` links each identifier to that customer, and
when an identifier already belongs to another customer the two are the same
person: the other one is *merged* into this one (its links move here and the
merge is recorded, so :meth:`IdentityGraph.canonical` maps the old id to the
surviving one for events that arrive later under it).

Events from a visitor nobody has identified yet carry their ``anonymous_id``
(or the app's ``device_id``) as ``customer_id``; so when an identify event names
such an id, the customer under it is merged too, with its history.

The graph stores no raw identifier: each is normalised (so that
``Ann@Example.com`` and ``ann@example.com `` are one address) and kept as a
keyed hash (HMAC-SHA256). Without the key nobody can test a guessed address
against the table; the raw address lives only where a channel needs it.

>>> key = b"k" * 32
>>> normalise_email("  Ann.Lee+Cart@Bücher.DE ")
'ann.lee+cart@bücher.de'
>>> normalise_phone("+44 7911 123456")
'+447911123456'
>>> keyed_hash("email", "ann@example.com", key) == keyed_hash("email", "ann@example.com", key)
True
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import phonenumbers

from features.errors import InvalidRequest
from features.sql import SqlDatabase

__all__ = [
    "IDENTIFIER_KINDS",
    "IdentifyResult",
    "IdentityGraph",
    "MergeListener",
    "keyed_hash",
    "normalise_email",
    "normalise_identifier",
    "normalise_phone",
]

IDENTIFIER_KINDS = ("anonymous_id", "device_id", "email", "phone")
_MAX_LOCAL = 64  # RFC 5321's limits: a longer address is not deliverable anyway
_MAX_ADDRESS = 254
_MAX_ID = 256
_ALSO_CUSTOMER_IDS = frozenset({"anonymous_id", "device_id"})


def normalise_email(raw: object, field: str = "email") -> str:
    """Trimmed and lower-cased; the plus-tag and an international domain kept as they are.

    A plus-tag is the customer's own choice of address (``ann+shop@``), and not
    every provider treats it as an alias, so it is not stripped; an
    internationalised domain stays in Unicode rather than being turned into
    punycode, so the address reads as the customer typed it.

    >>> try:
    ...     normalise_email("x@y")
    ... except InvalidRequest as error:
    ...     print(error.field, "|", error.expected)
    email | must be an e-mail address like name@example.com
    """
    if not isinstance(raw, str):
        raise InvalidRequest(field, "must be a string", type(raw).__name__)
    text = raw.strip()
    local, at, domain = text.rpartition("@")
    valid = (
        at
        and 0 < len(local) <= _MAX_LOCAL
        and len(text) <= _MAX_ADDRESS
        and "@" not in local
        and "." in domain.strip(".")
        and ".." not in domain
        and not any(c.isspace() or ord(c) < 32 or c in '<>(),;:\\"[]' for c in text)
    )
    if not valid:
        raise InvalidRequest(field, "must be an e-mail address like name@example.com", raw)
    return text.lower()


def normalise_phone(raw: object, default_region: str | None = None, field: str = "phone") -> str:
    """The number in E.164 (``+447911123456``), if its length fits the country's plan.

    Possible rather than valid: whether a block of numbers is allocated changes
    over time and the metadata lags, and refusing a customer's real number would
    lose their identify event; a number of the wrong length is refused.

    A number without ``+country`` needs ``default_region`` (``"GB"``): guessing
    the country of ``07911 123456`` would stitch strangers together.

    >>> normalise_phone("07911 123456", default_region="GB")
    '+447911123456'
    >>> try:
    ...     normalise_phone("07911 123456")
    ... except InvalidRequest as error:
    ...     print(error.field, "|", error.expected)
    phone | must be an international number like +447911123456 (or give a default region)
    """
    if not isinstance(raw, str):
        raise InvalidRequest(field, "must be a string", type(raw).__name__)
    expected = "must be an international number like +447911123456" + (
        "" if default_region else " (or give a default region)"
    )
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        raise InvalidRequest(field, expected, raw) from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidRequest(field, "must be a phone number of a possible length", raw)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_identifier(
    kind: str, raw: object, *, default_region: str | None = None, field: str | None = None
) -> str:
    """Any identifier kind of :data:`IDENTIFIER_KINDS`, normalised for matching."""
    where = field or kind
    if kind == "email":
        return normalise_email(raw, where)
    if kind == "phone":
        return normalise_phone(raw, default_region, where)
    if kind not in IDENTIFIER_KINDS:
        raise InvalidRequest(where, f"must be one of {list(IDENTIFIER_KINDS)}", kind)
    if not isinstance(raw, str) or not raw.strip() or len(raw.strip()) > _MAX_ID:
        raise InvalidRequest(where, f"must be a non-empty string of at most {_MAX_ID} characters")
    text = raw.strip()
    if not text.isprintable():
        raise InvalidRequest(where, "must hold only printable characters", text)
    return text


def keyed_hash(kind: str, value: str, key: bytes) -> str:
    """HMAC-SHA256 of a normalised identifier, in hex; the kind is part of the message, so
    the same string as an anonymous id and as a device id hashes differently."""
    return hmac.new(key, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()


class MergeListener(Protocol):
    """Told when one customer is merged into another, inside the merge's transaction when
    it shares the graph's database (the event stream does), so history moves with it."""

    def customers_merged(self, merged_id: str, into_id: str) -> None: ...


@dataclass(frozen=True)
class IdentifyResult:
    """The customer the identifiers now belong to, and who was merged into them."""

    customer_id: str
    merged: tuple[str, ...] = ()
    linked: tuple[str, ...] = field(default=())


_TABLES = {
    "sqlite": (
        """CREATE TABLE IF NOT EXISTS identity_links (
            kind TEXT NOT NULL, value_hash TEXT NOT NULL, customer_id TEXT NOT NULL,
            linked_at REAL NOT NULL, PRIMARY KEY (kind, value_hash))""",
        """CREATE TABLE IF NOT EXISTS identity_merges (
            merged_id TEXT PRIMARY KEY, into_id TEXT NOT NULL, merged_at REAL NOT NULL,
            contacts_merged_at REAL)""",
    ),
    "postgres": (
        """CREATE TABLE IF NOT EXISTS identity_links (
            kind TEXT NOT NULL, value_hash TEXT NOT NULL, customer_id TEXT NOT NULL,
            linked_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (kind, value_hash))""",
        """CREATE TABLE IF NOT EXISTS identity_merges (
            merged_id TEXT PRIMARY KEY, into_id TEXT NOT NULL,
            merged_at DOUBLE PRECISION NOT NULL, contacts_merged_at DOUBLE PRECISION)""",
    ),
}


class IdentityGraph:
    """Identifier → customer links and customer merges, in SQLite or Postgres.

    >>> import tempfile, pathlib
    >>> from features.sql import SQLiteDatabase
    >>> graph = IdentityGraph(SQLiteDatabase(pathlib.Path(tempfile.mkdtemp()) / "id.db"), b"k" * 32)
    >>> graph.identify("anon-7", {"anonymous_id": "anon-7"}).customer_id
    'anon-7'
    >>> graph.identify("c42", {"email": "Ann@Example.com", "anonymous_id": "anon-7"}).merged
    ('anon-7',)
    >>> graph.canonical("anon-7"), graph.resolve("email", " ann@example.COM")
    ('c42', 'c42')
    """

    def __init__(
        self,
        db: SqlDatabase,
        key: bytes,
        *,
        default_region: str | None = None,
        listeners: Iterable[MergeListener] = (),
    ) -> None:
        if not isinstance(key, bytes) or len(key) < 16:
            raise InvalidRequest("key", "must be at least 16 bytes")
        self._db = db
        self._key = key
        self._region = default_region
        self._listeners = list(listeners)
        for statement in _TABLES[db.dialect]:
            db.execute(statement)
        db.execute(
            "CREATE INDEX IF NOT EXISTS identity_links_by_customer ON identity_links (customer_id)"
        )

    def hash(self, kind: str, raw: object) -> str:
        """The stored form of an identifier: normalised, then keyed-hashed."""
        return keyed_hash(
            kind, normalise_identifier(kind, raw, default_region=self._region), self._key
        )

    def canonical(self, customer_id: str) -> str:
        """The customer ``customer_id`` was merged into, followed to the end; itself if none."""
        seen = {customer_id}
        current = customer_id
        while True:
            rows = self._db.query(
                "SELECT into_id FROM identity_merges WHERE merged_id = ?", (current,)
            )
            if not rows:
                return current
            current = str(rows[0][0])
            if current in seen:  # a cycle cannot be written (see identify); stop if one was
                return current
            seen.add(current)

    def resolve(self, kind: str, raw: object) -> str | None:
        """The customer an identifier belongs to, or None if it was never seen."""
        rows = self._db.query(
            "SELECT customer_id FROM identity_links WHERE kind = ? AND value_hash = ?",
            (kind, self.hash(kind, raw)),
        )
        return self.canonical(str(rows[0][0])) if rows else None

    def identifiers(self, customer_id: str) -> dict[str, list[str]]:
        """The hashed identifiers linked to a customer, by kind."""
        rows = self._db.query(
            "SELECT kind, value_hash FROM identity_links WHERE customer_id = ? "
            "ORDER BY kind, value_hash",
            (self.canonical(customer_id),),
        )
        linked: dict[str, list[str]] = {}
        for kind, value_hash in rows:
            linked.setdefault(str(kind), []).append(str(value_hash))
        return linked

    def identify(
        self, customer_id: str, identifiers: Mapping[str, object], now: datetime | None = None
    ) -> IdentifyResult:
        """Link ``identifiers`` to ``customer_id``; merge any other customer holding one.

        Every identifier is checked before anything is written, and the links,
        merges and the listeners' moves commit together: a bad phone number
        leaves the graph as it was. The customer named by the event survives a
        merge (it is the logged-in identity); an identifier seen earlier under
        an anonymous id brings that id's history along.
        """
        if not isinstance(customer_id, str) or not customer_id.strip():
            raise InvalidRequest("customer_id", "must be a non-empty string", customer_id)
        values = [
            (kind, normalise_identifier(kind, raw, default_region=self._region))
            for kind, raw in identifiers.items()
            if raw is not None
        ]
        at = (now or datetime.now(UTC)).timestamp()
        merged: list[str] = []
        linked: list[str] = []
        with self._db.transaction():
            survivor = self.canonical(customer_id)
            for kind, value in values:
                value_hash = keyed_hash(kind, value, self._key)
                rows = self._db.query(
                    "SELECT customer_id FROM identity_links WHERE kind = ? AND value_hash = ?",
                    (kind, value_hash),
                )
                if rows:
                    owners = {self.canonical(str(rows[0][0]))}
                else:
                    self._db.execute(
                        "INSERT INTO identity_links (kind, value_hash, customer_id, linked_at) "
                        "VALUES (?, ?, ?, ?)",
                        (kind, value_hash, survivor, at),
                    )
                    linked.append(kind)
                    owners = set()
                if kind in _ALSO_CUSTOMER_IDS:
                    # Events from a visitor not yet known arrive under their anonymous or
                    # device id as customer_id: that id is a customer of its own to merge.
                    owners.add(self.canonical(value))
                for owner in sorted(owners - {survivor}):
                    self._merge(owner, survivor, at)
                    merged.append(owner)
        return IdentifyResult(survivor, tuple(merged), tuple(linked))

    def pending_contact_merges(self) -> list[tuple[str, str]]:
        """Merges whose contact profiles (consent, suppression) are not merged yet, oldest
        first: the contact store is another database, so this is done after the commit,
        and a crash in between leaves the merge here to be done again."""
        rows = self._db.query(
            "SELECT merged_id, into_id FROM identity_merges WHERE contacts_merged_at IS NULL "
            "ORDER BY merged_at, merged_id"
        )
        return [(str(merged), str(into)) for merged, into in rows]

    def contacts_merged(self, merged_id: str, into_id: str, now: datetime | None = None) -> None:
        """Record that ``merged_id``'s contact profile went into ``into_id``'s."""
        self._db.execute(
            "UPDATE identity_merges SET contacts_merged_at = ? WHERE merged_id = ? AND into_id = ?",
            ((now or datetime.now(UTC)).timestamp(), merged_id, into_id),
        )

    def _merge(self, merged_id: str, into_id: str, at: float) -> None:
        self._db.execute(
            "UPDATE identity_links SET customer_id = ? WHERE customer_id = ?", (into_id, merged_id)
        )
        # Earlier merges into the merged customer now point straight at the survivor,
        # so canonical() stays one look-up for everyone.
        self._db.execute(
            "UPDATE identity_merges SET into_id = ? WHERE into_id = ?", (into_id, merged_id)
        )
        self._db.execute(
            "INSERT INTO identity_merges (merged_id, into_id, merged_at) VALUES (?, ?, ?) "
            "ON CONFLICT (merged_id) DO UPDATE SET into_id = excluded.into_id, "
            "contacts_merged_at = NULL",
            (merged_id, into_id, at),
        )
        for listener in self._listeners:
            listener.customers_merged(merged_id, into_id)
