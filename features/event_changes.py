"""Whether an event whose id is already stored is that event again (a retry) or another one.

A retry is stored once and counts as a duplicate; another event under a used id
is refused, since storing neither silently nor twice would be right.

>>> from datetime import datetime, UTC
>>> at = datetime(2026, 1, 1, tzinfo=UTC)
>>> stored = StoredEvent("e1", "c1", "purchase", at, {"value": 10}, offset=1)
>>> changed_fields(CustomerEvent("e1", "c1", "purchase", at, {"value": 10}), stored)
[]
>>> changed_fields(CustomerEvent("e1", "c2", "purchase", at, {"value": 12}), stored)
['customer_id', 'payload']
"""

from __future__ import annotations

import json
from datetime import timedelta

from features.event_stream import CustomerEvent, StoredEvent

__all__ = ["changed_fields"]

_MICROSECOND = timedelta(microseconds=1)


def changed_fields(event: CustomerEvent, stored: StoredEvent) -> list[str]:
    """The fields in which ``event`` differs from what its id was stored with."""
    # The payload as it reads back from storage (tuples become lists, and so on).
    payload = json.loads(json.dumps(dict(event.payload)))
    return [
        name
        for name, differs in (
            ("customer_id", stored.customer_id != event.customer_id),
            ("type", stored.type != event.type),
            # Stored as float seconds: equal to the microsecond, not always exactly.
            ("occurred_at", abs(stored.occurred_at - event.occurred_at) > _MICROSECOND),
            ("payload", stored.payload != payload),
        )
        if differs
    ]
