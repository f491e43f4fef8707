"""Named features of a joint action in a context: what lets a linear policy share strength.

A policy that learned each of the 55 joint actions on its own would need 55
separate histories. Described instead by what they are made of (the message,
the channel, the slot, the message on that channel, the customer's engagement
with the channel, the customer's activity at the send hour), every reward
teaches about every candidate that shares a part with the one that was sent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from decisioning.types import NO_SEND, Context, JointAction
from features import FeatureValue

__all__ = ["FIXED_FEATURES", "JointFeaturizer"]

FIXED_FEATURES = (
    "bias",
    "prior",
    "no_send",
    "engagement",
    "engagement_missing",
    "activity",
    "activity_missing",
    "prior_lift",
)
"""The columns every featurizer starts with, in this order; named columns follow as seen."""

(
    BIAS,
    PRIOR,
    NO_SEND_COLUMN,
    ENGAGEMENT,
    ENGAGEMENT_MISSING,
    ACTIVITY,
    ACTIVITY_MISSING,
    PRIOR_LIFT,
) = range(8)

_HOURS_OF_WEEK = 168
_HOW_FEATURES = tuple(f"activity_how_{h}" for h in range(_HOURS_OF_WEEK))
_HOUR_FEATURES = tuple(f"activity_hour_{h}" for h in range(24))


class JointFeaturizer:
    """Maps a context and its candidates to a K × d matrix of named features.

    Columns: ``bias``; ``prior`` (the offline model's expected reward of the
    candidate); ``no_send``; ``engagement`` (feature ``engagement_<channel>`` of
    the candidate's channel; 0 and ``engagement_missing`` = 1 when absent);
    ``activity`` (feature ``activity_how_<hour of week>`` at the candidate's
    local send hour, else ``activity_hour_<hour of day>``; 0 and
    ``activity_missing`` = 1 when neither is there); then one-hot
    ``message=<m>``, ``channel=<c>``, ``slot=<s>`` and ``message×channel=<m>/<c>``
    columns, added the first time a name appears; ``prior_lift``, the prior minus
    the customer's baseline (:attr:`Context.baseline`): how much better the model
    thinks this action is than not contacting. A value that is not a finite
    number counts as missing. The vocabulary only grows, so a column keeps its
    index for the featurizer's life; another process may order its columns
    differently, which is why learned statistics travel with :attr:`names`.

    >>> from decisioning.types import NO_SEND, Context, JointAction
    >>> featurizer = JointFeaturizer()
    >>> context = Context(
    ...     "c1", {"engagement_email": 0.8, "activity_hour_9": 0.5},
    ...     priors={"welcome/email/9am": 0.1, "no_send": 0.0},
    ...     local_hours={"welcome/email/9am": 33},  # Tuesday 09:00
    ... )
    >>> x = featurizer.transform(context, [JointAction("welcome", "email", "9am", None)])
    >>> dict(zip(featurizer.names, x[0].tolist()))  # doctest: +NORMALIZE_WHITESPACE
    {'bias': 1.0, 'prior': 0.1, 'no_send': 0.0, 'engagement': 0.8, 'engagement_missing': 0.0,
     'activity': 0.5, 'activity_missing': 0.0, 'prior_lift': 0.1, 'message=welcome': 1.0,
     'channel=email': 1.0, 'slot=9am': 1.0, 'message×channel=welcome/email': 1.0}
    >>> featurizer.transform(context, [JointAction.no_send()])[0].tolist()[:3]
    [1.0, 0.0, 1.0]
    """

    def __init__(self) -> None:
        self._index: dict[str, int] = {name: i for i, name in enumerate(FIXED_FEATURES)}
        self._names: list[str] = list(FIXED_FEATURES)
        # A cache, by action key: (one-hot columns, the engagement feature of its channel).
        self._parts: dict[str, tuple[tuple[int, ...], str | None]] = {}
        # By action key, for actions with a name not in the vocabulary yet: their names.
        self._names_of: dict[str, tuple[str, ...]] = {}

    @property
    def names(self) -> tuple[str, ...]:
        """The column names, in column order."""
        return tuple(self._names)

    @property
    def dimension(self) -> int:
        """The number of columns: the width of :meth:`transform` once every name is known."""
        return len(self._names)

    def extend(self, names: Iterable[str]) -> None:
        """Add columns for ``names`` not known yet (to align with another process's columns)."""
        for name in names:
            if name not in self._index:
                self._index[name] = len(self._names)
                self._names.append(name)

    def transform(
        self,
        context: Context,
        candidates: Sequence[JointAction],
        *,
        grow: bool = True,
        keys: Sequence[str] | None = None,
        priors: Sequence[float] | None = None,
    ) -> np.ndarray:
        """The K × d feature matrix of ``candidates`` (one row each, in order).

        With ``grow=False`` nothing is added to the vocabulary: names not seen
        yet get extra columns past :attr:`dimension`, in order of appearance, for
        this call only (a policy treats them as weights it knows nothing about).
        Every candidate must have a prior in ``context.priors``; a caller that
        already holds the candidates' ``keys`` and checked ``priors`` may pass them.
        """
        if keys is None:
            keys = [action.key for action in candidates]
        if priors is None:
            priors = [float(context.priors[key]) for key in keys]
        features = context.features
        hours = context.local_hours
        k = len(candidates)
        temporary: dict[str, int] = {}
        columns: list[int] = []
        counts: list[int] = []
        engagement = [0.0] * k
        engagement_missing = [0.0] * k
        activity = [0.0] * k
        activity_missing = [0.0] * k
        # Candidates share a few channels and send hours: look each feature up once.
        engagement_of: dict[str, float | None] = {}
        activity_of: dict[int | None, float | None] = {}
        parts = self._parts
        for i, action in enumerate(candidates):
            key = keys[i]
            part = parts.get(key)
            if part is None:
                part = self._part(action, key, grow, temporary)
            one_hot, engagement_name = part
            columns.extend(one_hot)
            counts.append(len(one_hot))
            if engagement_name is None:
                continue
            if engagement_name in engagement_of:
                value = engagement_of[engagement_name]
            else:
                value = engagement_of[engagement_name] = _number(features.get(engagement_name))
            if value is None:
                engagement_missing[i] = 1.0
            else:
                engagement[i] = value
            hour = hours.get(key)
            if hour in activity_of:
                value = activity_of[hour]
            else:
                value = activity_of[hour] = _activity(features, hour)
            if value is None:
                activity_missing[i] = 1.0
            else:
                activity[i] = value
        width = len(self._names) + len(temporary)
        x = np.zeros((k, width))
        x[:, BIAS] = 1.0
        x[:, PRIOR] = priors
        x[:, ENGAGEMENT] = engagement
        x[:, ENGAGEMENT_MISSING] = engagement_missing
        x[:, ACTIVITY] = activity
        x[:, ACTIVITY_MISSING] = activity_missing
        x[:, PRIOR_LIFT] = np.asarray(priors, dtype=float) - _baseline(context, priors)
        starts = np.repeat(np.arange(0, k * width, width), counts)
        x.ravel()[starts + np.array(columns, dtype=np.intp)] = 1.0
        return x

    def _part(
        self, action: JointAction, key: str, grow: bool, temporary: dict[str, int]
    ) -> tuple[tuple[int, ...], str | None]:
        """The one-hot columns of ``action`` and the engagement feature of its channel."""
        if action.message is None:
            part: tuple[tuple[int, ...], str | None] = ((NO_SEND_COLUMN,), None)
            self._parts[key] = part
            return part
        names = self._names_of.get(key)
        if names is None:
            message, channel = action.message, action.channel
            names = self._names_of[key] = (
                f"message={message}",
                f"channel={channel}",
                f"slot={action.slot}",
                f"message×channel={message}/{channel}",
                f"engagement_{channel}",
            )
        if grow:
            self.extend(names[:4])
        columns = []
        for name in names[:4]:
            index = self._index.get(name)
            if index is None:
                index = temporary.setdefault(name, len(self._names) + len(temporary))
            columns.append(index)
        part = (tuple(columns), names[4])
        if not temporary:
            self._parts[key] = part
        return part

    def __repr__(self) -> str:
        return f"JointFeaturizer(<{len(self._names)} columns>)"


def _number(value: FeatureValue | None) -> float | None:
    """``value`` as a float when it is a finite number (bools and strings are not)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number):
            return number
    return None


def _activity(features: Mapping[str, FeatureValue], hour_of_week: int | None) -> float | None:
    # A bool is an int to Python, never an hour here.
    if type(hour_of_week) is not int or not 0 <= hour_of_week < _HOURS_OF_WEEK:
        return None
    value = _number(features.get(_HOW_FEATURES[hour_of_week]))
    if value is None:
        value = _number(features.get(_HOUR_FEATURES[hour_of_week % 24]))
    return value


def _baseline(context: Context, priors: Sequence[float]) -> float:
    if context.baseline is not None:
        return context.baseline
    if NO_SEND in context.priors:
        return float(context.priors[NO_SEND])
    return float(np.mean(priors)) if len(priors) else 0.0
