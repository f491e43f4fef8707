"""Where the Feast repo keeps things: the embedded default or scale mode.

- ``embedded``: a file registry, SQLite online store (``features.feast_sqlite``)
  and Dask over Parquet offline, all under the state folder.
- ``scale``: Redis online store, Postgres offline store (the feature tables are
  loaded into Postgres and read through ``PostgreSQLSource``) and Feast's SQL
  registry in Postgres. Feast's tables live in the schema ``<key_prefix>_feast``,
  apart from Nudge's own (``projects``, ``entities``, ... are Feast's names). The
  Feast project is ``key_prefix``: Feast's Redis keys are the serialised entity
  key followed by the project name, so the prefix ends every key rather than
  starting it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

import pandas as pd
from feast import RepoConfig
from feast.data_source import DataSource

from features.definitions import file_source
from features.errors import InvalidRequest, Unavailable

__all__ = ["Backend", "Storage", "embedded_backend", "redis_connection_string", "scale_backend"]

Storage = Literal["embedded", "scale"]
_PREFIX = re.compile(r"^[a-z][a-z0-9_]{0,50}$")


@dataclass(frozen=True)
class Backend:
    """A Feast configuration and how the feature tables become Feast sources."""

    config: RepoConfig
    storage: Storage
    postgres_dsn: str | None = None
    schema: str | None = None

    def source(self, name: str, path: Path, created_timestamp_column: str = "") -> DataSource:
        """The batch source for table ``name`` whose rows are the Parquet file ``path``.

        Embedded, Feast reads the file itself; in scale mode the rows are first
        loaded into a Postgres table of that name (replacing it in one transaction).
        """
        if self.storage == "embedded":
            return file_source(name, path, created_timestamp_column)
        from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
            PostgreSQLSource,
        )

        assert self.postgres_dsn is not None
        assert self.schema is not None
        _load_table(self.postgres_dsn, self.schema, name, pd.read_parquet(path))
        return PostgreSQLSource(
            name=name,
            table=f'"{self.schema}"."{name}"',
            timestamp_field="event_timestamp",
            created_timestamp_column=created_timestamp_column,
        )


def embedded_backend(feast_dir: Path, project: str) -> Backend:
    from feast.infra.offline_stores.dask import DaskOfflineStoreConfig
    from feast.repo_config import RegistryConfig

    from features.feast_sqlite import OrderedSqliteOnlineStoreConfig

    config = RepoConfig(
        project=project,
        provider="local",
        registry=RegistryConfig(path=str(feast_dir / "registry.db")),
        # Feast's SQLite store, keeping the newer row when a push and a
        # materialisation meet (see features.feast_sqlite).
        online_store=OrderedSqliteOnlineStoreConfig(path=str(feast_dir / "online.db")),
        offline_store=DaskOfflineStoreConfig(),
        repo_path=feast_dir,
        entity_key_serialization_version=3,
    )
    return Backend(config, "embedded")


def scale_backend(
    feast_dir: Path, *, redis_url: str, postgres_dsn: str, key_prefix: str
) -> Backend:
    """Redis online, Postgres offline and a SQL registry in Postgres; the schema is created."""
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres import (
        PostgreSQLOfflineStoreConfig,
    )
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig
    from feast.infra.registry.sql import SqlRegistryConfig

    if not isinstance(key_prefix, str) or not _PREFIX.match(key_prefix):
        raise InvalidRequest(
            "key_prefix",
            "must be a lower-case identifier (letters, digits, underscores)",
            key_prefix,
        )
    schema = f"{key_prefix}_feast"
    parts = _postgres_parts(postgres_dsn)
    redis_connection = redis_connection_string(redis_url)
    _create_schema(postgres_dsn, schema)
    offline = PostgreSQLOfflineStoreConfig(
        host=parts["host"],
        port=int(parts["port"]),
        database=parts["dbname"],
        db_schema=schema,
        user=parts["user"],
        password=parts["password"],
        sslmode=parts["sslmode"],
    )
    auth = quote(parts["user"], safe="")
    if parts["password"]:
        auth += ":" + quote(parts["password"], safe="")
    registry = SqlRegistryConfig(
        registry_type="sql",
        path=(
            f"postgresql+psycopg://{auth}@{parts['host']}:{parts['port']}/{parts['dbname']}"
            f"?sslmode={parts['sslmode']}"
        ),
        # The registry's tables (``projects``, ``entities``, ...) go to Feast's schema.
        sqlalchemy_config_kwargs={
            "echo": False,
            "pool_pre_ping": True,
            "connect_args": {"options": f"-csearch_path={schema}"},
        },
        # Other workers' applies and materialisations show up within this many seconds.
        cache_ttl_seconds=60,
    )
    config = RepoConfig(
        project=key_prefix,
        provider="local",
        registry=registry,
        online_store=RedisOnlineStoreConfig(connection_string=redis_connection),
        offline_store=offline,
        repo_path=feast_dir,
        entity_key_serialization_version=3,
    )
    return Backend(config, "scale", postgres_dsn, schema)


def redis_connection_string(url: str) -> str:
    """A ``redis://`` URL as Feast's ``host:port,db=N,...`` connection string.

    >>> redis_connection_string("redis://127.0.0.1:6379/2")
    '127.0.0.1:6379,db=2'
    >>> redis_connection_string("rediss://:s3cret@cache:6380")
    'cache:6380,db=0,password=s3cret,ssl=true'
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise InvalidRequest("redis_url", "must be a redis:// or rediss:// URL", url)
    db = parts.path.strip("/") or "0"
    if not db.isdigit():
        raise InvalidRequest("redis_url", "must name a numbered database, as /0", url)
    text = f"{parts.hostname}:{parts.port or 6379},db={db}"
    if parts.username:
        text += f",username={unquote(parts.username)}"
    if parts.password:
        text += f",password={unquote(parts.password)}"
    if parts.scheme == "rediss":
        text += ",ssl=true"
    return text


