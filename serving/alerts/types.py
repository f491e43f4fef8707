"""What a rule finds and what the evaluator announces."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = ["AlertEvent", "AlertStatus", "Detail", "Finding"]

Detail = float | int | str
AlertStatus = Literal["firing", "resolved"]


@dataclass(frozen=True)
class Finding:
    """One rule's verdict on one subject (a channel, a journey, a feature, ...).

    A rule reports a finding for every subject it had enough data to judge,
    firing or not: a subject it could not judge keeps whatever state it had,
    so an alert does not resolve merely because traffic stopped.

    >>> Finding("stale_features", "customer_profile", True, "3 days old").key
    'stale_features:customer_profile'
    """

    rule: str
    subject: str
    firing: bool
    summary: str
    details: Mapping[str, Detail] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.subject}"

    def event(self, at: datetime, status: AlertStatus | None = None) -> AlertEvent:
        """This finding announced at ``at`` (firing if it fires, else resolved)."""
        status = status or ("firing" if self.firing else "resolved")
        return AlertEvent(self.rule, self.subject, status, self.summary, self.details, at)


@dataclass(frozen=True)
class AlertEvent:
    """An alert that started firing, or one that resolved: what notifiers send."""

    rule: str
    subject: str
    status: AlertStatus
    summary: str
    details: Mapping[str, Detail]
    at: datetime

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.subject}"

    def to_json(self) -> dict[str, Any]:
        """The webhook's JSON body.

        >>> from datetime import UTC
        >>> event = AlertEvent("x", "y", "firing", "s", {"n": 1}, datetime(2024, 5, 1, tzinfo=UTC))
        >>> event.to_json()["alert"], event.to_json()["at"]
        ('x:y', '2024-05-01T00:00:00+00:00')
        """
        return {
            "source": "nudge",
            "alert": self.key,
            "rule": self.rule,
            "subject": self.subject,
            "status": self.status,
            "summary": self.summary,
            "details": dict(self.details),
            "at": self.at.isoformat(),
        }
