"""The HTTP provider and webhook channels against a real HTTP server on loopback."""

from __future__ import annotations

import json
import time

import pytest
from loopback_servers import Answer, FakeProvider, free_port

from channels import (
    HttpProviderChannel,
    OutboundMessage,
    SendFailed,
    WebhookChannel,
    sign_payload,
    verify_signature,
)
from features.errors import InvalidRequest

SMS = OutboundMessage(
    "d-9",
    "c-3",
    "sms",
    "+33612345678",
    "Your cart is waiting",
    metadata={"journey": "cart", "step": "2"},
)


def test_the_provider_gets_the_json_body_and_headers(provider: FakeProvider) -> None:
    channel = HttpProviderChannel(f"{provider.url}/sms", name="sms", token="tok-1")
    receipt = channel.send(SMS)
    channel.close()
    (request,) = provider.requests
    assert request.path == "/sms"
    assert request.json == {
        "message_id": "d-9",
        "to": "+33612345678",
        "body": "Your cart is waiting",
        "subject": None,
        "metadata": {"journey": "cart", "step": "2"},
    }
    assert request.headers["idempotency-key"] == "d-9"
    assert request.headers["authorization"] == "Bearer tok-1"
    assert request.headers["content-type"] == "application/json"
    assert receipt.provider_id == "prov-d-9"


def test_no_token_means_no_authorization_header(provider: FakeProvider) -> None:
    channel = HttpProviderChannel(f"{provider.url}/push", name="push")
    channel.send(SMS)
    channel.close()
    assert "authorization" not in provider.requests[0].headers


@pytest.mark.parametrize(
    ("answer", "transient", "retry_after"),
    [
        (Answer(429, {"Retry-After": "7"}), True, 7.0),
        (Answer(503), True, None),
        (Answer(500, {"Retry-After": "1.5"}), True, 1.5),
        (Answer(400), False, None),
        (Answer(401), False, None),
        (Answer(404), False, None),
        (Answer(302, {"Location": "http://elsewhere/"}), False, None),
    ],
)
def test_status_mapping(
    provider: FakeProvider, answer: Answer, transient: bool, retry_after: float | None
) -> None:
    provider.plan.append(answer)
    channel = HttpProviderChannel(f"{provider.url}/sms", name="sms")
    with pytest.raises(SendFailed, match=f"provider answered {answer.status}") as failed:
        channel.send(SMS)
    channel.close()
    assert (failed.value.transient, failed.value.retry_after) == (transient, retry_after)


def test_a_slow_provider_times_out_transiently(provider: FakeProvider) -> None:
    provider.plan.append(Answer(200, delay=0.5))
    channel = HttpProviderChannel(f"{provider.url}/sms", name="sms", timeout=0.1)
    started = time.monotonic()
    with pytest.raises(SendFailed, match="timed out") as failed:
        channel.send(SMS)
    assert time.monotonic() - started < 0.45
    assert failed.value.transient is True
    channel.close()


def test_no_provider_listening_is_transient() -> None:
    channel = HttpProviderChannel(f"http://127.0.0.1:{free_port()}/sms", name="sms")
    with pytest.raises(SendFailed, match="cannot reach") as failed:
        channel.send(SMS)
    assert failed.value.transient is True
    channel.close()


def test_the_webhook_posts_the_whole_message_signed(provider: FakeProvider) -> None:
    channel = WebhookChannel(f"{provider.url}/hook", secret="hook-secret", clock=lambda: 1e9)
    message = OutboundMessage(
        "d-7", "c-1", "webhook", "", "text", subject="s", body_html="<p>h</p>",
        headers={"X-A": "1"}, metadata={"journey": "j"},
    )  # fmt: skip
    channel.send(message)
    channel.close()
    (request,) = provider.requests
    assert request.json == {
        "message_id": "d-7",
        "customer_id": "c-1",
        "channel": "webhook",
        "to": "",
        "subject": "s",
        "body_text": "text",
        "body_html": "<p>h</p>",
        "headers": {"X-A": "1"},
        "metadata": {"journey": "j"},
    }
    assert request.headers["x-nudge-timestamp"] == "1000000000"
    assert request.headers["x-nudge-signature"] == sign_payload(
        "hook-secret", 1_000_000_000, request.body
    )
    verify_signature(
        "hook-secret", "1000000000", request.body, request.headers["x-nudge-signature"], now=1e9
    )
    tampered = json.dumps({**request.json, "to": "attacker"}).encode()
    with pytest.raises(InvalidRequest, match="`X-Nudge-Signature` must be"):
        verify_signature(
            "hook-secret", "1000000000", tampered, request.headers["x-nudge-signature"], now=1e9
        )


def test_the_webhook_needs_a_secret() -> None:
    with pytest.raises(InvalidRequest, match="`secret` must be a non-empty string"):
        WebhookChannel("http://127.0.0.1:9/hook", secret="")


def test_text_that_is_not_utf8_fails_permanently_before_any_request(
    provider: FakeProvider,
) -> None:
    channel = HttpProviderChannel(f"{provider.url}/sms", name="sms")
    with pytest.raises(SendFailed, match="not UTF-8") as failed:
        channel.send(OutboundMessage("d-1", "c", "sms", "+1", "lone surrogate \ud800"))
    channel.close()
    assert failed.value.transient is False
    assert provider.requests == []
