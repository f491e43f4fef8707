"""Numbers as a marketer reads them: one formatting for the report page, its warnings and tests.

Every number a report table shows is one of a few *kinds*; :func:`format_value`
turns a JSON value of that kind into text, so a test can check that the page
shows exactly what the JSON holds. Negative numbers use a true minus sign.

>>> format_value("percent", 0.08123)
'8.12 %'
>>> format_value("points", -0.0301)
'−3.01 pts'
>>> format_value("count", 20000)
'20,000'
>>> format_value("money", None)
'n/a'
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["KINDS", "format_value"]

_MINUS = "\u2212"


def _plain(text: str) -> str:
    return text.replace("-", _MINUS)


def _percent(x: float) -> str:
    return _plain(f"{100 * x:,.2f} %")


def _points(x: float) -> str:
    return _plain(f"{100 * x:+,.2f} pts")


def _relative(x: float) -> str:
    return _plain(f"{100 * x:+,.1f} %")


def _probability(x: float) -> str:
    return f"{100 * x:.1f} %"


def _count(x: float) -> str:
    return _plain(f"{x:,.0f}")


def _signed_count(x: float) -> str:
    return _plain(f"{x:+,.0f}")


def _money(x: float) -> str:
    return _plain(f"{x:,.2f}")


def _signed_money(x: float) -> str:
    return _plain(f"{x:+,.2f}")


def _value(x: float) -> str:
    return _plain(f"{x:,.4f}")


KINDS: dict[str, Callable[[float], str]] = {
    "percent": _percent,
    "points": _points,
    "relative": _relative,
    "probability": _probability,
    "count": _count,
    "signed_count": _signed_count,
    "money": _money,
    "signed_money": _signed_money,
    "value": _value,
}
"""Each kind of number and how it is written.

``percent``: a rate (0.0812 → 8.12 %); ``points``: a difference of rates, in
percentage points; ``relative``: a ratio of rates less one; ``probability``;
``count``: a whole number; ``signed_count``: an estimated number of extra
conversions; ``money`` and ``signed_money``: revenue; ``value``: a policy's
mean reward per decision.
"""


def format_value(kind: str, value: float | int | None) -> str:
    """``value`` written as ``kind`` (see :data:`KINDS`); a missing value is "n/a".

    >>> format_value("relative", 0.6123), format_value("signed_money", 1234.5)
    ('+61.2 %', '+1,234.50')
    """
    if value is None:
        return "n/a"
    return KINDS[kind](float(value))
