"""The PolicyStateStore contract, run over SQLite (embedded) and Redis (scale mode).

The Redis runs use the machine's real server under a key prefix of their own,
whose keys are deleted afterwards.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from decisioning.log import PolicyStateStore
from decisioning.redis_state import RedisPolicyStateStore
from decisioning.sqlite_state import SQLitePolicyStateStore
from features.errors import InvalidRequest, Unavailable

REDIS = {"host": "127.0.0.1", "port": 6379}

OpenStore = Callable[[], PolicyStateStore]


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis(**REDIS)  # type: ignore[arg-type]
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client: redis.Redis) -> Iterator[str]:
    name = f"nudge_test_{uuid.uuid4().hex[:8]}"
    yield name
    for key in redis_client.scan_iter(match=f"{name}:*"):
        redis_client.delete(key)


@pytest.fixture(params=["sqlite", "redis"])
def open_store(
    request: pytest.FixtureRequest, tmp_path: Path, redis_client: redis.Redis, prefix: str
) -> Iterator[OpenStore]:
    """Opens stores over one backend, as each worker process would."""
    opened: list[PolicyStateStore] = []

    def open_one() -> PolicyStateStore:
        store: PolicyStateStore
        if request.param == "sqlite":
            store = SQLitePolicyStateStore(tmp_path / "nudge.db")
        else:
            store = RedisPolicyStateStore(redis_client, prefix)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: OpenStore) -> PolicyStateStore:
    return open_store()


def test_nothing_published_collects_empty(store: PolicyStateStore) -> None:
    assert dict(store.collect("policy")) == {}


def test_each_worker_replaces_only_its_own_blob(store: PolicyStateStore) -> None:
    store.publish("policy", "w1", b"one")
    store.publish("policy", "w2", b"two")
    store.publish("policy", "w1", b"three")
    store.publish("other", "w1", b"elsewhere")
    assert dict(store.collect("policy")) == {"w1": b"three", "w2": b"two"}
    assert dict(store.collect("other")) == {"w1": b"elsewhere"}


def test_blobs_keep_every_byte(store: PolicyStateStore) -> None:
    blobs = {"binary": bytes(range(256)) * 100, "empty": b"", "worker-é": b"\x00\xff"}
    for worker, blob in blobs.items():
        store.publish("policy", worker, blob)
    assert dict(store.collect("policy")) == blobs


def test_workers_publishing_at_once_lose_nothing(store: PolicyStateStore) -> None:
    workers = [f"w{i}" for i in range(8)]
    barrier = threading.Barrier(len(workers))

    def publish(worker: str) -> None:
        barrier.wait()
        for round_ in range(50):
            store.publish("policy", worker, f"{worker}:{round_}".encode())

    threads = [threading.Thread(target=publish, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert dict(store.collect("policy")) == {w: f"{w}:49".encode() for w in workers}


def test_another_store_over_the_same_backend_sees_the_blobs(open_store: OpenStore) -> None:
    first, second = open_store(), open_store()
    first.publish("policy", "w1", b"from the first worker")
    second.publish("policy", "w2", b"from the second worker")
    assert dict(first.collect("policy")) == dict(second.collect("policy"))
    assert set(first.collect("policy")) == {"w1", "w2"}


def test_redis_keeps_one_hash_per_key_with_a_field_per_worker(
    redis_client: redis.Redis, prefix: str
) -> None:
    store = RedisPolicyStateStore(redis_client, prefix)
    store.publish("linear-ts", "w1", b"one")
    store.publish("linear-ts", "w2", b"two")
    assert redis_client.type(f"{prefix}:policy:linear-ts") == b"hash"
    assert redis_client.hgetall(f"{prefix}:policy:linear-ts") == {b"w1": b"one", b"w2": b"two"}


def test_redis_refuses_a_client_that_decodes_responses(prefix: str) -> None:
    client = redis.Redis(**REDIS, decode_responses=True)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match=r"`client` must return bytes \(decode_responses"):
        RedisPolicyStateStore(client, prefix)
    client.close()
    with pytest.raises(InvalidRequest, match="`prefix` must be a non-empty string"):
        RedisPolicyStateStore(redis.Redis(**REDIS), "")  # type: ignore[arg-type]


def test_an_unreachable_redis_is_unavailable() -> None:
    no_retries = Retry(NoBackoff(), retries=0)
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1, retry=no_retries)
    store = RedisPolicyStateStore(client, "nudge_test")
    with pytest.raises(Unavailable, match="Redis cannot store the policy state 'policy'"):
        store.publish("policy", "w1", b"one")
    with pytest.raises(Unavailable, match="Redis cannot read the policy state 'policy'"):
        store.collect("policy")
    client.close()
