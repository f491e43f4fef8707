"""What `nudge journeys run` refuses to start with."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from features import InvalidRequest
from serving.journey_wiring import build_journey_runtime, tracking_secret
from serving.settings import Settings


def test_a_channel_a_journey_may_use_without_a_sender_stops_the_start(tmp_path: Path) -> None:
    channels = tmp_path / "channels.yaml"
    # The shipped journeys may send e-mail, SMS and push; this file forgets push.
    channels.write_text(
        yaml.safe_dump(
            {
                "channels": {
                    "email": {"type": "file", "path": "outbox/email.jsonl"},
                    "sms": {"type": "file", "path": "outbox/sms.jsonl"},
                }
            }
        )
    )
    settings = Settings(state_dir=tmp_path / "state", channels_config=channels)
    with pytest.raises(
        InvalidRequest, match=r"`channels\.push` must be configured in .*channels\.yaml"
    ):
        build_journey_runtime(settings, api_url="http://127.0.0.1:9")
    assert not (tmp_path / "state" / "journeys.db").exists()  # nothing was opened or written


def test_the_tracking_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    first = tracking_secret(settings)
    assert len(first) >= 40
    assert tracking_secret(settings) == first
    assert (tmp_path / "tracking.key").stat().st_mode & 0o077 == 0
    assert tracking_secret(Settings(state_dir=tmp_path, tracking_secret="set")) == "set"
