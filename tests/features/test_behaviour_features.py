"""Behaviour snapshots: the numbers, point-in-time correctness, and the views over them."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from feast_support import (
    NOW,
    D,
    H,
    event,
    sample_contacts,
    sample_events,
    sample_outcomes,
    sample_sends,
    sample_snapshots,
    write_tables,
)

from features import InvalidRequest
from features.behaviour import (
    BEHAVIOUR_COLUMNS,
    behaviour_snapshots,
    contacts_from_profiles,
    records_from_decision_log,
    snapshot_days,
    write_snapshots,
)
from features.definitions import (
    BEHAVIOUR_FEATURE_TYPES,
    BEHAVIOUR_SERVICE,
    PROFILE_FEATURE_TYPES,
    PROPENSITY_SERVICE,
    SEND_TIME_SERVICE,
    SEND_TIME_VIEW,
)
from features.event_log import EventLog
from features.feast_repo import FeatureRepo
from features.push import apply_cart_event


@pytest.fixture(scope="module")
def at_now() -> pd.DataFrame:
    return sample_snapshots([NOW]).set_index("customer_id")


def test_one_row_per_customer_known_by_the_snapshot(at_now: pd.DataFrame) -> None:
    assert list(at_now.index) == ["c1", "c2", "c3"]  # c4 only acts after NOW
    assert list(at_now.reset_index().columns) == list(BEHAVIOUR_COLUMNS)
    assert (at_now["event_timestamp"] == NOW).all()


def test_recency_frequency_monetary(at_now: pd.DataFrame) -> None:
    c1 = at_now.loc["c1"]
    assert c1["days_since_purchase"] == pytest.approx(10.0)
    assert c1["days_since_active"] == pytest.approx(1 / 24)
    assert (c1["purchases_90d"], c1["purchases_365d"]) == (1, 2)
    assert (c1["spend_90d"], c1["spend_365d"]) == (10.0, 50.0)
    assert np.isnan(at_now.loc["c3", "days_since_purchase"])  # never bought: missing
    assert at_now.loc["c3", "purchases_365d"] == 0


def test_engagement_counts_each_window_and_each_outcome_once(at_now: pd.DataFrame) -> None:
    c2 = at_now.loc["c2"]
    expected = {
        "email_sent_7d": 1,
        "email_sent_30d": 2,
        "email_sent_90d": 2,
        # o1 is in the stream and the decision log under one id: one open, not two.
        "email_opened_7d": 1,
        "email_clicked_7d": 1,  # from the decision log only
        "sms_sent_30d": 0,
        "sms_sent_90d": 1,
        "sms_unsubscribed_30d": 0,
        "sms_unsubscribed_90d": 1,
        "push_sent_90d": 0,
    }
    assert {name: int(c2[name]) for name in expected} == expected


def test_hour_of_week_profile_is_in_the_customers_zone(at_now: pd.DataFrame) -> None:
    c3 = at_now.loc["c3"]
    # Mondays 12:00 UTC are 07:00 in New York (before the March clock change).
    assert (c3["activity_events_90d"], c3["peak_hour_of_week"]) == (3, 7)
    shares = at_now.loc["c3", [f"activity_how_{h:03d}" for h in range(168)]].to_numpy(float)
    assert shares[7] == 1.0
    assert shares.sum() == pytest.approx(1.0)
    # c2's one activity, an e-mail open on Friday at 13:00 UTC (no zone known).
    assert at_now.loc["c2", "peak_hour_of_week"] == 4 * 24 + 13


def test_consent_and_reachability_use_only_what_was_known(at_now: pd.DataFrame) -> None:
    c3 = at_now.loc["c3"]
    assert (c3["email_consent"], c3["email_reachable"], c3["email_contactable"]) == (
        "opted_in",
        1,
        1,
    )
    # The SMS opt-in is dated tomorrow: not known at NOW. Reachable since yesterday.
    assert (c3["sms_consent"], c3["sms_reachable"], c3["sms_contactable"]) == ("unknown", 1, 0)
    assert at_now.loc["c2", "sms_suppressed"] == 1
    later = sample_snapshots([NOW + 2 * D]).set_index("customer_id").loc["c3"]
    assert (later["sms_consent"], later["sms_contactable"]) == ("opted_in", 1)


def test_cart_state_and_the_purchase_that_closes_it() -> None:
    rows = sample_snapshots([NOW, NOW + 2 * H]).set_index(["customer_id", "event_timestamp"])
    open_cart = rows.loc[("c1", NOW)]
    closed = rows.loc[("c1", NOW + 2 * H)]
    added = int((NOW - 2 * H).timestamp())
    assert (open_cart["cart_value"], open_cart["cart_open"]) == (25.0, 1)
    assert open_cart["last_add_to_cart_at"] == added
    assert (closed["cart_value"], closed["cart_open"], closed["last_add_to_cart_at"]) == (
        0.0,
        0,
        added,
    )
    assert pd.isna(rows.loc[("c3", NOW), "cart_open"])  # no cart event ever: missing


def test_a_snapshot_never_sees_its_future() -> None:
    everything = sample_snapshots([NOW])
    past_only = behaviour_snapshots(
        [NOW],
        events=[e for e in sample_events() if e.occurred_at <= NOW],
        sends=[s for s in sample_sends() if s.sent_at <= NOW],
        outcomes=[o for o in sample_outcomes() if o.occurred_at <= NOW],
        contacts=[c for c in sample_contacts() if c.known_at <= NOW],
    )
    # The contact record's future opt-in is filtered inside; everything else too.
    pd.testing.assert_frame_equal(everything, past_only)


@pytest.mark.parametrize("seed", range(5))
def test_cart_fold_agrees_with_the_bulk_snapshot(seed: int) -> None:
    """The pusher's fold and the snapshot's bulk computation follow one set of rules."""
    rng = random.Random(seed)
    events, at = [], NOW - 10 * D
    for n in range(12):
        at += timedelta(minutes=rng.randint(1, 600))
        kind = rng.choice(["add_to_cart", "add_to_cart", "checkout_started", "purchase"])
        payload = {} if rng.random() < 0.25 else {"cart_value": round(rng.uniform(1, 99), 2)}
        events.append(event(f"e{n}", "c", kind, at, **payload))
    folded = None
    for item in events:
        folded = apply_cart_event(folded, item)
    assert folded is not None
    bulk = behaviour_snapshots([at], events=events).iloc[0]
    assert bulk["cart_open"] == folded.cart_open
    added = bulk["last_add_to_cart_at"]
    assert (None if pd.isna(added) else int(added)) == folded.last_add_to_cart_at
    if folded.cart_value is None:
        assert np.isnan(bulk["cart_value"])
    else:
        assert bulk["cart_value"] == pytest.approx(folded.cart_value)


def test_a_late_cart_event_does_not_undo_a_newer_one() -> None:
    cart = apply_cart_event(None, event("a", "c", "add_to_cart", NOW, cart_value=30.0))
    late_purchase = apply_cart_event(cart, event("p", "c", "purchase", NOW - H))
    assert late_purchase == cart
    late_add = apply_cart_event(
        apply_cart_event(None, event("p", "c", "purchase", NOW)),
        event("a", "c", "add_to_cart", NOW - H, cart_value=5.0),
    )
    assert (late_add.cart_open, late_add.cart_value) == (0, 0.0)
    assert late_add.last_add_to_cart_at == int((NOW - H).timestamp())


def test_writing_a_snapshot_again_replaces_it(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    first = sample_snapshots([NOW])
    write_snapshots(log, first)
    write_snapshots(log, first)
    assert len(log.read("behaviour")) == len(first)
    write_snapshots(log, sample_snapshots([NOW, NOW + D]))
    table = log.read("behaviour")
    assert len(table) == 3 + 4  # c4 joins at NOW + 1 day
    assert not table.duplicated(["customer_id", "event_timestamp"]).any()
    assert str(table["last_add_to_cart_at"].dtype) == "Int64"


def test_records_from_the_real_decision_log_and_contact_store(tmp_path: Path) -> None:
    from decisioning.sqlite_contact import SQLiteContactStore
    from decisioning.sqlite_log import SQLiteDecisionLog
    from decisioning.types import Decision, JointAction, Outcome

    log = SQLiteDecisionLog(tmp_path / "log.db")
    send = JointAction("welcome", "email", "09:00", NOW + H)
    none = JointAction(None, None, None, None)
    for decision_id, action in (("d1", send), ("d2", none)):
        log.record_decision(
            Decision(
                decision_id=decision_id,
                customer_id="c1",
                decided_at=NOW,
                journey="welcome",
                step="day-0",
                group="policy",
                action=action,
                propensity=1.0,
                propensity_error=0.0,
                eligible=(action,),
                excluded=(),
                scores={},
                explored=False,
                policy_version="uniform",
                model_version="m1",
                features={},
            )
        )
    log.record_outcome(Outcome("o1", "d1", "open", 0.0, 0.0, NOW + 2 * H))
    log.record_outcome(Outcome("o2", "d1", "purchase", 5.0, 5.0, NOW + 3 * H))
    sends, outcomes = records_from_decision_log(log)
    log.close()
    assert [(s.decision_id, s.channel, s.sent_at) for s in sends] == [("d1", "email", NOW + H)]
    assert [(o.outcome_id, o.channel, o.event) for o in outcomes] == [("o1", "email", "open")]

    contacts = SQLiteContactStore(tmp_path / "contacts.db")
    contacts.set_consent("c1", "email", True, NOW - D)
    contacts.set_reachable("c1", "email", True)
    records = contacts_from_profiles([contacts.profile("c1")], known_at=NOW)
    contacts.close()
    assert [(r.channel, r.consent, r.reachable, r.known_at) for r in records] == [
        ("email", "opted_in", True, NOW)
    ]
    row = behaviour_snapshots([NOW + 4 * H], sends=sends, outcomes=outcomes, contacts=records)
    assert row[["email_sent_7d", "email_opened_7d", "email_contactable"]].iloc[0].tolist() == [
        1,
        1,
        1,
    ]


@pytest.mark.parametrize(
    ("at", "match"),
    [
        ([], r"`at` must name at least one snapshot time"),
        ([datetime(2026, 1, 1)], r"`at` must hold timezone-aware datetimes"),
    ],
)
def test_bad_snapshot_times_are_rejected(at: list[datetime], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        behaviour_snapshots(at, events=sample_events())


def test_snapshot_tables_must_have_every_column(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match=r"`snapshots` must have every behaviour column"):
        write_snapshots(EventLog(tmp_path), sample_snapshots([NOW]).drop(columns="cart_open"))


def test_snapshot_days() -> None:
    days = snapshot_days(NOW - 2 * D, NOW)
    assert days == [NOW - 2 * D, NOW - D, NOW]
    with pytest.raises(InvalidRequest, match=r"`every` must be positive"):
        snapshot_days(NOW, NOW, timedelta(0))


# ----------------------------------------------------------------------------- Feast views


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> FeatureRepo:
    root = tmp_path_factory.mktemp("behaviour")
    tables = write_tables(root, [NOW - 3 * D, NOW - D, NOW])
    repo = FeatureRepo(root / "state")
    repo.apply(tables.profiles, tables.behaviour)
    repo.materialize(NOW)
    return repo


def test_the_behaviour_service_has_every_view_and_propensity_is_untouched(
    repo: FeatureRepo,
) -> None:
    store = repo.store
    services = {service.name: service for service in store.list_feature_services()}
    assert [p.name for p in services[PROPENSITY_SERVICE].feature_view_projections] == [
        "customer_profile"
    ]
    assert [
        [field.name for field in p.features]
        for p in services[PROPENSITY_SERVICE].feature_view_projections
    ] == [list(PROFILE_FEATURE_TYPES)]
    assert [p.name for p in services[BEHAVIOUR_SERVICE].feature_view_projections] == [
        name for name in BEHAVIOUR_FEATURE_TYPES if name != SEND_TIME_VIEW
    ]
    assert [p.name for p in services[SEND_TIME_SERVICE].feature_view_projections] == [
        SEND_TIME_VIEW
    ]


def test_batch_read_keeps_request_order_and_marks_the_unknown_missing(repo: FeatureRepo) -> None:
    online = repo.online(BEHAVIOUR_SERVICE, clock=lambda: NOW)
    rows = online.get_many(["c3", "nobody", "c1", "c3"])
    assert [row.customer_id for row in rows] == ["c3", "nobody", "c1", "c3"]
    assert rows[1].missing == online.feature_names
    assert rows[0] == rows[3] == online.get("c3")
    assert rows[2].values["cart_value"] == 25.0
    assert rows[2].values["purchases_365d"] == 2
    assert rows[0].values["email_consent"] == "opted_in"
    assert rows[0].values["days_since_purchase"] is None
    assert "days_since_purchase" in rows[0].missing
    assert online.get_many([]) == []


def test_training_frame_joins_the_latest_snapshot_before_each_row(repo: FeatureRepo) -> None:
    entities = pd.DataFrame(
        {
            "customer_id": ["c1", "c1", "c2", "c3"],
            "event_timestamp": [NOW - 2 * D, NOW + H, NOW - 4 * D, NOW - D + H],
        }
    )
    frame = repo.training_frame(entities, service=BEHAVIOUR_SERVICE)
    snapshots = sample_snapshots([NOW - 3 * D, NOW - D, NOW]).set_index(
        ["customer_id", "event_timestamp"]
    )
    # c1 at NOW - 2 days sees the snapshot of NOW - 3 days; c2 at NOW - 4 days sees none.
    assert frame.loc[0, "purchases_365d"] == snapshots.loc[("c1", NOW - 3 * D), "purchases_365d"]
    assert frame.loc[1, "cart_value"] == 25.0
    assert frame.loc[2, ["email_sent_90d", "cart_value"]].isna().all()
    assert frame.loc[3, "email_consent"] == "opted_in"


def test_the_send_time_profile_is_served_on_its_own(repo: FeatureRepo) -> None:
    online = repo.online(SEND_TIME_SERVICE, clock=lambda: NOW)
    assert len(online.feature_names) == 2 + 168
    c3 = online.get("c3").values
    assert (c3["peak_hour_of_week"], c3["activity_how_007"], c3["activity_how_008"]) == (
        7,
        1.0,
        0.0,
    )
    frame = repo.training_frame(
        pd.DataFrame({"customer_id": ["c3"], "event_timestamp": [NOW]}), service=SEND_TIME_SERVICE
    )
    assert frame.loc[0, "activity_how_007"] == 1.0
    assert frame["activity_how_007"].dtype == "float64"
