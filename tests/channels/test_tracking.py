"""Signed tracking links and composed messages."""

from __future__ import annotations

import re

import pytest

from channels import TemplateRenderer, TrackedLink, TrackingLinks, compose
from features.errors import InvalidRequest

BASE = "https://t.example.com"


@pytest.fixture
def links() -> TrackingLinks:
    return TrackingLinks("tracking-secret", BASE + "/")


def _token(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_each_kind_round_trips(links: TrackingLinks) -> None:
    click = links.click_url("d-1", "https://shop.example.com/p?id=3&ref=mail")
    opened = links.open_url("d-1")
    unsubscribe = links.unsubscribe_url("d-1")
    assert click.startswith(f"{BASE}/t/c/")
    assert opened.startswith(f"{BASE}/t/o/")
    assert opened.endswith(".gif")
    assert unsubscribe.startswith(f"{BASE}/u/")
    assert links.parse(_token(click)) == TrackedLink(
        "click", "d-1", "https://shop.example.com/p?id=3&ref=mail"
    )
    assert links.parse(_token(opened)) == TrackedLink("open", "d-1", None)
    assert links.parse(_token(opened).removesuffix(".gif")) == TrackedLink("open", "d-1", None)
    assert links.parse(_token(unsubscribe)) == TrackedLink("unsubscribe", "d-1", None)
    # Compact: a token is well under a hundred characters for a short target.
    assert len(_token(unsubscribe)) < 40


def _forgeries(links: TrackingLinks) -> list[str]:
    token = _token(links.click_url("d-1", "https://shop.example.com/"))
    payload, mac = token.split(".")
    other_payload = _token(links.click_url("d-2", "https://evil.example.com/")).split(".")[0]
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    return [
        f"{payload}.{flipped}",  # a changed signature
        f"{other_payload}.{mac}",  # another payload under this signature
        _token(TrackingLinks("another-secret", BASE).click_url("d-1", "https://x.example/")),
        payload,  # no signature at all
        "not a token",
        "",
        f"{payload}.{mac}=",  # padding is not part of our tokens
    ]


@pytest.mark.parametrize("index", range(7))
def test_a_forged_or_broken_token_is_rejected(links: TrackingLinks, index: int) -> None:
    forged = _forgeries(links)[index]
    with pytest.raises(InvalidRequest, match="`token` must be a token issued by this deployment"):
        links.parse(forged)


def test_rewrite_tracks_web_links_only(links: TrackingLinks) -> None:
    unsubscribe = links.unsubscribe_url("d-1")
    html = (
        '<a href="https://shop.example.com/cart?a=1&amp;b=2">Cart</a>'
        "<a href='http://blog.example.com/'>Blog</a>"
        '<a href="mailto:help@example.com">Help</a>'
        f'<a href="{unsubscribe}">Unsubscribe</a>'
        '<img src="https://cdn.example.com/logo.png">'
    )
    out = links.rewrite_links(html, "d-1")
    hrefs = re.findall(r"""href=["']([^"']+)""", out)
    assert [links.parse(_token(url)) for url in hrefs[:2]] == [
        TrackedLink("click", "d-1", "https://shop.example.com/cart?a=1&b=2"),
        TrackedLink("click", "d-1", "http://blog.example.com/"),
    ]
    assert '<a href="mailto:help@example.com">Help</a>' in out
    assert f'<a href="{unsubscribe}">Unsubscribe</a>' in out
    assert '<img src="https://cdn.example.com/logo.png">' in out
    assert links.rewrite_links(out, "d-1") == out  # already tracked links stay


def test_rewrite_text_keeps_the_sentence_around_a_url(links: TrackingLinks) -> None:
    out = links.rewrite_text("New in: https://shop.example.com/new. Stop: " + BASE + "/u/x", "d")
    head, tail = out.split(". Stop: ")
    assert links.parse(_token(head.removeprefix("New in: "))).target_url == (
        "https://shop.example.com/new"
    )
    assert tail == BASE + "/u/x"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", BASE), "`secret` must be a non-empty string"),
        (("s", "t.example.com"), "`base_url` must be an http:// or https:// URL"),
    ],
)
def test_bad_settings_are_named(args: tuple[str, str], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        TrackingLinks(*args)


def test_a_click_target_must_be_a_web_url(links: TrackingLinks) -> None:
    with pytest.raises(InvalidRequest, match="`target_url` must be an http"):
        links.click_url("d-1", "javascript:alert(1)")


def test_compose_an_email(links: TrackingLinks) -> None:
    message = compose(
        TemplateRenderer(),
        links,
        message_id="d-42",
        customer_id="c-7",
        message="cart_reminder",
        channel="email",
        to="ann@example.com",
        # A feature must not be able to replace the unsubscribe link.
        variables={"first_name": "Ann", "cart_value": 20, "unsubscribe_url": "https://evil/"},
        metadata={"journey": "cart", "step": "remind"},
    )
    unsubscribe = links.unsubscribe_url("d-42")
    assert (message.message_id, message.customer_id, message.to) == (
        "d-42",
        "c-7",
        "ann@example.com",
    )
    assert message.subject == "Ann, you left something in your cart"
    assert message.headers == {
        "List-Unsubscribe": f"<{unsubscribe}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert message.metadata == {
        "decision_id": "d-42", "message": "cart_reminder", "journey": "cart", "step": "remind"
    }  # fmt: skip
    html = message.body_html or ""
    assert f'<a href="{unsubscribe}">Unsubscribe</a>' in html
    assert f'<img src="{links.open_url("d-42")}"' in html
    assert "https://evil/" not in html + message.body_text
    assert "https://shop.example.com/cart" not in html  # the cart link is tracked
    cart_click = links.click_url("d-42", "https://shop.example.com/cart")
    assert f'href="{cart_click}"' in html
    assert f"Back to my cart: {cart_click}" in message.body_text
    assert f"Unsubscribe: {unsubscribe}" in message.body_text


def test_compose_an_sms_tracks_its_links(links: TrackingLinks) -> None:
    message = compose(
        TemplateRenderer(),
        links,
        message_id="d-43",
        customer_id="c-7",
        message="discount_10",
        channel="sms",
        to="+33612345678",
        variables={"first_name": "Ann"},
    )
    shop = links.click_url("d-43", "https://shop.example.com")
    assert message.body_text == (
        f"Hi Ann, 10% off with code SAVE10: {shop} Stop: {links.unsubscribe_url('d-43')}"
    )
    assert (message.subject, message.body_html, message.headers) == (None, None, {})
