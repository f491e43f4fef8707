"""Nudge's Feast feature repo, configured in code under the runtime state folder.

There is no ``feature_store.yaml``: the embedded default is built here from the
state folder, so one settings object decides where everything lives.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from feast import FeatureService, FeatureStore, RepoConfig
from feast.errors import FeatureServiceNotFoundException
from feast.infra.offline_stores.dask import DaskOfflineStoreConfig
from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
from feast.repo_config import RegistryConfig

from features.definitions import PROPENSITY_SERVICE, feature_definitions
from features.errors import InvalidRequest, NotFound, Unavailable
from features.feast_online import FeastOnlineFeatures
from features.point_in_time import point_in_time_frame

__all__ = ["FeatureRepo"]


class FeatureRepo:
    """The local Feast store: a file registry, a SQLite online store, Parquet offline.

    The offline store is Feast's Dask one: DuckDB and Ibis are not in the pinned
    stack, and Dask joins the 64,000-row Hillstrom log in a couple of seconds.
    """

    def __init__(self, state_dir: Path, *, project: str = "nudge") -> None:
        # Feast joins a relative registry or online-store path onto ``repo_path``
        # (itself under the state folder), so ``.nudge`` would become
        # ``.nudge/feast/.nudge/feast``; an absolute folder, fixed now, also keeps
        # the repo pointing at the same place if the working directory changes.
        self.state_dir = Path(state_dir).expanduser().resolve()
        self.project = project
        self._store: FeatureStore | None = None

    @property
    def feast_dir(self) -> Path:
        """Where the registry and the online store live."""
        return self.state_dir / "feast"

    @property
    def store(self) -> FeatureStore:
        """The ``feast.FeatureStore``, created on first use."""
        if self._store is None:
            self.feast_dir.mkdir(parents=True, exist_ok=True)
            config = RepoConfig(
                project=self.project,
                provider="local",
                registry=RegistryConfig(path=str(self.feast_dir / "registry.db")),
                online_store=SqliteOnlineStoreConfig(path=str(self.feast_dir / "online.db")),
                offline_store=DaskOfflineStoreConfig(),
                repo_path=self.feast_dir,
                entity_key_serialization_version=3,
            )
            self._store = FeatureStore(repo_path=str(self.feast_dir), config=config)
        return self._store

    def apply(self, profiles_path: Path) -> None:
        """Register the feature definitions over ``profiles_path`` (``feast apply``); idempotent."""
        if not Path(profiles_path).is_file():
            raise InvalidRequest("profiles_path", "must be an existing Parquet file", profiles_path)
        self.store.apply([*feature_definitions(profiles_path)])

    def materialize(self, end: datetime, start: datetime | None = None) -> None:
        """Load the latest feature values stamped from ``start`` to ``end`` (both included) online.

        With no ``start``, each view continues from where its last materialisation
        ended; a view never materialised starts one TTL before ``end``, because
        Feast's own default (one TTL before *now*) would skip historical data.
        """
        _check_aware("end", end)
        if start is not None:
            _check_aware("start", start)
        views = self.store.list_feature_views()
        if not views:
            raise Unavailable(f"no feature views registered in {self.feast_dir}; apply first")
        for view in views:
            since = start or view.most_recent_end_time or _ttl_before(end, view.ttl)
            if since > end:
                raise InvalidRequest("end", f"must not be before {since.isoformat()}", end)
            self.store.materialize(start_date=since, end_date=end, feature_views=[view.name])

    def training_frame(
        self, entity_df: pd.DataFrame, service: str = PROPENSITY_SERVICE
    ) -> pd.DataFrame:
        """Point-in-time features for each row of ``entity_df``, in its order.

        ``entity_df`` needs ``customer_id`` and a timezone-aware ``event_timestamp``;
        other columns (labels, decision ids) come back unchanged beside the features,
        which carry their plain names. Each row sees only the latest values stamped
        at or before its own timestamp and within the view's TTL; see
        ``features.point_in_time`` for the types and for rows Feast has no answer for.
        """
        return point_in_time_frame(self.store, self._feature_service(service), entity_df)

    def online(self, service: str = PROPENSITY_SERVICE) -> FeastOnlineFeatures:
        """A ``FeatureSource`` reading ``service``'s features from the online store."""
        return FeastOnlineFeatures(self.store, self._feature_service(service))

    def _feature_service(self, name: str) -> FeatureService:
        try:
            return self.store.get_feature_service(name)
        except FeatureServiceNotFoundException:
            raise NotFound("feature service", name) from None


def _ttl_before(end: datetime, ttl: timedelta | None) -> datetime:
    # A zero or absent TTL means values never go stale, so all history counts.
    return end - ttl if ttl else datetime(1970, 1, 1, tzinfo=UTC)


def _check_aware(field: str, moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidRequest(field, "must be a timezone-aware datetime", moment)
