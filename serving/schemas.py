"""Request and response bodies of the HTTP API (kept apart so each can evolve)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ActionBody",
    "CancelResponse",
    "CandidateMessageBody",
    "CandidateScore",
    "ChannelContactBody",
    "ContactProfileResponse",
    "ContactUpdate",
    "DecideRequest",
    "DecideResponse",
    "ExclusionBody",
    "HealthResponse",
    "OutcomeBatch",
    "OutcomeBatchItem",
    "OutcomeBatchResponse",
    "OutcomeRequest",
    "OutcomeResponse",
    "SendCheckResponse",
]

ContextValue = float | int | str | bool | None


class CandidateMessageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=128)
    channels: list[str] | None = Field(
        None, min_length=1, description="Channels it may go on; default: every channel it allows."
    )


class DecideRequest(BaseModel):
    """Ask for one decision: which message, on which channel, when — or no send."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "c-1042",
                    "journey": "cart_abandonment",
                    "step": "reminder_1",
                    "candidates": [
                        {"message": "discount_10", "channels": ["email", "sms"]},
                        {"message": "new_arrivals"},
                    ],
                    "idempotency_key": "cart-1042-step-1",
                }
            ]
        },
    )

    customer_id: str = Field(min_length=1, max_length=256)
    journey: str = Field("default", min_length=1, max_length=128)
    step: str = Field("default", min_length=1, max_length=128)
    candidates: list[CandidateMessageBody] = Field(min_length=1, max_length=64)
    allow_no_send: bool = Field(True, strict=True, description="False for steps that must send.")
    slots: list[str] | None = Field(
        None,
        min_length=1,
        description="Configured slot names, or ISO 8601 times with a zone; default: every slot.",
    )
    time_zone: str | None = Field(
        None, description="The customer's IANA zone; default: their profile's, else the config's."
    )
    context: dict[str, ContextValue] | None = Field(
        None, description="Feature values known to the caller; they override the feature store."
    )
    idempotency_key: str | None = Field(
        None, min_length=1, max_length=128, description="The same key returns the same decision."
    )


class ActionBody(BaseModel):
    key: str = Field(description='"message/channel/slot", or "no_send".')
    message: str | None
    channel: str | None
    slot: str | None
    send_at: datetime | None
    transactional: bool


class CandidateScore(BaseModel):
    prior: float = Field(description="The offline model's expected reward.")
    mean: float = Field(description="The policy's current estimate of the reward.")
    uncertainty: float = Field(description="Standard deviation of that estimate.")
    probability: float = Field(description="Probability that this candidate is chosen.")


class ExclusionBody(BaseModel):
    action: str
    rule: str = Field(description="consent, suppression, reachability, quiet_hours, frequency_cap")
    detail: str


class DecideResponse(BaseModel):
    decision_id: str
    customer_id: str
    journey: str
    step: str
    group: str = Field(description="policy, explore (uniform slice) or holdout.")
    action: ActionBody
    propensity: float = Field(
        description="Probability of the chosen joint action under the logging policy."
    )
    propensity_error: float = Field(description="Standard error of the propensity (0 if exact).")
    explored: bool
    policy_version: str
    model_version: str
    decided_at: datetime
    attribution_closes_at: datetime | None
    time_zone: str
    eligible: list[str]
    scores: dict[str, CandidateScore]
    excluded: list[ExclusionBody]
    missing_features: list[str] = Field(
        description="Features the store had no value for; the model treated them as missing."
    )


class OutcomeRequest(BaseModel):
    """Report what happened after a decision (a conversion, a click, an unsubscribe…)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "decision_id": "…",
                    "event": "purchase",
                    "value": 42.5,
                    "occurred_at": "2026-12-03T10:00:00Z",
                }
            ]
        },
    )

    decision_id: str = Field(min_length=1, max_length=256)
    event: str = Field(min_length=1, max_length=64)
    value: float | None = Field(
        None, strict=True, description="The event's value, e.g. the purchase amount."
    )
    occurred_at: AwareDatetime
    outcome_id: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="Deduplication key; default: decision, event and time.",
    )

    @model_validator(mode="after")
    def _finite(self) -> OutcomeRequest:
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError("`value` must be a finite number")
        return self


class OutcomeResponse(BaseModel):
    outcome_id: str
    decision_id: str
    new: bool = Field(description="False when this outcome had already been recorded.")
    credited: bool = Field(description="True when it changed the decision's reward.")
    learned: bool = Field(description="True when the policy learned from it.")


class CancelResponse(BaseModel):
    decision_id: str
    cancelled: bool = Field(
        description="False when its window had already closed or it was already cancelled."
    )


class OutcomeBatch(BaseModel):
    """Up to 1,000 outcomes; each is accepted or refused on its own."""

    model_config = ConfigDict(extra="forbid")

    outcomes: list[OutcomeRequest] = Field(min_length=1, max_length=1000)


class OutcomeBatchItem(BaseModel):
    index: int
    status: int = Field(description="202 accepted, or the status this outcome alone would get.")
    outcome_id: str | None = None
    new: bool | None = None
    credited: bool | None = None
    learned: bool | None = None
    error: str | None = None


class OutcomeBatchResponse(BaseModel):
    accepted: int
    refused: int
    results: list[OutcomeBatchItem]


class SendCheckResponse(BaseModel):
    decision_id: str
    allowed: bool
    rule: str | None = None
    detail: str | None = None


class ChannelContactBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    consent: Literal["opted_in", "opted_out"] | None = None
    reachable: bool | None = None
    suppressed: Literal["hard_bounce", "complaint", "unsubscribe"] | None = Field(
        None, description="Suppress the channel for this reason (wins over consent)."
    )


class ContactUpdate(BaseModel):
    """Change a customer's consent, reachability, suppression or time zone."""

    model_config = ConfigDict(extra="forbid")

    channels: dict[str, ChannelContactBody] = Field(default_factory=dict)
    time_zone: str | None = None
    at: AwareDatetime | None = Field(None, description="When it happened; default: now.")


class ChannelContactState(BaseModel):
    consent: str
    suppressed: str | None
    reachable: bool


class ContactProfileResponse(BaseModel):
    customer_id: str
    time_zone: str | None
    channels: dict[str, ChannelContactState]


class HealthResponse(BaseModel):
    status: str
    model_name: str
    model_version: str
    policy_version: str
    decisions_logged: int
    worker_id: str = Field(description="This worker process; workers share what they learn.")
    storage: str
