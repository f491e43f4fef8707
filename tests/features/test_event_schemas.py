"""Each standard event type's payload schema; custom events by name."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from features.errors import InvalidRequest
from features.event_schemas import STANDARD_TYPES, check_payload
from features.event_stream import CustomerEvent, check_event

AT = datetime(2026, 12, 1, 9, tzinfo=UTC)


def test_every_type_the_issue_names_has_a_schema() -> None:
    named = {
        "page_view", "product_view", "add_to_cart", "checkout_started", "purchase",
        "email_open", "email_click", "sms_click", "push_open", "app_open", "unsubscribe",
        "consent_update", "profile_update", "identify",
    }  # fmt: skip
    assert named <= STANDARD_TYPES


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        ("purchase", {"value": 19.99, "currency": "EUR", "order_id": "o-1", "coupon": "X"}),
        ("purchase", {}),  # no field is required; data check reports missing values
        ("add_to_cart", {"sku": "A-1", "quantity": 2, "price": 9.5, "cart_value": 19}),
        ("page_view", {"url": "https://shop.example.com/a?b=1", "referrer": "/home"}),
        ("consent_update", {"channel": "email", "consent": "opted_out"}),
        ("consent_update", {"channels": {"email": "opted_in", "sms": "opted_out"}}),
        (
            "identify",
            {"email": "a@example.com", "anonymous_id": "anon-1", "time_zone": "Asia/Tokyo"},
        ),
        ("email_click", {"decision_id": "d1", "url": "https://x.example/", "channel": "email"}),
        ("wishlist_add", {"anything": [1, {"nested": True}]}),  # a custom event
        ("hard_bounce", {"decision_id": "d1"}),
    ],
)
def test_good_payloads_pass(kind: str, payload: dict[str, Any]) -> None:
    check_payload(kind, payload)


@pytest.mark.parametrize(
    ("kind", "payload", "field", "expected"),
    [
        ("purchase", {"value": "12,99"}, "payload.value", "must be a number >= 0"),
        ("purchase", {"value": True}, "payload.value", "must be a number >= 0"),
        ("purchase", {"currency": "euro"}, "payload.currency", "ISO 4217"),
        ("add_to_cart", {"quantity": 0}, "payload.quantity", "integer >= 1"),
        ("add_to_cart", {"quantity": 1.5}, "payload.quantity", "integer >= 1"),
        ("add_to_cart", {"cart_value": -3}, "payload.cart_value", "number >= 0"),
        ("page_view", {"url": "javascript:alert(1)"}, "payload.url", "http(s) URL"),
        ("consent_update", {"channel": "email", "consent": "yes"}, "payload.consent", "opted_in"),
        ("consent_update", {"channel": "email"}, "payload.consent", "is required"),
        ("consent_update", {"channels": {"email": "maybe"}}, "payload.channels", "opted_in"),
        ("profile_update", {"time_zone": "Mars/Olympus"}, "payload.time_zone", "IANA"),
        ("identify", {"email": ""}, "payload.email", "e-mail address"),
        ("profile_update", {"email": "bad"}, "payload.email", "e-mail address"),
        ("profile_update", {"phone": "123"}, "payload.phone", "6 to 15 digits"),
        ("profile_update", {"phone": "call me"}, "payload.phone", "6 to 15 digits"),
    ],
)
def test_bad_payloads_name_the_field(
    kind: str, payload: dict[str, Any], field: str, expected: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_payload(kind, payload, "events[4].")
    assert caught.value.field == f"events[4].{field}"
    assert expected in caught.value.expected


@pytest.mark.parametrize("kind", ["two words", "1st_event", "a" * 129, "café"])
def test_custom_names_are_letters_digits_and_separators(kind: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_event(CustomerEvent("e1", "c1", kind, AT, {}), "events[0].")
    assert caught.value.field == "events[0].type"
