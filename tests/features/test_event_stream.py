"""The EventStream contract, run over SQLite (embedded) and Postgres (scale mode).

The Postgres runs use the machine's real server, each test in a schema of its
own that is dropped afterwards.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest

from features.errors import InvalidRequest
from features.event_stream import MAX_ID_LENGTH, MAX_PAYLOAD_BYTES, CustomerEvent, EventStream
from features.event_stream import check_event as check
from features.sql import PostgresDatabase, SqlDatabase, SQLiteDatabase

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

OpenStream = Callable[[], EventStream]


@pytest.fixture(params=["sqlite", "postgres"])
def open_stream(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStream]:
    """Opens streams over one database, as each API worker and the runner would."""
    opened: list[EventStream] = []
    schema = f"nudge_test_{uuid.uuid4().hex[:8]}"

    def open_one() -> EventStream:
        db: SqlDatabase
        if request.param == "sqlite":
            db = SQLiteDatabase(tmp_path / "events.db")
        else:
            db = PostgresDatabase(POSTGRES_DSN, schema)
        stream = EventStream(db)
        opened.append(stream)
        return stream

    yield open_one
    for stream in opened:
        stream.close()
    if request.param == "postgres":
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def stream(open_stream: OpenStream) -> EventStream:
    return open_stream()


def event(
    event_id: str,
    customer_id: str = "c1",
    type: str = "add_to_cart",
    occurred_at: datetime = AT,
    payload: dict[str, Any] | None = None,
) -> CustomerEvent:
    return CustomerEvent(event_id, customer_id, type, occurred_at, payload or {})


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def test_the_same_event_id_is_stored_once(stream: EventStream) -> None:
    assert stream.append([event("e1", payload={"cart_value": 42.0})]) == 1
    # A resend with other content is still the same event: the first one stands.
    assert stream.append([event("e1", payload={"cart_value": 99.0})]) == 0
    assert stream.append_new([event("e1"), event("e2")]) == {"e2"}
    stored = stream.read(after=0)
    assert [(e.event_id, e.payload) for e in stored] == [
        ("e1", {"cart_value": 42.0}),
        ("e2", {}),
    ]
    assert stream.count() == 2


def test_get_reads_the_stored_events_by_id(stream: EventStream) -> None:
    later = datetime(2026, 12, 1, 10, 30, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    stream.append([event("e1", payload={"cart_value": 42.5}), event("e2", "c2", "purchase", later)])
    stream.append([event("e1", customer_id="someone else")])  # the first one stands
    found = stream.get(["e2", "e1", "missing", "e1"])
    assert sorted(found) == ["e1", "e2"]
    first, second = found["e1"], found["e2"]
    assert (first.customer_id, first.type, first.occurred_at, first.payload) == (
        "c1",
        "add_to_cart",
        AT,
        {"cart_value": 42.5},
    )
    assert (second.customer_id, second.type, second.occurred_at) == ("c2", "purchase", later)
    assert second.occurred_at.utcoffset() == timedelta(0)  # read back in UTC
    assert [first.offset, second.offset] == [e.offset for e in stream.read(after=0)]
    assert stream.get([]) == {}
    assert stream.get(["missing"]) == {}


def test_offsets_increase_in_arrival_order(stream: EventStream) -> None:
    for i in range(5):
        stream.append([event(f"e{i}")])
    stored = stream.read(after=0)
    assert [e.event_id for e in stored] == ["e0", "e1", "e2", "e3", "e4"]
    offsets = [e.offset for e in stored]
    assert offsets == sorted(offsets)
    assert len(set(offsets)) == 5
    assert offsets[0] >= 1
    assert stream.last_offset() == offsets[-1]


def test_read_pages_from_an_offset(stream: EventStream) -> None:
    stream.append([event(f"e{i}") for i in range(7)])
    first = stream.read(after=0, limit=3)
    second = stream.read(after=first[-1].offset, limit=3)
    third = stream.read(after=second[-1].offset, limit=3)
    assert [e.event_id for e in first] == ["e0", "e1", "e2"]
    assert [e.event_id for e in second] == ["e3", "e4", "e5"]
    assert [e.event_id for e in third] == ["e6"]
    assert stream.read(after=third[-1].offset) == []


def test_an_empty_stream_reads_nothing(stream: EventStream) -> None:
    assert stream.read(after=0) == []
    assert stream.last_offset() == 0
    assert stream.count() == 0


def test_a_late_event_is_read_after_the_ones_that_arrived_before_it(stream: EventStream) -> None:
    stream.append([event("ten", occurred_at=AT)])
    stream.append([event("eleven", occurred_at=AT + timedelta(hours=1))])
    consumer_at = stream.last_offset()
    # It happened before both, but arrived last: a consumer past them must still see it.
    stream.append([event("nine", occurred_at=AT - timedelta(hours=1))])
    late = stream.read(after=consumer_at)
    assert [(e.event_id, e.occurred_at) for e in late] == [("nine", AT - timedelta(hours=1))]
    assert [e.event_id for e in stream.read(after=0)] == ["ten", "eleven", "nine"]


def test_every_field_round_trips(stream: EventStream) -> None:
    payload = {
        "cart_value": 42.5,
        "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}],
        "coupon": None,
        "first_order": True,
        "note": 'café ✓ "quoted"',
        "big": 2**53,
    }
    paris = timezone(timedelta(hours=1))
    occurred = datetime(2026, 12, 1, 10, 30, 15, 123456, tzinfo=paris)
    received = datetime(2026, 12, 1, 9, 31, tzinfo=UTC)
    stream.append([event("e1", "cust-7", "purchase", occurred, payload)], now=received)
    (stored,) = stream.read(after=0)
    assert (stored.event_id, stored.customer_id, stored.type) == ("e1", "cust-7", "purchase")
    assert stored.payload == payload
    assert stored.occurred_at == occurred  # the same instant ...
    assert stored.occurred_at.utcoffset() == timedelta(0)  # ... read back in UTC
    assert stored.occurred_at.microsecond == 123456
    assert stored.received_at == received


def test_another_connection_reads_what_one_appended(open_stream: OpenStream) -> None:
    writer, reader = open_stream(), open_stream()
    writer.append([event("e1"), event("e2")])
    assert [e.event_id for e in reader.read(after=0)] == ["e1", "e2"]


def test_a_batch_with_one_bad_event_stores_nothing(stream: EventStream) -> None:
    stream.append([event("before")])
    batch = [event("good-1"), event("bad", occurred_at=datetime(2026, 1, 1)), event("good-2")]
    with pytest.raises(InvalidRequest, match=r"^`events\[1\]\.occurred_at` must carry a time zone"):
        stream.append(batch)
    assert [e.event_id for e in stream.read(after=0)] == ["before"]
    assert stream.count() == 1


def test_a_failed_commit_stores_none_of_the_batch(stream: EventStream) -> None:
    """All or nothing even when the database, not the check, refuses part of it."""
    stream.append([event("before")])
    db: Any = stream._db

    def append_then_crash() -> None:
        with db.transaction():
            stream.append([event("a"), event("b")])
            raise RuntimeError("crash between the insert and the commit")

    with pytest.raises(RuntimeError, match="crash"):
        append_then_crash()
    assert [e.event_id for e in stream.read(after=0)] == ["before"]


def test_offsets_become_visible_in_order_across_writers(open_stream: OpenStream) -> None:
    """A consumer past offset N never looks below it: no lower offset may commit later."""
    slow, fast, consumer = open_stream(), open_stream(), open_stream()
    slow_db: Any = slow._db
    fast_done = threading.Event()

    def append_fast() -> None:
        fast.append([event("fast")])
        fast_done.set()

    with slow_db.transaction():
        slow.append([event("slow")])
        worker = threading.Thread(target=append_fast)
        worker.start()
        # The fast writer either waits for the slow one or takes an offset above it;
        # either way the consumer must not see "fast" while "slow" is still uncommitted.
        fast_done.wait(timeout=1.0)
        seen_early = consumer.read(after=0)
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert [e.event_id for e in seen_early] == []
    handled = max((e.offset for e in seen_early), default=0)
    assert sorted(e.event_id for e in consumer.read(after=handled)) == ["fast", "slow"]


# -- check_event ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (event("e1", occurred_at=datetime(2026, 1, 1)), r"^`occurred_at` must carry a time zone"),
        (
            CustomerEvent("e1", "c1", "t", "2026-01-01T00:00:00Z", {}),  # type: ignore[arg-type]
            r"^`occurred_at` must be a date-time",
        ),
        (event(""), r"^`event_id` must be a non-empty string"),
        (event("   "), r"^`event_id` must be a non-empty string"),
        (event("x" * (MAX_ID_LENGTH + 1)), rf"^`event_id` .* at most {MAX_ID_LENGTH} characters"),
        (event("e1", customer_id=""), r"^`customer_id` must be a non-empty string"),
        (event("e1", type=""), r"^`type` must be a non-empty string"),
        (
            CustomerEvent(7, "c1", "t", AT, {}),  # type: ignore[arg-type]
            r"^`event_id` must be a non-empty string",
        ),
        (
            CustomerEvent("e1", "c1", "t", AT, [1, 2]),  # type: ignore[arg-type]
            r"^`payload` must be a JSON object",
        ),
        (event("e1", payload={"when": AT}), r"^`payload` must hold only JSON values"),
        (event("e1", payload={"tags": {"a", "b"}}), r"^`payload` must hold only JSON values"),
        (event("e1", payload={"value": math.nan}), r"^`payload` must hold only JSON values"),
        (event("e1", payload={"value": [math.inf]}), r"^`payload` must hold only JSON values"),
        (event("e1", payload={"deep": _nested(5000)}), r"^`payload` must not be nested this deep"),
        (
            event("e1", payload={"blob": "x" * MAX_PAYLOAD_BYTES}),
            rf"^`payload` must encode to at most {MAX_PAYLOAD_BYTES} bytes",
        ),
    ],
)
def test_check_event_names_the_bad_field(bad: CustomerEvent, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        check(bad)


def test_check_event_prefixes_the_field_with_the_batch_index() -> None:
    with pytest.raises(InvalidRequest, match=r"^`events\[1\]\.payload` must hold") as caught:
        check(event("e1", payload={"v": math.nan}), "events[1].")
    assert caught.value.field == "events[1].payload"


def test_check_event_accepts_a_payload_just_under_the_limit() -> None:
    # '{"blob": ""}' is 12 characters: this payload encodes to exactly the limit.
    fits = event("e1", payload={"blob": "x" * (MAX_PAYLOAD_BYTES - 12)})
    assert check(fits) is fits


def test_append_names_the_bad_event_by_its_place_in_the_batch(stream: EventStream) -> None:
    with pytest.raises(InvalidRequest, match=r"^`events\[2\]\.customer_id`"):
        stream.append([event("a"), event("b"), event("c", customer_id="")])
    # A batch of one is just the event: no index to name.
    with pytest.raises(InvalidRequest, match=r"^`customer_id`"):
        stream.append([event("d", customer_id="")])
    assert stream.count() == 0
