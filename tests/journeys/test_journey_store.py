"""The JourneyStore contract, run over SQLite (embedded) and Postgres (scale mode).

The Postgres runs use the machine's real server, each test in a schema of its
own that is dropped afterwards. Where two runners meet, each has its own store
(its own connection) over the same database, as two runner processes would.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

from features.sql import PostgresDatabase, SqlDatabase, SQLiteDatabase
from journeys.store import Instance, JourneyStore, SendRecord

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
T0 = datetime(2026, 1, 14, 10, 0, tzinfo=UTC)
LEASE_S = 30.0
T = TypeVar("T")

OpenStore = Callable[[], JourneyStore]


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Opens stores over one database, as each runner process (or a restart) would."""
    opened: list[JourneyStore] = []
    schema = f"nudge_test_{uuid.uuid4().hex[:8]}"

    def open_one() -> JourneyStore:
        db: SqlDatabase
        if request.param == "sqlite":
            db = SQLiteDatabase(tmp_path / "journeys.db")
        else:
            db = PostgresDatabase(POSTGRES_DSN, schema)
        store = JourneyStore(db)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()
    if request.param == "postgres":
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def store(open_store: OpenStore) -> JourneyStore:
    return open_store()


def instance(
    instance_id: str,
    *,
    journey: str = "cart",
    customer_id: str = "c1",
    entered_at: datetime = T0,
    wake_at: datetime | None = T0,
    **changes: Any,
) -> Instance:
    return Instance(
        instance_id=instance_id,
        journey=journey,
        customer_id=customer_id,
        entered_at=entered_at,
        step_id="settle",
        wake_at=wake_at,
        **changes,
    )


def send(decision_id: str, **changes: Any) -> SendRecord:
    fields: dict[str, Any] = {
        "decision_id": decision_id,
        "instance_id": "i1",
        "customer_id": "c1",
        "step_id": "send_first",
        "channel": "email",
        "message": "cart_reminder",
        "send_at": T0,
    }
    fields.update(changes)
    return SendRecord(**fields)


def together(work: Callable[[int], T], threads: int) -> list[T]:
    """``work(i)`` on ``threads`` threads released at the same moment; results by ``i``."""
    barrier = threading.Barrier(threads)
    results: list[Any] = [None] * threads
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as err:  # re-raised below, in the test's thread
            errors.append(err)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return results


# -- instances --------------------------------------------------------------------------


def test_enter_is_idempotent_by_instance_id(store: JourneyStore) -> None:
    first = instance("i1", state={"trigger": {"cart_value": 42}})
    assert store.enter(first) is True
    assert store.enter(instance("i1", journey="winback", customer_id="c2", state={})) is False
    assert store.get("i1") == first
    assert store.counts() == {"active": 1, "active:cart": 1}


def test_get_of_an_unknown_instance_is_none(store: JourneyStore) -> None:
    assert store.get("nobody") is None


def test_save_moves_the_instance_on_and_bumps_its_version(store: JourneyStore) -> None:
    store.enter(instance("i1"))
    loaded = store.get("i1")
    assert loaded is not None
    assert loaded.version == 0
    moved = loaded.moved(step_id="first", wake_at=T0 + timedelta(hours=1), state={"visits": 1})
    saved = store.save(moved)
    assert saved is not None
    assert saved.version == 1
    assert store.get("i1") == saved


def test_a_save_with_a_stale_version_changes_nothing(open_store: OpenStore) -> None:
    one, other = open_store(), open_store()
    one.enter(instance("i1"))
    read_by_one, read_by_other = one.get("i1"), other.get("i1")
    assert read_by_one is not None
    assert read_by_other is not None
    won = one.save(read_by_one.moved(step_id="first", state={"by": "one"}))
    assert won is not None
    lost = other.save(
        read_by_other.moved(
            step_id="exit", status="exited", end_reason="late", ended_at=T0, state={"by": "other"}
        )
    )
    assert lost is None
    assert one.get("i1") == won
    assert won.state == {"by": "one"}
    assert won.status == "active"
    assert won.version == 1
    # The loser reads again and goes on from the winner's version.
    fresh = other.get("i1")
    assert fresh is not None
    again = other.save(fresh.moved(status="completed", wake_at=None, ended_at=T0))
    assert again is not None
    assert again.version == 2


def test_two_runners_saving_at_once_one_wins(open_store: OpenStore) -> None:
    stores = [open_store() for _ in range(4)]
    stores[0].enter(instance("i1"))
    read = [s.get("i1") for s in stores]
    saved = together(
        lambda i: stores[i].save(read[i].moved(state={"by": i})),  # type: ignore[union-attr]
        threads=len(stores),
    )
    winners = [i for i, result in enumerate(saved) if result is not None]
    assert len(winners) == 1
    stored = stores[0].get("i1")
    assert stored is not None
    assert (stored.version, stored.state) == (1, {"by": winners[0]})


