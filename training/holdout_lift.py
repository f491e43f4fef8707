"""Treated against holdout: conversion and revenue lift with its uncertainty, in one table row.

The holdout is chosen by a salted hash of the customer id, so it is a random
sample of the customers who could have been contacted; comparing *all* of the
other decisions with it (intention to treat) estimates what contacting added.
A row is a plain dict of JSON numbers, with ``None`` where a number does not
exist (a rate of an empty group, the interval of a group of one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from training.lift import arm_lift
from training.report_format import format_value

__all__ = ["LIFT_COLUMNS", "Row", "lift_row", "lift_warning"]

Row = dict[str, str | int | float | bool | None]
"""One table row: column name to a JSON value."""

LIFT_COLUMNS: tuple[str, ...] = (
    "n_treated",
    "n_holdout",
    "conversion_rate_treated",
    "conversion_rate_holdout",
    "lift",
    "lift_ci_low",
    "lift_ci_high",
    "relative_lift",
    "prob_positive",
    "incremental_conversions",
    "incremental_conversions_ci_low",
    "incremental_conversions_ci_high",
    "revenue_per_customer_treated",
    "revenue_per_customer_holdout",
    "revenue_lift",
    "revenue_lift_ci_low",
    "revenue_lift_ci_high",
    "incremental_revenue",
    "incremental_revenue_ci_low",
    "incremental_revenue_ci_high",
    "warning",
)
"""The columns :func:`lift_row` fills, in table order.

``lift`` is the difference of conversion rates (treated − holdout) with its 95 %
interval; ``incremental_conversions`` is that difference times the treated
count (and its interval likewise); ``revenue_lift`` the difference of revenue per
customer, and ``incremental_revenue`` that times the treated count.
"""


def lift_row(
    treated_converted: Sequence[float] | NDArray[np.float64],
    treated_revenue: Sequence[float] | NDArray[np.float64],
    holdout_converted: Sequence[float] | NDArray[np.float64],
    holdout_revenue: Sequence[float] | NDArray[np.float64],
    *,
    min_group: int,
) -> Row:
    """The :data:`LIFT_COLUMNS` of one comparison, from per-decision 0/1 conversions and revenue.

    Intervals are normal (Welch) intervals of the difference of means; they need
    at least two decisions on each side.

    >>> row = lift_row([1, 0, 1, 0], [10, 0, 10, 0], [0, 0, 1, 0], [0, 0, 10, 0], min_group=2)
    >>> row["lift"], row["incremental_conversions"], row["relative_lift"], row["revenue_lift"]
    (0.25, 1.0, 1.0, 2.5)
    """
    t_conv = np.asarray(treated_converted, dtype=np.float64)
    h_conv = np.asarray(holdout_converted, dtype=np.float64)
    t_rev = np.asarray(treated_revenue, dtype=np.float64)
    h_rev = np.asarray(holdout_revenue, dtype=np.float64)
    n_t, n_h = int(t_conv.size), int(h_conv.size)
    row: Row = dict.fromkeys(LIFT_COLUMNS)
    row.update(
        n_treated=n_t,
        n_holdout=n_h,
        conversion_rate_treated=_mean(t_conv),
        conversion_rate_holdout=_mean(h_conv),
        revenue_per_customer_treated=_mean(t_rev),
        revenue_per_customer_holdout=_mean(h_rev),
    )
    if n_t >= 2 and n_h >= 2:
        conv = arm_lift(t_conv, h_conv)
        rev = arm_lift(t_rev, h_rev)
        row.update(
            lift=conv.absolute,
            lift_ci_low=conv.ci95[0],
            lift_ci_high=conv.ci95[1],
            relative_lift=_number(conv.relative),
            prob_positive=conv.prob_positive,
            incremental_conversions=conv.absolute * n_t,
            incremental_conversions_ci_low=conv.ci95[0] * n_t,
            incremental_conversions_ci_high=conv.ci95[1] * n_t,
            revenue_lift=rev.absolute,
            revenue_lift_ci_low=rev.ci95[0],
            revenue_lift_ci_high=rev.ci95[1],
            incremental_revenue=rev.absolute * n_t,
            incremental_revenue_ci_low=rev.ci95[0] * n_t,
            incremental_revenue_ci_high=rev.ci95[1] * n_t,
        )
        ci: tuple[float, float] | None = conv.ci95
    else:
        ci = None
    row["warning"] = lift_warning(n_t, n_h, ci, min_group)
    return row


def lift_warning(
    n_treated: int, n_holdout: int, ci: tuple[float, float] | None, min_group: int
) -> str | None:
    """The plain-words caveat of a comparison, or None when it supports a conclusion.

    >>> lift_warning(5_000, 150, (0.01, 0.03), 200)
    'Too small to conclude: the holdout has 150 decisions; at least 200 are needed.'
    >>> print(lift_warning(5_000, 500, (-0.004, 0.012), 200))
    No evidence of an effect yet: the 95 % interval of the difference (−0.40 pts to +1.20 pts) \
includes zero.
    >>> lift_warning(5_000, 500, (0.004, 0.012), 200) is None
    True
    """
    small = [
        f"{name} has {n:,} decision{'' if n == 1 else 's'}"
        for name, n in (("the treated group", n_treated), ("the holdout", n_holdout))
        if n < min_group
    ]
    if small:
        return f"Too small to conclude: {' and '.join(small)}; at least {min_group:,} are needed."
    if ci is None:
        return "Too small to conclude: each group needs at least 2 decisions."
    low, high = ci
    if low <= 0 <= high:
        return (
            "No evidence of an effect yet: the 95 % interval of the difference "
            f"({format_value('points', low)} to {format_value('points', high)}) includes zero."
        )
    return None


def _mean(values: NDArray[np.float64]) -> float | None:
    return float(values.mean()) if values.size else None


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None
