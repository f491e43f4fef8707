"""Retries, rate limits and batches, over real channels with recorded (not real) sleeps."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest
from loopback_servers import FakeProvider

from channels import (
    FileOutbox,
    HttpProviderChannel,
    OutboundMessage,
    RateLimitedChannel,
    Receipt,
    RetryingChannel,
    SendFailed,
    send_batch,
)
from features.errors import InvalidRequest


def _sms(message_id: str, to: str = "+33612345678") -> OutboundMessage:
    return OutboundMessage(message_id, "c-1", "sms", to, f"text {message_id}")


@pytest.fixture
def sms(provider: FakeProvider) -> HttpProviderChannel:
    return HttpProviderChannel(f"{provider.url}/sms", name="sms")


def _expected_sleeps(seed: int, count: int, base: float = 0.2, cap: float = 5.0) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(0.0, min(cap, base * 2**k)) for k in range(count)]


def test_transient_failures_are_retried_with_seeded_full_jitter(
    provider: FakeProvider, sms: HttpProviderChannel
) -> None:
    provider.fail(3, 503)
    sleeps: list[float] = []
    receipt = RetryingChannel(sms, attempts=4, seed=7, sleep=sleeps.append).send(_sms("d-1"))
    assert receipt.provider_id == "prov-d-1"
    assert sleeps == _expected_sleeps(7, 3)
    # Each pause is within its exponential cap: 0.2, 0.4, 0.8.
    assert all(0 <= s <= 0.2 * 2**k for k, s in enumerate(sleeps))
    # Four requests, one idempotency key, one delivery.
    assert [r.headers["idempotency-key"] for r in provider.requests] == ["d-1"] * 4
    assert list(provider.delivered) == ["d-1"]


def test_the_same_seed_gives_the_same_pauses_and_another_seed_others(
    provider: FakeProvider, sms: HttpProviderChannel
) -> None:
    runs = []
    for seed in (1, 1, 2):
        provider.fail(2, 503)
        sleeps: list[float] = []
        RetryingChannel(sms, seed=seed, sleep=sleeps.append).send(_sms(f"d-{len(runs)}"))
        runs.append(sleeps)
    assert runs[0] == runs[1] != runs[2]


def test_the_last_transient_failure_is_raised_after_all_attempts(
    provider: FakeProvider, sms: HttpProviderChannel
) -> None:
    provider.fail(5, 503)
    sleeps: list[float] = []
    with pytest.raises(SendFailed) as failed:
        RetryingChannel(sms, attempts=3, sleep=sleeps.append).send(_sms("d-1"))
    assert failed.value.transient is True
    assert len(provider.requests) == 3
    assert len(sleeps) == 2
    assert provider.delivered == {}


def test_a_permanent_failure_is_raised_at_once(
    provider: FakeProvider, sms: HttpProviderChannel
) -> None:
    provider.fail(1, 400)
    sleeps: list[float] = []
    with pytest.raises(SendFailed) as failed:
        RetryingChannel(sms, sleep=sleeps.append).send(_sms("d-1"))
    assert failed.value.transient is False
    assert (len(provider.requests), sleeps) == (1, [])


def test_retry_after_is_respected(provider: FakeProvider, sms: HttpProviderChannel) -> None:
    provider.fail(1, 429, **{"Retry-After": "2"})
    sleeps: list[float] = []
    RetryingChannel(sms, sleep=sleeps.append).send(_sms("d-1"))
    # The jitter would have been at most 0.2 s; the provider asked for 2.
    assert sleeps == [2.0]


def test_a_retry_after_beyond_max_delay_is_handed_back_to_the_caller(
    provider: FakeProvider, sms: HttpProviderChannel
) -> None:
    provider.fail(1, 429, **{"Retry-After": "60"})
    sleeps: list[float] = []
    with pytest.raises(SendFailed) as failed:
        RetryingChannel(sms, max_delay=5.0, sleep=sleeps.append).send(_sms("d-1"))
    assert (failed.value.retry_after, sleeps, len(provider.requests)) == (60.0, [], 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"attempts": 0}, "`attempts` must be at least 1, got 0"),
        ({"base_delay": 1.0, "max_delay": 0.5}, "`max_delay` must be at least base_delay"),
    ],
)
def test_bad_retry_settings_are_named(tmp_path: Path, kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        RetryingChannel(FileOutbox(tmp_path / "o.jsonl", name="o"), **kwargs)  # type: ignore[arg-type]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_the_token_bucket_allows_a_burst_then_the_rate(tmp_path: Path) -> None:
    clock = FakeClock()
    outbox = FileOutbox(tmp_path / "sms.jsonl", name="sms")
    limited = RateLimitedChannel(outbox, per_second=10, burst=3, clock=clock, sleep=clock.sleep)
    for i in range(10):
        limited.send(_sms(f"d-{i}"))
    assert clock.sleeps == pytest.approx([0.1] * 7)
    # Idle long enough and the bucket refills to the burst, not beyond.
    clock.now += 60
    clock.sleeps.clear()
    for i in range(10, 15):
        limited.send(_sms(f"d-{i}"))
    assert clock.sleeps == pytest.approx([0.1, 0.1])
    assert len((tmp_path / "sms.jsonl").read_text().splitlines()) == 15


def test_the_token_bucket_loses_no_token_under_threads(tmp_path: Path) -> None:
    # The clock stands still: every send after the burst must reserve its own later slot.
    waits: list[float] = []
    lock = threading.Lock()

    def record(seconds: float) -> None:
        with lock:
            waits.append(seconds)

    outbox = FileOutbox(tmp_path / "sms.jsonl", name="sms")
    limited = RateLimitedChannel(outbox, per_second=20, burst=4, clock=lambda: 0.0, sleep=record)
    threads = [
        threading.Thread(target=lambda w=w: [limited.send(_sms(f"w{w}-{i}")) for i in range(10)])
        for w in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == pytest.approx([k / 20 for k in range(1, 37)])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"per_second": 0, "burst": 1}, "`per_second` must be a positive rate, got 0"),
        ({"per_second": 1, "burst": 0}, "`burst` must be at least 1, got 0"),
    ],
)
def test_bad_rate_settings_are_named(tmp_path: Path, kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        RateLimitedChannel(FileOutbox(tmp_path / "o.jsonl", name="o"), **kwargs)  # type: ignore[arg-type]


def test_one_failure_in_a_batch_stops_nothing_and_resends_nothing(
    provider: FakeProvider, sms: HttpProviderChannel
) -> None:
    provider.refuse.add("+10000000004")
    messages = [_sms(f"d-{i}", to=f"+1000000000{i}") for i in range(10)]
    retrying = RetryingChannel(sms, sleep=lambda _: None)
    results = send_batch(retrying, messages)
    assert [type(r) for r in results] == [Receipt] * 4 + [SendFailed] + [Receipt] * 5
    failed = results[4]
    assert isinstance(failed, SendFailed)
    assert (failed.message_id, failed.transient) == ("d-4", False)
    assert [r.message_id for r in results] == [f"d-{i}" for i in range(10)]
    # Every message was sent exactly once, in order; the nine others were delivered once.
    assert [r.json["message_id"] for r in provider.requests] == [f"d-{i}" for i in range(10)]
    assert sorted(provider.delivered) == [f"d-{i}" for i in range(10) if i != 4]
