"""Which channels a deployment has, read from one strict YAML file.

Each channel names a short ``type`` (smtp, http, webhook, file, ads) that maps to a lazily
imported class; secrets are never in the file, only the names of the environment
variables holding them. Every mistake is reported with the file and the key path.

>>> config = load_channels_config(DEFAULT_CHANNELS)
>>> sorted(config.channels), config.channels["email"].type
(['ads', 'email', 'push', 'sms', 'webhook'], 'file')
>>> import tempfile
>>> channels = build_channels(config, state_dir=Path(tempfile.mkdtemp()))
>>> channels["email"].name, type(channels["email"]).__name__
('email', 'RetryingChannel')
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from channels.reliability import RateLimitedChannel, RetryingChannel
from channels.types import Channel
from features.errors import InvalidRequest

__all__ = [
    "DEFAULT_CHANNELS",
    "AdsSettings",
    "ChannelsConfig",
    "build_channels",
    "load_channels_config",
]

DEFAULT_CHANNELS = Path(__file__).with_name("default_channels.yaml")

# Short type strings to "module:class"; imported only when a channel of that type is built.
CHANNEL_TYPES: Mapping[str, str] = {
    "smtp": "channels.smtp:SmtpChannel",
    "http": "channels.http_provider:HttpProviderChannel",
    "webhook": "channels.webhook:WebhookChannel",
    "file": "channels.file_outbox:FileOutbox",
    "ads": "channels.ads:open_ads_channel",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Delivery(_Strict):
    rate_per_second: Annotated[float, Field(gt=0)] | None = None
    """None: no rate limit."""
    burst: Annotated[int, Field(ge=1)] = 10
    retries: Annotated[int, Field(ge=0, le=10)] = 3
    """Retries of a transient failure after the first attempt."""


class SmtpSettings(_Delivery):
    type: Literal["smtp"]
    host: str
    port: Annotated[int, Field(ge=1, le=65535)]
    sender: str
    starttls: bool = False
    username: str | None = None
    password_env: str | None = None
    timeout: Annotated[float, Field(gt=0)] = 10.0

    def arguments(self, name: str, state_dir: Path, environ: Mapping[str, str]) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "sender": self.sender,
            "starttls": self.starttls,
            "username": self.username,
            "password": _secret(environ, self.password_env, f"channels.{name}.password_env"),
            "timeout": self.timeout,
            "name": name,
        }


class HttpSettings(_Delivery):
    type: Literal["http"]
    url: str
    token_env: str | None = None
    timeout: Annotated[float, Field(gt=0)] = 5.0

    def arguments(self, name: str, state_dir: Path, environ: Mapping[str, str]) -> dict[str, Any]:
        token = _secret(environ, self.token_env, f"channels.{name}.token_env")
        return {"url": self.url, "name": name, "token": token, "timeout": self.timeout}


class WebhookSettings(_Delivery):
    type: Literal["webhook"]
    url: str
    secret_env: str
    timeout: Annotated[float, Field(gt=0)] = 5.0

    def arguments(self, name: str, state_dir: Path, environ: Mapping[str, str]) -> dict[str, Any]:
        secret = _secret(environ, self.secret_env, f"channels.{name}.secret_env")
        return {"url": self.url, "secret": secret, "name": name, "timeout": self.timeout}


class FileSettings(_Delivery):
    type: Literal["file"]
    path: str
    """Relative to the state directory."""

    def arguments(self, name: str, state_dir: Path, environ: Mapping[str, str]) -> dict[str, Any]:
        return {"path": state_dir / self.path, "name": name}


class AudienceSettings(_Strict):
    network_id: str
    """The audience's id in the ad network."""
    kind: Literal["retargeting", "acquisition"] = "retargeting"


