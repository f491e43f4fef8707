"""SMTP specifics against a real aiosmtpd relay: MIME shape, headers, TLS, AUTH, threads."""

from __future__ import annotations

import threading

import pytest
from loopback_servers import SmtpServer, client_context, free_port

from channels import (
    OutboundMessage,
    SendFailed,
    SmtpChannel,
    TemplateRenderer,
    TrackingLinks,
    compose,
)


def _message(message_id: str, **changes: object) -> OutboundMessage:
    fields: dict[str, object] = {
        "message_id": message_id,
        "customer_id": "c-1",
        "channel": "email",
        "to": "ann@example.com",
        "body_text": "Hi Ann, 10% off.",
        "subject": "10% off for you",
    }
    return OutboundMessage(**{**fields, **changes})  # type: ignore[arg-type]


def test_html_mail_is_multipart_alternative_with_one_click_unsubscribe(
    smtp_server: SmtpServer,
) -> None:
    channel = SmtpChannel(smtp_server.host, smtp_server.port, sender="Shop <shop@example.com>")
    message = _message(
        "d-1",
        body_html="<p>Hi Ann, <b>10%</b> off.</p>",
        headers={"List-Unsubscribe": "<https://t.example.com/u/tok>", "X-Campaign": "spring"},
    )
    receipt = channel.send(message)
    channel.close()
    (received,) = smtp_server.inbox.received
    mail = received.mail
    assert receipt.provider_id == "<d-1@nudge>" == mail["Message-ID"]
    assert mail.get_content_type() == "multipart/alternative"
    assert mail.get_body(("plain",)).get_content().strip() == "Hi Ann, 10% off."
    assert mail.get_body(("html",)).get_content().strip() == "<p>Hi Ann, <b>10%</b> off.</p>"
    assert (mail["Subject"], mail["From"], mail["To"]) == (
        "10% off for you",
        "Shop <shop@example.com>",
        "ann@example.com",
    )
    assert mail["List-Unsubscribe"] == "<https://t.example.com/u/tok>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["X-Campaign"] == "spring"
    assert received.rcpt_tos == ["ann@example.com"]


