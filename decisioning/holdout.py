"""The global control group: a fixed share of customers who are never contacted, to measure lift.

Membership is a salted hash of the customer id, so it is the same in every
process, on every machine and in every Python version, with nothing stored.
"""

from __future__ import annotations

import hashlib
import math

from features.errors import InvalidRequest

__all__ = ["Holdout"]

_TOP = math.nextafter(100.0, 0.0)
_SCALE = 100.0 / 2**64


class Holdout:
    """Customers whose bucket in [0, 100) falls below ``percent`` are in the control group.

    Each customer keeps one bucket for a given ``salt``, so raising the
    percentage only adds customers to the group and lowering it only removes
    some: nobody flips back and forth. A new salt draws a new, independent group.

    >>> ids = [f"c{i}" for i in range(2000)]
    >>> five = {c for c in ids if Holdout(5, "nudge").contains(c)}
    >>> ten = {c for c in ids if Holdout(10, "nudge").contains(c)}
    >>> len(five), len(ten), five <= ten
    (121, 215, True)
    >>> two = {c for c in ids if Holdout(2, "nudge").contains(c)}
    >>> two <= five
    True
    >>> Holdout(5, "nudge").bucket("c1") == Holdout(50, "nudge").bucket("c1")
    True
    """

    def __init__(self, percent: float, salt: str) -> None:
        if (
            isinstance(percent, bool)
            or not isinstance(percent, int | float)
            or not 0.0 <= percent <= 100.0  # NaN fails too
        ):
            raise InvalidRequest("percent", "must be a number in [0, 100]", percent)
        if not isinstance(salt, str) or not salt:
            raise InvalidRequest("salt", "must be a non-empty string", salt)
        self.percent = float(percent)
        self.salt = salt

    def bucket(self, customer_id: str) -> float:
        """The customer's place in [0, 100): the first 8 bytes of sha256("salt:id"), scaled."""
        digest = hashlib.sha256(f"{self.salt}:{customer_id}".encode()).digest()
        # Scaling rounds the largest values up to 100.0; keep the interval half-open.
        return min(int.from_bytes(digest[:8], "big") * _SCALE, _TOP)

    def contains(self, customer_id: str) -> bool:
        """Whether the customer is in the control group (gets "no send")."""
        return self.bucket(customer_id) < self.percent

    def __repr__(self) -> str:
        return f"Holdout(percent={self.percent:g}, salt={self.salt!r})"
