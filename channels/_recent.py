"""A bounded memory of the receipts a channel instance already got, keyed by message id."""

from __future__ import annotations

import threading
from collections import OrderedDict

from channels.types import Receipt

__all__ = ["RecentReceipts"]


class RecentReceipts:
    """The last ``capacity`` accepted sends, so that a retry of a send that did succeed is a no-op.

    It only covers this process; across restarts the provider's idempotency key (or
    the deterministic Message-ID) makes a resend recognisable.

    >>> from datetime import UTC, datetime
    >>> recent = RecentReceipts(capacity=1)
    >>> recent.remember(Receipt("a", "sms", None, datetime(2024, 1, 1, tzinfo=UTC)))
    >>> recent.get("a").message_id
    'a'
    >>> recent.remember(Receipt("b", "sms", None, datetime(2024, 1, 1, tzinfo=UTC)))
    >>> recent.get("a") is None
    True
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._receipts: OrderedDict[str, Receipt] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, message_id: str) -> Receipt | None:
        with self._lock:
            return self._receipts.get(message_id)

    def remember(self, receipt: Receipt) -> None:
        with self._lock:
            self._receipts[receipt.message_id] = receipt
            self._receipts.move_to_end(receipt.message_id)
            while len(self._receipts) > self.capacity:
                self._receipts.popitem(last=False)
