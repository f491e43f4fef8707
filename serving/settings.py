"""The one settings object: built once, injected everywhere, overridden in tests.

Values come from arguments, then ``NUDGE_*`` environment variables, then defaults.

>>> s = Settings(state_dir="/tmp/nudge-example", port=8100)
>>> s.decision_db.name, s.port
('decisions.db', 8100)
>>> Settings(epsilon=1.5)
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for Settings
epsilon
  Input should be less than or equal to 1 [type=less_than_equal, input_value=1.5, input_type=float]
...
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from decisioning.config import DEFAULT_CONFIG

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Everything a Nudge process needs to know; backends are picked by short type strings."""

    model_config = SettingsConfigDict(env_prefix="NUDGE_", extra="forbid", frozen=True)

    state_dir: Path = Field(Path(".nudge"), description="Where embedded-mode state lives.")
    reports_dir: Path = Field(Path("reports"), description="Where reports are written.")
    host: str = "127.0.0.1"
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="Largest request body accepted.")
    port: int = Field(8000, ge=1, le=65535)

    storage: Literal["embedded", "scale"] = Field(
        "embedded",
        description="embedded: SQLite files in state_dir; scale: Redis (policy state, contact "
        "counters) and Postgres (decision and outcome log), shared by every worker.",
    )
    redis_url: str = "redis://127.0.0.1:6379/0"
    postgres_dsn: str = "postgresql://postgres@127.0.0.1:5432/test"
    key_prefix: str = Field("nudge", description="Redis key prefix and Postgres schema name.")
    feature_store: Literal["embedded", "scale"] = Field(
        "embedded",
        description="Feast: embedded (SQLite online, Parquet offline, file registry in "
        "state_dir) or scale (Redis online, Postgres offline and SQL registry); "
        "`nudge features refresh` applies and materialises it.",
    )
    workers: int = Field(1, ge=1, le=64, description="API worker processes.")
    sync_interval: float = Field(
        1.0, gt=0.0, description="Seconds between sharing what workers learned and closing windows."
    )
    decision_config: Path = Field(
        DEFAULT_CONFIG, description="Catalogue, slots, contact rules, holdout and rewards (YAML)."
    )

    admin_key: str | None = Field(
        None,
        description="Bearer token for /reports and other admin routes; unset disables them.",
    )
    auth: Literal["auto", "required", "off"] = Field(
        "auto",
        description="API keys: `auto` enforces them once a key exists (`nudge keys create`), "
        "`required` always, `off` never (behind a gateway that checks them).",
    )
    api_key: str | None = Field(
        None,
        description="The key this process's own clients send (journeys run --api, alerts check).",
    )
    alert_webhook_url: str | None = Field(
        None, description="Where alerts and their resolutions are POSTed (they are logged too)."
    )
    data_check_interval: float = Field(
        300.0,
        ge=0.0,
        description="Seconds between the server's data-quality checks (the nudge_data_* "
        "gauges in /metrics); 0 turns them off.",
    )
    alert_interval: float = Field(
        60.0, gt=0.0, description="Seconds between the server's alert evaluations."
    )
    latency_objective_ms: float = Field(
        10.0, gt=0.0, description="Decision latency p99 objective; above it, an alert fires."
    )
    feature_max_age_hours: float = Field(
        48.0, gt=0.0, description="Features older than this (last materialisation) are stale."
    )

    journeys_dir: Path = Field(
        Path(__file__).resolve().parents[1] / "journeys" / "definitions",
        description="Folder of journey YAML files that `nudge journeys run` runs.",
    )
    channels_config: Path = Field(
        Path(__file__).resolve().parents[1] / "channels" / "default_channels.yaml",
        description="Channel senders (SMTP, SMS/push providers, webhooks, file outboxes), YAML.",
    )
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="Where customers reach this API: the base of tracked and unsubscribe links.",
    )
    tracking_secret: str | None = Field(
        None,
        description="Signs tracked links; unset, one is made once and kept in state_dir.",
    )
    callback_secret: str | None = Field(
        None,
        description="Shared HMAC secret of provider callbacks; unset refuses them (403).",
    )
    webhook_secrets: dict[str, Annotated[str, Field(min_length=16)]] = Field(
        default_factory=dict,
        description="Inbound webhooks (POST /v1/webhooks/{source}): each source's shared HMAC "
        'secret, as JSON in NUDGE_WEBHOOK_SECRETS (\'{"crm": "..."}\'); a source not listed '
        "is refused (401), none listed turns the route off (403).",
    )
    identity_key: str | None = Field(
        None,
        description="Keys the hashes of customer identifiers (e-mail, phone, ids); unset, one "
        "is made once and kept in state_dir. Changing it orphans every stored link.",
    )
    phone_region: str | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="ISO country (GB, FR, ...) of phone numbers given without +country; "
        "unset, such numbers are refused rather than guessed.",
    )
    send_lease_s: float = Field(
        30.0,
        gt=0.0,
        description="A send claimed this long ago and never confirmed is taken as a crashed "
        "runner's, and sent again with the same message id.",
    )

    model_name: str = "nudge-propensity"
    model_alias: str = "champion"
    experiment: str = "nudge-propensity"
    model_reload_interval: float = Field(
        10.0,
        ge=0.0,
        description="Seconds between the API's checks of model_name@model_alias; a new version "
        "is loaded and put in service without a restart. 0 turns it off.",
    )
    snapshot_interval: float = Field(
        3600.0,
        ge=0.0,
        description="Seconds between snapshots of the online learners' state to MLflow "
        "(experiment nudge-online-state), by one API process per state folder; an unchanged "
        "state is not snapshotted again. 0 turns it off.",
    )

    policy: Literal["linear_ts", "epsilon_greedy", "uniform"] = "linear_ts"
    epsilon: float = Field(0.1, ge=0.0, le=1.0, description="epsilon_greedy's exploration rate.")
    learning_rate: float = Field(0.05, gt=0.0, description="epsilon_greedy's learning rate.")
    ts_exploration: float = Field(
        1.0,
        ge=0.0,
        description="linear_ts: scale of the posterior spread when choosing (0 greedy).",
    )
    prior_precision: float = Field(
        30.0,
        gt=0.0,
        description="linear_ts: how many observations the champion model's prior is worth "
        "(30 beat 1 and matched 300 on the Hillstrom replay).",
    )
    seed: int = 0

    def as_env(self) -> dict[str, str]:
        """These settings as ``NUDGE_*`` variables, for a child process to rebuild them.

        >>> Settings(port=8100).as_env()["NUDGE_PORT"]
        '8100'
        """
        return {
            # Mappings travel as JSON, the form pydantic-settings reads them back from.
            f"NUDGE_{name.upper()}": json.dumps(value) if isinstance(value, dict) else str(value)
            for name, value in self.model_dump().items()
            if value is not None  # unset stays unset, not the text "None"
        }

    @property
    def decision_db(self) -> Path:
        return self.state_dir / "decisions.db"

    @property
    def contact_db(self) -> Path:
        return self.state_dir / "contacts.db"

    @property
    def journeys_db(self) -> Path:
        return self.state_dir / "journeys.db"

    @property
    def event_stream_db(self) -> Path:
        return self.state_dir / "event_stream.db"

    @property
    def events_dir(self) -> Path:
        return self.state_dir / "events"

    @property
    def mlflow_db(self) -> Path:
        return self.state_dir / "mlflow.db"

    @property
    def mlflow_tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow_db.resolve()}"

    @property
    def mlflow_artifact_root(self) -> Path:
        return (self.state_dir / "mlartifacts").resolve()
