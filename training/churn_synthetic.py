"""A seeded synthetic event history in which some customers stop buying: churn with a truth.

The Hillstrom demo has profiles and one two-week outcome, not a history of
purchases over time, so the churn model's tests and demo need events to learn
from. Each customer buys at their own rate (Poisson) and views pages between
purchases; a share of them lapse at a random moment and stop doing anything
after it, so recency and frequency carry the signal a churn model should find.

>>> from datetime import UTC, datetime
>>> end = datetime(2026, 6, 1, tzinfo=UTC)
>>> events = synthetic_history(50, end=end, days=200, seed=3)
>>> events == synthetic_history(50, end=end, days=200, seed=3)
True
>>> sorted({e.type for e in events}), all(e.occurred_at < end for e in events)
(['page_view', 'purchase'], True)
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from features.errors import InvalidRequest
from features.event_stream import CustomerEvent

__all__ = ["synthetic_history"]


def synthetic_history(
    customers: int,
    *,
    end: datetime,
    days: int = 365,
    lapse_share: float = 0.5,
    seed: int = 0,
) -> list[CustomerEvent]:
    """Purchases and page views of ``customers`` customers over the ``days`` before ``end``.

    ``lapse_share`` of them stop at a uniformly random moment in that period.
    Events are sorted by time; ids are stable for a seed.
    """
    if customers < 1:
        raise InvalidRequest("customers", "must be at least 1", customers)
    if not 0.0 <= lapse_share <= 1.0:
        raise InvalidRequest("lapse_share", "must be in [0, 1]", lapse_share)
    rng = np.random.default_rng(seed)
    start = end - timedelta(days=days)
    events: list[CustomerEvent] = []
    for i in range(customers):
        customer = f"s{i:06d}"
        rate = float(rng.lognormal(mean=np.log(1 / 30), sigma=0.7))  # purchases per day
        joined = float(rng.uniform(0, days * 0.3))
        stops = float(rng.uniform(joined, days)) if rng.random() < lapse_share else float(days)
        for kind, per_day in (("purchase", rate), ("page_view", 3 * rate)):
            n = int(rng.poisson(per_day * (stops - joined)))
            moments = np.sort(rng.uniform(joined, stops, size=n))
            for j, moment in enumerate(moments):
                payload = (
                    {"value": round(float(rng.gamma(2.0, 25.0)), 2), "currency": "EUR"}
                    if kind == "purchase"
                    else {"url": "/"}
                )
                events.append(
                    CustomerEvent(
                        f"{customer}-{kind}-{j}",
                        customer,
                        kind,
                        start + timedelta(days=float(moment)),
                        payload,
                    )
                )
    events.sort(key=lambda event: (event.occurred_at, event.event_id))
    return events
