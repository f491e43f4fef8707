"""Nudge's Feast feature repo, configured in code under the runtime state folder.

There is no ``feature_store.yaml``: the embedded default is built here from the
state folder (and scale mode from the Redis and Postgres addresses), so one
settings object decides where everything lives. See ``features.feast_backends``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from feast import FeatureService, FeatureStore
from feast.errors import FeatureServiceNotFoundException

from features.definitions import (
    BEHAVIOUR_SOURCE,
    PROFILE_SOURCE,
    PROPENSITY_SERVICE,
    behaviour_definitions,
    profile_definitions,
)
from features.errors import InvalidRequest, NotFound, Unavailable
from features.feast_backends import Backend, Storage, embedded_backend, scale_backend
from features.feast_online import Clock, FeastOnlineFeatures
from features.point_in_time import point_in_time_frame

__all__ = ["FeatureRepo"]


class FeatureRepo:
    """The Feast store: embedded (file registry, SQLite online, Parquet offline) or scale
    (SQL registry in Postgres, Redis online, Postgres offline).

    The embedded offline store is Feast's Dask one: DuckDB and Ibis are not in the
    pinned stack, and Dask joins the 64,000-row Hillstrom log in a couple of seconds.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        project: str | None = None,
        storage: Storage = "embedded",
        redis_url: str | None = None,
        postgres_dsn: str | None = None,
        key_prefix: str = "nudge",
    ) -> None:
        # Feast joins a relative registry or online-store path onto ``repo_path``
        # (itself under the state folder), so ``.nudge`` would become
        # ``.nudge/feast/.nudge/feast``; an absolute folder, fixed now, also keeps
        # the repo pointing at the same place if the working directory changes.
        self.state_dir = Path(state_dir).expanduser().resolve()
        if storage not in ("embedded", "scale"):
            raise InvalidRequest("storage", "must be 'embedded' or 'scale'", storage)
        if storage == "scale" and (not redis_url or not postgres_dsn):
            raise InvalidRequest(
                "storage", "'scale' needs redis_url and postgres_dsn", [redis_url, postgres_dsn]
            )
        self.storage: Storage = storage
        # In scale mode the project names the Redis keys, so it is the key prefix.
        self.project = project or (key_prefix if storage == "scale" else "nudge")
        self.redis_url = redis_url
        self.postgres_dsn = postgres_dsn
        self.key_prefix = key_prefix
        self._backend: Backend | None = None
        self._store: FeatureStore | None = None

    @property
    def feast_dir(self) -> Path:
        """Where the registry and the online store live (embedded); Feast's repo folder."""
        return self.state_dir / "feast"

    @property
    def backend(self) -> Backend:
        """The Feast configuration, built (and in scale mode the schema created) on first use."""
        if self._backend is None:
            self.feast_dir.mkdir(parents=True, exist_ok=True)
            if self.storage == "scale":
                assert self.redis_url is not None
                assert self.postgres_dsn is not None
                self._backend = scale_backend(
                    self.feast_dir,
                    redis_url=self.redis_url,
                    postgres_dsn=self.postgres_dsn,
                    key_prefix=self.project,
                )
            else:
                self._backend = embedded_backend(self.feast_dir, self.project)
        return self._backend

    @property
    def store(self) -> FeatureStore:
        """The ``feast.FeatureStore``, created on first use."""
        if self._store is None:
            self._store = FeatureStore(repo_path=str(self.feast_dir), config=self.backend.config)
        return self._store

    def apply(self, profiles_path: Path, behaviour_path: Path | None = None) -> None:
        """Register the feature definitions (``feast apply``); idempotent.

        ``profiles_path`` is the profile table (service ``propensity_v1``);
        ``behaviour_path``, if given, the behaviour snapshot table
        (``features.behaviour``, service ``behaviour_v1``). What was materialised
        stays materialised: Feast keeps a view's materialisation intervals when
        the view is applied again.
        """
        tables = {"profiles_path": profiles_path, "behaviour_path": behaviour_path}
        for field, path in tables.items():
            if path is not None and not Path(path).is_file():
                raise InvalidRequest(field, "must be an existing Parquet file", path)
        backend = self.backend
        objects: list[object] = [
            *profile_definitions(backend.source(PROFILE_SOURCE, profiles_path, "created_at"))
        ]
        if behaviour_path is not None:
            behaviour = behaviour_definitions(backend.source(BEHAVIOUR_SOURCE, behaviour_path))
            # The entity comes once, from the profile definitions.
            objects += behaviour[1:]
        self.store.apply(objects)  # type: ignore[arg-type]

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

    def materialize_incremental(self, end: datetime) -> None:
        """Load what each view gained since its last materialisation, up to ``end``.

        The same as ``materialize(end)``: running it twice with one ``end`` loads
        nothing new, and re-applying the repo in between does not reset it.
        """
        self.materialize(end)

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

    def online(
        self, service: str = PROPENSITY_SERVICE, *, clock: Clock | None = None
    ) -> FeastOnlineFeatures:
        """A ``FeatureSource`` reading ``service``'s features from the online store.

        A value older than its view's TTL (by ``clock``, default the wall clock) is
        served as missing, except for the views of ``ONLINE_TTL_EXEMPT``.
        """
        return FeastOnlineFeatures(self.store, self._feature_service(service), clock=clock)

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
