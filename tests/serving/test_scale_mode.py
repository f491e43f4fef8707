"""Several API worker processes sharing state: `nudge serve --workers 2` for real.

Scale mode runs against the real Redis and Postgres servers, under a key prefix
and schema of this module's own that are dropped afterwards; the demo run's
state supplies the Feast online store and the MLflow champion. Each check
talks to chosen workers through connections pinned to them (see
multiworker_support), so "another worker" really is another process.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import yaml
from demo_support import DemoRun
from multiworker_support import (
    WorkerConnection,
    close_all,
    connect_to_workers,
    drop_scale_state,
    update_count,
    wait_until,
)

from decisioning import LinearThompson
from decisioning.contact_store import ChannelState, ContactProfile
from features import EventLog
from serving.api_process import ApiProcess, free_port
from serving.json_client import JsonResponse
from serving.settings import Settings
from serving.wiring import Stores, open_stores, policy_state_key

pytestmark = pytest.mark.slow

WORKERS = 2
EMAIL_CAP = 2
# No quiet hours and one "now" slot, so that what is eligible does not depend on the clock.
SCALE_CONFIG = {
    "channels": {"email": {"cost": 0.0}, "sms": {"cost": 0.05}},
    "messages": {
        "mens": {"channels": ["email", "sms"], "model_arm": "mens_email"},
        "womens": {"channels": ["email"], "model_arm": "womens_email"},
    },
    "control_arm": "no_email",
    "slots": ["now"],
    "caps": [{"channel": "email", "limit": EMAIL_CAP, "window": "7d"}],
    "holdout": {"percent": 0, "salt": "scale-tests"},
    "exploration": 0.1,
    "rewards": {"default": {"attribution_window": "72h", "conversions": {"visit": 1.0}}},
}
MENS_AND_WOMENS = [{"message": "mens"}, {"message": "womens"}]
EMAIL_ONLY = [{"message": "mens", "channels": ["email"]}, {"message": "womens"}]
LEARNING_CUSTOMERS = slice(0, 200)
RACED_CUSTOMER = 200
IDEMPOTENT_CUSTOMER = 201
EMBEDDED_CUSTOMERS = slice(300, 350)
SYNC_DEADLINE_S = 20.0


def customers_of(demo_run: DemoRun) -> list[str]:
    """Customers the Feast online store knows, in the demo's order."""
    decisions = EventLog(demo_run.settings.events_dir).read("decisions")
    return [str(c) for c in decisions["customer_id"]]


def server_settings(
    demo_run: DemoRun, root: Path, storage: str, key_prefix: str = "nudge"
) -> Settings:
    """Settings over a copy of the demo's state, so the demo's own evidence stays untouched."""
    state_dir = root / "state"
    shutil.copytree(demo_run.settings.state_dir, state_dir)
    config = root / "decisions.yaml"
    config.write_text(yaml.safe_dump(SCALE_CONFIG), encoding="utf-8")
    return demo_run.settings.model_copy(
        update={
            "state_dir": state_dir,
            "decision_config": config,
            "port": free_port(),
            "storage": storage,
            "key_prefix": key_prefix,
            "workers": WORKERS,
            "sync_interval": 0.2,
        }
    )


@pytest.fixture(scope="module")
def customers(demo_run: DemoRun) -> list[str]:
    return customers_of(demo_run)