def test_a_long_tracked_unsubscribe_url_arrives_as_a_plain_header(
    smtp_server: SmtpServer,
) -> None:
    links = TrackingLinks("tracking-secret", "https://tracking.shop.example.com/nudge/public")
    message = compose(
        TemplateRenderer(),
        links,
        message_id="d-long-unsubscribe-url",
        customer_id="c-1",
        message="welcome",
        channel="email",
        to="ann@example.com",
        variables={"first_name": "Ann"},
    )
    unsubscribe_url = links.unsubscribe_url("d-long-unsubscribe-url")
    assert len(unsubscribe_url) > 100
    channel = SmtpChannel(smtp_server.host, smtp_server.port, sender="shop@example.com")
    channel.send(message)
    channel.close()
    (received,) = smtp_server.inbox.received
    # As it was on the wire: the parsed value would hide an RFC 2047 encoding.
    raw = [value for name, value in received.mail.raw_items() if name == "List-Unsubscribe"]
    assert raw == [f"<{unsubscribe_url}>"]
    assert received.mail["List-Unsubscribe"] == f"<{unsubscribe_url}>"
    # compose gave the one-click header already: the channel does not add a second.
    assert received.mail.get_all("List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]


def test_a_callers_one_click_header_in_any_case_is_not_doubled(smtp_server: SmtpServer) -> None:
    channel = SmtpChannel(smtp_server.host, smtp_server.port, sender="shop@example.com")
    headers = {
        "List-Unsubscribe": "<https://t.example.com/u/tok>",
        "list-unsubscribe-post": "List-Unsubscribe=One-Click",
    }
    channel.send(_message("d-case", headers=headers))
    channel.close()
    (received,) = smtp_server.inbox.received
    assert received.mail.get_all("List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]


def test_text_mail_without_unsubscribe_has_no_one_click_header(smtp_server: SmtpServer) -> None:
    channel = SmtpChannel(smtp_server.host, smtp_server.port, sender="shop@example.com")
    channel.send(_message("d-2"))
    channel.close()
    (received,) = smtp_server.inbox.received
    assert received.mail.get_content_type() == "text/plain"
    assert received.mail["List-Unsubscribe-Post"] is None


def test_a_header_the_channel_owns_is_refused_permanently(smtp_server: SmtpServer) -> None:
    channel = SmtpChannel(smtp_server.host, smtp_server.port, sender="shop@example.com")
    with pytest.raises(SendFailed, match="header 'Message-ID' is set by the channel") as failed:
        channel.send(_message("d-3", headers={"Message-ID": "<other@x>"}))
    assert failed.value.transient is False
    assert smtp_server.inbox.received == []


def test_one_connection_serves_many_sends(smtp_server: SmtpServer) -> None:
    channel = SmtpChannel(smtp_server.host, smtp_server.port, sender="shop@example.com")
    for i in range(3):
        channel.send(_message(f"d-{i}"))
    channel.close()
    peers = {r.peer for r in smtp_server.inbox.received}
    assert len(smtp_server.inbox.received) == 3
    assert len(peers) == 1


def test_a_refused_recipient_drops_the_connection_and_the_next_send_reconnects(
    smtp_server: SmtpServer,
) -> None:
    channel = SmtpChannel(smtp_server.host, smtp_server.port, sender="shop@example.com")
    channel.send(_message("d-1"))
    with pytest.raises(SendFailed, match=r"550 5\.1\.1 No such user"):
        channel.send(_message("d-2", to="refused@example.com"))
    channel.send(_message("d-3"))
    channel.close()
    first, second = smtp_server.inbox.received
    assert first.peer != second.peer


def test_no_relay_listening_is_transient() -> None:
    channel = SmtpChannel("127.0.0.1", free_port(), sender="shop@example.com", timeout=2)
    with pytest.raises(SendFailed, match="SMTP connection failed") as failed:
        channel.send(_message("d-1"))
    assert failed.value.transient is True


def test_starttls_and_auth_against_a_relay_that_requires_both(
    tls_smtp_server: SmtpServer,
) -> None:
    assert tls_smtp_server.cert_path is not None
    channel = SmtpChannel(
        tls_smtp_server.host,
        tls_smtp_server.port,
        sender="shop@example.com",
        starttls=True,
        username="nudge",
        password="s3cret",
        ssl_context=client_context(tls_smtp_server.cert_path),
    )
    channel.send(_message("d-tls"))
    channel.close()
    assert [r.mail["Message-ID"] for r in tls_smtp_server.inbox.received] == ["<d-tls@nudge>"]


def test_a_wrong_password_is_permanent(tls_smtp_server: SmtpServer) -> None:
    assert tls_smtp_server.cert_path is not None
    channel = SmtpChannel(
        tls_smtp_server.host,
        tls_smtp_server.port,
        sender="shop@example.com",
        starttls=True,
        username="nudge",
        password="wrong",
        ssl_context=client_context(tls_smtp_server.cert_path),
    )
    with pytest.raises(SendFailed, match="535") as failed:
        channel.send(_message("d-1"))
    assert failed.value.transient is False
    assert tls_smtp_server.inbox.received == []


def test_without_starttls_a_relay_that_requires_it_refuses(tls_smtp_server: SmtpServer) -> None:
    channel = SmtpChannel(
        tls_smtp_server.host, tls_smtp_server.port, sender="shop@example.com", username="nudge"
    )
    # Before STARTTLS the relay does not even offer AUTH: a configuration error.
    with pytest.raises(SendFailed, match="AUTH extension not supported") as failed:
        channel.send(_message("d-1"))
    assert failed.value.transient is False
    assert tls_smtp_server.inbox.received == []


def test_concurrent_sends_share_the_connection_safely(smtp_server: SmtpServer) -> None:
    channel = SmtpChannel(smtp_server.host, smtp_server.port, sender="shop@example.com")

    def send_five(worker: int) -> None:
        for i in range(5):
            channel.send(_message(f"w{worker}-{i}"))

    threads = [threading.Thread(target=send_five, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    channel.close()
    ids = sorted(r.mail["Message-ID"] for r in smtp_server.inbox.received)
    assert ids == sorted(f"<w{w}-{i}@nudge>" for w in range(6) for i in range(5))
