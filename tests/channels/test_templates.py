"""Message templates: personalisation, escaping, the unsubscribe link, and named errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from channels import TemplateRenderer
from features.errors import InvalidRequest, NotFound

SHIPPED = [
    "cart_reminder",
    "discount_10",
    "new_arrivals",
    "order_update",
    "welcome",
    "winback_offer",
]
LINKS = {
    "unsubscribe_url": "https://t.example.com/u/TOKEN",
    "open_pixel_url": "https://t.example.com/t/o/TOKEN.gif",
}


@pytest.fixture(scope="module")
def renderer() -> TemplateRenderer:
    return TemplateRenderer()


def test_every_message_ships_email_sms_push_and_webhook(renderer: TemplateRenderer) -> None:
    assert renderer.messages() == SHIPPED
    for message in SHIPPED:
        for channel in ("sms", "push", "webhook"):
            rendered = renderer.render(message, channel, LINKS)
            assert rendered.text
            assert rendered.subject is None
            assert rendered.html is None


@pytest.mark.parametrize("message", SHIPPED)
def test_every_email_has_the_unsubscribe_link_and_the_open_pixel(
    renderer: TemplateRenderer, message: str
) -> None:
    rendered = renderer.render(message, "email", LINKS)
    assert rendered.subject
    assert "\n" not in rendered.subject
    assert rendered.html is not None
    assert '<a href="https://t.example.com/u/TOKEN">Unsubscribe</a>' in rendered.html
    assert '<img src="https://t.example.com/t/o/TOKEN.gif"' in rendered.html
    assert "Unsubscribe: https://t.example.com/u/TOKEN" in rendered.text


def test_personalisation_from_profile_variables(renderer: TemplateRenderer) -> None:
    variables = {**LINKS, "first_name": "Ann", "cart_value": 59.9}
    cart = renderer.render("cart_reminder", "email", variables)
    assert cart.subject == "Ann, you left something in your cart"
    assert "Your cart worth 59.90 is saved for you." in cart.text
    assert "worth <strong>59.90</strong>" in (cart.html or "")
    winback = renderer.render("winback_offer", "sms", {**LINKS, "first_name": "Bo", "recency": 9})
    assert winback.text.startswith("We miss you, Bo! 15% off with code COMEBACK15")
    email = renderer.render("winback_offer", "email", {**LINKS, "recency": 9})
    assert "It has been 9 months since your last order." in email.text


def test_missing_features_fall_back_to_the_templates_defaults(renderer: TemplateRenderer) -> None:
    rendered = renderer.render("cart_reminder", "email", {**LINKS, "first_name": None})
    assert rendered.subject == "there, you left something in your cart"
    assert "Your cart is saved for you." in rendered.text  # no value, no "worth"
    assert "None" not in rendered.text


def test_a_malicious_first_name_is_escaped_in_html_only(renderer: TemplateRenderer) -> None:
    name = '<script>alert("x")</script>'
    rendered = renderer.render("welcome", "email", {**LINKS, "first_name": name})
    assert rendered.html is not None
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in rendered.html
    # Plain text is not HTML: escaping there would show the customer "&lt;".
    assert rendered.text.startswith(f"Welcome, {name}!")


@pytest.mark.parametrize(
    ("message", "channel", "key"),
    [
        ("welcome", "fax", "welcome/fax"),
        ("no_such_message", "email", "no_such_message/email"),
        ("no_such_message", "sms", "no_such_message/sms"),
    ],
)
def test_a_missing_template_is_not_found(
    renderer: TemplateRenderer, message: str, channel: str, key: str
) -> None:
    with pytest.raises(NotFound, match=f"template '{key}' not found"):
        renderer.render(message, channel, LINKS)


@pytest.mark.parametrize(
    ("message", "channel", "field"), [("../etc", "sms", "message"), ("welcome", "SMS", "channel")]
)
def test_names_that_are_not_plain_are_refused(
    renderer: TemplateRenderer, message: str, channel: str, field: str
) -> None:
    with pytest.raises(InvalidRequest, match=f"`{field}` must be lower-case letters"):
        renderer.render(message, channel, LINKS)


def test_a_syntax_error_names_the_file_and_the_line(tmp_path: Path) -> None:
    (tmp_path / "promo").mkdir()
    (tmp_path / "promo" / "sms.j2").write_text("Hi {{ first_name }}\n\nYour code: {{ code }\n")
    with pytest.raises(InvalidRequest, match=r"`promo/sms.j2:3` must be a valid Jinja2 template"):
        TemplateRenderer(tmp_path).render("promo", "sms", {})


def test_a_syntax_error_in_a_shared_layout_names_the_layout(tmp_path: Path) -> None:
    (tmp_path / "_layout").mkdir()
    (tmp_path / "_layout" / "base.j2").write_text("{% block body %}{% endblock %}\n{% if %}\n")
    (tmp_path / "promo").mkdir()
    (tmp_path / "promo" / "sms.j2").write_text('{% extends "_layout/base.j2" %}')
    with pytest.raises(InvalidRequest, match=r"`_layout/base.j2:2` must be a valid Jinja2"):
        TemplateRenderer(tmp_path).render("promo", "sms", {})


def test_the_sandbox_keeps_templates_away_from_python_internals(tmp_path: Path) -> None:
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "sms.j2").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(InvalidRequest, match=r"`evil/sms\.j2` must render.*unsafe"):
        TemplateRenderer(tmp_path).render("evil", "sms", {})