@pytest.fixture(scope="module")
def scale_settings(
    demo_run: DemoRun, customers: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    settings = server_settings(
        demo_run,
        tmp_path_factory.mktemp("scale"),
        "scale",
        key_prefix=f"nudge_t_{uuid.uuid4().hex[:8]}",
    )
    try:
        stores = open_stores(settings)
        try:
            email = ChannelState("opted_in", reachable=True)
            stores.contacts.load_profiles(
                ContactProfile(c, {"email": email}) for c in customers[: IDEMPOTENT_CUSTOMER + 1]
            )
        finally:
            stores.close()
        yield settings
    finally:
        drop_scale_state(settings)


@pytest.fixture(scope="module")
def scale_api(scale_settings: Settings) -> Iterator[ApiProcess]:
    # Stopped before scale_settings drops the state: workers publish theirs on the way out.
    with ApiProcess(scale_settings) as api:
        yield api


@pytest.fixture
def scale_stores(scale_settings: Settings) -> Iterator[Stores]:
    """The same Redis and Postgres stores the workers use, opened by the test."""
    stores = open_stores(scale_settings)
    yield stores
    stores.close()


@pytest.fixture
def pinned(scale_api: ApiProcess) -> Iterator[dict[str, list[WorkerConnection]]]:
    """Eight connections to each worker: enough for the cap race, one each for the rest."""
    settings = scale_api.settings
    connections = connect_to_workers(settings.host, settings.port, WORKERS, per_worker=8)
    yield connections
    close_all(connections)


def rows_for(settings: Settings, customer_ids: list[str]) -> list[str]:
    """The decision ids that Postgres holds for these customers."""
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        rows = conn.execute(
            f'SELECT decision_id FROM "{settings.key_prefix}".decisions '
            "WHERE customer_id = ANY(%s)",
            (customer_ids,),
        ).fetchall()
    return [str(row[0]) for row in rows]


def decide_and_visit(connection: WorkerConnection, customer_id: str) -> tuple[str, bool]:
    """One decision and a visit after it, on one worker; the decision id and whether it learned."""
    decided = connection.post(
        "/v1/decide", {"customer_id": customer_id, "candidates": MENS_AND_WOMENS}
    )
    assert decided.status == 200, decided.text
    decision_id = str(decided.json()["decision_id"])
    outcome = connection.post(
        "/v1/outcomes",
        {
            "decision_id": decision_id,
            "event": "visit",
            "occurred_at": datetime.now(UTC).isoformat(),
        },
    )
    assert outcome.status == 202, outcome.text
    return decision_id, bool(outcome.json()["learned"])


def test_embedded_workers_share_learning_through_sqlite(
    demo_run: DemoRun, customers: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = server_settings(demo_run, tmp_path_factory.mktemp("embedded"), "embedded")
    with ApiProcess(settings):
        pinned = connect_to_workers(settings.host, settings.port, WORKERS)
        try:
            first, second = (connections[0] for connections in pinned.values())
            assert first.health()["storage"] == "embedded"
            # The demo's own learning is in the copied state: count from there.
            before = update_count(first.health()["policy_version"])
            wait_until(
                lambda: update_count(second.health()["policy_version"]) == before,
                SYNC_DEADLINE_S,
                "both workers starting from the same state",
            )
            group = customers[EMBEDDED_CUSTOMERS]
            for i, customer in enumerate(group):
                _, learned = decide_and_visit(first if i % 5 < 3 else second, customer)
                assert learned
            # Two updates each: the decision as "no visit yet", then its visit.
            expected = before + 2 * len(group)
            wait_until(
                lambda: all(
                    update_count(c.health()["policy_version"]) == expected for c in (first, second)
                ),
                SYNC_DEADLINE_S,
                f"both embedded workers at +{expected}",
            )
        finally:
            close_all(pinned)


def test_both_workers_answer_and_use_the_scale_stores(
    pinned: dict[str, list[WorkerConnection]],
) -> None:
    assert len(pinned) == WORKERS
    for connections in pinned.values():
        health = connections[0].health()
        assert health["storage"] == "scale"
        assert health["status"] == "ok"


def test_workers_learn_from_each_others_outcomes(
    scale_api: ApiProcess,
    pinned: dict[str, list[WorkerConnection]],
    customers: list[str],
    scale_stores: Stores,
) -> None:
    first, second = (connections[0] for connections in pinned.values())
    before = update_count(first.health()["policy_version"])
    # Unequal shares, so that neither worker's own count could pass for the total.
    shares = {first.worker_id: 0, second.worker_id: 0}
    decision_ids = []
    for i, customer in enumerate(customers[LEARNING_CUSTOMERS]):
        connection = second if i % 5 in (1, 3) else first
        decision_id, learned = decide_and_visit(connection, customer)
        assert learned
        decision_ids.append(decision_id)
        shares[connection.worker_id] += 1
    assert shares == {first.worker_id: 120, second.worker_id: 80}
    # Two updates each: the decision as "no visit yet", then its visit.
    expected = before + 2 * 200

    def every_worker_counts_every_update() -> bool:
        return all(update_count(c.health()["policy_version"]) == expected for c in (first, second))

    wait_until(every_worker_counts_every_update, SYNC_DEADLINE_S, f"both workers at +{expected}")
    # Each worker keeps its own share in Redis, under its own field.
    health = first.health()
    key = policy_state_key(scale_api.settings, health["model_name"], health["model_version"])
    published = scale_stores.state.collect(key)
    for worker, share in shares.items():
        policy = LinearThompson()
        policy.absorb([published[worker]])
        assert policy.n_updates_ == 2 * share, worker
    # Every decision is one row in Postgres, whichever worker made it.
    assert sorted(rows_for(scale_api.settings, customers[LEARNING_CUSTOMERS])) == sorted(
        decision_ids
    )


def test_the_email_cap_holds_across_worker_processes(
    scale_api: ApiProcess,
    pinned: dict[str, list[WorkerConnection]],
    customers: list[str],
    scale_stores: Stores,
) -> None:
    customer = customers[RACED_CUSTOMER]
    connections = [c for worker in pinned.values() for c in worker]
    assert len(connections) == 16
    body = {"customer_id": customer, "candidates": EMAIL_ONLY, "allow_no_send": False}
    start = threading.Barrier(len(connections))

    def race(connection: WorkerConnection) -> JsonResponse:
        start.wait()
        return connection.post("/v1/decide", body)

    with ThreadPoolExecutor(len(connections)) as pool:
        responses = list(pool.map(race, connections))
    assert Counter(r.status for r in responses) == {200: EMAIL_CAP, 409: 16 - EMAIL_CAP}
    for response in responses:
        if response.status == 409:
            assert "frequency_cap" in response.text
    sent = {str(r.json()["decision_id"]) for r in responses if r.status == 200}
    assert {r.json()["action"]["channel"] for r in responses if r.status == 200} == {"email"}
    assert {s.decision_id for s in scale_stores.contacts.sends(customer)} == sent
    assert {s.channel for s in scale_stores.contacts.sends(customer)} == {"email"}
    assert sorted(rows_for(scale_api.settings, [customer])) == sorted(sent)


def test_an_idempotency_key_holds_across_workers(
    scale_api: ApiProcess,
    pinned: dict[str, list[WorkerConnection]],
    customers: list[str],
) -> None:
    customer = customers[IDEMPOTENT_CUSTOMER]
    key = f"scale-test-{uuid.uuid4().hex}"
    body = {"customer_id": customer, "candidates": MENS_AND_WOMENS, "idempotency_key": key}
    first, second = (connections[0] for connections in pinned.values())
    answers = [first.post("/v1/decide", body), second.post("/v1/decide", body)]
    assert [a.status for a in answers] == [200, 200], [a.text for a in answers]
    assert answers[0].json() == answers[1].json()
    assert rows_for(scale_api.settings, [customer]) == [answers[0].json()["decision_id"]]
    # Both answers came from the worker each connection was pinned to, and both
    # workers count the one shared log.
    health = [first.health(), second.health()]
    assert health[0]["worker_id"] != health[1]["worker_id"]
    with psycopg.connect(scale_api.settings.postgres_dsn, autocommit=True) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{scale_api.settings.key_prefix}".decisions')
        logged = row.fetchone()
    assert logged is not None
    assert [h["decisions_logged"] for h in health] == [logged[0], logged[0]]
