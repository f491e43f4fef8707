"""The payload schema of each standard event type; any other type is a custom event.

A standard type's known fields are checked for their type and range (a
``purchase`` whose ``value`` is ``"12,99"`` is refused by name rather than
read as missing by every feature); fields a schema does not name pass through,
so a sender may add its own. A custom event (``wishlist_add``, ...) carries any
JSON object under a name of letters, digits and ``_.-:``.

>>> check_payload("purchase", {"value": 19.99, "currency": "EUR"})
>>> check_payload("purchase", {"value": -1}, "events[2].")
Traceback (most recent call last):
...
features.errors.InvalidRequest: `events[2].payload.value` must be a number >= 0, got -1
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from features.errors import InvalidRequest
from features.identity import normalise_email

__all__ = ["CUSTOM_TYPE", "EVENT_SCHEMAS", "STANDARD_TYPES", "check_payload"]

Check = Callable[[object], str | None]
"""What is wrong with a value (the expectation, in words), or None."""


def _amount(value: object) -> str | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return None if ok and value >= 0 else "must be a number >= 0"  # type: ignore[operator]


def _count(value: object) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return None if ok else "must be an integer >= 1"


def _text(value: object) -> str | None:
    return None if isinstance(value, str) and value.strip() else "must be a non-empty string"


def _url(value: object) -> str | None:
    ok = isinstance(value, str) and re.match(r"^(https?://|/)\S*$", value) is not None
    return None if ok else "must be an http(s) URL or a path"


def _currency(value: object) -> str | None:
    ok = isinstance(value, str) and re.fullmatch(r"[A-Z]{3}", value) is not None
    return None if ok else "must be an ISO 4217 code like EUR"


def _consent(value: object) -> str | None:
    return None if value in ("opted_in", "opted_out") else "must be opted_in or opted_out"


def _consents(value: object) -> str | None:
    if not isinstance(value, Mapping) or not value:
        return "must map channels to opted_in or opted_out"
    bad = [channel for channel, state in value.items() if _consent(state) is not None]
    return None if not bad else "must map channels to opted_in or opted_out"


def _zone(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return "must be an IANA time zone like Europe/Paris"
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return "must be an IANA time zone like Europe/Paris"
    return None


def _email(value: object) -> str | None:
    try:
        normalise_email(value)
    except InvalidRequest as error:
        return error.expected
    return None


def _phone(value: object) -> str | None:
    """International (+country) or national digits; which country a national number is in
    is the stitching's question (``NUDGE_PHONE_REGION``), not the schema's."""
    ok = isinstance(value, str) and re.fullmatch(r"\+?[\d\s().-]+", value.strip()) is not None
    digits = sum(c.isdigit() for c in value) if isinstance(value, str) else 0
    return None if ok and 6 <= digits <= 15 else "must be a phone number (6 to 15 digits)"


_CLICK = {"url": _url, "decision_id": _text, "message": _text, "channel": _text}
_PROFILE = {
    "email": _email,
    "phone": _phone,
    "push_token": _text,
    "time_zone": _zone,
    "first_name": _text,
    "last_name": _text,
}
_IDENTITY = {**_PROFILE, "anonymous_id": _text, "device_id": _text}

EVENT_SCHEMAS: Mapping[str, Mapping[str, Check]] = {
    "page_view": {"url": _url, "referrer": _url},
    "product_view": {"sku": _text, "price": _amount, "category": _text},
    "add_to_cart": {"sku": _text, "quantity": _count, "price": _amount, "cart_value": _amount},
    "checkout_started": {"cart_value": _amount},
    "purchase": {"value": _amount, "currency": _currency, "order_id": _text},
    "email_open": _CLICK,
    "email_click": _CLICK,
    "sms_click": _CLICK,
    "push_open": _CLICK,
    "app_open": {"device_id": _text},
    "unsubscribe": {"channel": _text, "decision_id": _text},
    "consent_update": {"channel": _text, "consent": _consent, "channels": _consents},
    "profile_update": _PROFILE,
    "identify": _IDENTITY,
    "login": _IDENTITY,
}
"""Each standard type's known payload fields and their checks (none is required)."""

STANDARD_TYPES = frozenset(EVENT_SCHEMAS)
CUSTOM_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,127}")


def check_payload(kind: str, payload: Mapping[str, Any], where: str = "") -> None:
    """Raise ``InvalidRequest`` naming ``<where>payload.<field>`` for a value its type refuses."""
    schema = EVENT_SCHEMAS.get(kind)
    if schema is None:
        if not CUSTOM_TYPE.fullmatch(kind):
            raise InvalidRequest(
                f"{where}type",
                "must be a standard event type or a custom name of letters, digits and _.-:",
                kind,
            )
        return
    for field, check in schema.items():
        if field in payload and payload[field] is not None:
            problem = check(payload[field])
            if problem is not None:
                raise InvalidRequest(f"{where}payload.{field}", problem, payload[field])
    if kind == "consent_update" and "channels" not in payload:
        for field in ("channel", "consent"):
            if payload.get(field) is None:
                raise InvalidRequest(
                    f"{where}payload.{field}",
                    "is required (or give `channels`: {email: opted_in, ...})",
                )
