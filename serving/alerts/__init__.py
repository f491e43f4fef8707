"""Alerts: rules over a snapshot of the system, their open/closed state, and notifications.

:func:`evaluate_alerts` is the pure core; :class:`AlertMonitor` runs it on a
server's schedule with durable deduplication; :func:`check_alerts` is
``nudge alerts check``.
"""

from serving.alerts.check import check_alerts, check_findings, format_findings, server_latency
from serving.alerts.inputs import AlertInputs, LatencyReading
from serving.alerts.latency import LatencyWindow, histogram_quantile
from serving.alerts.monitor import AlertMonitor, default_notifiers
from serving.alerts.notify import LogNotifier, Notifier, WebhookNotifier
from serving.alerts.rules import RULES, evaluate_alerts, judge, two_proportion_p_value
from serving.alerts.state import AlertStateStore, RecordedEvent
from serving.alerts.thresholds import AlertThresholds
from serving.alerts.types import AlertEvent, Finding

__all__ = [
    "RULES",
    "AlertEvent",
    "AlertInputs",
    "AlertMonitor",
    "AlertStateStore",
    "AlertThresholds",
    "Finding",
    "LatencyReading",
    "LatencyWindow",
    "LogNotifier",
    "Notifier",
    "RecordedEvent",
    "WebhookNotifier",
    "check_alerts",
    "check_findings",
    "default_notifiers",
    "evaluate_alerts",
    "format_findings",
    "histogram_quantile",
    "judge",
    "server_latency",
    "two_proportion_p_value",
]
