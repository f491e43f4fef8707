"""Cart events reach the online store through the push source within a second."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from feast_support import NOW, D, H, event, write_tables

from features import NotFound
from features.definitions import BEHAVIOUR_SERVICE, BEHAVIOUR_TTLS, CART_VIEW
from features.feast_repo import FeatureRepo
from features.push import CartPusher, push_cart_event


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> FeatureRepo:
    root = tmp_path_factory.mktemp("push")
    tables = write_tables(root, [NOW - 10 * D, NOW])
    repo = FeatureRepo(root / "state")
    repo.apply(tables.profiles, tables.behaviour)
    repo.materialize(NOW)
    return repo


def cart(repo: FeatureRepo, customer: str, now: datetime | None = None) -> tuple[object, ...]:
    clock = (lambda: now) if now is not None else None
    row = repo.online(BEHAVIOUR_SERVICE, clock=clock).get(customer)
    return tuple(row.values[name] for name in ("cart_value", "cart_open", "last_add_to_cart_at"))


def test_a_pushed_add_to_cart_is_read_back_within_a_second(repo: FeatureRepo) -> None:
    pusher = CartPusher(repo)
    online = repo.online(BEHAVIOUR_SERVICE)
    now = datetime.now(UTC)
    started = time.perf_counter()
    assert pusher.push([event("live-1", "live", "add_to_cart", now, cart_value=42.5)]) == 1
    row = online.get("live")
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, elapsed
    assert (row.values["cart_value"], row.values["cart_open"]) == (42.5, 1)
    assert row.values["last_add_to_cart_at"] == int(now.timestamp())
    # Only the cart view is pushed: the snapshot views know nothing of this customer.
    assert row.values["purchases_365d"] is None


def test_a_push_builds_on_the_materialised_cart(repo: FeatureRepo) -> None:
    assert cart(repo, "c1", NOW) == (25.0, 1, int((NOW - 2 * H).timestamp()))
    pusher = CartPusher(repo, clock=lambda: NOW)
    # Checkout without a value keeps the open cart's value; the purchase closes it.
    pusher.push([event("ck", "c1", "checkout_started", NOW + H)])
    assert cart(repo, "c1", NOW + H) == (25.0, 1, int((NOW - 2 * H).timestamp()))
    pusher.push([event("buy", "c1", "purchase", NOW + 2 * H, value=25.0)])
    assert cart(repo, "c1", NOW + 2 * H) == (0.0, 0, int((NOW - 2 * H).timestamp()))


def test_an_expired_cart_is_not_built_on(repo: FeatureRepo) -> None:
    later = NOW + BEHAVIOUR_TTLS[CART_VIEW] + D
    assert cart(repo, "c2", later) == (None, None, None)  # expired, so missing
    # c2's materialised cart is closed; a cart a TTL older is treated as none at all,
    # so an add without a value opens a cart of unknown value.
    CartPusher(repo, clock=lambda: later).push([event("a9", "c2", "add_to_cart", later)])
    assert cart(repo, "c2", later) == (None, 1, int(later.timestamp()))


def test_a_batch_pushes_each_customer_once_in_event_order(repo: FeatureRepo) -> None:
    at = NOW + 3 * H
    events = [
        event("b3", "b1", "purchase", at + 2 * H),
        event("b1", "b1", "add_to_cart", at, cart_value=10.0),
        event("b2", "b1", "add_to_cart", at + H, cart_value=30.0),
        event("x1", "b2", "page_view", at),
        event("b4", "b3", "checkout_started", at, cart_value=7.0),
    ]
    assert CartPusher(repo, clock=lambda: at).push(events) == 2
    assert cart(repo, "b1", at + 2 * H) == (0.0, 0, int((at + H).timestamp()))
    assert cart(repo, "b3", at) == (7.0, 1, None)
    assert cart(repo, "b2", at) == (None, None, None)


def test_only_cart_events_are_pushed(repo: FeatureRepo) -> None:
    assert not push_cart_event(repo, event("pv", "q1", "page_view", NOW))
    assert CartPusher(repo).push([]) == 0
    assert push_cart_event(repo, event("q", "q1", "add_to_cart", NOW, cart_value=1.0))


def test_pushes_from_several_threads_all_land(repo: FeatureRepo) -> None:
    pusher = CartPusher(repo, clock=lambda: NOW)
    customers = [f"t{n}" for n in range(20)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(
            pool.map(
                lambda c: pusher.push([event(f"e-{c}", c, "add_to_cart", NOW, cart_value=3.0)]),
                customers,
            )
        )
    rows = repo.online(BEHAVIOUR_SERVICE, clock=lambda: NOW).get_many(customers)
    assert [row.values["cart_value"] for row in rows] == [3.0] * 20


def test_materialising_an_older_snapshot_keeps_the_newer_push(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("push-order")
    tables = write_tables(root, [NOW - D, NOW])
    repo = FeatureRepo(root / "state")
    repo.apply(tables.profiles, tables.behaviour)
    repo.materialize(NOW - D)
    CartPusher(repo, clock=lambda: NOW).push(
        [event("late", "c1", "add_to_cart", NOW + H, cart_value=60.0)]
    )
    # The NOW snapshot (cart 25) is older than the push: it must not replace it...
    repo.materialize_incremental(NOW + 2 * H)
    assert cart(repo, "c1", NOW + 2 * H)[:2] == (60.0, 1)
    # ...while the views without pushes took the snapshot, and c2's cart did too.
    row = repo.online(BEHAVIOUR_SERVICE, clock=lambda: NOW).get("c2")
    assert row.values["email_sent_7d"] == 1
    assert row.values["cart_open"] is None


def test_a_repo_without_the_behaviour_views_says_so(tmp_path: Path) -> None:
    tables = write_tables(tmp_path, [NOW])
    repo = FeatureRepo(tmp_path / "state")
    repo.apply(tables.profiles)
    with pytest.raises(NotFound, match=r"feature view 'cart_state' not found"):
        CartPusher(repo)
