"""Behaviour features as point-in-time snapshots: one row per customer per snapshot time.

A snapshot at time ``T`` is computed only from what happened at or before
``T`` (events by ``occurred_at``, sends by their send time, consent by when it
was given), so a training row joined to the latest snapshot before it never
sees its own future. The rows go to a Parquet table (``behaviour`` in the
event log) that the behaviour views of ``features.definitions`` read.

Where the numbers come from:

- purchases, activity and carts: the customer event stream (``purchase`` with
  ``value``, ``add_to_cart``/``checkout_started`` with ``cart_value``, ...);
- sends: the decision log (a decision whose action has a channel, counted at
  its send time);
- opens, clicks and unsubscribes: the stream's ``email_open``, ``sms_click``,
  ``unsubscribe`` (with ``channel``), ... and the decision log's ``open``,
  ``click`` and ``unsubscribe`` outcomes. The tracking API puts each tracked
  outcome in both, under one id, so an outcome whose stream copy is there is
  counted once;
- consent and reachability: ``consent_update`` events, suppressing events
  (``unsubscribe``, ``complaint``, ``hard_bounce``), addresses in
  ``identify``/``profile_update`` events, and the contact store's profiles
  (each used only from when it was known).

>>> from datetime import UTC, datetime
>>> from features.event_stream import CustomerEvent
>>> at = datetime(2026, 3, 2, 9, tzinfo=UTC)
>>> events = [
...     CustomerEvent("e1", "c1", "purchase", at, {"value": 30.0}),
...     CustomerEvent("e2", "c1", "add_to_cart", at.replace(hour=10), {"cart_value": 12.5}),
... ]
>>> rows = behaviour_snapshots([at.replace(hour=9), at.replace(hour=11)], events=events)
>>> rows[["purchases_90d", "spend_90d", "cart_open", "cart_value"]].values.tolist()
[[1, 30.0, 0, 0.0], [1, 30.0, 1, 12.5]]
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.definitions import (
    BEHAVIOUR_FEATURE_TYPES,
    CART_VIEW,
    CHANNELS,
    CONSENT_VIEW,
    ENGAGEMENT_VIEW,
    ENGAGEMENT_WINDOWS,
    HOURS_OF_WEEK,
    RFM_VIEW,
)
from features.errors import InvalidRequest
from features.event_log import EventLog
from features.event_stream import CustomerEvent, EventStream

__all__ = [
    "ACTIVITY_TYPES",
    "BEHAVIOUR_COLUMNS",
    "BEHAVIOUR_TABLE",
    "ContactRecord",
    "OutcomeRecord",
    "SendRecord",
    "behaviour_snapshots",
    "contacts_from_profiles",
    "read_stream",
    "records_from_decision_log",
    "snapshot_days",
    "write_snapshots",
]

BEHAVIOUR_TABLE = "behaviour"
"""The event log table the behaviour views read."""

ACTIVITY_TYPES = frozenset(
    {
        "page_view",
        "product_view",
        "add_to_cart",
        "checkout_started",
        "purchase",
        "email_open",
        "email_click",
        "sms_click",
        "push_open",
        "app_open",
    }
)
"""Events that show the customer active (RFM recency and the hour-of-week profile)."""

SUPPRESSING_TYPES = ("unsubscribe", "complaint", "hard_bounce")
# As journeys.runner.ADDRESS_FIELDS (features may not import journeys): the
# payload fields of identify/profile_update events that make a channel reachable.
ADDRESS_FIELDS: Mapping[str, str] = {"email": "email", "phone": "sms", "push_token": "push"}
PROFILE_TYPES = ("identify", "profile_update")
CART_TYPES = ("add_to_cart", "checkout_started")
_OUTCOME_METRICS = {"open": "opened", "click": "clicked", "unsubscribe": "unsubscribed"}
_STREAM_METRICS = {
    **{f"{channel}_open": (channel, "opened") for channel in CHANNELS},
    **{f"{channel}_click": (channel, "clicked") for channel in CHANNELS},
}
_MAX_ID_LENGTH = 128  # features.event_stream.MAX_ID_LENGTH

BEHAVIOUR_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "event_timestamp",
    *(name for types in BEHAVIOUR_FEATURE_TYPES.values() for name in types),
)
"""The snapshot table's columns, in order."""

