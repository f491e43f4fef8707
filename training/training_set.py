"""The training set: the decision log, its outcomes and Feast's point-in-time features.

Every model of every family is fitted on the same 70 % of customers and judged
on the other 30 %: a customer's side is fixed by a hash of its id
(:func:`holdout_mask`), so retraining later, on more data or "as known at"
another time, never trains on a customer that the promotion evaluation
(:mod:`training.promotion`) scores models on.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from feast.errors import FeatureViewNotFoundException
from numpy.typing import NDArray

from features import (
    PROFILE_VIEW,
    PROPENSITY_SERVICE,
    EventLog,
    FeatureRepo,
    InvalidRequest,
    NotFound,
)

__all__ = [
    "HOLDOUT_FRACTION",
    "SPLIT_RULE",
    "LifecycleSettings",
    "TrainingSet",
    "build_training_set",
    "holdout_mask",
    "split_training_set",
]

HOLDOUT_FRACTION = 0.3
# Part of every customer's hash: changing it reshuffles who is held out, which
# would let new models train on customers old ones were judged on.
_SPLIT_SALT = "nudge-holdout-v1"
SPLIT_RULE = f"sha256({_SPLIT_SALT}:customer_id) < {HOLDOUT_FRACTION}"
_TABLES = ("decisions", "outcomes")


class LifecycleSettings(Protocol):
    """What training needs of the settings: where the state and the registry live, the seed."""

    @property
    def state_dir(self) -> Path: ...

    @property
    def events_dir(self) -> Path: ...

    @property
    def mlflow_tracking_uri(self) -> str: ...

    @property
    def mlflow_artifact_root(self) -> Path: ...

    @property
    def seed(self) -> int: ...


@dataclass(frozen=True)
class TrainingSet:
    """One row per logged decision with a known outcome, and its point-in-time features.

    ``frame`` has ``customer_id``, ``event_timestamp`` (the decision time),
    ``arm``, ``propensity`` (the logged probability of that arm), the outcomes
    ``visit``, ``conversion`` and ``spend``, and the feature service's features
    as Feast knew them at the decision time (and, with ``as_of``, as known at
    ``as_of``). ``snapshot_id`` is a sha256 over the offline files read, the
    row counts used and ``as_of``: the same id means the same data. ``rows``
    counts the rows used per table and ``ignored`` those left out because they
    were created (or observed) after ``as_of``, or have no outcome.
    """

    frame: pd.DataFrame
    features: tuple[str, ...]
    feature_service: str
    snapshot_id: str
    as_of: datetime | None
    rows: dict[str, int]
    ignored: dict[str, int] = field(default_factory=dict)


def build_training_set(
    settings: LifecycleSettings,
    *,
    as_of: datetime | None = None,
    service: str = PROPENSITY_SERVICE,
) -> TrainingSet:
    """The decision log joined with its outcomes and Feast's point-in-time features.

    With ``as_of``, the set is the one that could have been built at that
    moment: decisions made and outcomes observed after it are left out, and so
    are feature rows *created* after it, even when they are stamped earlier (a
    backfill). Feast's own join looks at ``created_timestamp`` only to break
    ties between rows of the same timestamp, so it is handed a copy of the
    offline source without the later rows, in a scratch repo; the state
    folder's repo is not touched.

    Raises ``NotFound`` when the event log or the feature service is missing
    (``nudge demo`` makes both), ``InvalidRequest`` for a naive ``as_of``.
    """
    if as_of is not None and (
        not isinstance(as_of, datetime) or as_of.tzinfo is None or as_of.utcoffset() is None
    ):
        raise InvalidRequest("as_of", "must be a timezone-aware datetime", as_of)
    events = EventLog(settings.events_dir)
    decisions = events.read("decisions")
    outcomes = events.read("outcomes")
    repo = FeatureRepo(settings.state_dir)
    source, created_column = _offline_source(repo)
    ignored: dict[str, int] = {}
    if as_of is not None:
        stamp = pd.Timestamp(as_of)
        known = decisions["decided_at"] <= stamp
        ignored["decisions"] = int((~known).sum())
        decisions = decisions[known]
        observed = outcomes["observed_at"] <= stamp
        ignored["outcomes"] = int((~observed).sum())
        outcomes = outcomes[observed]
    entities = decisions[["customer_id", "decided_at", "arm", "propensity"]].merge(
        outcomes[["customer_id", "decided_at", "visit", "conversion", "spend"]],
        on=["customer_id", "decided_at"],
        how="inner",
        validate="one_to_one",
    )
    ignored["decisions_without_outcome"] = len(decisions) - len(entities)
    entities = entities.rename(columns={"decided_at": "event_timestamp"}).reset_index(drop=True)
    if entities.empty:
        raise InvalidRequest("as_of", "leaves no decision with a known outcome", as_of)

    profiles_used: int
    if as_of is None:
        frame = repo.training_frame(entities, service)
        profiles_used = pq.ParquetFile(source).metadata.num_rows
    else:
        profiles = pd.read_parquet(source)
        created = profiles[created_column] <= pd.Timestamp(as_of)
        ignored["profiles"] = int((~created).sum())
        profiles_used = int(created.sum())
        frame = _frame_as_of(profiles[created], entities, service)
    features = tuple(column for column in frame.columns if column not in entities.columns)
    rows = {
        "profiles": profiles_used,
        "decisions": len(decisions),
        "outcomes": len(outcomes),
        "training": len(frame),
    }
    files = {"profiles": source, **{name: events.path(name) for name in _TABLES}}
    return TrainingSet(
        frame=frame,
        features=features,
        feature_service=service,
        snapshot_id=_snapshot_id(files, rows, as_of),
        as_of=as_of,
        rows=rows,
        ignored=ignored,
    )


def holdout_mask(customer_ids: pd.Series | Sequence[str]) -> NDArray[np.bool_]:
    """Whether each customer is in the held-out 30 %: fixed by a hash of its id.

    >>> holdout_mask(["h00000", "h00001", "h00002", "h00003"]).tolist()
    [False, False, False, True]
    """
    ids = pd.Series(customer_ids, dtype="string")
    if ids.isna().any():
        raise InvalidRequest("customer_ids", "must have no missing ids")
    bound = HOLDOUT_FRACTION * 2**64
    return np.fromiter(
        (
            int.from_bytes(hashlib.sha256(f"{_SPLIT_SALT}:{customer}".encode()).digest()[:8], "big")
            < bound
            for customer in ids
        ),
        dtype=np.bool_,
        count=len(ids),
    )


def split_training_set(training_set: TrainingSet) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): the customers outside and inside the :func:`holdout_mask`."""
    held_out = holdout_mask(training_set.frame["customer_id"])
    frame = training_set.frame
    return frame[~held_out], frame[held_out]


