"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from loopback_servers import (
    FakeProvider,
    Inbox,
    SmtpServer,
    free_port,
    password_authenticator,
    self_signed_certificate,
    server_context,
)

# Set before LightGBM loads: its OpenMP threads otherwise spin on the 2-core CI box.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The whole pipeline on a 6,000-customer sample, run once per test session."""
    from demo_support import run_sample_demo

    run = run_sample_demo(tmp_path_factory.mktemp("demo"))
    print(f"\nsample demo took {run.elapsed_s:.1f} s")
    return run


# Real servers on loopback for the channels and journeys tests. They live here rather
# than in tests/channels/conftest.py: a conftest in a folder sorted before this file
# breaks the doctest collection of this one (both import as `conftest`).
@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield SmtpServer(controller.hostname, controller.port, inbox)
    finally:
        controller.stop()


@pytest.fixture
def tls_smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    """STARTTLS required, then AUTH (user "nudge", password "s3cret") required."""
    cert_path, key_path = self_signed_certificate(tmp_path)
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=server_context(cert_path, key_path),
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=password_authenticator("nudge", "s3cret"),
    )
    controller.start()
    try:
        yield SmtpServer(controller.hostname, controller.port, inbox, cert_path)
    finally:
        controller.stop()


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    server = FakeProvider().start()
    try:
        yield server
    finally:
        server.stop()
