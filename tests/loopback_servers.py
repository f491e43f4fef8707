"""Real servers on loopback for the channel tests: an SMTP relay and an HTTP provider.

Neither replaces anything inside the channels: the channels speak SMTP and HTTP to
them over real sockets, as they would to a relay or an SMS provider.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REFUSED = "refused@example.com"
"""The relay answers 550 (permanent) for this recipient."""
GREYLISTED = "greylisted@example.com"
"""The relay answers 451 (transient) for this recipient."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Received:
    mail: EmailMessage
    peer: tuple[str, int]
    """The client's address: one connection, one peer port."""
    envelope_from: str
    rcpt_tos: list[str]


class Inbox:
    """An aiosmtpd handler that keeps what it accepts and refuses two test recipients."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address == REFUSED:
            return "550 5.1.1 No such user here"
        if address == GREYLISTED:
            return "451 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(mail, EmailMessage)
        with self._lock:
            self.received.append(
                Received(mail, session.peer, envelope.mail_from, list(envelope.rcpt_tos))
            )
        return "250 Message accepted for delivery"

    def by_message_id(self, header: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.mail["Message-ID"] == header]


@dataclass
class SmtpServer:
    host: str
    port: int
    inbox: Inbox
    cert_path: Path | None = None
    """The self-signed certificate a client must trust, for the STARTTLS relay."""


def password_authenticator(user: str, password: str) -> Any:
    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False)

    return authenticate


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files (an EC key: fast to make)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class FakeProvider:
    """An HTTP provider on loopback: records every request and dedupes by Idempotency-Key.

    ``plan`` holds the next answers to give (a 503, a 429 with Retry-After, a 400, a slow
    answer); when it is empty the provider accepts. A request whose JSON ``to`` is in
    ``refuse`` gets a 400, as an invalid number would.
    """

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.delivered: dict[str, Request] = {}
        self.plan: deque[Answer] = deque()
        self.refuse: set[str] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits for the next poll, once per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail(self, times: int, status: int = 503, **headers: str) -> None:
        self.plan.extend(Answer(status, dict(headers)) for _ in range(times))

    def for_key(self, key: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.headers.get("idempotency-key") == key]

    def _answer(self, request: Request) -> tuple[Answer, dict[str, Any]]:
        with self._lock:
            self.requests.append(request)
            if self.plan:
                return self.plan.popleft(), {"error": "planned"}
            if request.json.get("to") in self.refuse:
                return Answer(400), {"error": "invalid recipient"}
            key = request.headers.get("idempotency-key", "")
            duplicate = key in self.delivered
            if not duplicate:
                self.delivered[key] = request
            return Answer(200), {"id": f"prov-{key}", "duplicate": duplicate}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer, payload = provider._answer(Request(self.path, headers, body))
                if answer.delay:
                    time.sleep(answer.delay)
                data = json.dumps(payload).encode()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def client_context(cert_path: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert_path))


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context
