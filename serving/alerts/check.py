"""``nudge alerts check``: every rule judged once, on demand, from the stored state.

Read-only: it neither opens nor resolves alerts nor notifies anyone (the
server does that on its schedule), so an operator can run it at any time.
The decision latency lives in a server's memory: with ``url`` it is read from
that server's /metrics (since the server started); without, it is not judged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx

from decisioning import load_decision_config
from features import FeatureValue, Unavailable
from serving.alerts.inputs import AlertInputs, LatencyReading
from serving.alerts.latency import buckets_from_text, histogram_quantile
from serving.alerts.rules import RULES, judge
from serving.alerts.thresholds import AlertThresholds
from serving.alerts.types import AlertEvent, Finding
from serving.log_readings import read_log, reference_rows
from serving.monitoring import feature_ages
from serving.settings import Settings
from serving.wiring import open_feature_repo, open_stores

__all__ = ["check_alerts", "check_findings", "format_findings", "server_latency"]


def server_latency(
    url: str, quantile: float = 0.99, timeout: float = 5.0, *, api_key: str | None = None
) -> LatencyReading | None:
    """The decision latency quantile a running server has counted since it started.

    None when its /metrics has no latency histogram (or has counted nothing). /metrics
    needs an admin-scope key once keys are in force.
    """
    address = url.rstrip("/") + "/metrics"
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(address, timeout=timeout, headers=headers)
        response.raise_for_status()
    except httpx.HTTPError as err:
        raise Unavailable(f"could not read {address}: {err}") from err
    buckets = buckets_from_text(response.text)
    if not buckets or buckets[-1][1] <= 0:
        return None
    return LatencyReading(
        quantile=quantile,
        seconds=histogram_quantile(buckets, quantile),
        count=int(buckets[-1][1]),
        period=f"the life of the server at {url}",
    )


def check_findings(
    settings: Settings,
    url: str | None = None,
    *,
    thresholds: AlertThresholds | None = None,
    now: datetime | None = None,
) -> list[Finding]:
    """Every rule's findings, firing or not, from the state ``settings`` points at."""
    now = now or datetime.now(UTC)
    thresholds = thresholds or AlertThresholds.from_settings(settings)
    if settings.storage == "embedded" and not settings.decision_db.exists():
        raise Unavailable(f"no decision log at {settings.decision_db}")
    config = load_decision_config(settings.decision_config)
    stores = open_stores(settings)
    try:
        readings = read_log(stores.log, config, now, model_version=None, windows=thresholds.windows)
        reference: list[tuple[str, dict[str, FeatureValue]]] = []
        if readings.model_version is not None:
            reference, _ = reference_rows(
                stores.log, config, readings.model_version, thresholds.windows.drift_reference
            )
    finally:
        stores.close()
    inputs = AlertInputs(
        log=readings,
        thresholds=thresholds,
        feature_ages=feature_ages(open_feature_repo(settings), now),
        drift_reference=reference,
        latency=None
        if url is None
        else server_latency(
            url, thresholds.latency_quantile, api_key=settings.api_key or settings.admin_key
        ),
    )
    return judge(inputs)


def check_alerts(settings: Settings, url: str | None = None) -> list[AlertEvent]:
    """The alerts that fire now (see :func:`check_findings`), as firing events."""
    now = datetime.now(UTC)
    return [f.event(now) for f in check_findings(settings, url, now=now) if f.firing]


def format_findings(findings: Sequence[Finding], *, url: str | None = None) -> str:
    """What ``nudge alerts check`` prints: firing alerts in full, then one line per rule.

    >>> print(format_findings([
    ...     Finding("stale_features", "customer_profile", True, "3 days old"),
    ...     Finding("send_failure_spike", "email", False, "1 % failed"),
    ...     Finding("send_failure_spike", "sms", False, "0 % failed"),
    ... ]))
    FIRING   stale_features:customer_profile  3 days old
    ok       send_failure_spike (2 checked)
    no data  conversion_drop
    no data  model_drift
    no data  decision_latency (give --url of a running server)
    no data  holdout_contamination
    1 alert firing
    """
    lines = [f"FIRING   {f.key}  {f.summary}" for f in findings if f.firing]
    judged = Counter(f.rule for f in findings)
    firing = Counter(f.rule for f in findings if f.firing)
    for rule in RULES:
        if firing[rule]:
            continue
        if judged[rule]:
            lines.append(f"ok       {rule} ({judged[rule]} checked)")
        else:
            hint = (
                " (give --url of a running server)"
                if rule == "decision_latency" and not url
                else ""
            )
            lines.append(f"no data  {rule}{hint}")
    count = sum(firing.values())
    lines.append(f"{count} alert{'s' if count != 1 else ''} firing")
    return "\n".join(lines)
