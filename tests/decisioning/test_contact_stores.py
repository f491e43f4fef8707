"""One contract for every ContactStore: SQLite (default) and Redis (scale mode, real server).

The Redis store is run with a client that decodes responses and one that does
not; each test gets its own key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from decisioning.contact_rules import FrequencyCap
from decisioning.contact_store import ChannelState, ContactProfile, ContactStore, Send
from decisioning.redis_contact import RedisContactStore
from decisioning.slots import load_zone
from decisioning.sqlite_contact import SQLiteContactStore
from features.errors import InvalidRequest

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
EMAIL_3_PER_WEEK = FrequencyCap(3, WEEK, "email")
SMS_1_PER_DAY = FrequencyCap(1, DAY, "sms")
OVERALL_4_PER_WEEK = FrequencyCap(4, WEEK)


@pytest.fixture(params=["sqlite", "redis-bytes", "redis-text"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ContactStore]:
    if request.param == "sqlite":
        sqlite_store = SQLiteContactStore(tmp_path / "nudge.db")
        yield sqlite_store
        sqlite_store.close()
        return
    client = redis.Redis(
        host="127.0.0.1", port=6379, decode_responses=request.param == "redis-text"
    )
    prefix = f"test-contact-{uuid.uuid4().hex}"
    yield RedisContactStore(client, prefix=prefix)
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()


def reserve_email(store: ContactStore, decision_id: str, at: datetime) -> FrequencyCap | None:
    return store.reserve("c1", Send(decision_id, "email", at), [EMAIL_3_PER_WEEK])


# --- profiles -----------------------------------------------------------------------------------


def test_an_unknown_customer_has_an_empty_profile(store: ContactStore) -> None:
    assert store.profile("nobody") == ContactProfile("nobody", {}, None)
    assert store.sends("nobody") == []


def test_profile_changes_read_back(store: ContactStore) -> None:
    store.set_consent("c1", "email", True, T0)
    store.set_reachable("c1", "email", True)
    store.set_reachable("c1", "sms", True)
    store.set_time_zone("c1", "Europe/Paris")
    store.suppress("c1", "push", "hard_bounce", T0 + DAY)
    got = store.profile("c1")
    assert got.time_zone == "Europe/Paris"
    assert got.channel("email") == ChannelState("opted_in", None, True, consent_at=T0)
    assert got.channel("sms") == ChannelState("unknown", None, True)
    assert got.channel("push") == ChannelState("unknown", "hard_bounce", False, None, T0 + DAY)
    store.set_time_zone("c1", None)
    assert store.profile("c1").time_zone is None


def test_a_revocation_is_effective_at_once(store: ContactStore) -> None:
    store.set_consent("c1", "email", True, T0)
    store.set_consent("c1", "email", False, T0 + timedelta(seconds=1))
    state = store.profile("c1").channel("email")
    assert (state.consent, state.consent_at) == ("opted_out", T0 + timedelta(seconds=1))


def test_an_older_consent_change_does_not_undo_a_newer_one(store: ContactStore) -> None:
    store.set_consent("c1", "email", False, T0 + DAY)
    store.set_consent("c1", "email", True, T0)  # arrives late
    assert store.profile("c1").channel("email").consent == "opted_out"
    store.set_consent("c1", "email", True, T0 + DAY)  # same instant: the later call wins
    assert store.profile("c1").channel("email").consent == "opted_in"


def test_suppression_keeps_consent_and_its_reason(store: ContactStore) -> None:
    store.set_consent("c1", "email", True, T0)
    store.suppress("c1", "email", "unsubscribe", T0 + DAY)
    state = store.profile("c1").channel("email")
    assert (state.consent, state.suppressed, state.suppressed_at) == (
        "opted_in",
        "unsubscribe",
        T0 + DAY,
    )


def test_bad_profile_changes_name_the_field(store: ContactStore) -> None:
    with pytest.raises(InvalidRequest, match=r"^`reason` must be one of"):
        store.suppress("c1", "email", "bored", T0)
    with pytest.raises(InvalidRequest, match=r"^`time_zone` must be an IANA time zone"):
        store.set_time_zone("c1", "Nowhere/Special")
    with pytest.raises(InvalidRequest, match=r"^`at` must be a time-zone-aware datetime"):
        store.set_consent("c1", "email", True, datetime(2024, 5, 1))
    assert store.profile("c1") == ContactProfile("c1", {})


def test_load_profiles_replaces_each_profile(store: ContactStore) -> None:
    store.set_consent("c1", "sms", True, T0)
    profiles = [
        ContactProfile(
            f"c{i}",
            {
                "email": ChannelState("opted_in", None, True, consent_at=T0),
                "push": ChannelState("opted_out", "complaint", i % 2 == 0),
            },
            "America/New_York" if i % 3 else None,
        )
        for i in range(1, 2501)
    ]
    assert store.load_profiles(iter(profiles)) == 2500
    assert store.profile("c1") == profiles[0]  # its old sms consent is gone
    assert store.profile("c2500") == profiles[-1]
    assert store.load_profiles([]) == 0


# --- reservations -------------------------------------------------------------------------------


def test_reserve_until_the_cap_then_write_nothing(store: ContactStore) -> None:
    for i in range(3):
        assert reserve_email(store, f"d{i}", T0 + timedelta(days=i)) is None
    assert reserve_email(store, "d3", T0 + timedelta(days=3)) == EMAIL_3_PER_WEEK
    assert [s.decision_id for s in store.sends("c1")] == ["d0", "d1", "d2"]
    assert store.sends("c1")[1] == Send("d1", "email", T0 + DAY)


def test_the_window_is_open_on_both_sides(store: ContactStore) -> None:
    caps = [SMS_1_PER_DAY]
    assert store.reserve("c1", Send("a", "sms", T0), caps) is None
    assert store.reserve("c1", Send("b", "sms", T0 + DAY - timedelta(microseconds=1)), caps)
    assert store.reserve("c1", Send("c", "sms", T0 - DAY + timedelta(microseconds=1)), caps)
    assert store.reserve("c1", Send("d", "sms", T0 + DAY), caps) is None
    assert store.reserve("c1", Send("e", "sms", T0 - DAY), caps) is None
    # A send scheduled between two others is refused even though each is a day apart.
    assert store.reserve("c1", Send("f", "sms", T0 + DAY / 2), caps) == SMS_1_PER_DAY


def test_channel_caps_count_their_channel_and_the_overall_cap_counts_all(
    store: ContactStore,
) -> None:
    caps = [EMAIL_3_PER_WEEK, SMS_1_PER_DAY, OVERALL_4_PER_WEEK]
    for i in range(3):
        assert (
            store.reserve("c1", Send(f"e{i}", "email", T0 + i * timedelta(hours=1)), caps) is None
        )
    assert store.reserve("c1", Send("s0", "sms", T0), caps) is None
    assert store.reserve("c1", Send("s1", "sms", T0 + 2 * DAY), caps) == OVERALL_4_PER_WEEK
    assert store.reserve("c1", Send("p0", "push", T0 + 2 * DAY), caps) == OVERALL_4_PER_WEEK
    # Another customer's sends never count.
    assert store.reserve("c2", Send("s2", "sms", T0), caps) is None
    assert len(store.sends("c1")) == 4


def test_the_first_blocking_cap_is_returned(store: ContactStore) -> None:
    caps = [OVERALL_4_PER_WEEK, SMS_1_PER_DAY]
    assert store.reserve("c1", Send("s0", "sms", T0), caps) is None
    assert store.reserve("c1", Send("s1", "sms", T0), caps) == SMS_1_PER_DAY
    assert store.reserve("c1", Send("s2", "sms", T0), [FrequencyCap(1, DAY)]) == FrequencyCap(
        1, DAY
    )


@pytest.mark.parametrize("limit", [0, None])
def test_a_cap_of_zero_or_none_is_no_cap(store: ContactStore, limit: int | None) -> None:
    caps = [FrequencyCap(limit, WEEK, "email"), FrequencyCap(limit, WEEK)]
    for i in range(5):
        assert store.reserve("c1", Send(f"d{i}", "email", T0), caps) is None
    assert len(store.sends("c1")) == 5


def test_the_same_decision_is_reserved_once(store: ContactStore) -> None:
    assert reserve_email(store, "d0", T0) is None
    assert reserve_email(store, "d0", T0) is None
    assert reserve_email(store, "d0", T0 + DAY) is None
    assert store.sends("c1") == [Send("d0", "email", T0)]
    assert reserve_email(store, "d1", T0) is None
    assert reserve_email(store, "d2", T0) is None
    assert reserve_email(store, "d3", T0) == EMAIL_3_PER_WEEK


def test_release_frees_room(store: ContactStore) -> None:
    for i in range(3):
        assert reserve_email(store, f"d{i}", T0) is None
    assert reserve_email(store, "d3", T0) == EMAIL_3_PER_WEEK
    assert store.release("d1") is True
    assert store.release("d1") is False
    assert store.release("never") is False
    assert reserve_email(store, "d3", T0) is None
    assert [s.decision_id for s in store.sends("c1")] == ["d0", "d2", "d3"]


def test_sends_long_past_every_window_are_pruned(store: ContactStore) -> None:
    assert reserve_email(store, "old", T0 - 30 * DAY) is None
    assert reserve_email(store, "recent", T0 - 10 * DAY) is None
    assert reserve_email(store, "new", T0) is None
    # 30 days back is beyond the 7-day window plus the 7-day slack; 10 days back is not.
    assert [s.decision_id for s in store.sends("c1")] == ["recent", "new"]
    assert store.release("old") is False


def test_zoned_send_times_are_the_same_instants(store: ContactStore) -> None:
    paris = T0.astimezone(load_zone("Europe/Paris", "time_zone"))
    assert store.reserve("c1", Send("d0", "sms", paris), [SMS_1_PER_DAY]) is None
    assert store.reserve("c1", Send("d1", "sms", T0), [SMS_1_PER_DAY]) == SMS_1_PER_DAY
    assert store.sends("c1")[0].send_at == T0


def test_redis_send_keys_expire_after_the_longest_window_and_the_slack() -> None:
    client = redis.Redis(host="127.0.0.1", port=6379)
    store = RedisContactStore(client, prefix=f"test-contact-{uuid.uuid4().hex}")
    try:
        assert (
            store.reserve("c1", Send("d0", "email", T0), [EMAIL_3_PER_WEEK, SMS_1_PER_DAY]) is None
        )
        keep_ms = (WEEK + store.prune_slack) // timedelta(milliseconds=1)
        keys = list(client.scan_iter(f"{store.prefix}:*"))
        assert len(keys) == 2
        assert all(keep_ms - 60_000 < client.pttl(key) <= keep_ms for key in keys)
    finally:
        for key in client.scan_iter(f"{store.prefix}:*"):
            client.delete(key)
        client.close()


# --- races --------------------------------------------------------------------------------------


def test_twenty_threads_racing_for_a_cap_of_three(store: ContactStore) -> None:
    start = threading.Barrier(20)

    def attempt(i: int) -> FrequencyCap | None:
        start.wait()
        return store.reserve("c1", Send(f"d{i}", "sms", T0 + timedelta(minutes=i)), [cap])

    cap = FrequencyCap(3, DAY, "sms")
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(attempt, range(20)))
    assert sum(result is None for result in results) == 3
    assert all(result == cap for result in results if result is not None)
    assert len(store.sends("c1")) == 3


def _reserve_in_process(path: str, worker: int, start: Any, results: Any) -> None:
    store = SQLiteContactStore(Path(path))
    cap = FrequencyCap(3, DAY, "sms")
    start.wait()
    for i in range(5):
        send = Send(f"w{worker}-{i}", "sms", T0 + timedelta(minutes=i))
        results.put(store.reserve("c1", send, [cap]) is None)
    store.close()


def test_four_processes_racing_for_a_cap_of_three_in_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "nudge.db"
    SQLiteContactStore(path).close()  # create the schema before the race
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(4)
    results = context.Queue()
    workers = [
        context.Process(target=_reserve_in_process, args=(str(path), w, start, results))
        for w in range(4)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=60) for _ in range(20)]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert sum(outcomes) == 3
    store = SQLiteContactStore(path)
    assert len(store.sends("c1")) == 3
    store.close()