_DAY = pd.Timedelta(days=1)
_EPOCH = pd.Timestamp(0, tz=UTC)


@dataclass(frozen=True)
class SendRecord:
    """A message the decision log says went (or goes) out, at ``sent_at``."""

    decision_id: str
    customer_id: str
    channel: str
    sent_at: datetime


@dataclass(frozen=True)
class OutcomeRecord:
    """An outcome of a decision, with the decision's customer and channel."""

    outcome_id: str
    customer_id: str
    channel: str | None
    event: str
    occurred_at: datetime


@dataclass(frozen=True)
class ContactRecord:
    """One channel of a contact-store profile, as read at ``known_at``."""

    customer_id: str
    channel: str
    consent: str
    consent_at: datetime | None
    suppressed_at: datetime | None
    reachable: bool
    known_at: datetime
    time_zone: str | None = None


def read_stream(stream: EventStream, page: int = 10_000) -> list[CustomerEvent]:
    """Every event of the stream, in arrival order."""
    events: list[CustomerEvent] = []
    after = 0
    while batch := stream.read(after, limit=page):
        events.extend(batch)
        after = batch[-1].offset
    return events


def records_from_decision_log(log: Any) -> tuple[list[SendRecord], list[OutcomeRecord]]:
    """Sends and outcomes from a decision log (``iter_decisions``/``iter_outcomes``).

    A decision's send counts at its ``send_at`` (a scheduled slot) or else when
    it was decided; a decision without a channel (no send, the holdout) is none.
    """
    sends: list[SendRecord] = []
    channels: dict[str, tuple[str, str | None]] = {}
    for decision in log.iter_decisions():
        action = decision.action
        channels[decision.decision_id] = (decision.customer_id, action.channel)
        if action.channel is not None:
            sent_at = action.send_at or decision.decided_at
            sends.append(
                SendRecord(decision.decision_id, decision.customer_id, action.channel, sent_at)
            )
    outcomes = []
    for outcome in log.iter_outcomes():
        if outcome.event not in _OUTCOME_METRICS or outcome.decision_id not in channels:
            continue
        customer_id, channel = channels[outcome.decision_id]
        outcomes.append(
            OutcomeRecord(
                outcome.outcome_id, customer_id, channel, outcome.event, outcome.occurred_at
            )
        )
    return sends, outcomes


def contacts_from_profiles(profiles: Iterable[Any], known_at: datetime) -> list[ContactRecord]:
    """Contact-store profiles (``ContactProfile``) read at ``known_at``, one record per channel."""
    records = []
    for profile in profiles:
        for channel, state in profile.channels.items():
            records.append(
                ContactRecord(
                    profile.customer_id,
                    channel,
                    state.consent,
                    state.consent_at,
                    state.suppressed_at if state.suppressed else None,
                    state.reachable,
                    known_at,
                    profile.time_zone,
                )
            )
    return records


def behaviour_snapshots(
    at: Sequence[datetime],
    *,
    events: Iterable[CustomerEvent] = (),
    sends: Iterable[SendRecord] = (),
    outcomes: Iterable[OutcomeRecord] = (),
    contacts: Iterable[ContactRecord] = (),
) -> pd.DataFrame:
    """The behaviour features of every customer known by each time in ``at``.

    One row per customer per snapshot time, with the columns of
    :data:`BEHAVIOUR_COLUMNS`; ``event_timestamp`` is the snapshot time.
    """
    times = _snapshot_times(at)
    stream = _events_table(events)
    engagement = _engagement_table(stream, list(sends), list(outcomes))
    contact_rows = list(contacts)
    consent = _consent_table(stream, contact_rows)
    zones = _zones(stream, contact_rows)
    stream["how"] = _hour_of_week(stream, zones)
    frames = [_snapshot(moment, stream, engagement, consent) for moment in times]
    frames = [frame for frame in frames if len(frame)]
    if not frames:
        return _typed(pd.DataFrame(columns=list(BEHAVIOUR_COLUMNS)))
    return _typed(pd.concat(frames, ignore_index=True))


