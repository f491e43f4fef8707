"""The Hillstrom experiment shaped like the training frame Feast hands to training."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

HILLSTROM = Path(__file__).resolve().parents[2] / "data" / "hillstrom.csv.gz"
FEATURES = ["recency", "history", "mens", "womens", "newbie", "zip_code", "channel"]
ARMS = {"Mens E-Mail": "mens_email", "Womens E-Mail": "womens_email", "No E-Mail": "no_email"}


@pytest.fixture(scope="session")
def features() -> list[str]:
    """The model's feature columns."""
    return list(FEATURES)


@pytest.fixture(scope="session")
def hillstrom() -> pd.DataFrame:
    """All 64,000 customers: feature columns plus customer_id, event_timestamp, arm, visit."""
    raw = pd.read_csv(HILLSTROM)
    return pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(len(raw))],
            "event_timestamp": pd.Timestamp("2008-03-01", tz="UTC"),
            **{column: raw[column] for column in FEATURES},
            "arm": raw["segment"].map(ARMS),
            "visit": raw["visit"],
        }
    ).assign(zip_code=lambda frame: frame["zip_code"].replace("Surburban", "Suburban"))
