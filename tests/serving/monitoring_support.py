"""A small real Nudge for the monitoring tests: a DecisionEngine over SQLite stores, and a
webhook receiver (not a test module).

Only the feature source and the offline model are stand-ins, small classes that
keep their protocols; the decision log, policy state and contact stores are the
real SQLite ones, filled through the engine's own decide / record_outcome.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from decisioning import (
    CandidateMessage,
    Decision,
    DecisionEngine,
    DecisionRequest,
    SQLiteDecisionLog,
    SQLitePolicyStateStore,
    UniformRandom,
)
from decisioning.config import DecisionConfig, parse_decision_config
from decisioning.contact_store import ChannelState, ContactProfile
from decisioning.sqlite_contact import SQLiteContactStore
from features import FeatureRow, FeatureValue
from serving.wiring import Runtime

START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
FEATURES = ("recency", "channel")


def config_document(holdout: float = 0.0) -> dict[str, Any]:
    """Email and SMS, no caps or quiet hours: every decision can send."""
    return {
        "channels": {"email": {"cost": 0.01}, "sms": {"cost": 0.05}},
        "messages": {
            "welcome": {"channels": ["email", "sms"], "model_arm": "welcome"},
            "news": {"channels": ["email"]},
        },
        "control_arm": "none",
        "slots": ["now"],
        "default_time_zone": "UTC",
        "holdout": {"percent": holdout, "salt": "monitoring-tests"},
        "exploration": 0.1,
        "rewards": {
            "default": {
                "attribution_window": "24h",
                "conversions": {"conversion": 1.0},
                "penalties": {"unsubscribe": 1.0},
            }
        },
    }


def monitoring_config(holdout: float = 0.0) -> DecisionConfig:
    return parse_decision_config(config_document(holdout))


class RowFeatures:
    """A FeatureSource over a dict that tests may change between decisions."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, FeatureValue]] = {}

    def get(self, customer_id: str) -> FeatureRow:
        stored = self.rows.get(customer_id, {})
        values = {name: stored.get(name) for name in FEATURES}
        missing = tuple(name for name in FEATURES if values[name] is None)
        return FeatureRow(customer_id, values, missing)


class RecencyModel:
    """A PriorModel whose "welcome" probability falls with recency, so scores follow inputs."""

    actions = ("welcome", "none")

    def predict_one(self, features: Mapping[str, FeatureValue]) -> dict[str, float]:
        recency = features.get("recency")
        r = float(recency) if isinstance(recency, int | float) else 50.0
        return {"welcome": min(max(0.5 - r / 200, 0.01), 0.99), "none": 0.05}


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    """An engine over real SQLite stores in ``state_dir``, with a clock the test moves."""

    state_dir: Path
    holdout: float = 0.0
    clock: Clock = field(default_factory=Clock)
    features: RowFeatures = field(default_factory=RowFeatures)
    engine: DecisionEngine = field(init=False)

    def __post_init__(self) -> None:
        self.log = SQLiteDecisionLog(self.state_dir / "decisions.db")
        self.state = SQLitePolicyStateStore(self.state_dir / "decisions.db")
        self.contacts = SQLiteContactStore(self.state_dir / "contacts.db")
        self.engine = self._engine()

    def _engine(self) -> DecisionEngine:
        return DecisionEngine(
            config=monitoring_config(self.holdout),
            features=self.features,
            model=RecencyModel(),
            model_version="1",
            policy=UniformRandom(seed=0),
            log=self.log,
            state=self.state,
            contacts=self.contacts,
            clock=self.clock,
            seed=0,
        )

    def set_holdout(self, percent: float) -> None:
        """Restart the engine with another holdout share (it records the change)."""
        self.holdout = percent
        self.engine = self._engine()

    def runtime(self) -> Runtime:
        return Runtime(engine=self.engine, model_name="test-model", model_version="1")

    def customers(self, ids: list[str], **features: list[FeatureValue]) -> None:
        """Opt ``ids`` in on every channel and give them features (lists aligned with ids)."""
        every = ChannelState(consent="opted_in", reachable=True)
        self.contacts.load_profiles(ContactProfile(c, {"email": every, "sms": every}) for c in ids)
        for i, customer in enumerate(ids):
            self.features.rows[customer] = {name: values[i] for name, values in features.items()}

    def decide(
        self,
        customer: str,
        *,
        mandatory: bool = False,
        message: str = "welcome",
        channels: tuple[str, ...] = ("email",),
    ) -> Decision:
        return self.engine.decide(
            DecisionRequest(
                customer_id=customer,
                candidates=[CandidateMessage(message, channels)],
                allow_no_send=not mandatory,
            )
        )

    def outcome(self, decision: Decision, event: str, after: timedelta = timedelta(0)) -> None:
        """Report ``event`` as happening ``after`` the decision (the clock is there meanwhile)."""
        occurred = decision.decided_at + after
        now, self.clock.now = self.clock.now, max(self.clock.now, occurred)
        try:
            self.engine.record_outcome(decision.decision_id, event=event, occurred_at=occurred)
        finally:
            self.clock.now = now

    def close(self) -> None:
        self.engine.close()
        self.contacts.close()
        self.state.close()
        self.log.close()


@dataclass
class Webhook:
    url: str
    bodies: list[dict[str, Any]]
    status: int


@contextmanager
def webhook_server(status: int = 200) -> Iterator[Webhook]:
    """A real HTTP server on a free local port that keeps every POSTed JSON body."""
    bodies: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(status)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Webhook(f"http://127.0.0.1:{server.server_address[1]}/hook", bodies, status)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def text_server(text: str) -> Iterator[str]:
    """A real HTTP server answering every GET with ``text`` (a /metrics page); yields its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = text.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port_url() -> str:
    """The URL of a local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"
