"""The one mapping between a Decision or Outcome and a flat row, shared by the SQL logs.

What reports filter and group by (who, when, which action, which group, which
versions, which time zone) is a real column; what only an evaluation reads back whole (the
eligible set, the exclusions, the scores, the features) is JSON text:

- ``eligible``: ``[[message, channel, slot, send_at, transactional], ...]``
- ``excluded``: ``[[action_key, rule, detail], ...]``
- ``scores``: ``{action_key: [prior, mean, uncertainty, probability]}``
- ``features``: ``{name: value}``; ``missing_features``: ``[name, ...]``

Every moment is stored in UTC; inside JSON as fixed-width ISO text, which sorts
as it compares. Backends differ only in how a moment sits in a column (SQLite:
that text; Postgres: ``timestamptz``), so they pass their own converters.
Floats keep their exact value (JSON writes the shortest repr that reads back to
the same double); a NaN or infinity cannot be stored (Postgres ``json`` refuses
it, SQLite ``REAL`` turns NaN into NULL), so it is refused by field name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from decisioning.types import ActionScore, Decision, Exclusion, JointAction, Outcome
from features import FeatureValue
from features.errors import InvalidRequest

__all__ = [
    "DECISION_COLUMNS",
    "OUTCOME_COLUMNS",
    "check_finite",
    "check_limit",
    "decision_from_row",
    "decision_row",
    "outcome_from_row",
    "outcome_row",
    "utc",
    "utc_text",
]

T = TypeVar("T")

DECISION_COLUMNS: tuple[str, ...] = (
    "decision_id",
    "idempotency_key",
    "customer_id",
    "decided_at",
    "journey",
    "step",
    "decision_group",
    "action_key",
    "message",
    "channel",
    "slot",
    "send_at",
    "transactional",
    "propensity",
    "propensity_error",
    "explored",
    "policy_version",
    "model_version",
    "attribution_closes_at",
    "eligible",
    "excluded",
    "scores",
    "features",
    "missing_features",
    "time_zone",
)
"""The columns a decision is written to and read from, in row order."""

OUTCOME_COLUMNS: tuple[str, ...] = (
    "outcome_id",
    "decision_id",
    "event",
    "value",
    "reward",
    "occurred_at",
)
"""The columns an outcome is written to and read from, in row order."""


def utc(moment: datetime, field: str) -> datetime:
    """``moment`` in UTC; a naive moment is refused, since its instant is unknown."""
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise InvalidRequest(field, "must be a datetime that includes a time zone", moment)
    return moment.astimezone(UTC)


def utc_text(moment: datetime) -> str:
    """A UTC moment as fixed-width ISO text (always microseconds), so text order is time order."""
    return moment.isoformat(timespec="microseconds")


def check_finite(field: str, value: float) -> float:
    """``value`` if it is a finite number: SQLite turns NaN into NULL, Postgres JSON refuses it."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(field, "must be a finite number", value)
    return value


