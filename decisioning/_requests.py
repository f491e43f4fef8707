"""Checks on what a caller passes to the decision engine, each failure naming its field."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime

from decisioning._checks import is_finite_number
from features import FeatureValue
from features.errors import InvalidRequest

__all__ = [
    "MAX_CONTEXT_KEYS",
    "MAX_CONTEXT_KEY_LENGTH",
    "MAX_CONTEXT_STRING_LENGTH",
    "MAX_EVENT_LENGTH",
    "check_context",
    "check_customer_id",
    "check_event",
    "check_moment",
    "check_number",
    "check_outcome_id",
]

MAX_EVENT_LENGTH = 64
# Every context value is logged with its decision and read back by every report:
# the caps keep one request from bloating the log.
MAX_CONTEXT_KEYS = 256
MAX_CONTEXT_KEY_LENGTH = 128
MAX_CONTEXT_STRING_LENGTH = 1024


def check_customer_id(customer_id: object) -> str:
    if not isinstance(customer_id, str) or not customer_id.strip():
        raise InvalidRequest("customer_id", "must be a non-empty string", customer_id)
    return customer_id


def check_context(context: object) -> dict[str, FeatureValue]:
    """A copy of ``context``; numbers must be finite so that models and logs stay sane."""
    if context is None:
        return {}
    if not isinstance(context, Mapping):
        raise InvalidRequest("context", "must be a mapping of feature names to values", context)
    if len(context) > MAX_CONTEXT_KEYS:
        raise InvalidRequest("context", f"must have at most {MAX_CONTEXT_KEYS} keys", len(context))
    checked: dict[str, FeatureValue] = {}
    for key, value in context.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_CONTEXT_KEY_LENGTH:
            raise InvalidRequest(
                "context",
                f"keys must be strings of 1 to {MAX_CONTEXT_KEY_LENGTH} characters",
                _shortened(key),
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidRequest(f"context.{key}", "must be a finite number", value)
        if value is not None and not isinstance(value, int | float | str):
            raise InvalidRequest(f"context.{key}", "must be a number, a string or null", value)
        if isinstance(value, str) and len(value) > MAX_CONTEXT_STRING_LENGTH:
            raise InvalidRequest(
                f"context.{key}",
                f"must be a string of at most {MAX_CONTEXT_STRING_LENGTH} characters",
                _shortened(value),
            )
        checked[key] = value
    return checked


def check_number(field: str, value: object) -> float:
    if not is_finite_number(value):
        raise InvalidRequest(field, "must be a finite number", value)
    return float(value)


def check_event(event: object) -> str:
    if not isinstance(event, str) or not event.strip() or len(event) > MAX_EVENT_LENGTH:
        raise InvalidRequest(
            "event", f"must be a non-empty string of at most {MAX_EVENT_LENGTH} characters", event
        )
    return event


def check_moment(field: str, moment: object) -> datetime:
    """``moment`` in UTC, if it is a time-zone-aware datetime that UTC can represent."""
    if not isinstance(moment, datetime):
        raise InvalidRequest(field, "must be a datetime", moment)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidRequest(field, "must include a time zone", moment.isoformat())
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-14:00 is in the year 10000 in UTC
        raise InvalidRequest(
            field,
            "must be a moment that exists in UTC, between 0001-01-01 and 9999-12-31",
            moment.isoformat(),
        ) from None


def check_outcome_id(outcome_id: object) -> str:
    if not isinstance(outcome_id, str) or not outcome_id.strip():
        raise InvalidRequest("outcome_id", "must be a non-empty string", outcome_id)
    return outcome_id


def _shortened(got: object) -> object:
    # An over-long input is named by its start and length, not echoed back whole.
    if isinstance(got, str) and len(got) > 40:
        return f"{got[:20]}... ({len(got)} characters)"
    return got
