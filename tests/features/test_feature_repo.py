"""The Feast repo end to end on 600 customers: apply, materialise, train, serve.

Feast is set up once for the module; the online reads at each materialisation
point are captured in the fixture, because later steps change what they return.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import (
    PROFILE_FEATURES,
    PROFILE_VIEW,
    PROPENSITY_SERVICE,
    EventLog,
    FeastOnlineFeatures,
    FeatureRepo,
    FeatureRow,
    HillstromLog,
    InvalidRequest,
    NotFound,
    Unavailable,
    default_hillstrom_path,
    ingest_hillstrom,
)


@dataclass
class Run:
    log: HillstromLog
    events: EventLog
    repo: FeatureRepo
    online: FeastOnlineFeatures
    training: pd.DataFrame
    entities: pd.DataFrame
    at_campaign_end: dict[str, FeatureRow]
    at_tracking_end: dict[str, FeatureRow]


def small_hillstrom_csv(folder: Path, rows: int) -> Path:
    """The first ``rows`` customers of the real file as a CSV of their own.

    A sample of the full file must be big enough to train on; a smaller file keeps
    these tests fast, and the experiment's randomisation makes any slice balanced.
    """
    path = folder / "hillstrom.csv"
    pd.read_csv(default_hillstrom_path(), nrows=rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("feast")
    events = EventLog(root / "events")
    log = ingest_hillstrom(events, path=small_hillstrom_csv(root, 600), seed=0)
    repo = FeatureRepo(root / "state")
    repo.apply(events.path("profiles"))
    repo.materialize(log.campaign_end)
    entities = log.decisions.rename(columns={"decided_at": "event_timestamp"})
    entities = entities.merge(log.outcomes[["customer_id", "conversion", "spend"]])
    training = repo.training_frame(entities)
    online = repo.online()
    ids = list(log.decisions["customer_id"])
    at_campaign_end = {cid: online.get(cid) for cid in ids}
    repo.materialize(log.tracking_end)
    at_tracking_end = {cid: online.get(cid) for cid in ids}
    return Run(log, events, repo, online, training, entities, at_campaign_end, at_tracking_end)


def converters(run: Run) -> pd.DataFrame:
    outcomes = run.log.outcomes
    return outcomes[outcomes["conversion"] == 1]


def baseline(run: Run) -> pd.DataFrame:
    profiles = run.log.profiles
    return profiles[profiles["event_timestamp"] < run.log.campaign_start].set_index("customer_id")


def test_sample_has_converters_to_check(run: Run) -> None:
    assert len(converters(run)) >= 3


def test_training_frame_keeps_rows_order_and_labels(run: Run) -> None:
    frame = run.training
    assert list(frame.columns) == [*run.entities.columns, *PROFILE_FEATURES]
    pd.testing.assert_frame_equal(frame[run.entities.columns], run.entities)


def test_training_frame_matches_an_as_of_join_computed_independently(run: Run) -> None:
    profiles = run.log.profiles.sort_values("event_timestamp")
    rows = run.entities.reset_index().sort_values("event_timestamp")
    expected = (
        pd.merge_asof(rows, profiles, on="event_timestamp", by="customer_id", direction="backward")
        .set_index("index")
        .sort_index()
    )
    for name in PROFILE_FEATURES:
        got, want = run.training[name].to_numpy(), expected[name].to_numpy()
        if name in ("zip_code", "channel"):
            assert (got == want).all(), name
        else:
            np.testing.assert_allclose(got.astype(float), want.astype(float), err_msg=name)


def test_training_rows_never_see_the_post_campaign_purchase(run: Run) -> None:
    frame = run.training.set_index("customer_id")
    bought = converters(run)["customer_id"]
    assert (frame.loc[bought, "recency"] > 0).all()
    before = baseline(run).loc[bought]
    np.testing.assert_allclose(frame.loc[bought, "history"], before["history"])
    assert (frame["recency"] != 0).all()


def test_training_feature_types_are_stable(run: Run) -> None:
    dtypes = run.training[list(PROFILE_FEATURES)].dtypes.astype(str).to_dict()
    assert dtypes == {
        "recency": "float64",
        "history": "float64",
        "mens": "float64",
        "womens": "float64",
        "newbie": "float64",
        "zip_code": "string",
        "channel": "string",
    }


def test_rows_feast_cannot_answer_stay_in_place_with_missing_features(run: Run) -> None:
    first = run.entities.iloc[[0]]
    campaign_start = run.log.campaign_start
    asks = pd.DataFrame(
        {
            "customer_id": [first["customer_id"].iloc[0]] * 4 + ["nobody"],
            "event_timestamp": [
                first["event_timestamp"].iloc[0],
                first["event_timestamp"].iloc[0],  # the same question twice
                campaign_start - timedelta(days=30),  # before any snapshot
                campaign_start + timedelta(days=500),  # past the 400-day TTL
                campaign_start,
            ],
            "label": [1, 2, 3, 4, 5],
        },
        index=[50, 40, 30, 20, 10],
    )
    frame = run.repo.training_frame(asks)
    assert frame["label"].tolist() == [1, 2, 3, 4, 5]
    assert frame["recency"].notna().tolist() == [True, True, False, False, False]
    assert frame["zip_code"].isna().tolist() == [False, False, True, True, True]


def test_online_reads_show_baseline_until_the_purchase_is_materialised(run: Run) -> None:
    before = baseline(run)
    for row in converters(run).itertuples():
        early = run.at_campaign_end[row.customer_id].values
        late = run.at_tracking_end[row.customer_id].values
        assert early["recency"] == before.loc[row.customer_id, "recency"] > 0
        assert early["history"] == pytest.approx(before.loc[row.customer_id, "history"])
        assert late["recency"] == 0
        assert late["history"] == pytest.approx(early["history"] + row.spend)


def test_online_values_are_plain_python_and_complete(run: Run) -> None:
    some = run.log.decisions["customer_id"].iloc[0]
    row = run.at_campaign_end[some]
    assert row.customer_id == some
    assert row.missing == ()
    assert list(row.values) == list(PROFILE_FEATURES)
    expected = baseline(run).loc[some]
    for name in PROFILE_FEATURES:
        assert row.values[name] == expected[name], name
    assert type(row.values["recency"]) is int
    assert type(row.values["zip_code"]) is str


def test_unknown_customer_has_every_feature_missing(run: Run) -> None:
    row = run.online.get("h99999")
    assert row.missing == PROFILE_FEATURES
    assert all(value is None for value in row.values.values())


def test_reads_from_worker_threads_agree_with_serial_reads(run: Run) -> None:
    ids = list(run.log.decisions["customer_id"][:200])
    with ThreadPoolExecutor(max_workers=4) as pool:
        rows = list(pool.map(run.online.get, ids))
    assert rows == [run.at_tracking_end[cid] for cid in ids]


def test_reapplying_is_idempotent(run: Run) -> None:
    run.repo.apply(run.events.path("profiles"))
    run.repo.apply(run.events.path("profiles"))
    store = run.repo.store
    assert [view.name for view in store.list_feature_views()] == [PROFILE_VIEW]
    assert [service.name for service in store.list_feature_services()] == [PROPENSITY_SERVICE]
    some = run.log.decisions["customer_id"].iloc[0]
    assert run.repo.online().get(some) == run.at_tracking_end[some]
    again = run.repo.training_frame(run.entities.head(20))
    pd.testing.assert_frame_equal(again, run.training.head(20))


def test_a_fresh_repo_object_reads_the_same_state(run: Run) -> None:
    reopened = FeatureRepo(run.repo.state_dir)
    some = run.log.decisions["customer_id"].iloc[-1]
    assert reopened.online().get(some) == run.at_tracking_end[some]


def test_unknown_service_is_not_found(run: Run) -> None:
    with pytest.raises(NotFound, match=r"feature service 'nope' not found"):
        run.repo.online("nope")


def test_materialise_needs_an_aware_end_after_the_last_one(run: Run) -> None:
    with pytest.raises(InvalidRequest, match=r"`end` must be a timezone-aware datetime"):
        run.repo.materialize(datetime(2008, 4, 1))
    with pytest.raises(InvalidRequest, match=r"`end` must not be before 2008-03-29"):
        run.repo.materialize(run.log.campaign_end)


def test_a_relative_state_folder_works_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default settings use ``.nudge``: Feast would put the registry at
    # ``.nudge/feast/.nudge/feast`` if the repo handed it a relative path.
    small_hillstrom_csv(tmp_path, 300)
    monkeypatch.chdir(tmp_path)
    events = EventLog(Path("events"))
    log = ingest_hillstrom(events, path=Path("hillstrom.csv"), seed=0)
    repo = FeatureRepo(Path("state"))
    repo.apply(events.path("profiles"))
    repo.materialize(log.campaign_end)
    some = log.decisions["customer_id"].iloc[0]
    assert repo.online().get(some).missing == ()
    entities = log.decisions.rename(columns={"decided_at": "event_timestamp"})
    frame = repo.training_frame(entities)
    assert len(frame) == 300
    assert frame["recency"].notna().all()
    feast_dir = tmp_path.resolve() / "state" / "feast"
    assert sorted(path.name for path in feast_dir.iterdir()) == ["online.db", "registry.db"]


def test_relative_folders_are_fixed_when_the_objects_are_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    repo, events = FeatureRepo(Path("state")), EventLog(Path("events"))
    monkeypatch.chdir(tmp_path.parent)
    assert repo.feast_dir == tmp_path.resolve() / "state" / "feast"
    assert events.path("decisions") == tmp_path.resolve() / "events" / "decisions.parquet"


def test_an_empty_repo_says_to_apply_first(tmp_path: Path) -> None:
    repo = FeatureRepo(tmp_path)
    with pytest.raises(Unavailable, match=r"no feature views registered .*; apply first"):
        repo.materialize(datetime(2008, 4, 1, tzinfo=UTC))
    with pytest.raises(NotFound, match=r"feature service 'propensity_v1' not found"):
        repo.online()


def test_apply_needs_the_profiles_table(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match=r"`profiles_path` must be an existing Parquet"):
        FeatureRepo(tmp_path).apply(tmp_path / "missing.parquet")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda f: f.drop(columns="customer_id"), r"`entity_df` must have a `customer_id`"),
        (lambda f: f.drop(columns="event_timestamp"), r"must have a `event_timestamp`"),
        (
            lambda f: f.assign(event_timestamp=f["event_timestamp"].dt.tz_localize(None)),
            r"`event_timestamp` must hold timezone-aware datetimes, got 'datetime64\[ns\]'",
        ),
        (lambda f: f.assign(recency=1), r"must not have columns named like features.*recency"),
        (
            lambda f: f.assign(customer_id=[None, *f["customer_id"][1:]]),
            r"must have no missing customer_id",
        ),
    ],
)
def test_bad_entity_frames_are_rejected(
    run: Run, change: Callable[[pd.DataFrame], pd.DataFrame], match: str
) -> None:
    with pytest.raises(InvalidRequest, match=match):
        run.repo.training_frame(change(run.entities.head(5)))