def test_a_saved_instance_round_trips_every_field(store: JourneyStore) -> None:
    state: dict[str, Any] = {
        "decisions": {
            "first": {"decision_id": "d-1", "action": {"message": "cart_reminder", "slot": "now"}}
        },
        "events": [{"type": "add_to_cart", "payload": {"items": [1, 2, [3, {"deep": True}]]}}],
        "visits": {"settle": 1, "first": 2},
        "trigger": {"cart_value": 42.5, "coupon": None, "note": 'café ✓ "q"'},
        "big": 2**53,
        "empty": {},
    }
    entered = datetime(2026, 1, 14, 10, 0, 0, 123456, tzinfo=UTC)
    full = instance(
        "i1",
        entered_at=entered,
        wake_at=entered + timedelta(days=1, microseconds=7),
        waiting_for="purchase",
        state=state,
    )
    store.enter(full)
    loaded = store.get("i1")
    assert loaded == full
    assert loaded is not None
    assert loaded.state == state
    ended = full.moved(
        status="goal", wake_at=None, waiting_for=None, ended_at=T0 + timedelta(hours=5),
        end_reason="purchase", state={**state, "goal": {"value": 12.0}},
    )  # fmt: skip
    saved = store.save(ended)
    assert store.get("i1") == saved == ended.moved(version=1)


def test_due_returns_active_instances_whose_timer_has_come_earliest_first(
    store: JourneyStore,
) -> None:
    now = T0 + timedelta(hours=2)
    store.enter(instance("late", wake_at=now))  # exactly now counts as due
    store.enter(instance("early", wake_at=T0))
    store.enter(instance("middle", wake_at=T0 + timedelta(hours=1)))
    store.enter(instance("future", wake_at=now + timedelta(seconds=1)))
    store.enter(instance("no-timer", wake_at=None, waiting_for="purchase"))
    store.enter(instance("done", wake_at=T0 - timedelta(hours=1), status="completed"))
    store.enter(instance("gone", wake_at=T0 - timedelta(hours=1), status="exited"))
    assert [i.instance_id for i in store.due(now)] == ["early", "middle", "late"]
    assert [i.instance_id for i in store.due(now, limit=2)] == ["early", "middle"]
    assert store.due(T0 - timedelta(seconds=1)) == []
    assert store.next_wake() == T0


def test_a_completed_instance_is_no_longer_due(store: JourneyStore) -> None:
    store.enter(instance("i1", wake_at=T0))
    loaded = store.get("i1")
    assert loaded is not None
    store.save(loaded.moved(status="completed", ended_at=T0))
    assert store.due(T0 + timedelta(days=1)) == []
    assert store.next_wake() is None


def test_instances_of_a_customer_oldest_first_and_by_journey(store: JourneyStore) -> None:
    store.enter(instance("c1-winback", journey="winback", entered_at=T0 + timedelta(hours=3)))
    store.enter(instance("c1-cart-2", journey="cart", entered_at=T0 + timedelta(hours=2)))
    store.enter(instance("c1-cart-1", journey="cart", entered_at=T0))
    store.enter(instance("c2-cart", journey="cart", customer_id="c2", entered_at=T0))
    assert [i.instance_id for i in store.instances_of("c1")] == [
        "c1-cart-1",
        "c1-cart-2",
        "c1-winback",
    ]
    assert [i.instance_id for i in store.instances_of("c1", "cart")] == ["c1-cart-1", "c1-cart-2"]
    assert [i.instance_id for i in store.instances_of("c1", "winback")] == ["c1-winback"]
    assert store.instances_of("c1", "onboarding") == []
    assert store.instances_of("nobody") == []


def test_counts_by_status_and_active_by_journey(store: JourneyStore) -> None:
    assert store.counts() == {}
    for i in range(3):
        store.enter(instance(f"cart-{i}", journey="cart"))
    store.enter(instance("winback-0", journey="winback"))
    store.enter(instance("cart-done", journey="cart", status="completed"))
    store.enter(instance("winback-goal", journey="winback", status="goal"))
    store.enter(instance("winback-exit", journey="winback", status="exited"))
    store.enter(instance("cart-exit", journey="cart", status="exited"))
    assert store.counts() == {
        "active": 4,
        "active:cart": 3,
        "active:winback": 1,
        "completed": 1,
        "goal": 1,
        "exited": 2,
    }


