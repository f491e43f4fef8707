"""``nudge alerts check``: the rules judged once from the stored state, and a server's latency
read from its real /metrics page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from monitoring_support import Clock, World, closed_port_url, config_document, text_server
from prometheus_client import generate_latest

from features import Unavailable
from serving.alerts import (
    check_alerts,
    check_findings,
    format_findings,
    server_latency,
)
from serving.metrics import ApiMetrics
from serving.settings import Settings


@pytest.fixture
def contaminated(tmp_path: Path) -> Settings:
    """A state folder whose log holds a delivered holdout decision half an hour ago."""
    world = World(tmp_path / "state", holdout=100.0, clock=Clock(datetime.now(UTC)))
    world.clock.now -= timedelta(minutes=30)
    world.customers(["h1"])
    world.outcome(world.decide("h1"), "delivered", after=timedelta(minutes=1))
    world.close()
    config = tmp_path / "decisions.yaml"
    config.write_text(yaml.safe_dump(config_document(holdout=100.0)), encoding="utf-8")
    return Settings(state_dir=tmp_path / "state", decision_config=config)


def slow_server_metrics() -> str:
    metrics = ApiMetrics()
    for seconds in [0.002] * 100 + [0.05] * 100:
        metrics.decision_latency.observe(seconds)
    return generate_latest(metrics.registry).decode()


def test_check_reads_a_running_servers_latency_and_the_stored_log(contaminated: Settings) -> None:
    with text_server(slow_server_metrics()) as url:
        events = check_alerts(contaminated, url)
        findings = check_findings(contaminated, url)

    assert sorted(e.key for e in events) == [
        "decision_latency:p99",
        "holdout_contamination:holdout",
    ]
    latency = next(f for f in findings if f.rule == "decision_latency")
    # Half the decisions took 50 ms: the p99 lies in the (25 ms, 50 ms] bucket.
    assert 25.0 < float(latency.details["milliseconds"]) <= 50.0
    assert latency.details["count"] == 200
    text = format_findings(findings, url=url)
    assert text.splitlines()[0].startswith("FIRING   decision_latency:p99  decision latency p99")
    assert "FIRING   holdout_contamination:holdout  1 contacts of holdout customers" in text
    assert text.endswith("2 alerts firing")


def test_check_is_read_only_and_says_what_it_could_not_judge(contaminated: Settings) -> None:
    findings = check_findings(contaminated)
    text = format_findings(findings)
    assert "no data  decision_latency (give --url of a running server)" in text
    assert "ok       send_failure_spike" not in text  # no sends reported: nothing to judge
    assert text.endswith("1 alert firing")
    # Nothing was opened or sent: the server's own evaluation will still announce it.
    assert not (contaminated.state_dir / "alerts.db").exists()


def test_check_refuses_a_missing_log_and_an_unreachable_server(
    tmp_path: Path, contaminated: Settings
) -> None:
    with pytest.raises(Unavailable, match="no decision log at"):
        check_findings(Settings(state_dir=tmp_path / "empty"))
    with pytest.raises(Unavailable, match=r"could not read http://127\.0\.0\.1:\d+/metrics"):
        check_findings(contaminated, closed_port_url().removesuffix("/hook"))


def test_server_latency_of_a_server_that_decided_nothing() -> None:
    with text_server(generate_latest(ApiMetrics().registry).decode()) as url:
        assert server_latency(url) is None
