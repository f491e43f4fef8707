"""``nudge features refresh``: behaviour snapshots from the event stream and decision log,
then ``feast apply`` and an incremental materialisation, in the embedded or scale store."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TextIO

import pandas as pd

from features import EventLog, InvalidRequest, NotFound
from features.behaviour import (
    behaviour_snapshots,
    contacts_from_profiles,
    read_stream,
    records_from_decision_log,
    snapshot_days,
    write_snapshots,
)
from features.definitions import PROFILE_VIEW
from serving.journey_wiring import open_event_stream
from serving.progress import Steps
from serving.settings import Settings
from serving.wiring import open_feature_repo, open_stores

__all__ = ["RefreshResult", "refresh_features"]


@dataclass(frozen=True)
class RefreshResult:
    snapshots: int
    customers: int
    rows: int
    customer_ids: tuple[str, ...] = ()


def refresh_features(
    settings: Settings,
    *,
    days: int = 0,
    now: datetime | None = None,
    out: TextIO | None = None,
) -> RefreshResult:
    """Snapshots at ``now`` and at each of the ``days`` days before it, into the online store.

    A snapshot taken again replaces the one before (same time), and the online
    store keeps the newer of a snapshot and a pushed cart, so running this on a
    schedule (or twice) is safe.
    """
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 400:
        raise InvalidRequest("--days", "must be a whole number of days from 0 to 400", days)
    now = now or datetime.now(UTC)
    out = out if out is not None else sys.stdout
    event_log = EventLog(settings.events_dir)
    if not event_log.exists("profiles"):
        raise NotFound("profile table", str(event_log.path("profiles")))
    steps = Steps(3, out=out)
    with steps.step("read", "Read the event stream, the decision log and the contact store"):
        stream = open_event_stream(settings)
        try:
            events = read_stream(stream)
        finally:
            stream.close()
        stores = open_stores(settings)
        try:
            sends, outcomes = records_from_decision_log(stores.log)
            customers = sorted({e.customer_id for e in events} | {s.customer_id for s in sends})
            contacts = contacts_from_profiles(
                (stores.contacts.profile(customer) for customer in customers), now
            )
        finally:
            stores.close()
        steps.note(
            f"{len(events):,} events, {len(sends):,} sends, {len(outcomes):,} outcomes, "
            f"{len(customers):,} customers"
        )
    with steps.step("snapshot", "Behaviour snapshots"):
        at = snapshot_days(now - timedelta(days=days), now)
        frame = behaviour_snapshots(
            at, events=events, sends=sends, outcomes=outcomes, contacts=contacts
        )
        path = write_snapshots(event_log, frame)
        steps.note(f"{len(at)} snapshot(s), {len(frame):,} rows → {path}")
    with steps.step("materialize", f"Feast apply and materialize ({settings.feature_store})"):
        repo = open_feature_repo(settings)
        repo.apply(event_log.path("profiles"), path)
        profile = next((v for v in repo.store.list_feature_views() if v.name == PROFILE_VIEW), None)
        if profile is None or profile.most_recent_end_time is None:
            # A store never filled (a new scale store): the profiles go back years, further
            # than one TTL before now, where an incremental run would start.
            stamps = pd.to_datetime(event_log.read("profiles")["event_timestamp"], utc=True)
            repo.materialize(now, start=stamps.min().to_pydatetime())
        else:
            repo.materialize_incremental(now)
    return RefreshResult(
        snapshots=len(at), customers=len(customers), rows=len(frame), customer_ids=tuple(customers)
    )