def write_snapshots(event_log: EventLog, snapshots: pd.DataFrame) -> Path:
    """Merge ``snapshots`` into the event log's behaviour table; its path.

    A snapshot computed again for the same customer and time replaces the old
    row, so re-running a day's snapshot is idempotent.
    """
    missing = [column for column in BEHAVIOUR_COLUMNS if column not in snapshots.columns]
    if missing:
        raise InvalidRequest("snapshots", "must have every behaviour column", missing)
    frame = _typed(snapshots[list(BEHAVIOUR_COLUMNS)])
    if event_log.exists(BEHAVIOUR_TABLE):
        old = event_log.read(BEHAVIOUR_TABLE)
        keys = pd.MultiIndex.from_frame(frame[["customer_id", "event_timestamp"]])
        kept = ~pd.MultiIndex.from_frame(old[["customer_id", "event_timestamp"]]).isin(keys)
        frame = pd.concat([_typed(old[kept]), frame], ignore_index=True)
    frame = frame.sort_values(["event_timestamp", "customer_id"], ignore_index=True)
    return event_log.write(BEHAVIOUR_TABLE, frame)


# ----------------------------------------------------------------------------- inputs


def _snapshot_times(at: Sequence[datetime]) -> list[pd.Timestamp]:
    if not at:
        raise InvalidRequest("at", "must name at least one snapshot time", list(at))
    for moment in at:
        if not isinstance(moment, datetime) or moment.utcoffset() is None:
            raise InvalidRequest("at", "must hold timezone-aware datetimes", moment)
    return sorted({pd.Timestamp(moment).tz_convert(UTC) for moment in at})


def _utc(values: Sequence[datetime | None]) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values), utc=True), dtype="datetime64[ns, UTC]")


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return float("nan")
    return float(value)


def _events_table(events: Iterable[CustomerEvent]) -> pd.DataFrame:
    rows = list(events)
    payloads = [dict(event.payload) for event in rows]
    return pd.DataFrame(
        {
            "event_id": [event.event_id for event in rows],
            "customer_id": [event.customer_id for event in rows],
            "type": [event.type for event in rows],
            "at": _utc([event.occurred_at for event in rows]),
            "value": [_number(p.get("value")) for p in payloads],
            "cart_value": [_number(p.get("cart_value")) for p in payloads],
            "payload": payloads,
        }
    )


def _stream_id(outcome_id: str) -> str:
    """The event id the tracking API gives an outcome's stream copy (serving.tracking_api)."""
    if len(outcome_id) <= _MAX_ID_LENGTH:
        return outcome_id
    return "outcome-" + hashlib.sha256(outcome_id.encode()).hexdigest()


def _engagement_table(
    stream: pd.DataFrame, sends: list[SendRecord], outcomes: list[OutcomeRecord]
) -> pd.DataFrame:
    """customer_id, channel, metric, at: one row per send, open, click or unsubscribe."""
    rows: list[tuple[str, str, str, datetime]] = [
        (send.customer_id, send.channel, "sent", send.sent_at) for send in sends
    ]
    for event in stream.itertuples(index=False):
        if event.type in _STREAM_METRICS:
            channel, metric = _STREAM_METRICS[event.type]
            rows.append((event.customer_id, channel, metric, event.at))
        elif event.type == "unsubscribe" and isinstance(event.payload.get("channel"), str):
            rows.append((event.customer_id, event.payload["channel"], "unsubscribed", event.at))
    streamed = set(stream["event_id"])
    for outcome in outcomes:
        if outcome.channel is None or _stream_id(outcome.outcome_id) in streamed:
            continue
        metric = _OUTCOME_METRICS[outcome.event]
        rows.append((outcome.customer_id, outcome.channel, metric, outcome.occurred_at))
    customers, channels, metrics, moments = zip(*rows, strict=True) if rows else ((),) * 4
    return pd.DataFrame(
        {
            "customer_id": pd.Series(customers, dtype="object"),
            "channel": pd.Series(channels, dtype="object"),
            "metric": pd.Series(metrics, dtype="object"),
            "at": _utc(list(moments)),
        }
    )