class AdsSettings(_Delivery):
    """An ad network's audiences: sends join ``audiences``; ``nudge audiences sync`` ships them."""

    type: Literal["ads"]
    url: str
    """The network's audience API base: ``{url}/audiences/{network_id}/members:add``."""
    token_env: str | None = None
    path: str = "audiences.db"
    """The audience store, relative to the state directory."""
    postgres_dsn_env: str | None = None
    """Scale mode: the variable holding a Postgres DSN; the store is then schema
    ``postgres_schema`` there, shared by every process, instead of ``path``."""
    postgres_schema: str = "nudge_audiences"
    audiences: Annotated[dict[str, AudienceSettings], Field(min_length=1)]
    default_audience: str
    by_message: dict[str, str] = Field(default_factory=dict)
    """Message -> audience, for messages that do not go to ``default_audience``."""
    batch_size: Annotated[int, Field(ge=1, le=10000)] = 500
    buyer_window_days: Annotated[float, Field(gt=0)] = 30.0
    """How long a buyer is kept out of acquisition audiences."""
    timeout: Annotated[float, Field(gt=0)] = 10.0

    @model_validator(mode="after")
    def _known_audiences(self) -> AdsSettings:
        for where, audience in [
            ("default_audience", self.default_audience),
            *((f"by_message.{m}", a) for m, a in self.by_message.items()),
        ]:
            if audience not in self.audiences:
                raise ValueError(f"{where} must be one of {sorted(self.audiences)}, got {audience}")
        return self

    def arguments(self, name: str, state_dir: Path, environ: Mapping[str, str]) -> dict[str, Any]:
        return {
            "path": state_dir / self.path,
            "postgres": None
            if self.postgres_dsn_env is None
            else (
                _secret(environ, self.postgres_dsn_env, f"channels.{name}.postgres_dsn_env"),
                self.postgres_schema,
            ),
            "name": name,
            "default_audience": self.default_audience,
            "by_message": dict(self.by_message),
        }


ChannelSettings = Annotated[
    SmtpSettings | HttpSettings | WebhookSettings | FileSettings | AdsSettings,
    Field(discriminator="type"),
]


class ChannelsConfig(_Strict):
    channels: Annotated[dict[str, ChannelSettings], Field(min_length=1)]


def load_channels_config(path: Path | str) -> ChannelsConfig:
    """Read and check a channels file; InvalidRequest names the file and the key path."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InvalidRequest("channels_config", "must be a readable YAML file", str(path)) from err
    except yaml.YAMLError as err:
        raise InvalidRequest("channels_config", f"must be valid YAML ({err})", str(path)) from err
    return parse_channels_config(raw, source=str(path))


def parse_channels_config(raw: object, *, source: str = "<channels config>") -> ChannelsConfig:
    try:
        return ChannelsConfig.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        raise InvalidRequest(
            _key_path(first["loc"]), f"{_expected(first)} (in {source})", first.get("input")
        ) from None


def build_channels(
    config: ChannelsConfig,
    *,
    state_dir: Path | str = ".nudge",
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> dict[str, Channel]:
    """Each configured channel, rate-limited (when it has a rate) and retried.

    ``environ`` (default: the process environment) supplies the secrets the file names.
    """
    env = os.environ if environ is None else environ
    built: dict[str, Channel] = {}
    for name, settings in config.channels.items():
        module, _, cls_name = CHANNEL_TYPES[settings.type].partition(":")
        cls = getattr(importlib.import_module(module), cls_name)
        channel: Channel = cls(**settings.arguments(name, Path(state_dir), env))
        if settings.rate_per_second is not None:
            channel = RateLimitedChannel(
                channel, per_second=settings.rate_per_second, burst=settings.burst
            )
        built[name] = RetryingChannel(
            channel, attempts=settings.retries + 1, sleep=time.sleep if sleep is None else sleep
        )
    return built


def _secret(environ: Mapping[str, str], variable: str | None, where: str) -> str | None:
    if variable is None:
        return None
    value = environ.get(variable)
    if not value:
        raise InvalidRequest(where, "must name a set, non-empty environment variable", variable)
    return value


def _key_path(loc: tuple[int | str, ...]) -> str:
    parts = list(loc)
    # The discriminated union puts the type tag in the location: channels.email.smtp.port.
    if len(parts) >= 3 and parts[0] == "channels" and parts[2] in CHANNEL_TYPES:
        del parts[2]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "channels_config"


def _expected(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "is not a setting here"
    if kind == "missing":
        return "is required"
    if kind == "too_short":
        return f"must have at least {error['ctx']['min_length']} entry"
    if kind == "union_tag_invalid":
        return f"must be a channel type, one of {sorted(CHANNEL_TYPES)}"
    message = str(error["msg"])
    if message.startswith("Input should be"):
        return "must be" + message.removeprefix("Input should be")
    return f"must be valid ({message})"
