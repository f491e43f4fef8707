"""``nudge audiences sync`` / ``report`` over a channels file with a ``type: ads`` channel."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ad_network import FakeAdNetwork

from channels import OutboundMessage, build_channels, load_channels_config
from channels.config import parse_channels_config
from decisioning.contact_store import ChannelState, ContactProfile
from decisioning.sqlite_contact import SQLiteContactStore
from features.errors import InvalidRequest
from features.event_stream import CustomerEvent
from serving.audiences_command import sync_audiences
from serving.cli import main
from serving.journey_wiring import open_event_stream
from serving.settings import Settings


@pytest.fixture
def network() -> Iterator[FakeAdNetwork]:
    server = FakeAdNetwork().start()
    yield server
    server.stop()


def channels_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "channels.yaml"
    path.write_text(
        "channels:\n"
        "  email: {type: file, path: outbox/email.jsonl}\n"
        f"  ads: {{type: ads, url: '{url}', default_audience: carts, retries: 2,\n"
        "         audiences: {carts: {network_id: '77'}, prospects: {network_id: '88',"
        " kind: acquisition}}}\n"
    )
    return path


def test_a_journey_send_on_ads_reaches_the_network_and_a_purchase_removes_it(
    tmp_path: Path, network: FakeAdNetwork, capsys: pytest.CaptureFixture[str]
) -> None:
    config = channels_file(tmp_path, network.url)
    settings = Settings(
        state_dir=tmp_path / "state", reports_dir=tmp_path / "reports", channels_config=config
    )
    contacts = SQLiteContactStore(settings.contact_db)
    contacts.load_profiles(
        [ContactProfile("c1", {"ads": ChannelState("opted_in", reachable=True)})]
    )
    contacts.close()
    channels = build_channels(load_channels_config(config), state_dir=settings.state_dir)
    channels["ads"].send(OutboundMessage("d1", "c1", "ads", "ann@example.com", "cart"))
    for channel in channels.values():
        channel.close()
    network.fail(1)  # once: the retry gets it through
    assert sync_audiences(settings, once=True) == 0
    ann = hashlib.sha256(b"ann@example.com").hexdigest()
    assert network.members("77") == {ann}
    stream = open_event_stream(settings)
    at = datetime(2026, 12, 1, tzinfo=UTC)
    stream.append([CustomerEvent("p1", "c1", "purchase", at, {"value": 1.0})])
    stream.close()
    args = ["--state-dir", str(settings.state_dir), "--channels-config", str(config)]
    assert main(["audiences", "sync", "--once", *args]) == 0
    assert network.members("77") == set()
    reports = tmp_path / "reports"
    assert main(["audiences", "report", *args, "--reports-dir", str(reports)]) == 0
    report = json.loads((reports / "audiences.json").read_text())
    assert [
        (s["sync_id"], s["adds"], s["removes"]) for s in report["syncs"] if s["audience"] == "carts"
    ] == [
        (1, 1, 0),
        (2, 0, 1),
    ]
    assert "carts" in capsys.readouterr().out


def test_an_unknown_default_audience_is_refused_with_the_key(tmp_path: Path) -> None:
    raw = {
        "channels": {
            "ads": {
                "type": "ads",
                "url": "http://x",
                "default_audience": "nope",
                "audiences": {"carts": {"network_id": "1"}},
            }
        }
    }
    with pytest.raises(InvalidRequest, match="default_audience must be one of"):
        parse_channels_config(raw)


@pytest.mark.parametrize("every", [0, -5, 0.5])
def test_a_sync_interval_under_a_second_is_refused(every: float, tmp_path: Path) -> None:
    from features import InvalidRequest
    from serving.audiences_command import sync_audiences
    from serving.settings import Settings

    with pytest.raises(InvalidRequest, match="`--every` must be at least 1 second"):
        sync_audiences(Settings(state_dir=tmp_path), every=every, once=True)
