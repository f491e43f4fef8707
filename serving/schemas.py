"""Request and response bodies of the HTTP API (kept apart so each can evolve)."""

from __future__ import annotations

import math
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CandidateScore",
    "DecideRequest",
    "DecideResponse",
    "HealthResponse",
    "OutcomeRequest",
    "OutcomeResponse",
]

ContextValue = float | int | str | bool | None


class DecideRequest(BaseModel):
    """Ask for one decision for one customer."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"customer_id": "h00042", "candidates": None}]},
    )

    customer_id: str = Field(min_length=1, max_length=256)
    candidates: list[str] | None = Field(
        None, min_length=1, description="Action ids to choose from; default: every action."
    )
    context: dict[str, ContextValue] | None = Field(
        None, description="Feature values known to the caller; they override the feature store."
    )


class CandidateScore(BaseModel):
    prior: float = Field(description="The model's estimate of the reward.")
    mean: float = Field(description="The policy's current estimate, after online correction.")
    probability: float = Field(description="Probability that the policy picks this candidate.")


class DecideResponse(BaseModel):
    decision_id: str
    customer_id: str
    action: str
    propensity: float = Field(description="Probability of the chosen action under the policy.")
    explored: bool
    policy_version: str
    model_version: str
    decided_at: datetime
    scores: dict[str, CandidateScore]
    missing_features: list[str] = Field(
        description="Features the store had no value for; the model treated them as missing."
    )


class OutcomeRequest(BaseModel):
    """Report what happened after a decision: either a reward, or an event with a value."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"decision_id": "…", "event": "visit", "occurred_at": "2026-12-03T10:00:00Z"}
            ]
        },
    )

    decision_id: str = Field(min_length=1, max_length=256)
    reward: float | None = Field(None, strict=True, description="The reward itself.")
    event: str | None = Field(None, min_length=1, max_length=64)
    value: float | None = Field(
        None, strict=True, description="With `event`: its value, used as the reward."
    )
    occurred_at: AwareDatetime
    outcome_id: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="Deduplication key; default: decision, event and time.",
    )

    @model_validator(mode="after")
    def _reward_or_event(self) -> OutcomeRequest:
        if (self.reward is None) == (self.event is None):
            raise ValueError("give exactly one of `reward` or `event`")
        if self.value is not None and self.event is None:
            raise ValueError("`value` goes with `event`; with `reward`, leave it out")
        for name in ("reward", "value"):
            number = getattr(self, name)
            if number is not None and not math.isfinite(number):
                raise ValueError(f"`{name}` must be a finite number")
        return self


class OutcomeResponse(BaseModel):
    outcome_id: str
    decision_id: str
    new: bool = Field(description="False when this outcome had already been recorded.")
    learned: bool = Field(description="True when the policy learned from it.")


class HealthResponse(BaseModel):
    status: str
    model_name: str
    model_version: str
    policy_version: str
    decisions_logged: int
