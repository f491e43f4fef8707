"""Jinja2 templates per message and channel, rendered in a sandbox.

Layout under the template directory (``channels/templates/`` by default)::

    {message}/email.subject.j2   {message}/email.txt.j2   {message}/email.html.j2
    {message}/sms.j2             {message}/push.j2        {message}/{channel}.j2

Only ``.html.j2`` templates are autoescaped. A variable the caller does not have
renders as nothing (``ChainableUndefined``): a customer without a first name must
still get the message, so templates give their own defaults,
``{{ first_name | default('there', true) }}``.

>>> renderer = TemplateRenderer()
>>> renderer.render("welcome", "sms", {"first_name": "Ann", "unsubscribe_url": "U"}).text
'Welcome to the shop, Ann! Your first order ships free. Stop: U'
>>> renderer.render("welcome", "email", {}).subject
'Welcome, there!'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from features.errors import InvalidRequest, NotFound

__all__ = ["DEFAULT_TEMPLATES", "Rendered", "TemplateRenderer"]

DEFAULT_TEMPLATES = Path(__file__).with_name("templates")
# Names become paths: nothing that could climb out of the template directory.
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    """E-mail only."""
    text: str
    html: str | None
    """E-mail only, when the message has an HTML template."""


class TemplateRenderer:
    """Renders ``{message}/{channel}`` templates with a customer's variables."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = DEFAULT_TEMPLATES if directory is None else Path(directory)
        self._env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(self.directory),
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html.j2",), default_for_string=False, default=False
            ),
            undefined=jinja2.ChainableUndefined,
            # Templates change with a deploy, not while sending: no stat() per message.
            auto_reload=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def messages(self) -> list[str]:
        """The messages that have templates (folders starting with ``_`` are shared parts)."""
        return sorted(
            p.name for p in self.directory.iterdir() if p.is_dir() and _NAME.match(p.name)
        )

    def render(self, message: str, channel: str, variables: Mapping[str, object]) -> Rendered:
        """Render ``message`` for ``channel``; NotFound when it has no template there."""
        for field, value in (("message", message), ("channel", channel)):
            if not _NAME.match(value):
                raise InvalidRequest(field, "must be lower-case letters, digits, '_' or '-'", value)
        context = dict(variables)
        if channel == "email":
            text = self._render(f"{message}/email.txt.j2", context, f"{message}/{channel}")
            subject = self._render(f"{message}/email.subject.j2", context, f"{message}/{channel}")
            html = self._render_optional(f"{message}/email.html.j2", context)
            # A subject is one line whatever the template's layout.
            return Rendered(" ".join(subject.split()), text, html)
        return Rendered(
            None, self._render(f"{message}/{channel}.j2", context, f"{message}/{channel}"), None
        )

    def _render(self, name: str, context: dict[str, object], key: str) -> str:
        text = self._render_optional(name, context)
        if text is None:
            raise NotFound("template", key)
        return text

    def _render_optional(self, name: str, context: dict[str, object]) -> str | None:
        try:
            template = self._env.get_template(name)
        except jinja2.TemplateNotFound as err:
            if err.name != name:
                raise _missing_part(name, err) from err
            return None
        except jinja2.TemplateSyntaxError as err:
            raise _syntax(name, err) from err
        try:
            return template.render(context).strip()
        # A base layout is loaded at render time, so its own mistakes surface here.
        except jinja2.TemplateSyntaxError as err:
            raise _syntax(name, err) from err
        except jinja2.TemplateNotFound as err:
            raise _missing_part(name, err) from err
        except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError) as err:
            raise InvalidRequest(name, f"must render with the variables given ({err})") from err


def _syntax(name: str, err: jinja2.TemplateSyntaxError) -> InvalidRequest:
    return InvalidRequest(
        f"{err.name or name}:{err.lineno}", f"must be a valid Jinja2 template ({err.message})"
    )


def _missing_part(name: str, err: jinja2.TemplateNotFound) -> InvalidRequest:
    return InvalidRequest(name, "must extend or include only templates that exist", err.name)