def _offline_source(repo: FeatureRepo) -> tuple[Path, str]:
    """The Parquet file the profile view reads, and its created-timestamp column."""
    try:
        view = repo.store.get_feature_view(PROFILE_VIEW)
    except FeatureViewNotFoundException:
        raise NotFound("feature view", PROFILE_VIEW) from None
    source = view.batch_source
    path = Path(getattr(source, "path", ""))
    created = getattr(source, "created_timestamp_column", "")
    if not path.is_file():
        raise NotFound("offline feature file", str(path))
    if not created:
        raise InvalidRequest(
            "as_of", f"needs a created-timestamp column on {PROFILE_VIEW}'s source", str(path)
        )
    return path, created


def _frame_as_of(profiles: pd.DataFrame, entities: pd.DataFrame, service: str) -> pd.DataFrame:
    """Point-in-time features from a scratch repo over only the given profile rows."""
    with tempfile.TemporaryDirectory(prefix="nudge-as-of-") as folder:
        scratch = Path(folder)
        path = EventLog(scratch / "events").write("profiles", profiles)
        repo = FeatureRepo(scratch)
        repo.apply(path)
        return repo.training_frame(entities, service)


def _snapshot_id(files: Mapping[str, Path], rows: Mapping[str, int], as_of: datetime | None) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode())
        with open(files[name], "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    digest.update(json.dumps(dict(rows), sort_keys=True).encode())
    digest.update((as_of.isoformat() if as_of else "").encode())
    return digest.hexdigest()
