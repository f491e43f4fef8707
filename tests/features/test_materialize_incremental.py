"""Materialisation is incremental and idempotent, and re-applying the repo does not reset it."""

from __future__ import annotations

from datetime import datetime

import pytest
from feast_support import NOW, D, sample_snapshots, write_tables

from features.behaviour import write_snapshots
from features.definitions import BEHAVIOUR_SERVICE, RFM_VIEW
from features.feast_repo import FeatureRepo


def intervals(repo: FeatureRepo) -> dict[str, list[tuple[datetime, datetime]]]:
    return {
        view.name: list(view.materialization_intervals)
        for view in repo.store.list_feature_views()
        if view.name != "customer_profile"
    }


def test_apply_materialise_apply_again_and_go_on(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("incremental")
    tables = write_tables(root, [NOW - 2 * D, NOW - D])
    repo = FeatureRepo(root / "state")
    repo.apply(tables.profiles, tables.behaviour)
    repo.materialize_incremental(NOW - D)
    first = intervals(repo)
    assert {spans[-1][1] for spans in first.values()} == {NOW - D}
    before = repo.online(BEHAVIOUR_SERVICE, clock=lambda: NOW - D).get_many(["c1", "c2"])
    assert before[0].values["purchases_365d"] == 2

    repo.apply(tables.profiles, tables.behaviour)  # nothing changed: no reset
    assert intervals(repo) == first
    again = repo.online(BEHAVIOUR_SERVICE, clock=lambda: NOW - D).get_many(["c1", "c2"])
    assert again == before

    # A day later: a new snapshot, the repo applied again by a fresh process, and the
    # next incremental run starts where the last one ended.
    write_snapshots(tables.events, sample_snapshots([NOW]))
    reopened = FeatureRepo(root / "state")
    reopened.apply(tables.profiles, tables.behaviour)
    assert intervals(reopened) == first
    reopened.materialize_incremental(NOW)
    for name, spans in intervals(reopened).items():
        assert spans[-1] == (NOW - D, NOW), name
    row = reopened.online(BEHAVIOUR_SERVICE, clock=lambda: NOW).get("c1")
    assert row.values["cart_value"] == 25.0
    assert row.values["days_since_purchase"] == pytest.approx(10.0)

    # The same end again loads nothing new and changes nothing.
    reopened.materialize_incremental(NOW)
    assert reopened.online(BEHAVIOUR_SERVICE, clock=lambda: NOW).get("c1") == row
    assert intervals(reopened)[RFM_VIEW][-1][1] == NOW
