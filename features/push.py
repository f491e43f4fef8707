"""Real-time cart features: each cart event is pushed to the online store as it is stored.

``add_to_cart``, ``checkout_started`` and ``purchase`` change the ``cart_state``
view through Feast's push source ``cart_events`` (online only: the offline
record is the event stream itself, which the daily behaviour snapshots read).
A push writes the whole view row, so the pusher reads the customer's current
cart, folds the event in with :func:`apply_cart_event` (the same rules the
snapshots follow in bulk) and writes the result, stamped with the newest cart
event's time. An event older than the cart it meets (it arrived late) cannot
change the value or the open flag a newer event set, only an earlier
``last_add_to_cart_at``.

Two processes pushing for one customer at the same moment can lose one of the
two updates (read, fold, write is not atomic across processes); the next cart
event or snapshot puts it right.

>>> from datetime import UTC, datetime
>>> at = datetime(2026, 3, 2, 9, tzinfo=UTC)
>>> added = CustomerEvent("e1", "c1", "add_to_cart", at, {"cart_value": 20.0})
>>> cart = apply_cart_event(None, added)
>>> cart.cart_value, cart.cart_open, cart.last_add_to_cart_at
(20.0, 1, 1772442000)
>>> apply_cart_event(cart, CustomerEvent("e2", "c1", "purchase", at, {"value": 20.0})).cart_open
0
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pandas as pd
from feast.errors import FeatureViewNotFoundException

from features.definitions import BEHAVIOUR_TTLS, CART_PUSH_SOURCE, CART_VIEW
from features.errors import NotFound
from features.event_stream import CustomerEvent
from features.feast_online import Clock, read_view
from features.feast_repo import FeatureRepo

__all__ = ["CART_EVENT_TYPES", "CartPusher", "CartState", "apply_cart_event", "push_cart_event"]

CART_EVENT_TYPES = frozenset({"add_to_cart", "checkout_started", "purchase"})
"""The events that change a customer's cart features."""


@dataclass(frozen=True)
class CartState:
    """A customer's cart: the ``cart_state`` view's row and the time it holds for."""

    cart_value: float | None
    cart_open: int
    last_add_to_cart_at: int | None
    updated_at: datetime


def apply_cart_event(state: CartState | None, event: CustomerEvent) -> CartState:
    """``state`` after ``event`` (a cart event; others leave it as it was).

    Adding or starting checkout opens the cart at the event's ``cart_value``
    (without one, the open cart keeps its value); a purchase closes it at 0.
    """
    if event.type not in CART_EVENT_TYPES:
        if state is None:
            raise ValueError(f"{event.type!r} is not a cart event and there is no cart")
        return state
    at = event.occurred_at.astimezone(UTC)
    added = math.floor(at.timestamp()) if event.type == "add_to_cart" else None
    if state is not None and at < state.updated_at:
        # Late: a newer event has set the value and the open flag already.
        if added is not None and (
            state.last_add_to_cart_at is None or added > state.last_add_to_cart_at
        ):
            return replace(state, last_add_to_cart_at=added)
        return state
    last_add = state.last_add_to_cart_at if state is not None else None
    if added is not None:
        last_add = added
    if event.type == "purchase":
        return CartState(0.0, 0, last_add, at)
    value = event.payload.get("cart_value")
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        kept = state.cart_value if state is not None and state.cart_open else None
        return CartState(kept, 1, last_add, at)
    return CartState(float(value), 1, last_add, at)


class CartPusher:
    """Pushes cart events to the online store through a :class:`FeatureRepo`.

    For the events API: call :meth:`push` with the events just stored (any
    types; only cart events are pushed). Safe to share between threads. Needs
    the behaviour views applied (``NotFound`` otherwise).
    """

    def __init__(self, repo: FeatureRepo, *, clock: Clock | None = None) -> None:
        self.repo = repo
        self.clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        store = repo.store
        try:
            self._view = store.get_feature_view(CART_VIEW)
        except FeatureViewNotFoundException:
            raise NotFound("feature view", CART_VIEW) from None
        # What ``store.push(CART_PUSH_SOURCE, frame)`` writes to, resolved once: push
        # itself lists and deserialises every view and service of the registry on
        # each call (measured 180 ms of a 185 ms push here), to write one small row.
        self._views = [
            view
            for view in store.list_feature_views(allow_cache=True)
            if view.stream_source is not None and view.stream_source.name == CART_PUSH_SOURCE
        ]
        self._provider = store._get_provider()

    def push(self, events: Sequence[CustomerEvent]) -> int:
        """Fold ``events`` into their customers' carts and push them; how many carts changed."""
        cart_events = [event for event in events if event.type in CART_EVENT_TYPES]
        if not cart_events:
            return 0
        customers = list(dict.fromkeys(event.customer_id for event in cart_events))
        with self._lock:
            carts = dict(zip(customers, self._current(customers), strict=True))
            # Events folded in the order they happened, so a batch behaves as if sent one by one.
            for event in sorted(cart_events, key=lambda e: e.occurred_at):
                carts[event.customer_id] = apply_cart_event(carts[event.customer_id], event)
            frame = pd.DataFrame(
                {
                    "customer_id": customers,
                    "event_timestamp": pd.to_datetime(
                        [_cart(carts, c).updated_at for c in customers], utc=True
                    ),
                    "cart_value": pd.array(
                        [_cart(carts, c).cart_value for c in customers], dtype="Float64"
                    ).astype("float64"),
                    "cart_open": pd.array([_cart(carts, c).cart_open for c in customers], "Int64"),
                    "last_add_to_cart_at": pd.array(
                        [_cart(carts, c).last_add_to_cart_at for c in customers], "Int64"
                    ),
                }
            )
            for view in self._views:
                self._provider.ingest_df(view, frame)
        return len(customers)

    def _current(self, customers: list[str]) -> list[CartState | None]:
        """Each customer's cart as the online store has it; an expired one counts as none."""
        ttl = BEHAVIOUR_TTLS[CART_VIEW]
        now = self.clock()
        carts: list[CartState | None] = []
        for stamp, values in read_view(self.repo.store, self._view, customers):
            if values is None or stamp is None or values["cart_open"] is None:
                carts.append(None)
                continue
            stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
            if now - stamp > ttl:
                carts.append(None)
                continue
            value, added = values["cart_value"], values["last_add_to_cart_at"]
            carts.append(
                CartState(
                    None if value is None else float(value),
                    int(values["cart_open"]),
                    None if added is None else int(added),
                    stamp,
                )
            )
        return carts


def _cart(carts: dict[str, CartState | None], customer_id: str) -> CartState:
    cart = carts[customer_id]
    assert cart is not None  # every customer here had a cart event folded in
    return cart


def push_cart_event(repo: FeatureRepo, event: CustomerEvent) -> bool:
    """Push one event's change to the customer's cart; False if it is not a cart event."""
    return CartPusher(repo).push([event]) == 1