# -- the send ledger --------------------------------------------------------------------


def test_a_send_is_scheduled_once(store: JourneyStore) -> None:
    store.schedule_send(send("d1", send_at=T0))
    store.schedule_send(send("d1", message="discount_10", send_at=T0 + timedelta(hours=1)))
    record = store.send_record("d1")
    assert record == send("d1", send_at=T0)
    assert store.send_record("unknown") is None


def test_sends_of_an_instance_in_send_order(store: JourneyStore) -> None:
    store.schedule_send(send("second", send_at=T0 + timedelta(days=1)))
    store.schedule_send(send("first", send_at=T0))
    store.schedule_send(send("elsewhere", instance_id="i2", send_at=T0))
    assert [r.decision_id for r in store.sends_of("i1")] == ["first", "second"]
    assert store.sends_of("i3") == []


def test_claim_marks_the_send_as_sending_for_the_runner(store: JourneyStore) -> None:
    store.schedule_send(send("d1"))
    claimed = store.claim_send("d1", "runner-a", T0, LEASE_S)
    assert claimed is not None
    assert (claimed.status, claimed.claimed_by, claimed.claimed_at) == ("sending", "runner-a", T0)
    assert (claimed.attempts, claimed.in_doubt, claimed.updated_at) == (1, 0, T0)
    assert store.send_record("d1") == claimed


def test_only_one_of_two_runners_gets_the_claim(open_store: OpenStore) -> None:
    runners = [open_store(), open_store()]
    runners[0].schedule_send(send("d1"))
    claims = together(lambda i: runners[i].claim_send("d1", f"runner-{i}", T0, LEASE_S), threads=2)
    won = [c for c in claims if c is not None]
    assert len(won) == 1
    record = runners[0].send_record("d1")
    assert record is not None
    assert (record.claimed_by, record.attempts, record.in_doubt) == (won[0].claimed_by, 1, 0)


def test_a_claim_younger_than_the_lease_is_not_taken_over(store: JourneyStore) -> None:
    store.schedule_send(send("d1"))
    store.claim_send("d1", "runner-a", T0, LEASE_S)
    just_inside = T0 + timedelta(seconds=LEASE_S - 1)
    assert store.claim_send("d1", "runner-b", just_inside, LEASE_S) is None
    record = store.send_record("d1")
    assert record is not None
    assert (record.claimed_by, record.attempts, record.in_doubt) == ("runner-a", 1, 0)


def test_a_claim_older_than_the_lease_is_taken_over_and_counted_in_doubt(
    store: JourneyStore,
) -> None:
    store.schedule_send(send("d1"))
    store.claim_send("d1", "runner-a", T0, LEASE_S)
    later = T0 + timedelta(seconds=LEASE_S + 1)
    taken = store.claim_send("d1", "runner-b", later, LEASE_S)
    assert taken is not None
    assert (taken.status, taken.claimed_by, taken.claimed_at) == ("sending", "runner-b", later)
    assert (taken.attempts, taken.in_doubt) == (2, 1)
    much_later = later + timedelta(seconds=LEASE_S + 1)
    again = store.claim_send("d1", "runner-c", much_later, LEASE_S)
    assert again is not None
    assert (again.attempts, again.in_doubt) == (3, 2)
    assert store.send_counts() == {"sending": 1, "email:sending": 1, "in_doubt": 2}


def test_a_send_waiting_for_a_retry_is_claimed_without_doubt(store: JourneyStore) -> None:
    store.schedule_send(send("d1"))
    store.claim_send("d1", "runner-a", T0, LEASE_S)
    assert store.finish_send("d1", "retry", T0, detail="451 try later") is True
    soon = T0 + timedelta(seconds=1)  # well inside the lease: a retry is nobody's claim
    again = store.claim_send("d1", "runner-b", soon, LEASE_S)
    assert again is not None
    assert (again.status, again.claimed_by, again.attempts, again.in_doubt) == (
        "sending",
        "runner-b",
        2,
        0,
    )


@pytest.mark.parametrize("final", ["sent", "blocked", "failed", "cancelled"])
def test_a_final_send_is_never_claimed_nor_moved(store: JourneyStore, final: Any) -> None:
    store.schedule_send(send("d1"))
    store.claim_send("d1", "runner-a", T0, LEASE_S)
    done_at = T0 + timedelta(seconds=2)
    assert store.finish_send("d1", final, done_at, detail="first", provider_id="p-1") is True
    finished = store.send_record("d1")
    assert finished is not None
    assert (finished.status, finished.detail, finished.provider_id, finished.updated_at) == (
        final,
        "first",
        "p-1",
        done_at,
    )
    later = T0 + timedelta(hours=1)
    for status in ("sent", "failed", "retry", "sending", "scheduled"):
        assert store.finish_send("d1", status, later, detail="second") is False  # type: ignore[arg-type]
    assert store.claim_send("d1", "runner-b", later, LEASE_S) is None
    assert store.send_record("d1") == finished


