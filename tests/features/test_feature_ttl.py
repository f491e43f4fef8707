"""TTLs hold online: a value older than its view's TTL is served as missing, not as present."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from feast_support import NOW, D, H, write_tables

from features.definitions import (
    BEHAVIOUR_FEATURE_TYPES,
    BEHAVIOUR_SERVICE,
    BEHAVIOUR_TTLS,
    CART_VIEW,
    PROFILE_FEATURE_TYPES,
    RFM_VIEW,
)
from features.feast_repo import FeatureRepo

# One snapshot three days before NOW: older than the RFM view's two-day TTL,
# younger than the cart view's seven.
SNAPSHOT = NOW - 3 * D


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> FeatureRepo:
    root = tmp_path_factory.mktemp("ttl")
    tables = write_tables(root, [SNAPSHOT])
    repo = FeatureRepo(root / "state")
    repo.apply(tables.profiles, tables.behaviour)
    # From 2007: the profile table is dated 2008, as the demo's is.
    repo.materialize(SNAPSHOT + H, start=datetime(2007, 1, 1, tzinfo=UTC))
    return repo


def test_the_ttls_are_the_ones_this_test_relies_on() -> None:
    assert BEHAVIOUR_TTLS[RFM_VIEW] < NOW - SNAPSHOT < BEHAVIOUR_TTLS[CART_VIEW]


def test_feast_itself_serves_the_expired_value_as_present(repo: FeatureRepo) -> None:
    """Why Nudge checks: Feast 0.67's SQLite read returns the stale row, marked PRESENT."""
    response = repo.store.get_online_features(
        features=[f"{RFM_VIEW}:purchases_365d"], entity_rows=[{"customer_id": "c1"}]
    )
    assert response.to_dict()["purchases_365d"] == [2]


def test_an_expired_view_is_served_as_missing(repo: FeatureRepo) -> None:
    row = repo.online(BEHAVIOUR_SERVICE, clock=lambda: NOW).get("c1")
    rfm = tuple(BEHAVIOUR_FEATURE_TYPES[RFM_VIEW])
    assert all(row.values[name] is None for name in rfm)
    assert set(rfm) <= set(row.missing)
    # The cart view's TTL is longer: its values (a cart closed by a purchase) are live.
    assert (row.values["cart_value"], row.values["cart_open"]) == (0.0, 0)
    assert "cart_value" not in row.missing


@pytest.mark.parametrize(
    ("now", "live"),
    [
        (SNAPSHOT, True),
        (SNAPSHOT + BEHAVIOUR_TTLS[RFM_VIEW], True),  # exactly the TTL: still live
        (SNAPSHOT + BEHAVIOUR_TTLS[RFM_VIEW] + H, False),
    ],
)
def test_the_ttl_boundary(repo: FeatureRepo, now: datetime, live: bool) -> None:
    rows = repo.online(BEHAVIOUR_SERVICE, clock=lambda: now).get_many(["c1", "c2"])
    assert [row.values["purchases_365d"] is not None for row in rows] == [live, live]


def test_the_same_reads_in_a_batch(repo: FeatureRepo) -> None:
    online = repo.online(BEHAVIOUR_SERVICE, clock=lambda: NOW)
    rows = online.get_many(["c1", "nobody"])
    assert rows[0].values["purchases_365d"] is None
    assert rows[0].values["cart_open"] == 0
    assert rows[1].missing == online.feature_names


def test_the_replayed_hillstrom_profiles_are_exempt(repo: FeatureRepo) -> None:
    """The demo's profiles are dated 2008; the served model must still see them."""
    row = repo.online(clock=lambda: NOW).get("c1")
    assert row.missing == ()
    assert list(row.values) == list(PROFILE_FEATURE_TYPES)


def test_the_wall_clock_is_the_default(tmp_path: Path) -> None:
    tables = write_tables(tmp_path, [SNAPSHOT])
    repo = FeatureRepo(tmp_path / "state")
    repo.apply(tables.profiles, tables.behaviour)
    repo.materialize(SNAPSHOT + H)
    # The snapshot is from 2026-02-27; today is later than its TTLs.
    assert repo.online(BEHAVIOUR_SERVICE).get("c1").values["cart_open"] is None
