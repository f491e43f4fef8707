"""Cart abandonment for 1,000 customers, end to end, with the runner killed mid-run.

Real processes and real servers: the decision API (``nudge serve`` over a copy of
the demo's state: Feast, the MLflow champion, SQLite), the journey runner
(``nudge journeys run --api``) as its own process, an SMTP server and an SMS
provider on loopback. Events go in through ``POST /v1/events``. The runner is
killed with SIGKILL after about a third of the first messages went out, the
customers who buy meanwhile post their purchase, and a new runner finishes the job.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from aiosmtpd.controller import Controller
from demo_support import DemoRun
from loopback_servers import FakeProvider, Inbox, free_port

from decisioning.sqlite_log import SQLiteDecisionLog
from features.sql import SQLiteDatabase
from journeys.store import JourneyStore
from serving.api_process import ApiProcess
from serving.journeys_command import journey_status
from serving.json_client import JsonClient
from serving.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CUSTOMERS = 1_000
# Around the globe, so that whenever the test runs some customers are in their quiet hours.
ZONES = (
    "Pacific/Honolulu",
    "America/Los_Angeles",
    "America/New_York",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
)
QUIET_START, QUIET_END = 21, 8

DECISIONS: dict[str, Any] = {
    "channels": {"email": {"cost": 0.01}, "sms": {"cost": 0.05}},
    "messages": {
        "cart_reminder": {"channels": ["email", "sms"], "model_arm": "womens_email"},
        "discount_10": {"channels": ["email", "sms"], "model_arm": "mens_email"},
    },
    "control_arm": "no_email",
    "slots": ["now"],
    "default_time_zone": "Europe/London",
    "quiet_hours": {"start": f"{QUIET_START}:00", "end": f"0{QUIET_END}:00"},
    "caps": [
        {"channel": "email", "limit": 1, "window": "1d"},
        {"channel": "sms", "limit": 1, "window": "1d"},
        {"limit": 2, "window": "7d"},
    ],
    "holdout": {"percent": 5, "salt": "cart-e2e"},
    "exploration": 0.05,
    "rewards": {
        "default": {"attribution_window": "72h", "conversions": {"purchase": "value"}},
        "cart_abandonment": {
            "attribution_window": "72h",
            "conversions": {"purchase": "value"},
            "penalties": {"unsubscribe": 5.0},
        },
    },
}

# The shipped journey's shape, with its hours made seconds.
JOURNEY = """
journey: cart_abandonment
trigger: {event: add_to_cart, where: {cart_value: {gte: 20}}}
goal: purchase
exit: [{event: unsubscribe}]
steps:
  - {id: settle, wait: 1s}
  - id: first_nudge
    decide: {candidates: [cart_reminder, discount_10]}
  - {id: send_first, send: {}}
  - id: wait_purchase
    wait: {until: purchase, timeout: 4s}
  - id: second_nudge
    decide: {candidates: [{message: discount_10, channels: [sms]}]}
  - {id: send_second, send: {decision: second_nudge}}
"""


class Relay(Inbox):
    """The SMTP server's inbox, and the port it listens on."""

    port = 0


@pytest.fixture(scope="module")
def smtp() -> Iterator[Relay]:
    inbox = Relay()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()


@pytest.fixture(scope="module")
def sms_provider() -> Iterator[FakeProvider]:
    provider = FakeProvider().start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def settings(
    demo_run: DemoRun,
    tmp_path_factory: pytest.TempPathFactory,
    smtp: Relay,
    sms_provider: FakeProvider,
) -> Settings:
    root = tmp_path_factory.mktemp("cart")
    state_dir = root / "state"
    shutil.copytree(demo_run.settings.state_dir, state_dir)
    (root / "decisions.yaml").write_text(yaml.safe_dump(DECISIONS))
    (root / "journeys").mkdir()
    (root / "journeys" / "cart_abandonment.yaml").write_text(JOURNEY)
    channels = {
        "channels": {
            "email": {
                "type": "smtp",
                "host": "127.0.0.1",
                "port": smtp.port,
                "sender": "shop@example.com",
            },
            "sms": {"type": "http", "url": f"{sms_provider.url}/sms"},
        }
    }
    (root / "channels.yaml").write_text(yaml.safe_dump(channels))
    port = free_port()
    return demo_run.settings.model_copy(
        update={
            "state_dir": state_dir,
            "decision_config": root / "decisions.yaml",
            "journeys_dir": root / "journeys",
            "channels_config": root / "channels.yaml",
            "port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "send_lease_s": 2.0,
        }
    )


def _quiet(moment: datetime, zone: str) -> bool:
    hour = moment.astimezone(ZoneInfo(zone)).hour
    return hour >= QUIET_START or hour < QUIET_END


