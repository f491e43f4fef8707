"""Point-in-time training frames from Feast, one output row per input row.

Feast's Dask offline store answers with fewer rows than it was asked about: it
collapses rows sharing a customer and timestamp, and drops a row outright when
every profile snapshot of its customer is newer than the row or older than the
TTL. A training set that silently loses rows (the earliest decisions, say) is
biased, so Feast is asked about each distinct (customer, timestamp) once and
its answers are joined back onto every input row; rows it dropped get missing
features.
"""

from __future__ import annotations

import pandas as pd
from feast import FeatureService, FeatureStore
from feast.types import Float32, Float64, Int32, Int64

from features.errors import InvalidRequest

__all__ = ["ENTITY_KEY", "TIMESTAMP", "point_in_time_frame", "service_features"]

ENTITY_KEY = "customer_id"
TIMESTAMP = "event_timestamp"
_KEYS = [ENTITY_KEY, TIMESTAMP]
_NUMERIC = (Int32, Int64, Float32, Float64)


def point_in_time_frame(
    store: FeatureStore, service: FeatureService, entity_df: pd.DataFrame
) -> pd.DataFrame:
    """``entity_df`` with ``service``'s features as of each row's ``event_timestamp``.

    Numeric features are float64 (NaN where missing) and text features pandas
    strings, whatever rows happen to be missing, so a model sees stable types.
    """
    dtypes = service_features(service)
    keys = _checked_keys(entity_df, list(dtypes))
    job = store.get_historical_features(
        entity_df=keys.drop_duplicates(ignore_index=True),
        features=service,
        full_feature_names=False,
    )
    answers = job.to_df()[[*_KEYS, *dtypes]]
    answers[ENTITY_KEY] = answers[ENTITY_KEY].astype("string")
    stamps = answers[TIMESTAMP]
    if stamps.dt.tz is None:  # the Postgres offline store answers in naive UTC
        stamps = stamps.dt.tz_localize("UTC")
    answers[TIMESTAMP] = stamps.dt.tz_convert("UTC").astype(keys[TIMESTAMP].dtype)
    features = keys.merge(answers, on=_KEYS, how="left", validate="many_to_one")
    frame = entity_df.reset_index(drop=True)
    # Built at once: a column at a time fragments a frame of hundreds of features.
    columns = {name: features[name].astype(dtype).array for name, dtype in dtypes.items()}
    return pd.concat([frame, pd.DataFrame(columns, index=frame.index)], axis=1)


def service_features(service: FeatureService) -> dict[str, str]:
    """The service's plain feature names, each with the pandas dtype training frames use."""
    return {
        field.name: "float64" if field.dtype in _NUMERIC else "string"
        for view in service.feature_view_projections
        for field in view.features
    }


def _checked_keys(entity_df: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    for column in _KEYS:
        if column not in entity_df.columns:
            raise InvalidRequest("entity_df", f"must have a `{column}` column", list(entity_df))
    clashes = sorted(set(entity_df.columns) & set(features))
    if clashes:
        raise InvalidRequest("entity_df", "must not have columns named like features", clashes)
    stamps = entity_df[TIMESTAMP]
    if not isinstance(stamps.dtype, pd.DatetimeTZDtype):
        raise InvalidRequest(TIMESTAMP, "must hold timezone-aware datetimes", str(stamps.dtype))
    if stamps.isna().any() or entity_df[ENTITY_KEY].isna().any():
        raise InvalidRequest("entity_df", f"must have no missing {ENTITY_KEY} or {TIMESTAMP}")
    # Dask warns when the join key's dtype differs from the Parquet side's (string).
    return pd.DataFrame(
        {
            ENTITY_KEY: entity_df[ENTITY_KEY].astype("string").array,
            TIMESTAMP: stamps.dt.tz_convert("UTC").dt.as_unit("ns").array,
        }
    )