def check_limit(limit: int) -> int:
    """``limit`` if it is a whole number of rows to return."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidRequest("limit", "must be a non-negative integer", limit)
    return limit


def decision_row(decision: Decision, column_time: Callable[[datetime], T]) -> tuple[object, ...]:
    """``decision`` as values in :data:`DECISION_COLUMNS` order.

    ``column_time`` turns a UTC moment into what the backend's column holds.
    """
    action = decision.action
    closes = decision.attribution_closes_at
    send_at = action.send_at
    return (
        decision.decision_id,
        decision.idempotency_key,
        decision.customer_id,
        column_time(utc(decision.decided_at, "decided_at")),
        decision.journey,
        decision.step,
        decision.group,
        action.key,
        action.message,
        action.channel,
        action.slot,
        None if send_at is None else column_time(utc(send_at, "action.send_at")),
        int(action.transactional),
        check_finite("propensity", decision.propensity),
        check_finite("propensity_error", decision.propensity_error),
        int(decision.explored),
        decision.policy_version,
        decision.model_version,
        None if closes is None else column_time(utc(closes, "attribution_closes_at")),
        _eligible(decision.eligible),
        _dumps([(e.action, e.rule, e.detail) for e in decision.excluded]),
        _scores(decision.scores),
        _features(decision.features),
        _dumps(list(decision.missing_features)),
        decision.time_zone,
    )


def decision_from_row(row: Sequence[Any], row_time: Callable[[Any], datetime]) -> Decision:
    """The decision a :func:`decision_row` row came from; ``row_time`` reads a moment column."""
    send_at = row[11]
    closes = row[18]
    texts: dict[str, datetime] = {}
    eligible = tuple(
        JointAction(m, c, s, None if t is None else _parsed(t, texts), tr)
        for m, c, s, t, tr in _loads(row[19])
    )
    return Decision(
        decision_id=row[0],
        idempotency_key=row[1],
        customer_id=row[2],
        decided_at=row_time(row[3]),
        journey=row[4],
        step=row[5],
        group=row[6],
        action=JointAction(
            row[8], row[9], row[10], None if send_at is None else row_time(send_at), bool(row[12])
        ),
        propensity=row[13],
        propensity_error=row[14],
        explored=bool(row[15]),
        policy_version=row[16],
        model_version=row[17],
        attribution_closes_at=None if closes is None else row_time(closes),
        eligible=eligible,
        excluded=tuple(Exclusion(a, r, d) for a, r, d in _loads(row[20])),
        scores={key: ActionScore(*values) for key, values in _loads(row[21]).items()},
        features=_loads(row[22]),
        missing_features=tuple(_loads(row[23])),
        time_zone=row[24],
    )


def outcome_row(outcome: Outcome, column_time: Callable[[datetime], T]) -> tuple[object, ...]:
    """``outcome`` as values in :data:`OUTCOME_COLUMNS` order."""
    return (
        outcome.outcome_id,
        outcome.decision_id,
        outcome.event,
        check_finite("value", outcome.value),
        check_finite("reward", outcome.reward),
        column_time(utc(outcome.occurred_at, "occurred_at")),
    )


def outcome_from_row(row: Sequence[Any], row_time: Callable[[Any], datetime]) -> Outcome:
    """The outcome an :func:`outcome_row` row came from."""
    return Outcome(row[0], row[1], row[2], row[3], row[4], row_time(row[5]))


def _eligible(actions: Sequence[JointAction]) -> str:
    # A decision has tens of candidates but only a handful of distinct send
    # times: convert each once.
    texts: dict[datetime | None, str | None] = {None: None}
    for i, action in enumerate(actions):
        send_at = action.send_at
        if send_at is not None and send_at not in texts:
            texts[send_at] = utc_text(utc(send_at, f"eligible[{i}].send_at"))
    return _dumps(
        [(a.message, a.channel, a.slot, texts[a.send_at], a.transactional) for a in actions]
    )


def _scores(scores: Mapping[str, ActionScore]) -> str:
    values = {k: (s.prior, s.mean, s.uncertainty, s.probability) for k, s in scores.items()}
    # One sum finds a NaN or infinity among all the numbers (an overflow to
    # infinity of huge finite ones only costs the exact check below).
    if not math.isfinite(sum(map(sum, values.values()))):
        for key, score in scores.items():
            for name in ("prior", "mean", "uncertainty", "probability"):
                check_finite(f"scores[{key!r}].{name}", getattr(score, name))
    return _dumps(values)


def _features(features: Mapping[str, FeatureValue]) -> str:
    for name, value in features.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidRequest(f"features[{name!r}]", "must be a finite number", value)
    return _dumps(dict(features))


# orjson writes the same shortest round-trip floats some 15x faster than json (a
# decision's scores are about 200 floats). Reading stays with json: orjson reads
# an integer beyond 64 bits as a float, which is not exact.
def _dumps(value: object) -> str:
    # Non-finite numbers are refused before this: orjson would write null.
    try:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except orjson.JSONEncodeError:  # e.g. an int beyond 64 bits, or a lone surrogate
        return json.dumps(value, allow_nan=False)


def _loads(text: str) -> Any:
    return json.loads(text)


def _parsed(text: str, texts: dict[str, datetime]) -> datetime:
    moment = texts.get(text)
    if moment is None:
        moment = texts[text] = datetime.fromisoformat(text)
    return moment