class Runner:
    """``nudge journeys run`` in its own process, as an operator would start it."""

    def __init__(self, settings: Settings, api: str) -> None:
        self.settings, self.api = settings, api
        self.log = settings.state_dir / "runner.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "serving.cli", "journeys", "run", "--api", self.api]
        env = {**os.environ, **self.settings.as_env()}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _wait_for(condition: Any, timeout_s: float, what: str, runner: Runner) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        assert runner.process is None or runner.process.poll() is None, runner.log.read_text()
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; runner log:\n{runner.log.read_text()}")


@pytest.fixture(scope="module")
def run(settings: Settings, smtp: Relay, sms_provider: FakeProvider) -> Iterator[dict[str, Any]]:
    """The whole scenario, once; the tests below each check one promise of it."""
    with ApiProcess(settings) as api:
        client = JsonClient(api.base_url)
        customers = [f"h{n:05d}" for n in range(CUSTOMERS)]
        zones = {c: ZONES[i % len(ZONES)] for i, c in enumerate(customers)}
        for customer in customers:
            response = client.request(
                "PUT",
                f"/v1/customers/{customer}/contact",
                {
                    "channels": {
                        "email": {"consent": "opted_in", "reachable": True},
                        "sms": {"consent": "opted_in", "reachable": True},
                    },
                    "time_zone": zones[customer],
                },
            )
            assert response.status == 200, response.body
        now = datetime.now(UTC)
        events: list[dict[str, Any]] = []
        for customer in customers:
            events.append(
                {
                    "event_id": f"id-{customer}",
                    "customer_id": customer,
                    "type": "identify",
                    "occurred_at": now.isoformat(),
                    "payload": {
                        "email": f"{customer}@example.com",
                        "phone": f"+4477009{customer[1:]}",
                        "first_name": f"Ann {customer}",
                    },
                }
            )
            events.append(
                {
                    "event_id": f"cart-{customer}",
                    "customer_id": customer,
                    "type": "add_to_cart",
                    "occurred_at": now.isoformat(),
                    "payload": {"cart_value": 20.0 + int(customer[1:]) % 80},
                }
            )
        for start in range(0, len(events), 250):
            response = client.post("/v1/events", {"events": events[start : start + 250]})
            assert response.status == 202, response.body
            assert response.json()["accepted"] == 250

        runner = Runner(settings, api.base_url)
        store = JourneyStore(SQLiteDatabase(settings.journeys_db))
        try:
            runner.start()
            _wait_for(
                lambda: len(smtp.received) + len(sms_provider.requests) >= 150,
                120,
                "the first 150 messages",
                runner,
            )
            runner.kill()
            killed_after = len(smtp.received) + len(sms_provider.requests)
            # Meanwhile, every third customer buys.
            bought_at = datetime.now(UTC)
            buyers = customers[::3]
            purchases = [
                {
                    "event_id": f"buy-{c}",
                    "customer_id": c,
                    "type": "purchase",
                    "occurred_at": bought_at.isoformat(),
                    "payload": {"value": 30.0},
                }
                for c in buyers
            ]
            for start in range(0, len(purchases), 250):
                response = client.post("/v1/events", {"events": purchases[start : start + 250]})
                assert response.status == 202
            runner.start()
            _wait_for(
                lambda: store.counts().get("active", 0) == 0 and store.counts().get("goal", 0) > 0,
                240,
                "every customer to finish the journey",
                runner,
            )
        finally:
            runner.stop()
        instances = {c: store.instances_of(c, "cart_abandonment") for c in customers}
        sends = [s for c in customers for i in instances[c] for s in store.sends_of(i.instance_id)]
        counts = store.send_counts()
        store.close()
        print(f"\ncart e2e: killed after {killed_after} messages; sends {counts}")
        yield {
            "customers": customers,
            "zones": zones,
            "buyers": set(buyers),
            "bought_at": bought_at,
            "instances": instances,
            "sends": sends,
            "send_counts": counts,
            "killed_after": killed_after,
        }


def test_the_runner_was_killed_mid_run(run: dict[str, Any]) -> None:
    sent = sum(1 for s in run["sends"] if s.status == "sent")
    assert 150 <= run["killed_after"] < sent


def test_every_customer_entered_once_and_finished(run: dict[str, Any]) -> None:
    statuses = Counter(i.status for instances in run["instances"].values() for i in instances)
    assert all(len(instances) == 1 for instances in run["instances"].values())
    assert statuses["active"] == 0
    assert statuses["goal"] + statuses["completed"] == CUSTOMERS


