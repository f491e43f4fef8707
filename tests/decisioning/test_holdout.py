"""The holdout: a stable, salted share of customers, monotone when the percentage changes."""

from __future__ import annotations

import hashlib
import itertools

import pytest

from decisioning.holdout import Holdout
from features.errors import InvalidRequest

IDS = [f"customer-{i}" for i in range(100_000)]


def members(percent: float, salt: str = "nudge-holdout-v1") -> set[str]:
    holdout = Holdout(percent, salt)
    return {customer for customer in IDS if holdout.contains(customer)}


@pytest.mark.parametrize("percent", [1.0, 5.0, 20.0, 50.0])
def test_the_share_is_close_to_the_percentage(percent: float) -> None:
    # Binomial standard error at 50 % over 100,000 ids is 0.16 points; allow 4 of them.
    share = 100 * len(members(percent)) / len(IDS)
    assert abs(share - percent) < 0.64


def test_zero_and_hundred_percent_are_nobody_and_everybody() -> None:
    assert members(0.0) == set()
    assert len(members(100.0)) == len(IDS)


def test_changing_the_percentage_only_moves_customers_one_way() -> None:
    groups = [members(percent) for percent in (2.0, 5.0, 5.5, 10.0, 25.0)]
    for smaller, larger in itertools.pairwise(groups):
        assert smaller < larger  # raising only adds; so lowering only removes


def test_a_new_salt_draws_an_independent_group() -> None:
    first, second = members(10.0, "salt-a"), members(10.0, "salt-b")
    assert first != second
    # Independent 10 % groups share about 1 % of all customers (standard error 0.03 points).
    overlap = 100 * len(first & second) / len(IDS)
    assert abs(overlap - 1.0) < 0.15


def test_the_bucket_is_the_documented_hash() -> None:
    # Pinned, so a refactor cannot silently reshuffle who is held out.
    digest = hashlib.sha256(b"nudge-holdout-v1:customer-42").digest()
    expected = int.from_bytes(digest[:8], "big") * 100 / 2**64
    holdout = Holdout(5, "nudge-holdout-v1")
    assert holdout.bucket("customer-42") == pytest.approx(expected, abs=1e-12)
    assert holdout.bucket("customer-42") == pytest.approx(1.8098515107340698, abs=1e-12)
    assert holdout.contains("customer-42")
    assert not Holdout(1.8, "nudge-holdout-v1").contains("customer-42")
    assert all(0.0 <= holdout.bucket(customer) < 100.0 for customer in IDS[:1000])


@pytest.mark.parametrize(
    ("percent", "salt", "message"),
    [
        (-0.1, "s", r"^`percent` must be a number in \[0, 100\]"),
        (100.5, "s", r"^`percent` must be a number in \[0, 100\]"),
        (float("nan"), "s", r"^`percent` must be a number in \[0, 100\]"),
        (True, "s", r"^`percent` must be a number in \[0, 100\]"),
        ("5", "s", r"^`percent` must be a number in \[0, 100\]"),
        (5, "", r"^`salt` must be a non-empty string"),
        (5, None, r"^`salt` must be a non-empty string"),
    ],
)
def test_bad_settings_name_the_field(percent: object, salt: object, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        Holdout(percent, salt)  # type: ignore[arg-type]