def _consent_table(stream: pd.DataFrame, contacts: list[ContactRecord]) -> pd.DataFrame:
    """customer_id, channel, field (consent/suppressed/reachable), value, at."""
    rows: list[tuple[str, str, str, object, datetime]] = []
    for event in stream.itertuples(index=False):
        payload = event.payload
        if event.type == "consent_update":
            given = payload.get("channels")
            if not isinstance(given, Mapping):
                given = {payload.get("channel"): payload.get("consent")}
            for channel, state in given.items():
                if isinstance(channel, str) and state in ("opted_in", "opted_out"):
                    rows.append((event.customer_id, channel, "consent", state, event.at))
        elif event.type in SUPPRESSING_TYPES and isinstance(payload.get("channel"), str):
            rows.append((event.customer_id, payload["channel"], "suppressed", 1, event.at))
        elif event.type in PROFILE_TYPES:
            for name, channel in ADDRESS_FIELDS.items():
                address = payload.get(name)
                if isinstance(address, str) and address.strip():
                    rows.append((event.customer_id, channel, "reachable", 1, event.at))
    for record in contacts:
        if record.consent in ("opted_in", "opted_out") and record.consent_at is not None:
            rows.append(
                (record.customer_id, record.channel, "consent", record.consent, record.consent_at)
            )
        if record.suppressed_at is not None:
            rows.append((record.customer_id, record.channel, "suppressed", 1, record.suppressed_at))
        # Reachability has no time of its own in the contact store: it counts from
        # when the profile was read.
        reachable = int(record.reachable)
        rows.append((record.customer_id, record.channel, "reachable", reachable, record.known_at))
    customers, channels, fields, values, moments = zip(*rows, strict=True) if rows else ((),) * 5
    return pd.DataFrame(
        {
            "customer_id": pd.Series(customers, dtype="object"),
            "channel": pd.Series(channels, dtype="object"),
            "field": pd.Series(fields, dtype="object"),
            "value": pd.Series(values, dtype="object"),
            "at": _utc(list(moments)),
        }
    )


def _zones(stream: pd.DataFrame, contacts: list[ContactRecord]) -> dict[str, str]:
    """Each customer's IANA zone, the latest one named: their hour of the week is local."""
    zones: dict[str, str] = {}
    profiles = stream[stream["type"].isin(PROFILE_TYPES)].sort_values("at", kind="stable")
    for event in profiles.itertuples(index=False):
        zone = event.payload.get("time_zone")
        if isinstance(zone, str) and zone:
            zones[event.customer_id] = zone
    for record in sorted(contacts, key=lambda r: r.known_at):
        if record.time_zone:
            zones[record.customer_id] = record.time_zone
    return zones


def _hour_of_week(stream: pd.DataFrame, zones: Mapping[str, str]) -> pd.Series:
    hours = pd.Series(np.zeros(len(stream), dtype="int64"), index=stream.index)
    zone_of = stream["customer_id"].map(zones).fillna("UTC")
    for zone, where in stream.groupby(zone_of).groups.items():
        try:
            local = stream.loc[where, "at"].dt.tz_convert(str(zone))
        except KeyError:  # an unknown zone name: UTC rather than no profile
            local = stream.loc[where, "at"]
        hours[where] = local.dt.dayofweek * 24 + local.dt.hour
    return hours


# ----------------------------------------------------------------------------- one snapshot