def test_every_send_arrived_exactly_once(
    run: dict[str, Any], smtp: Relay, sms_provider: FakeProvider
) -> None:
    sent = {s.decision_id: s for s in run["sends"] if s.status == "sent"}
    mail_ids = Counter(str(r.mail["Message-ID"]).strip("<>").split("@")[0] for r in smtp.received)
    sms_ids = Counter(r.headers["idempotency-key"] for r in sms_provider.requests)
    assert set(mail_ids) | set(sms_ids) == set(sent)  # nothing lost, nothing unexpected
    assert set(mail_ids) == {d for d, s in sent.items() if s.channel == "email"}
    # A send found claimed but unconfirmed after the kill went again with its own id
    # (the SMS provider dedupes it by key): it arrived twice if the killed runner had
    # reached the server, once if it died before. Every other message arrived once.
    repeats = sum(n - 1 for n in mail_ids.values()) + sum(n - 1 for n in sms_ids.values())
    assert repeats <= run["send_counts"]["in_doubt"]
    assert len(sms_provider.delivered) == len(sms_ids)


def test_nobody_exceeds_a_cap(run: dict[str, Any]) -> None:
    per_channel = Counter((s.customer_id, s.channel) for s in run["sends"] if s.status == "sent")
    per_customer = Counter(s.customer_id for s in run["sends"] if s.status == "sent")
    assert max(per_channel.values()) == 1  # e-mail 1 a day, SMS 1 a day
    assert max(per_customer.values()) <= 2  # 2 a week in all
    assert any(n == 2 for n in per_customer.values())


def test_nobody_is_contacted_in_their_quiet_hours(run: dict[str, Any]) -> None:
    sent = [s for s in run["sends"] if s.status == "sent"]
    assert sent
    for record in sent:
        assert record.updated_at is not None
        assert not _quiet(record.updated_at, run["zones"][record.customer_id]), record


def test_customers_in_their_quiet_hours_were_decided_no_send(run: dict[str, Any]) -> None:
    first = {
        c: i.state.get("decisions", {}).get("first_nudge") for c, [i] in run["instances"].items()
    }
    undecided = {c for c, d in first.items() if d is None}
    # Only a purchase before the first decision spares a customer the decision.
    assert undecided <= run["buyers"]
    assert all(run["instances"][c][0].status == "goal" for c in undecided)
    asleep = {c for c, d in first.items() if d and "quiet_hours" in d["excluded_rules"]}
    assert asleep  # the zones cover the clock: someone is always asleep
    contacted = {
        s.customer_id for s in run["sends"] if s.status == "sent" and s.step_id == "first_nudge"
    }
    assert not asleep & contacted
    for customer in asleep:
        # Their zone was in its quiet hours while the test ran (an hour's slack each way).
        entered = run["instances"][customer][0].entered_at
        assert any(_quiet(entered + timedelta(hours=h), run["zones"][customer]) for h in (-1, 0, 1))


def test_buyers_left_at_the_goal_and_their_conversions_were_credited(
    run: dict[str, Any], settings: Settings
) -> None:
    log = SQLiteDecisionLog(settings.decision_db)
    credited = 0
    for customer in run["buyers"]:
        [instance] = run["instances"][customer]
        if instance.status != "goal":
            # Bought after the journey had already completed: not a goal exit.
            assert instance.ended_at is not None
            assert instance.ended_at < run["bought_at"]
            continue
        assert instance.end_reason == "goal:purchase"
        for send in (s for s in run["sends"] if s.instance_id == instance.instance_id):
            if send.status == "sent":
                assert log.credited_reward(send.decision_id) == 30.0
                credited += 1
    log.close()
    assert credited > 0
    goal = sum(1 for c in run["buyers"] if run["instances"][c][0].status == "goal")
    assert goal > len(run["buyers"]) // 2


def test_the_holdout_got_nothing(run: dict[str, Any]) -> None:
    holdout = {
        c
        for c, [i] in run["instances"].items()
        if i.state.get("decisions", {}).get("first_nudge", {}).get("group") == "holdout"
    }
    assert 20 <= len(holdout) <= 80  # 5 % of 1,000, give or take
    contacted = {s.customer_id for s in run["sends"]}
    assert not holdout & contacted


def test_the_status_command_counts_what_happened(run: dict[str, Any], settings: Settings) -> None:
    out = io.StringIO()
    status = journey_status(settings, out)
    ended = Counter(i.status for [i] in run["instances"].values())
    assert status["instances"]["cart_abandonment"] == dict(ended)
    sent = Counter(s.channel for s in run["sends"] if s.status == "sent")
    assert {c: row.get("sent", 0) for c, row in status["sends"].items()} == dict(sent)
    assert f"{ended['goal']:>11,}" in out.getvalue()
