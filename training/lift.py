"""Lift of a treatment arm over control in a randomised experiment, with its uncertainty."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from features import InvalidRequest

__all__ = ["Lift", "arm_lift"]

_Z95 = 1.959963984540054


@dataclass(frozen=True)
class Lift:
    """Treated minus control mean, with a 95 % interval and the chance the effect is positive."""

    treated: float
    control: float
    absolute: float
    ci95: tuple[float, float]
    relative: float
    prob_positive: float
    n_treated: int
    n_control: int

    def to_dict(self) -> dict[str, object]:
        return {
            "treated": self.treated,
            "control": self.control,
            "absolute": self.absolute,
            "ci95": list(self.ci95),
            "relative": self.relative,
            "prob_positive": self.prob_positive,
            "n_treated": self.n_treated,
            "n_control": self.n_control,
        }


def arm_lift(treated: npt.ArrayLike, control: npt.ArrayLike) -> Lift:
    """Difference of means with a normal (Welch) interval.

    >>> lift = arm_lift([1, 0, 1, 1], [0, 0, 1, 0])
    >>> lift.absolute, lift.relative
    (0.5, 2.0)
    """
    t = np.asarray(treated, dtype=float)
    c = np.asarray(control, dtype=float)
    for name, values in (("treated", t), ("control", c)):
        if values.size < 2:
            raise InvalidRequest(name, "needs at least 2 outcomes", int(values.size))
        if not np.all(np.isfinite(values)):
            raise InvalidRequest(name, "must contain only finite outcomes")
    diff = float(t.mean() - c.mean())
    se = math.sqrt(t.var(ddof=1) / t.size + c.var(ddof=1) / c.size)
    ci = (diff - _Z95 * se, diff + _Z95 * se)
    # Normal approximation of P(effect > 0) given the estimate; a reader's
    # "how sure are we it helps", not a p-value.
    prob_positive = (
        0.5 * (1.0 + math.erf(diff / (se * math.sqrt(2.0)))) if se > 0 else float(diff > 0)
    )
    relative = diff / float(c.mean()) if c.mean() != 0 else float("nan")
    return Lift(
        treated=float(t.mean()),
        control=float(c.mean()),
        absolute=diff,
        ci95=ci,
        relative=relative,
        prob_positive=prob_positive,
        n_treated=int(t.size),
        n_control=int(c.size),
    )
