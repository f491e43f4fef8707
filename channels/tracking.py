"""Signed click, open and unsubscribe links, so that nobody can forge an outcome.

A token is ``{payload}.{mac}``: the payload (kind, message id and, for clicks, the
target URL) and the first 16 bytes of its HMAC-SHA256, both url-safe base64 without
padding. The target is inside the signed payload, so a tracked link cannot be turned
into an open redirect.

>>> links = TrackingLinks("s3cret", "https://t.example.com/")
>>> url = links.click_url("d42", "https://shop.example.com/cart?x=1")
>>> url.startswith("https://t.example.com/t/c/")
True
>>> links.parse(url.rsplit("/", 1)[1])
TrackedLink(kind='click', message_id='d42', target_url='https://shop.example.com/cart?x=1')
>>> links.parse(links.open_url("d42").rsplit("/", 1)[1]).kind
'open'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import re
from dataclasses import dataclass
from typing import Literal

from features.errors import InvalidRequest

__all__ = ["TrackedLink", "TrackingLinks"]

LinkKind = Literal["click", "open", "unsubscribe"]
_CODES: dict[str, LinkKind] = {"c": "click", "o": "open", "u": "unsubscribe"}
_MAC_BYTES = 16
_HREF = re.compile(r"""href=(["'])(https?://[^"']*)\1""", re.IGNORECASE)
# Trailing punctuation usually ends the sentence, not the URL.
_TEXT_URL = re.compile(r"""https?://[^\s<>"']+[^\s<>"'.,;:!?)\]]""")


@dataclass(frozen=True)
class TrackedLink:
    kind: LinkKind
    message_id: str
    target_url: str | None
    """Where a click goes; None for opens and unsubscribes."""


class TrackingLinks:
    """Builds and checks the tracked URLs of one deployment."""

    def __init__(self, secret: str, base_url: str) -> None:
        if not secret:
            raise InvalidRequest("secret", "must be a non-empty string")
        if not re.match(r"^https?://[^\s/]+", base_url):
            raise InvalidRequest("base_url", "must be an http:// or https:// URL", base_url)
        self.base_url = base_url.rstrip("/")
        self._key = secret.encode("utf-8")

    def click_url(self, message_id: str, target_url: str) -> str:
        if not re.match(r"^https?://", target_url):
            raise InvalidRequest("target_url", "must be an http:// or https:// URL", target_url)
        return f"{self.base_url}/t/c/{self._token('c', message_id, target_url)}"

    def open_url(self, message_id: str) -> str:
        return f"{self.base_url}/t/o/{self._token('o', message_id, '')}.gif"

    def unsubscribe_url(self, message_id: str) -> str:
        return f"{self.base_url}/u/{self._token('u', message_id, '')}"

    def parse(self, token: str) -> TrackedLink:
        """The link a token stands for; InvalidRequest("token", ...) if it is not ours."""
        expected = "must be a token issued by this deployment's tracking links"
        payload_part, _, mac_part = token.removesuffix(".gif").partition(".")
        try:
            payload = _unb64(payload_part)
            mac = _unb64(mac_part)
        except (binascii.Error, ValueError):
            raise InvalidRequest("token", expected, token) from None
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidRequest("token", expected, token)
        code, message_id, target = payload.decode("utf-8").split("|", 2)
        return TrackedLink(_CODES[code], message_id, target or None)

    def rewrite_links(self, html_text: str, message_id: str) -> str:
        """Every ``href="http..."`` becomes its tracked click URL.

        mailto: links, this message's unsubscribe link and links already tracked stay.

        >>> links = TrackingLinks("s3cret", "https://t.example.com")
        >>> out = links.rewrite_links('<a href="https://shop.example.com/">Shop</a>', "d1")
        >>> out.startswith('<a href="https://t.example.com/t/c/')
        True
        """

        def tracked(match: re.Match[str]) -> str:
            quote, url = match.group(1), match.group(2)
            # In an attribute "&amp;" is "&": the customer must land where the author meant.
            target = html.unescape(url)
            if self._is_ours(target):
                return match.group(0)
            return f"href={quote}{self.click_url(message_id, target)}{quote}"

        return _HREF.sub(tracked, html_text)

    def rewrite_text(self, text: str, message_id: str) -> str:
        """Every http(s) URL in plain text (SMS, push, the text part) becomes tracked.

        >>> links = TrackingLinks("s3cret", "https://t.example.com")
        >>> links.rewrite_text("See https://shop.example.com/new.", "d1").endswith(".")
        True
        """

        def tracked(match: re.Match[str]) -> str:
            url = match.group(0)
            return url if self._is_ours(url) else self.click_url(message_id, url)

        return _TEXT_URL.sub(tracked, text)

    def _is_ours(self, url: str) -> bool:
        return url.startswith((f"{self.base_url}/t/", f"{self.base_url}/u/"))

    def _token(self, code: str, message_id: str, target: str) -> str:
        if not message_id or "|" in message_id:
            raise InvalidRequest("message_id", "must be a non-empty id without '|'", message_id)
        payload = f"{code}|{message_id}|{target}".encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise ValueError("not url-safe base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
