"""Retries with backoff, a rate limit, and batches where one failure stays one failure.

>>> from channels.file_outbox import FileOutbox
>>> import tempfile
>>> from pathlib import Path
>>> outbox = FileOutbox(Path(tempfile.mkdtemp()) / "sms.jsonl", name="sms")
>>> channel = RetryingChannel(RateLimitedChannel(outbox, per_second=100, burst=10))
>>> messages = [OutboundMessage(f"d{i}", "c1", "sms", "+33612345678", "Hi") for i in range(3)]
>>> [receipt.message_id for receipt in send_batch(channel, messages)]
['d0', 'd1', 'd2']
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable

from channels.types import Channel, OutboundMessage, Receipt, SendFailed
from features.errors import InvalidRequest

__all__ = ["RateLimitedChannel", "RetryingChannel", "send_batch"]


class RetryingChannel:
    """Retries transient SendFailed with exponential backoff and full jitter.

    Before retry ``k`` (0-based) it sleeps a uniform draw from
    ``[0, min(max_delay, base_delay * 2**k)]`` from its own seeded generator, or the
    provider's ``retry_after`` if that is longer. A provider asking for more than
    ``max_delay`` gets its failure back at once, so that the caller can reschedule
    rather than hold a worker. Permanent failures are raised at once; after
    ``attempts`` transient ones the last is raised. The message id makes each retry
    of an accepted send a no-op at the provider.
    """

    def __init__(
        self,
        inner: Channel,
        *,
        attempts: int = 4,
        base_delay: float = 0.2,
        max_delay: float = 5.0,
        seed: int = 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise InvalidRequest("attempts", "must be at least 1", attempts)
        if base_delay < 0 or max_delay < base_delay:
            raise InvalidRequest(
                "max_delay", f"must be at least base_delay ({base_delay}) >= 0", max_delay
            )
        self.inner = inner
        self.name = inner.name
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.seed = seed
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    def send(self, message: OutboundMessage) -> Receipt:
        for attempt in range(self.attempts):
            try:
                return self.inner.send(message)
            except SendFailed as err:
                if not err.transient or attempt == self.attempts - 1:
                    raise
                if err.retry_after is not None and err.retry_after > self.max_delay:
                    raise
                self._sleep(max(self._delay(attempt), err.retry_after or 0.0))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def close(self) -> None:
        self.inner.close()

    def _delay(self, attempt: int) -> float:
        cap = min(self.max_delay, self.base_delay * 2**attempt)
        with self._rng_lock:
            return self._rng.uniform(0.0, cap)


class RateLimitedChannel:
    """A token bucket in front of a channel: ``burst`` sends at once, then ``per_second``.

    Thread-safe: each send reserves its token under a lock and sleeps outside it, so
    waiting senders queue up in order without holding each other up longer than needed.
    """

    def __init__(
        self,
        inner: Channel,
        *,
        per_second: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not per_second > 0:
            raise InvalidRequest("per_second", "must be a positive rate", per_second)
        if burst < 1:
            raise InvalidRequest("burst", "must be at least 1", burst)
        self.inner = inner
        self.name = inner.name
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated = clock()

    def send(self, message: OutboundMessage) -> Receipt:
        wait = self._reserve()
        if wait > 0:
            self._sleep(wait)
        return self.inner.send(message)

    def close(self) -> None:
        self.inner.close()

    def _reserve(self) -> float:
        with self._lock:
            now = self._clock()
            self._tokens = min(
                float(self.burst), self._tokens + (now - self._updated) * self.per_second
            )
            self._updated = now
            # The balance may go negative: it is the queue of senders already waiting.
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.per_second


def send_batch(channel: Channel, messages: Iterable[OutboundMessage]) -> list[Receipt | SendFailed]:
    """Send each message once, in order; a SendFailed takes its place in the result.

    One failure never stops the others, and nothing already sent is sent again. Errors
    other than SendFailed are bugs and propagate.
    """
    results: list[Receipt | SendFailed] = []
    for message in messages:
        try:
            results.append(channel.send(message))
        except SendFailed as err:
            results.append(err)
    return results
