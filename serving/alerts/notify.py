"""Where alerts go: the ``nudge.alerts`` logger always, and a webhook when one is set.

A notifier never raises: an unreachable webhook must not stop the other
alerts from being evaluated, recorded and logged. It says whether it delivered.
"""

from __future__ import annotations

import logging
from typing import Protocol

import httpx

from serving.alerts.types import AlertEvent

__all__ = ["LogNotifier", "Notifier", "WebhookNotifier"]

_log = logging.getLogger("nudge.alerts")


class Notifier(Protocol):
    def notify(self, event: AlertEvent) -> bool:
        """Announce ``event``; True if it was delivered. Never raises."""
        ...


class LogNotifier:
    """Writes each event to the ``nudge.alerts`` logger: WARNING when firing, INFO when resolved."""

    def notify(self, event: AlertEvent) -> bool:
        level = logging.WARNING if event.status == "firing" else logging.INFO
        _log.log(level, "alert %s %s: %s", event.key, event.status, event.summary)
        return True


class WebhookNotifier:
    """POSTs each event as JSON (see :meth:`AlertEvent.to_json`) to ``url``.

    A short timeout, and one retry after a network error or a 5xx answer; a
    4xx answer is not retried (the same body would be refused again).
    """

    def __init__(self, url: str, *, timeout: float = 3.0, retries: int = 1) -> None:
        self.url = url
        self.timeout = timeout
        self.retries = retries

    def notify(self, event: AlertEvent) -> bool:
        body = event.to_json()
        problem = ""
        for _ in range(1 + self.retries):
            try:
                response = httpx.post(self.url, json=body, timeout=self.timeout)
            except Exception as err:  # an invalid URL too: whatever it is, it must not spread
                problem = f"{type(err).__name__}: {err}"
                continue
            if response.is_success:
                return True
            problem = f"HTTP {response.status_code}"
            if response.status_code < 500:
                break
        _log.error(
            "alert webhook %s did not take %s %s (%s)", self.url, event.key, event.status, problem
        )
        return False
