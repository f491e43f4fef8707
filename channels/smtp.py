"""E-mail over SMTP, one reused connection, with a Message-ID that a resend repeats.

>>> mail = build_email(
...     OutboundMessage(
...         "d42", "c1", "email", "ann@example.com", "Hi Ann", subject="Hello",
...         body_html="<p>Hi Ann</p>", headers={"List-Unsubscribe": "<https://x/u/t>"},
...     ),
...     sender="shop@example.com",
... )
>>> mail["Message-ID"], mail.get_content_type()
('<d42@nudge>', 'multipart/alternative')
>>> mail["List-Unsubscribe-Post"]
'List-Unsubscribe=One-Click'
"""

from __future__ import annotations

import smtplib
import ssl
import threading
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from channels._recent import RecentReceipts
from channels.types import OutboundMessage, Receipt, SendFailed

__all__ = ["SmtpChannel", "build_email", "message_id_header"]

# Headers the channel owns: a caller's copy would make a second, contradicting header.
_RESERVED = {"from", "to", "subject", "message-id", "date", "content-type", "mime-version"}
# RFC 5322's hard line limit rather than the 78 it recommends: a header word longer than
# the limit cannot be folded, so the default policy RFC 2047-encodes it, and a mail client
# cannot read an encoded List-Unsubscribe URL (a tracked one is well over 78 characters).
_POLICY = SMTP.clone(max_line_length=998)


def message_id_header(message_id: str) -> str:
    """The deterministic Message-ID, so that a resend after a crash is recognisable as one.

    >>> message_id_header("d42")
    '<d42@nudge>'
    """
    return f"<{message_id}@nudge>"


def build_email(message: OutboundMessage, *, sender: str) -> EmailMessage:
    """The MIME message: text only, or multipart/alternative text + html.

    A List-Unsubscribe header gets its RFC 8058 one-click companion unless one is given
    (``compose`` gives one). Raises SendFailed (permanent) for a header that no retry can
    make valid.
    """
    mail = EmailMessage(policy=_POLICY)
    try:
        mail["From"] = sender
        mail["To"] = message.to
        mail["Subject"] = message.subject or ""
        mail["Date"] = format_datetime(datetime.now(UTC))
        mail["Message-ID"] = message_id_header(message.message_id)
        for key, value in message.headers.items():
            if key.lower() in _RESERVED:
                raise ValueError(f"header {key!r} is set by the channel")
            mail[key] = value
        # ``in`` ignores case: a caller's "list-unsubscribe-post" is not doubled either.
        if "List-Unsubscribe" in mail and "List-Unsubscribe-Post" not in mail:
            mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        mail.set_content(message.body_text)
        if message.body_html is not None:
            mail.add_alternative(message.body_html, subtype="html")
    except (ValueError, TypeError, UnicodeError) as err:
        raise SendFailed(
            message.channel, message.message_id, f"cannot build the e-mail ({err})", transient=False
        ) from err
    return mail


class SmtpChannel:
    """Sends e-mail through an SMTP relay (a local MTA, SES, Postmark, ...).

    Connection errors, timeouts and 4xx replies are transient; 5xx replies (a refused
    recipient, a rejected login) are permanent. One connection is kept open across sends
    and reopened after a failure; a lock makes ``send`` safe from several threads (SMTP
    is one conversation at a time).

    >>> channel = SmtpChannel("127.0.0.1", 2525, sender="shop@example.com")
    >>> channel.name
    'email'
    >>> channel.close()
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        name: str = "email",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.starttls = starttls
        self.username = username
        self.timeout = timeout
        self.name = name
        self._password = password
        self._ssl_context = ssl_context
        self._smtp: smtplib.SMTP | None = None
        self._lock = threading.Lock()
        self._recent = RecentReceipts()
        self._closed = False

    def send(self, message: OutboundMessage) -> Receipt:
        already = self._recent.get(message.message_id)
        if already is not None:
            return already
        mail = build_email(message, sender=self.sender)
        with self._lock:
            if self._closed:
                raise SendFailed(
                    self.name, message.message_id, "channel is closed", transient=False
                )
            try:
                smtp = self._connection()
                smtp.send_message(mail, from_addr=self.sender, to_addrs=[message.to])
            except smtplib.SMTPRecipientsRefused as err:
                self._drop()
                code, reply = next(iter(err.recipients.values()))
                raise self._failure(message, code, reply, "recipient refused") from err
            except smtplib.SMTPNotSupportedError as err:
                self._drop()
                raise SendFailed(
                    self.name,
                    message.message_id,
                    f"relay lacks a feature ({err})",
                    transient=False,
                ) from err
            except smtplib.SMTPResponseException as err:
                self._drop()
                raise self._failure(message, err.smtp_code, err.smtp_error, "refused") from err
            except (smtplib.SMTPException, OSError) as err:
                # Disconnects, timeouts and refused connections: the relay may be back soon.
                self._drop()
                raise SendFailed(
                    self.name,
                    message.message_id,
                    f"SMTP connection failed ({err!r})",
                    transient=True,
                ) from err
        receipt = Receipt(
            message.message_id, self.name, message_id_header(message.message_id), datetime.now(UTC)
        )
        self._recent.remember(receipt)
        return receipt

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop(polite=True)

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None:
            # A relay closes idle connections; probing costs one round trip and means a
            # send never has to be retried on a connection that may have taken the DATA.
            try:
                self._smtp.noop()
                return self._smtp
            except (smtplib.SMTPException, OSError):
                self._drop()
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.starttls:
                smtp.starttls(context=self._ssl_context or ssl.create_default_context())
            if self.username is not None:
                smtp.login(self.username, self._password or "")
        except BaseException:
            smtp.close()
            raise
        self._smtp = smtp
        return smtp

    def _drop(self, polite: bool = False) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            if polite:
                smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass
        finally:
            smtp.close()

    def _failure(
        self, message: OutboundMessage, code: int, reply: bytes | str, what: str
    ) -> SendFailed:
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        return SendFailed(
            self.name,
            message.message_id,
            f"{what}: {code} {text}",
            transient=400 <= code < 500,
        )
