"""What each worker learned, in Redis: the scale-mode policy state store."""

from __future__ import annotations

from typing import cast

import redis

from features.errors import InvalidRequest, Unavailable

__all__ = ["RedisPolicyStateStore"]


class RedisPolicyStateStore:
    """One Redis hash per policy key, ``{prefix}:policy:{key}``, with one field per worker.

    A worker replaces only its own field (``HSET``) and reads every field at once
    (``HGETALL``), so workers share what they learned without locks. The client
    is injected and stays the caller's: :meth:`close` leaves it open. It must
    return bytes (``decode_responses=False``, the default), since blobs are
    pickles, not text.

    >>> client = redis.Redis(host="127.0.0.1", port=6379)
    >>> store = RedisPolicyStateStore(client, prefix="nudge-doctest")
    >>> store.publish("policy", "w1", b"one")
    >>> store.publish("policy", "w2", b"two")
    >>> store.collect("policy")
    {'w1': b'one', 'w2': b'two'}
    >>> client.delete("nudge-doctest:policy:policy")
    1
    >>> client.close()
    """

    def __init__(self, client: redis.Redis, prefix: str = "nudge") -> None:
        if not isinstance(prefix, str) or not prefix:
            raise InvalidRequest("prefix", "must be a non-empty string", prefix)
        if client.get_connection_kwargs().get("decode_responses"):
            raise InvalidRequest(
                "client", "must return bytes (decode_responses=False), since blobs are binary"
            )
        self.client = client
        self.prefix = prefix

    def publish(self, key: str, worker: str, blob: bytes) -> None:
        try:
            self.client.hset(self._name(key), worker, bytes(blob))
        except redis.RedisError as err:
            raise Unavailable(f"Redis cannot store the policy state {key!r}: {err}") from err

    def collect(self, key: str) -> dict[str, bytes]:
        try:
            fields = cast(dict[bytes, bytes], self.client.hgetall(self._name(key)))
        except redis.RedisError as err:
            raise Unavailable(f"Redis cannot read the policy state {key!r}: {err}") from err
        return {worker.decode(): blob for worker, blob in sorted(fields.items())}

    def close(self) -> None:
        """Nothing to release: the client belongs to the caller."""

    def _name(self, key: str) -> str:
        return f"{self.prefix}:policy:{key}"