def _snapshot(
    moment: pd.Timestamp, stream: pd.DataFrame, engagement: pd.DataFrame, consent: pd.DataFrame
) -> pd.DataFrame:
    events = stream[stream["at"] <= moment]
    sends = engagement[engagement["at"] <= moment]
    states = consent[consent["at"] <= moment]
    customers = pd.Index(
        sorted(set(events["customer_id"]) | set(sends["customer_id"]) | set(states["customer_id"])),
        name="customer_id",
    )
    if customers.empty:
        return pd.DataFrame()
    parts = [
        _rfm(moment, events, customers),
        _engagement(moment, sends, customers),
        _send_time(moment, events, customers),
        _cart(events, customers),
        _consent(states, customers),
    ]
    frame = pd.concat(parts, axis=1).reset_index()
    frame.insert(1, "event_timestamp", moment)
    return frame


def _since(moment: pd.Timestamp, last: pd.Series) -> pd.Series:
    return (moment - last).dt.total_seconds() / 86_400


def _rfm(moment: pd.Timestamp, events: pd.DataFrame, customers: pd.Index) -> pd.DataFrame:
    purchases = events[events["type"] == "purchase"]
    active = events[events["type"].isin(ACTIVITY_TYPES)]
    frame = pd.DataFrame(index=customers)
    frame["days_since_purchase"] = _since(moment, purchases.groupby("customer_id")["at"].max())
    frame["days_since_active"] = _since(moment, active.groupby("customer_id")["at"].max())
    for days in (90, 365):
        recent = purchases[purchases["at"] > moment - days * _DAY].groupby("customer_id")
        frame[f"purchases_{days}d"] = recent.size().reindex(customers, fill_value=0)
        frame[f"spend_{days}d"] = recent["value"].sum().reindex(customers, fill_value=0.0)
    return frame[list(BEHAVIOUR_FEATURE_TYPES[RFM_VIEW])]


def _engagement(moment: pd.Timestamp, rows: pd.DataFrame, customers: pd.Index) -> pd.DataFrame:
    names = list(BEHAVIOUR_FEATURE_TYPES[ENGAGEMENT_VIEW])
    parts = []
    for days in ENGAGEMENT_WINDOWS:
        recent = rows[rows["at"] > moment - days * _DAY]
        column = recent["channel"] + "_" + recent["metric"] + f"_{days}d"
        parts.append(recent.groupby([recent["customer_id"], column]).size())
    counts = pd.concat(parts) if parts else pd.Series(dtype="int64")
    wide = counts.unstack(fill_value=0) if len(counts) else pd.DataFrame(index=customers)
    return wide.reindex(index=customers, columns=names, fill_value=0).fillna(0).astype("int64")


def _send_time(moment: pd.Timestamp, events: pd.DataFrame, customers: pd.Index) -> pd.DataFrame:
    active = events[
        events["type"].isin(ACTIVITY_TYPES)
        & (events["at"] > moment - ENGAGEMENT_WINDOWS[-1] * _DAY)
    ]
    counts = (
        active.groupby(["customer_id", "how"]).size().unstack(fill_value=0)
        if len(active)
        else pd.DataFrame()
    )
    counts = counts.reindex(index=customers, columns=range(HOURS_OF_WEEK), fill_value=0)
    counts = counts.fillna(0)
    total = counts.sum(axis=1)
    shares = counts.div(total.where(total > 0), axis=0)
    shares.columns = [f"activity_how_{hour:03d}" for hour in range(HOURS_OF_WEEK)]
    peak = counts.to_numpy().argmax(axis=1) if len(counts) else np.zeros(0, dtype="int64")
    head = pd.DataFrame(
        {
            "activity_events_90d": total.astype("int64"),
            "peak_hour_of_week": pd.array(peak, dtype="Int64"),
        },
        index=customers,
    )
    head.loc[total == 0, "peak_hour_of_week"] = pd.NA
    return pd.concat([head, shares], axis=1)


