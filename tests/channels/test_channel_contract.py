"""One contract, run over every channel against a real server (or a real file).

Each case knows how to build its channel, what a message for it looks like, how to
read back what arrived, and how to provoke a permanent and a transient failure the
way the real world does (a refused recipient, a 400, a 451 greylisting, a 503, ...).
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from loopback_servers import GREYLISTED, REFUSED, FakeProvider, Request

from channels import (
    Channel,
    FileOutbox,
    HttpProviderChannel,
    OutboundMessage,
    SendFailed,
    SmtpChannel,
    WebhookChannel,
    message_id_header,
    verify_signature,
)

SECRET = "webhook-secret"


@dataclass(frozen=True)
class Arrival:
    message_id: str
    body: str
    identity: str
    """What the receiving side dedupes on: the Message-ID header or the Idempotency-Key."""


@dataclass
class Case:
    name: str
    make: Callable[[], Channel]
    to: str
    arrivals: Callable[[], list[Arrival]]
    identity: Callable[[str], str]
    permanent: Callable[[OutboundMessage], OutboundMessage]
    """Arrange for this message to fail for good; returns the message to send."""
    transient: Callable[[OutboundMessage], OutboundMessage]

    def message(self, message_id: str, **changes: object) -> OutboundMessage:
        base = OutboundMessage(
            message_id=message_id,
            customer_id="c-17",
            channel=self.name,
            to=self.to,
            body_text=f"Hello from {message_id}",
            subject="Hello",
            headers={"List-Unsubscribe": "<https://t.example.com/u/x>"},
            metadata={"journey": "welcome", "step": "1"},
        )
        return OutboundMessage(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def _smtp_case(request: pytest.FixtureRequest) -> Case:
    server = request.getfixturevalue("smtp_server")

    def arrivals() -> list[Arrival]:
        return [
            Arrival(
                r.mail["Message-ID"].strip("<>").removesuffix("@nudge"),
                r.mail.get_body(("plain",)).get_content().strip(),
                r.mail["Message-ID"],
            )
            for r in server.inbox.received
        ]

    return Case(
        name="email",
        make=lambda: SmtpChannel(server.host, server.port, sender="shop@example.com", timeout=5),
        to="ann@example.com",
        arrivals=arrivals,
        identity=message_id_header,
        permanent=lambda m: _with_to(m, REFUSED),
        transient=lambda m: _with_to(m, GREYLISTED),
    )


def _http_case(request: pytest.FixtureRequest, name: str, to: str) -> Case:
    provider: FakeProvider = request.getfixturevalue("provider")

    def arrivals() -> list[Arrival]:
        # What the provider accepted (it answered 2xx), once per Idempotency-Key.
        return [_http_arrival(r, "body") for r in provider.delivered.values()]

    def transient(message: OutboundMessage) -> OutboundMessage:
        provider.fail(1, 503)
        return message

    def permanent(message: OutboundMessage) -> OutboundMessage:
        provider.refuse.add(message.to)
        return message

    return Case(
        name=name,
        make=lambda: HttpProviderChannel(f"{provider.url}/{name}", name=name, token="tok"),
        to=to,
        arrivals=arrivals,
        identity=lambda message_id: message_id,
        permanent=permanent,
        transient=transient,
    )


def _webhook_case(request: pytest.FixtureRequest) -> Case:
    provider: FakeProvider = request.getfixturevalue("provider")

    def arrivals() -> list[Arrival]:
        for r in provider.requests:
            # Every request the receiver got must carry a valid signature.
            verify_signature(
                SECRET,
                r.headers["x-nudge-timestamp"],
                r.body,
                r.headers["x-nudge-signature"],
                now=datetime.now(UTC).timestamp(),
            )
        return [_http_arrival(r, "body_text") for r in provider.delivered.values()]

    def transient(message: OutboundMessage) -> OutboundMessage:
        provider.fail(1, 502)
        return message

    def permanent(message: OutboundMessage) -> OutboundMessage:
        provider.fail(1, 410)
        return message

    return Case(
        name="webhook",
        make=lambda: WebhookChannel(f"{provider.url}/hook", secret=SECRET),
        to="",
        arrivals=arrivals,
        identity=lambda message_id: message_id,
        permanent=permanent,
        transient=transient,
    )


def _file_case(request: pytest.FixtureRequest) -> Case:
    folder: Path = request.getfixturevalue("tmp_path") / "outbox"
    path = folder / "email.jsonl"

    def arrivals() -> list[Arrival]:
        if not path.exists():
            return []
        records = [json.loads(line) for line in path.read_text().splitlines()]
        return [Arrival(r["message_id"], r["body_text"], r["message_id"]) for r in records]

    def permanent(message: OutboundMessage) -> OutboundMessage:
        # Something that is not a file where the outbox should be: no retry fixes that.
        path.unlink(missing_ok=True)
        path.mkdir()
        return message

    def transient(message: OutboundMessage) -> OutboundMessage:
        # The outbox's volume is gone for now (unmounted): it may come back.
        shutil.rmtree(folder)
        return message

    return Case(
        name="outbox",
        make=lambda: FileOutbox(path, name="outbox"),
        to="ann@example.com",
        arrivals=arrivals,
        identity=lambda message_id: message_id,
        permanent=permanent,
        transient=transient,
    )


def _with_to(message: OutboundMessage, to: str) -> OutboundMessage:
    return OutboundMessage(**{**message.__dict__, "to": to})


def _http_arrival(request: Request, body_key: str) -> Arrival:
    payload = request.json
    return Arrival(payload["message_id"], payload[body_key], request.headers["idempotency-key"])


CASES: dict[str, Callable[[pytest.FixtureRequest], Case]] = {
    "smtp": _smtp_case,
    "http_sms": lambda request: _http_case(request, "sms", "+33612345678"),
    "http_push": lambda request: _http_case(request, "push", "fcm-token-abc123"),
    "webhook": _webhook_case,
    "file_outbox": _file_case,
}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param](request)


@pytest.fixture
def channel(case: Case) -> Iterator[Channel]:
    made = case.make()
    yield made
    made.close()


def test_a_sent_message_arrives_with_its_body_and_id(case: Case, channel: Channel) -> None:
    before = datetime.now(UTC)
    receipt = channel.send(case.message("d-001"))
    assert (receipt.message_id, receipt.channel) == ("d-001", case.name)
    assert receipt.accepted_at.tzinfo is not None
    assert before <= receipt.accepted_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert case.arrivals() == [Arrival("d-001", "Hello from d-001", case.identity("d-001"))]


def test_sending_one_message_id_twice_is_one_send(case: Case, channel: Channel) -> None:
    first = channel.send(case.message("d-002"))
    second = channel.send(case.message("d-002"))
    assert second == first
    assert [a.message_id for a in case.arrivals()] == ["d-002"]


def test_a_resend_after_a_restart_is_recognisable_as_the_same_message(case: Case) -> None:
    channel = case.make()
    channel.send(case.message("d-003"))
    channel.close()
    restarted = case.make()
    try:
        restarted.send(case.message("d-003"))
    finally:
        restarted.close()
    arrivals = case.arrivals()
    assert {(a.message_id, a.identity) for a in arrivals} == {("d-003", case.identity("d-003"))}
    # An SMTP relay delivers both (the reader dedupes on Message-ID); the providers, the
    # webhook receiver (on Idempotency-Key) and the outbox (on its file) keep one.
    assert len(arrivals) == (2 if case.name == "email" else 1)


def test_a_resend_after_a_restart_reaches_the_provider_once(
    request: pytest.FixtureRequest,
) -> None:
    # The HTTP provider dedupes on Idempotency-Key, as real providers do.
    sms = _http_case(request, "sms", "+33612345678")
    provider: FakeProvider = request.getfixturevalue("provider")
    for _ in range(2):
        channel = sms.make()
        receipt = channel.send(sms.message("d-004"))
        channel.close()
        assert receipt.provider_id == "prov-d-004"
    assert len(provider.for_key("d-004")) == 2
    assert list(provider.delivered) == ["d-004"]


def test_the_input_message_is_not_mutated(case: Case, channel: Channel) -> None:
    headers = {"List-Unsubscribe": "<https://t.example.com/u/x>"}
    metadata = {"journey": "welcome"}
    message = case.message("d-005", headers=headers, metadata=metadata, body_html="<p>Hi</p>")
    snapshot = copy.deepcopy(message)
    channel.send(message)
    assert message == snapshot
    assert headers == {"List-Unsubscribe": "<https://t.example.com/u/x>"}
    assert metadata == {"journey": "welcome"}


def test_a_permanent_failure_is_not_transient(case: Case, channel: Channel) -> None:
    message = case.permanent(case.message("d-006"))
    with pytest.raises(SendFailed) as failed:
        channel.send(message)
    assert failed.value.transient is False
    assert (failed.value.channel, failed.value.message_id) == (case.name, "d-006")
    assert f"`{case.name}` could not send message d-006" in str(failed.value)


def test_a_transient_failure_is_transient_and_the_channel_recovers(
    case: Case, channel: Channel
) -> None:
    message = case.transient(case.message("d-007"))
    with pytest.raises(SendFailed) as failed:
        channel.send(message)
    assert failed.value.transient is True
    assert "d-007" not in [a.message_id for a in case.arrivals()]
    if case.name == "outbox":
        (Path(str(channel.path)).parent).mkdir()  # type: ignore[attr-defined]
    # The same instance goes on working once the cause is gone (SMTP: a new connection).
    channel.send(case.message("d-008"))
    assert [a.message_id for a in case.arrivals()] == ["d-008"]


def test_close_works_and_a_new_instance_works_after(case: Case) -> None:
    channel = case.make()
    channel.send(case.message("d-009"))
    channel.close()
    channel.close()  # twice is harmless
    with pytest.raises(SendFailed) as failed:
        channel.send(case.message("d-010"))
    assert failed.value.transient is False
    fresh = case.make()
    try:
        fresh.send(case.message("d-011"))
    finally:
        fresh.close()
    assert [a.message_id for a in case.arrivals()] == ["d-009", "d-011"]
