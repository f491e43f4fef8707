"""The server's alert loop: read the state, judge the rules, remember what is open, notify.

Every worker process refreshes its own gauges (a scrape may reach any of
them), but only one process per state folder evaluates alerts: the one holding
``alerts.lock``. Its latency histogram is then one steady sample of the
traffic, rather than each worker's p99 in turn opening and resolving the alert.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING

from features import FeatureValue
from serving.alerts.inputs import AlertInputs, LatencyReading
from serving.alerts.latency import LatencyWindow, buckets_from_registry
from serving.alerts.notify import LogNotifier, Notifier, WebhookNotifier
from serving.alerts.rules import RULES, judge
from serving.alerts.state import AlertStateStore
from serving.alerts.thresholds import AlertThresholds
from serving.alerts.types import AlertEvent
from serving.log_readings import read_log, reference_rows
from serving.metrics import ApiMetrics
from serving.monitoring import apply_readings, feature_ages, observe_data_quality
from serving.settings import Settings
from serving.wiring import Runtime, open_feature_repo

if TYPE_CHECKING:
    from features import FeatureRepo

__all__ = ["AlertMonitor", "default_notifiers"]

_log = logging.getLogger("nudge.alerts")


def default_notifiers(settings: Settings) -> list[Notifier]:
    """The log always; the webhook when ``settings.alert_webhook_url`` is set."""
    notifiers: list[Notifier] = [LogNotifier()]
    if settings.alert_webhook_url:
        notifiers.append(WebhookNotifier(settings.alert_webhook_url))
    return notifiers


@dataclass
class _Reference:
    model_version: str
    rows: Sequence[tuple[str, dict[str, FeatureValue]]]
    first_at: datetime | None


class AlertMonitor:
    """Builds :class:`AlertInputs` from a running server's state and turns findings into events.

    An alert that fires is announced once; while it keeps firing nothing more
    is sent; when its rule judges it clear, one resolution is sent. Open
    alerts are kept in ``state_dir/alerts.db``, so a restarted server does not
    announce again what is already open.
    """

    def __init__(
        self,
        settings: Settings,
        runtime: Runtime,
        metrics: ApiMetrics,
        *,
        thresholds: AlertThresholds | None = None,
        notifiers: Sequence[Notifier] | None = None,
        feature_repo: FeatureRepo | None = None,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.metrics = metrics
        self.thresholds = thresholds or AlertThresholds.from_settings(settings)
        self.notifiers = list(default_notifiers(settings) if notifiers is None else notifiers)
        self._repo = feature_repo
        self.state = AlertStateStore(settings.state_dir / "alerts.db")
        self._latency = LatencyWindow(
            self.thresholds.latency_window, self.thresholds.latency_quantile
        )
        self._reference: _Reference | None = None
        self._data_checked_at: datetime | None = None
        self._lock_file: IO[bytes] | None = None
        # Held by a round and by close(): a server shutting down waits for the round
        # in its worker thread to finish before the stores it reads are closed.
        self._running = threading.Lock()

    # -- reading ------------------------------------------------------------------------

    def inputs(self, now: datetime) -> AlertInputs:
        """Read every source as of ``now`` and refresh the gauges on the way.

        A source that cannot be read (the Feast registry, say) is logged and left
        out: its rules judge nothing this time, and the others still run.
        """
        engine = self.runtime.engine
        windows = self.thresholds.windows
        readings = read_log(
            engine.log,
            engine.config,
            now,
            model_version=self.runtime.model_version,
            windows=windows,
        )
        ages: dict[str, float | None] | None = None
        try:
            ages = feature_ages(self.feature_repo, now)
        except Exception:
            _log.exception("could not read the feature views' materialisation times")
        apply_readings(self.metrics, readings, ages=ages, backlog=engine.log.count_due_windows(now))
        self._check_data(now)
        return AlertInputs(
            log=readings,
            thresholds=self.thresholds,
            feature_ages=ages or {},
            drift_reference=self._reference_rows(self.runtime.model_version),
            latency=self._latency_reading(now),
        )

    def _check_data(self, now: datetime) -> None:
        """The data-quality gauges, every ``data_check_interval`` seconds (it reads the event
        log's tables and the stream's recent events, too much to do every round)."""
        interval = self.settings.data_check_interval
        if interval <= 0 or (
            self._data_checked_at is not None
            and (now - self._data_checked_at).total_seconds() < interval
        ):
            return
        self._data_checked_at = now
        from features.data_quality import Thresholds
        from serving.data_command import data_report

        try:
            report = data_report(self.settings, Thresholds(), record_schema=False)
        except Exception:
            _log.exception("the data-quality check failed; its gauges keep their last values")
            return
        observe_data_quality(self.metrics, report)

    @property
    def feature_repo(self) -> FeatureRepo:
        if self._repo is None:
            self._repo = open_feature_repo(self.settings)
        return self._repo

    def _reference_rows(self, version: str) -> Sequence[tuple[str, dict[str, FeatureValue]]]:
        size = self.thresholds.windows.drift_reference
        cached = self._reference
        if cached is not None and cached.model_version == version:
            if len(cached.rows) >= size:
                return cached.rows
            since = cached.first_at
        else:
            since = None
        engine = self.runtime.engine
        rows, first_at = reference_rows(engine.log, engine.config, version, size, since=since)
        self._reference = _Reference(version, rows, first_at)
        return rows

    def _latency_reading(self, now: datetime) -> LatencyReading | None:
        buckets = buckets_from_registry(self.metrics.registry)
        return None if buckets is None else self._latency.reading(now, buckets)

    # -- judging ------------------------------------------------------------------------

    def evaluate(self, inputs: AlertInputs) -> list[AlertEvent]:
        """Judge ``inputs``; open, resolve and announce alerts. Returns what was announced."""
        now = inputs.now
        open_keys = self.state.open_keys()
        events: list[AlertEvent] = []
        for finding in judge(inputs):
            if finding.firing:
                if self.state.open(finding, now):
                    events.append(finding.event(now, "firing"))
            elif finding.key in open_keys and self.state.resolve(finding.key, now, finding.summary):
                events.append(finding.event(now, "resolved"))
        for event in events:
            delivered = [self._notify(notifier, event) for notifier in self.notifiers]
            self.state.record(event, all(delivered))
        self._count_open()
        return events

    def _notify(self, notifier: Notifier, event: AlertEvent) -> bool:
        try:
            return notifier.notify(event)
        except Exception:  # a notifier is not supposed to raise; if one does, the rest go on
            _log.exception("notifier %r failed on %s", notifier, event.key)
            return False

    def _count_open(self) -> None:
        counts = dict.fromkeys(RULES, 0)
        for key in self.state.open_keys():
            rule = key.split(":", 1)[0]
            counts[rule] = counts.get(rule, 0) + 1
        for rule, count in counts.items():
            self.metrics.alerts_firing.labels(rule=rule).set(count)

    def run(self, now: datetime) -> list[AlertEvent]:
        """One scheduled round: the gauges, and the alerts if this process evaluates them."""
        with self._running:
            inputs = self.inputs(now)
            if not self.evaluates():
                return []
            return self.evaluate(inputs)

    def evaluates(self) -> bool:
        """Whether this process evaluates the alerts: it holds ``state_dir/alerts.lock``.

        The lock is kept until :meth:`close` (or the process ends), so another
        worker takes over only when this one is gone.
        """
        if self._lock_file is not None:
            return True
        handle = (self.settings.state_dir / "alerts.lock").open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock_file = handle
        return True

    def close(self) -> None:
        """Give up evaluating (another worker may take over) and release the state file.

        Waits for a round in progress, so call it before closing the runtime's stores.
        """
        with self._running:
            if self._lock_file is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._lock_file, fcntl.LOCK_UN)
                self._lock_file.close()
                self._lock_file = None
            self.state.close()