def test_finish_of_an_unknown_send_changes_nothing(store: JourneyStore) -> None:
    assert store.finish_send("unknown", "sent", T0) is False
    assert store.send_counts() == {"in_doubt": 0}


def test_send_counts_by_status_channel_and_doubt(store: JourneyStore) -> None:
    for i in range(3):
        store.schedule_send(send(f"email-{i}"))
    store.schedule_send(send("sms-0", channel="sms"))
    store.schedule_send(send("sms-1", channel="sms"))
    store.claim_send("email-0", "r", T0, LEASE_S)
    store.finish_send("email-0", "sent", T0, provider_id="p-0")
    store.claim_send("email-1", "r", T0, LEASE_S)
    store.claim_send("email-1", "r2", T0 + timedelta(seconds=LEASE_S + 1), LEASE_S)
    store.finish_send("email-1", "sent", T0 + timedelta(seconds=LEASE_S + 2))
    store.claim_send("sms-0", "r", T0, LEASE_S)
    store.finish_send("sms-0", "blocked", T0, detail="suppression")
    assert store.send_counts() == {
        "scheduled": 2,
        "sent": 2,
        "blocked": 1,
        "email:scheduled": 1,
        "email:sent": 2,
        "sms:scheduled": 1,
        "sms:blocked": 1,
        "in_doubt": 1,
    }


def test_a_send_record_round_trips_every_field(store: JourneyStore) -> None:
    full = send(
        "d1",
        send_at=datetime(2026, 1, 14, 10, 0, 0, 654321, tzinfo=UTC),
        status="retry",
        attempts=2,
        claimed_by="runner-a",
        claimed_at=T0,
        in_doubt=1,
        detail="451 mailbox busy",
        provider_id="prov-9",
        updated_at=T0 + timedelta(seconds=3),
    )
    store.schedule_send(full)
    assert store.send_record("d1") == full


# -- attributes, addresses and offsets --------------------------------------------------


def test_attributes_are_upserted_per_name(store: JourneyStore) -> None:
    assert store.attributes("c1") == {}
    store.set_attributes("c1", {"tier": "gold", "prefs": {"topics": ["shoes", "bags"]}, "n": 1})
    store.set_attributes("c1", {"n": 2, "vip": True, "coupon": None})
    store.set_attributes("c2", {"tier": "silver"})
    assert store.attributes("c1") == {
        "tier": "gold",
        "prefs": {"topics": ["shoes", "bags"]},
        "n": 2,
        "vip": True,
        "coupon": None,
    }
    assert store.attributes("c2") == {"tier": "silver"}


def test_addresses_are_upserted_per_channel(store: JourneyStore) -> None:
    assert store.address("c1", "email") is None
    store.set_addresses("c1", [("email", "old@example.com"), ("sms", "+15550100")])
    store.set_addresses("c1", [("email", "new@example.com")])
    store.set_addresses("c2", [("email", "c2@example.com")])
    assert store.address("c1", "email") == "new@example.com"
    assert store.address("c1", "sms") == "+15550100"
    assert store.address("c1", "push") is None
    assert store.address("c2", "email") == "c2@example.com"


def test_offsets_per_consumer(open_store: OpenStore) -> None:
    store = open_store()
    assert store.offset("journeys") == 0
    store.set_offset("journeys", 5)
    store.set_offset("journeys", 7)
    store.set_offset("reports", 2**40)  # BIGINT: offsets outlive 32 bits
    restarted = open_store()
    assert restarted.offset("journeys") == 7
    assert restarted.offset("reports") == 2**40
    assert restarted.offset("other") == 0


def test_a_transaction_writes_all_or_nothing(store: JourneyStore) -> None:
    def write_then_crash() -> None:
        with store.transaction():
            store.enter(instance("i1"))
            store.schedule_send(send("d1"))
            store.set_offset("journeys", 9)
            raise RuntimeError("crash before the commit")

    with pytest.raises(RuntimeError, match="crash"):
        write_then_crash()
    assert store.get("i1") is None
    assert store.send_record("d1") is None
    assert store.offset("journeys") == 0
    with store.transaction():
        store.enter(instance("i1"))
        store.set_offset("journeys", 9)
    assert store.get("i1") is not None
    assert store.offset("journeys") == 9