def _cart(events: pd.DataFrame, customers: pd.Index) -> pd.DataFrame:
    """The cart as :func:`features.push.apply_cart_event` folds it, computed in bulk."""
    purchased = events[events["type"] == "purchase"].groupby("customer_id")["at"].max()
    carts = events[events["type"].isin(CART_TYPES)]
    last_cart = carts.groupby("customer_id")["at"].max()
    added = carts[carts["type"] == "add_to_cart"].groupby("customer_id")["at"].max()
    after = carts["at"] > carts["customer_id"].map(purchased)
    after |= carts["customer_id"].map(purchased).isna()
    valued = carts[after & carts["cart_value"].notna()].sort_values("at", kind="stable")
    value = valued.groupby("customer_id")["cart_value"].last()
    frame = pd.DataFrame(index=customers)
    last_cart = last_cart.reindex(customers)
    last_purchase = purchased.reindex(customers)
    known = last_cart.notna() | last_purchase.notna()
    is_open = last_cart.notna() & (last_purchase.isna() | (last_cart > last_purchase))
    frame["cart_value"] = value.reindex(customers).where(is_open, 0.0).where(known)
    frame["cart_open"] = pd.array(is_open.astype("int64"), dtype="Int64")
    frame.loc[~known, "cart_open"] = pd.NA
    seconds = (added.reindex(customers) - _EPOCH).dt.total_seconds()
    frame["last_add_to_cart_at"] = pd.array(np.floor(seconds.to_numpy()), dtype="Int64")
    return frame[list(BEHAVIOUR_FEATURE_TYPES[CART_VIEW])]


def _consent(states: pd.DataFrame, customers: pd.Index) -> pd.DataFrame:
    latest = states.sort_values("at", kind="stable").groupby(["customer_id", "channel", "field"])
    values = latest["value"].last()
    wide = values.unstack(["channel", "field"]) if len(values) else pd.DataFrame()

    def field(channel: str, name: str, default: object) -> pd.Series:
        if (channel, name) not in wide.columns:
            return pd.Series(default, index=customers)
        column = wide[(channel, name)].reindex(customers)
        return column.where(column.notna(), default).infer_objects()

    frame = pd.DataFrame(index=customers)
    for channel in CHANNELS:
        consent = field(channel, "consent", "unknown").astype("string")
        suppressed = field(channel, "suppressed", 0).astype("int64")
        reachable = field(channel, "reachable", 0).astype("int64")
        frame[f"{channel}_consent"] = consent
        frame[f"{channel}_suppressed"] = suppressed
        frame[f"{channel}_reachable"] = reachable
        contactable = (consent == "opted_in") & (reachable == 1) & (suppressed == 0)
        frame[f"{channel}_contactable"] = contactable.astype("int64")
    return frame[list(BEHAVIOUR_FEATURE_TYPES[CONSENT_VIEW])]


_DTYPES = {"Float64": "float64", "Int64": "Int64", "String": "string"}


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Stable column types whatever is missing: nullable integers, floats, strings."""
    out = frame.reset_index(drop=True)
    out["customer_id"] = out["customer_id"].astype("string")
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True).astype(
        "datetime64[ns, UTC]"
    )
    for types in BEHAVIOUR_FEATURE_TYPES.values():
        for name, type_name in types.items():
            out[name] = out[name].astype(_DTYPES[type_name])
    return out[list(BEHAVIOUR_COLUMNS)]


def snapshot_days(
    start: datetime, end: datetime, every: timedelta = timedelta(days=1)
) -> list[datetime]:
    """``start``, ``start + every``, ... up to ``end``: the times to take snapshots at.

    >>> from datetime import UTC
    >>> [t.day for t in snapshot_days(datetime(2026, 1, 1, tzinfo=UTC),
    ...                               datetime(2026, 1, 3, tzinfo=UTC))]
    [1, 2, 3]
    """
    if every <= timedelta(0):
        raise InvalidRequest("every", "must be positive", str(every))
    times, moment = [], start
    while moment <= end:
        times.append(moment)
        moment += every
    return times
