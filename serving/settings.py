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

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Everything a Nudge process needs to know; backends are picked by short type strings."""

    model_config = SettingsConfigDict(env_prefix="NUDGE_", extra="forbid", frozen=True)

    state_dir: Path = Field(Path(".nudge"), description="Where embedded-mode state lives.")
    reports_dir: Path = Field(Path("reports"), description="Where reports are written.")
    host: str = "127.0.0.1"
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="Largest request body accepted.")
    port: int = Field(8000, ge=1, le=65535)

    decision_log: Literal["sqlite"] = "sqlite"
    feature_store: Literal["sqlite"] = "sqlite"

    model_name: str = "nudge-propensity"
    model_alias: str = "champion"
    experiment: str = "nudge-propensity"

    policy: Literal["epsilon_greedy", "uniform"] = "epsilon_greedy"
    epsilon: float = Field(0.1, ge=0.0, le=1.0)
    learning_rate: float = Field(0.05, gt=0.0)
    seed: int = 0

    @property
    def decision_db(self) -> Path:
        return self.state_dir / "decisions.db"

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
