"""Identity: normalisation, keyed hashes and stitching, over SQLite and the real Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from features.errors import InvalidRequest
from features.event_stream import CustomerEvent, EventStream
from features.identity import (
    IdentityGraph,
    keyed_hash,
    normalise_email,
    normalise_identifier,
    normalise_phone,
)
from features.sql import PostgresDatabase, SqlDatabase, SQLiteDatabase

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
KEY = b"0123456789abcdef0123456789abcdef"
AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlDatabase]:
    schema = f"nudge_test_{uuid.uuid4().hex[:8]}"
    database: SqlDatabase = (
        SQLiteDatabase(tmp_path / "identity.db")
        if request.param == "sqlite"
        else PostgresDatabase(POSTGRES_DSN, schema)
    )
    yield database
    database.close()
    if request.param == "postgres":
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Ann.Lee@Example.COM\t", "ann.lee@example.com"),
        ("ann+newsletter@example.com", "ann+newsletter@example.com"),  # plus-tag kept
        ("Jörg@Bücher.DE", "jörg@bücher.de"),  # international domain kept in Unicode
        ('"odd"@example.com', None),
        ("ann@localhost", None),
        ("ann@@example.com", None),
        ("ann @example.com", None),
        ("ann@example..com", None),
        ("x\r\nBcc: eve@example.com", None),
        ("a" * 65 + "@example.com", None),
    ],
)
def test_email_normalisation(raw: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(InvalidRequest, match="`email` must be an e-mail address"):
            normalise_email(raw)
    else:
        assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+44 7911 123456", None, "+447911123456"),
        ("(020) 7946 0958", "GB", "+442079460958"),
        ("+1 (415) 555-2671", None, "+14155552671"),
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("0033 6 12 34 56 78", "GB", "+33612345678"),  # international prefix from the UK
        ("+44 7700 900123", None, "+447700900123"),  # a reserved (fictional) block: possible
    ],
)
def test_phone_numbers_become_e164(raw: str, region: str | None, expected: str) -> None:
    assert normalise_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region", "message"),
    [
        ("07911 123456", None, "international number"),
        ("+44 12", None, "possible length"),
        ("+44 7911 1234567890", None, "possible length"),
        ("call me", "GB", "international number"),
        (447911123456, None, "must be a string"),
    ],
)
def test_bad_phone_numbers_name_the_field(raw: object, region: str | None, message: str) -> None:
    with pytest.raises(InvalidRequest, match=f"`mobile` .*{message}"):
        normalise_phone(raw, region, field="mobile")


def test_other_identifiers_are_trimmed_and_checked() -> None:
    assert normalise_identifier("device_id", "  ios-ABC ") == "ios-ABC"
    with pytest.raises(InvalidRequest, match=r"`payload\.fax` must be one of"):
        normalise_identifier("fax", "123", field="payload.fax")
    with pytest.raises(InvalidRequest, match="`anonymous_id` must be a non-empty string"):
        normalise_identifier("anonymous_id", "   ")


def test_keyed_hash_depends_on_key_and_kind() -> None:
    one = keyed_hash("email", "ann@example.com", KEY)
    assert len(one) == 64
    assert "ann" not in one
    assert one != keyed_hash("email", "ann@example.com", KEY[::-1])
    assert keyed_hash("anonymous_id", "x", KEY) != keyed_hash("device_id", "x", KEY)


def test_the_graph_stores_no_raw_identifier(db: SqlDatabase) -> None:
    graph = IdentityGraph(db, KEY)
    graph.identify("c1", {"email": "Ann@Example.com", "phone": "+44 7911 123456"})
    stored = db.query("SELECT kind, value_hash, customer_id FROM identity_links ORDER BY kind")
    assert [row[0] for row in stored] == ["email", "phone"]
    assert all("ann" not in row[1] for row in stored)
    assert all("7911" not in row[1] for row in stored)
    assert stored[0][1] == keyed_hash("email", "ann@example.com", KEY)


def test_variants_of_one_address_resolve_to_one_customer(db: SqlDatabase) -> None:
    graph = IdentityGraph(db, KEY, default_region="GB")
    graph.identify("c1", {"email": " Ann@Example.com", "phone": "07911 123456"})
    assert graph.resolve("email", "ann@EXAMPLE.com") == "c1"
    assert graph.resolve("phone", "+447911123456") == "c1"
    assert graph.resolve("email", "ann+shop@example.com") is None  # a plus-tag is another address


def test_login_merges_the_anonymous_visitor_and_moves_history(db: SqlDatabase) -> None:
    stream = EventStream(db)
    graph = IdentityGraph(db, KEY, listeners=[stream])
    stream.append(
        [
            CustomerEvent("e1", "anon-1", "page_view", AT, {}),
            CustomerEvent("e2", "anon-1", "add_to_cart", AT, {"cart_value": 40}),
            CustomerEvent("e3", "dev-9", "app_open", AT, {}),
        ]
    )
    # dev-9 was linked before; anon-1 only ever appeared as the events' customer_id.
    graph.identify("dev-9", {"device_id": "dev-9"})

    result = graph.identify(
        "c42", {"email": "ann@example.com", "anonymous_id": "anon-1", "device_id": "dev-9"}
    )

    assert result.customer_id == "c42"
    assert result.merged == ("anon-1", "dev-9")
    assert [e.event_id for e in stream.history("c42")] == ["e1", "e2", "e3"]
    assert stream.history("anon-1") == []
    assert graph.canonical("anon-1") == "c42"
    assert graph.canonical("dev-9") == "c42"
    assert graph.resolve("device_id", "dev-9") == "c42"
    assert sorted(graph.identifiers("anon-1")) == ["anonymous_id", "device_id", "email"]


def test_merges_chain_to_the_last_survivor(db: SqlDatabase) -> None:
    graph = IdentityGraph(db, KEY)
    graph.identify("a", {"anonymous_id": "a"})
    graph.identify("b", {"anonymous_id": "a"})  # a → b
    graph.identify("c", {"anonymous_id": "a"})  # b → c, and a with it
    assert graph.canonical("a") == "c"
    assert graph.canonical("b") == "c"
    # Identifying a merged id again lands on the survivor, never un-merges it.
    assert graph.identify("a", {"email": "x@example.com"}).customer_id == "c"
    assert graph.resolve("email", "x@example.com") == "c"


def test_a_bad_identifier_writes_nothing(db: SqlDatabase) -> None:
    graph = IdentityGraph(db, KEY)
    graph.identify("c1", {"anonymous_id": "anon-1"})
    merges = db.query("SELECT merged_id, into_id FROM identity_merges")
    assert merges == [("anon-1", "c1")]
    with pytest.raises(InvalidRequest, match="`phone`"):
        graph.identify("c2", {"anonymous_id": "anon-1", "phone": "not a number"})
    assert graph.canonical("c1") == "c1"
    assert graph.resolve("anonymous_id", "anon-1") == "c1"
    assert db.query("SELECT merged_id, into_id FROM identity_merges") == merges


def test_a_failing_listener_rolls_the_merge_back(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "id.db")

    class Broken:
        def customers_merged(self, merged_id: str, into_id: str) -> None:
            raise RuntimeError("disk full")

    graph = IdentityGraph(db, KEY, listeners=[Broken()])
    graph.identify("anon-1", {"anonymous_id": "anon-1"})
    with pytest.raises(RuntimeError):
        graph.identify("c1", {"anonymous_id": "anon-1", "email": "a@example.com"})
    assert graph.canonical("anon-1") == "anon-1"
    assert graph.resolve("email", "a@example.com") is None


def test_a_short_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="`key` must be at least 16 bytes"):
        IdentityGraph(SQLiteDatabase(tmp_path / "id.db"), b"short")
