"""The channels file: the shipped default, building each type, and errors naming key paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from channels import (
    DEFAULT_CHANNELS,
    FileOutbox,
    HttpProviderChannel,
    OutboundMessage,
    RateLimitedChannel,
    RetryingChannel,
    SmtpChannel,
    WebhookChannel,
    build_channels,
    load_channels_config,
)
from features.errors import InvalidRequest

FULL: dict[str, Any] = {
    "channels": {
        "email": {
            "type": "smtp",
            "host": "smtp.example.com",
            "port": 587,
            "sender": "shop@example.com",
            "starttls": True,
            "username": "nudge",
            "password_env": "SMTP_PASSWORD",
            "rate_per_second": 20,
            "burst": 5,
            "retries": 2,
        },
        "sms": {"type": "http", "url": "https://sms.example.com/send", "token_env": "SMS_TOKEN"},
        "push": {"type": "http", "url": "https://push.example.com/send"},
        "webhook": {"type": "webhook", "url": "https://hooks.example.com/n", "secret_env": "HOOK"},
        "outbox": {"type": "file", "path": "outbox/all.jsonl"},
    },
}
ENV = {"SMTP_PASSWORD": "pw", "SMS_TOKEN": "tok", "HOOK": "hook"}


def _write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "channels.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_default_sends_everything_to_outboxes_under_the_state_dir(tmp_path: Path) -> None:
    config = load_channels_config(DEFAULT_CHANNELS)
    channels = build_channels(config, state_dir=tmp_path)
    # Ads sends join the local audience store (audiences.db); the rest go to outboxes.
    assert sorted(channels) == ["ads", "email", "push", "sms", "webhook"]
    assert (tmp_path / "audiences.db").exists()
    channels["email"].send(OutboundMessage("d-1", "c-1", "email", "a@example.com", "hi"))
    (line,) = (tmp_path / "outbox" / "email.jsonl").read_text().splitlines()
    assert json.loads(line)["message_id"] == "d-1"


def test_every_type_is_built_and_wrapped(tmp_path: Path) -> None:
    channels = build_channels(
        load_channels_config(_write(tmp_path, FULL)), state_dir=tmp_path, environ=ENV
    )
    email = channels["email"]
    assert isinstance(email, RetryingChannel)
    assert email.attempts == 3
    assert isinstance(email.inner, RateLimitedChannel)
    assert (email.inner.per_second, email.inner.burst) == (20.0, 5)
    smtp = email.inner.inner
    assert isinstance(smtp, SmtpChannel)
    assert (smtp.host, smtp.port, smtp.starttls, smtp.username) == (
        "smtp.example.com",
        587,
        True,
        "nudge",
    )
    inner = {name: c.inner for name, c in channels.items() if isinstance(c, RetryingChannel)}
    assert isinstance(inner["sms"], HttpProviderChannel)
    assert inner["sms"].token == "tok"
    assert isinstance(inner["push"], HttpProviderChannel)
    assert inner["push"].token is None
    assert isinstance(inner["webhook"], WebhookChannel)
    assert isinstance(inner["outbox"], FileOutbox)
    assert inner["outbox"].path == tmp_path / "outbox" / "all.jsonl"
    assert {name: c.name for name, c in channels.items()} == {n: n for n in FULL["channels"]}
    for channel in channels.values():
        channel.close()


def _with(path: str, value: object) -> dict[str, Any]:
    doc = json.loads(json.dumps(FULL))
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return doc


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        ("channels.email.colour", "red", "`channels.email.colour` is not a setting here"),
        ("channels.email.port", "587", "`channels.email.port` must be a valid integer"),
        ("channels.email.port", 70000, "`channels.email.port` must be less than or equal to"),
        ("channels.email.host", DELETE, "`channels.email.host` is required"),
        ("channels.sms.type", "carrier_pigeon", "`channels.sms` must be a channel type"),
        ("channels.sms.rate_per_second", 0, "`channels.sms.rate_per_second` must be greater"),
        ("channels.webhook.secret_env", DELETE, "`channels.webhook.secret_env` is required"),
        ("channels.outbox.retries", -1, "`channels.outbox.retries` must be greater than"),
        ("tracking", {"base_url": "x"}, "`tracking` is not a setting here"),
        ("transport", "x", "`transport` is not a setting here"),
        ("channels", {}, "`channels` must have at least 1 entry"),
    ],
)
def test_a_bad_key_is_named_with_its_path_and_the_file(
    tmp_path: Path, path: str, value: object, match: str
) -> None:
    source = _write(tmp_path, _with(path, value))
    with pytest.raises(InvalidRequest, match=match) as raised:
        load_channels_config(source)
    assert f"(in {source})" in str(raised.value)


def test_a_missing_secret_names_its_key(tmp_path: Path) -> None:
    config = load_channels_config(_write(tmp_path, FULL))
    with pytest.raises(
        InvalidRequest,
        match=r"`channels\.email\.password_env` must name a set, non-empty environment variable, "
        r"got 'SMTP_PASSWORD'",
    ):
        build_channels(config, state_dir=tmp_path, environ={})


@pytest.mark.parametrize(
    ("text", "match"),
    [("channels: [unclosed", "`channels_config` must be valid YAML"), ("- 1\n", "must be a valid")],
)
def test_a_file_that_is_not_a_mapping_is_named(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "channels.yaml"
    path.write_text(text)
    with pytest.raises(InvalidRequest, match=match):
        load_channels_config(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="`channels_config` must be a readable YAML file"):
        load_channels_config(tmp_path / "nope.yaml")


def test_an_ads_channel_may_keep_its_audiences_in_postgres(tmp_path: Path) -> None:
    import uuid

    import psycopg

    from channels.ads import open_audience_store

    dsn = "postgresql://postgres@127.0.0.1:5432/test"
    schema = f"nudge_test_{uuid.uuid4().hex[:8]}"
    doc = {
        "channels": {
            "ads": {
                "type": "ads",
                "url": "http://127.0.0.1:9",
                "audiences": {"carts": {"network_id": "1001"}},
                "default_audience": "carts",
                "postgres_dsn_env": "AUDIENCE_DSN",
                "postgres_schema": schema,
            }
        }
    }
    try:
        channels = build_channels(
            load_channels_config(_write(tmp_path, doc)),
            state_dir=tmp_path,
            environ={"AUDIENCE_DSN": dsn},
        )
        channels["ads"].send(OutboundMessage("d-9", "c-9", "ads", "ann@example.com", ""))
        store = open_audience_store(tmp_path / "unused.db", (dsn, schema))
        assert store.desired("carts") == {"c-9"}
        store.close()
        assert not (tmp_path / "audiences.db").exists()  # nothing went to SQLite
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