def _postgres_parts(dsn: str) -> dict[str, str]:
    from psycopg.conninfo import conninfo_to_dict

    try:
        given = conninfo_to_dict(dsn)
    except Exception as error:  # psycopg.ProgrammingError: not a DSN at all
        raise InvalidRequest("postgres_dsn", "must be a Postgres URL or DSN", dsn) from error
    return {
        "host": str(given.get("host") or "127.0.0.1"),
        "port": str(given.get("port") or 5432),
        "dbname": str(given.get("dbname") or "postgres"),
        "user": str(given.get("user") or "postgres"),
        "password": str(given.get("password") or ""),
        # Feast's own default is ``require``, which a local server without TLS refuses.
        "sslmode": str(given.get("sslmode") or "prefer"),
    }


def _connect(dsn: str):  # type: ignore[no-untyped-def]
    import psycopg

    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as error:
        raise Unavailable(f"Postgres at {dsn!r} cannot be reached: {error}") from error


def _create_schema(dsn: str, schema: str) -> None:
    with _connect(dsn) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')


_SQL_TYPES = {"b": "BOOLEAN", "i": "BIGINT", "u": "BIGINT", "f": "DOUBLE PRECISION"}


def _sql_type(series: pd.Series) -> str:
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return "TIMESTAMPTZ"
    if pd.api.types.is_datetime64_dtype(series.dtype):
        return "TIMESTAMP"
    return _SQL_TYPES.get(getattr(series.dtype, "kind", "O"), "TEXT")


def _load_table(dsn: str, schema: str, name: str, frame: pd.DataFrame) -> None:
    """Replace ``schema.name`` with ``frame``'s rows, in one transaction (COPY)."""
    table = f'"{schema}"."{name}"'
    columns = ", ".join(f'"{column}" {_sql_type(frame[column])}' for column in frame.columns)
    names = ", ".join(f'"{column}"' for column in frame.columns)
    rows = frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None)
    with _connect(dsn) as conn, conn.transaction():
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} ({columns})")
        with conn.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
