"""From a decision to a ready-to-send message: rendered, personalised and tracked.

>>> from channels.templates import TemplateRenderer
>>> links = TrackingLinks("s3cret", "https://t.example.com")
>>> message = compose(
...     TemplateRenderer(), links, message_id="d42", customer_id="c7", message="welcome",
...     channel="email", to="ann@example.com", variables={"first_name": "Ann"},
...     metadata={"journey": "onboarding"},
... )
>>> message.subject
'Welcome, Ann!'
>>> message.headers["List-Unsubscribe"] == f"<{links.unsubscribe_url('d42')}>"
True
>>> message.headers["List-Unsubscribe-Post"]
'List-Unsubscribe=One-Click'
>>> links.open_url("d42") in message.body_html
True
>>> message.metadata
{'decision_id': 'd42', 'message': 'welcome', 'journey': 'onboarding'}
"""

from __future__ import annotations

from collections.abc import Mapping

from channels.templates import TemplateRenderer
from channels.tracking import TrackingLinks
from channels.types import OutboundMessage

__all__ = ["compose"]


def compose(
    renderer: TemplateRenderer,
    links: TrackingLinks,
    *,
    message_id: str,
    customer_id: str,
    message: str,
    channel: str,
    to: str,
    variables: Mapping[str, object],
    metadata: Mapping[str, str] | None = None,
) -> OutboundMessage:
    """Render ``message`` for ``channel`` with ``variables`` and track it.

    Templates get ``unsubscribe_url`` and ``open_pixel_url`` on top of ``variables``
    (ours win: a feature must not be able to replace the unsubscribe link). Every http(s)
    link in the HTML and the text becomes a signed click URL, except the unsubscribe
    link; e-mail also gets ``List-Unsubscribe`` and its RFC 8058 one-click companion
    ``List-Unsubscribe-Post`` here, so that every channel (an e-mail API, the file outbox)
    carries both, not only SMTP.
    """
    unsubscribe_url = links.unsubscribe_url(message_id)
    context = {
        **variables,
        "unsubscribe_url": unsubscribe_url,
        "open_pixel_url": links.open_url(message_id),
    }
    rendered = renderer.render(message, channel, context)
    html = None if rendered.html is None else links.rewrite_links(rendered.html, message_id)
    headers = (
        {}
        if rendered.subject is None
        else {
            "List-Unsubscribe": f"<{unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
    )
    return OutboundMessage(
        message_id=message_id,
        customer_id=customer_id,
        channel=channel,
        to=to,
        body_text=links.rewrite_text(rendered.text, message_id),
        subject=rendered.subject,
        body_html=html,
        headers=headers,
        metadata={"decision_id": message_id, "message": message, **(metadata or {})},
    )
