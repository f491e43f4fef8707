"""Feast's SQLite online store, made to keep the newer of two writes, as its Redis store does.

Feast 0.67's SQLite store upserts whatever it is given, while its Redis store
skips a row older than the one it holds. The difference matters once values
arrive from two paths: a cart pushed at 10:05 would be overwritten by a
materialisation at 10:10 of the 10:00 snapshot. This store reads the stored
event times of the entities first and drops the rows that are older; the write
itself is Feast's own.

Feast finds the class from the config's ``type`` (``module.ClassName``) and
its config class by the same name with ``Config`` appended.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from feast import FeatureView, RepoConfig
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.sqlite import (
    SqliteOnlineStore,
    SqliteOnlineStoreConfig,
    _quote_id,
    _table_id,
)

__all__ = ["OrderedSqliteOnlineStore", "OrderedSqliteOnlineStoreConfig"]

_TYPE = "features.feast_sqlite.OrderedSqliteOnlineStore"
# SQLite allows 32,766 bound parameters per statement.
_CHUNK = 10_000


class OrderedSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    type: Literal["features.feast_sqlite.OrderedSqliteOnlineStore"] = _TYPE  # type: ignore[assignment]


class OrderedSqliteOnlineStore(SqliteOnlineStore):
    """SQLite online store whose writes never replace a newer row with an older one."""

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[tuple[Any, dict[str, Any], datetime, datetime | None]],
        progress: Callable[[int], Any] | None,
    ) -> None:
        keys = [
            serialize_entity_key(
                entity_key,
                entity_key_serialization_version=config.entity_key_serialization_version,
            )
            for entity_key, _, _, _ in data
        ]
        stored = self._stored_times(config, table, keys)
        newer = [
            row
            for key, row in zip(keys, data, strict=True)
            if key not in stored or _utc(row[2]) >= stored[key]
        ]
        if newer:
            super().online_write_batch(config, table, newer, progress)
        elif progress:
            progress(len(data))

    def _stored_times(
        self, config: RepoConfig, table: FeatureView, keys: list[bytes]
    ) -> dict[bytes, datetime]:
        conn = self._get_conn(config)
        name = _quote_id(
            _table_id(config.project, table, config.registry.enable_online_feature_view_versioning)
        )
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
            (
                _table_id(
                    config.project, table, config.registry.enable_online_feature_view_versioning
                ),
            ),
        ).fetchone()
        if exists is None:
            return {}
        times: dict[bytes, datetime] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, stamp in conn.execute(
                f"SELECT entity_key, MAX(event_ts) FROM {name} "
                f"WHERE entity_key IN ({marks}) GROUP BY entity_key",
                chunk,
            ):
                if stamp is not None:
                    times[key] = _utc(stamp)
        return times


def _utc(moment: datetime | int | str) -> datetime:
    """A stored or given event time as an aware UTC datetime.

    Feast writes ``event_ts`` as whole Unix seconds of the naive UTC time read as
    local time, and reads it back with ``datetime.fromtimestamp``: undone the same
    way here, so the comparison holds in any server time zone.
    """
    if isinstance(moment, int):
        moment = datetime.fromtimestamp(moment)
    elif isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
