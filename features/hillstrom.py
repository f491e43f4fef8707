"""The Hillstrom e-mail experiment as Nudge's event tables.

The file is the quickstart's real data: 64,000 customers randomised 1/3 each to
a men's e-mail, a women's e-mail or no e-mail, with what they did in the two
weeks after. It has no timestamps, so ``build_hillstrom_log`` places it on a
timeline (profiles before the campaign, decisions during it, outcomes after) to
give the feature store and training something point-in-time to get right.
"""

from __future__ import annotations

import lzma
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from numbers import Integral
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import InvalidRequest

__all__ = [
    "ARMS",
    "CATEGORICAL_FEATURES",
    "MIN_SAMPLE",
    "OUTCOME_COLUMNS",
    "PROFILE_FEATURES",
    "SEGMENT_TO_ARM",
    "HillstromLog",
    "build_hillstrom_log",
    "default_hillstrom_path",
    "load_hillstrom",
]

ARMS: tuple[str, ...] = ("mens_email", "womens_email", "no_email")
SEGMENT_TO_ARM: dict[str, str] = {
    "Mens E-Mail": "mens_email",
    "Womens E-Mail": "womens_email",
    "No E-Mail": "no_email",
}
PROFILE_FEATURES: tuple[str, ...] = (
    "recency",
    "history",
    "mens",
    "womens",
    "newbie",
    "zip_code",
    "channel",
)
CATEGORICAL_FEATURES: tuple[str, ...] = ("zip_code", "channel")
OUTCOME_COLUMNS: tuple[str, ...] = ("visit", "conversion", "spend")

_INT_COLUMNS = ("recency", "mens", "womens", "newbie", "visit", "conversion")
_FLOAT_COLUMNS = ("history", "spend")
_TEXT_COLUMNS = ("history_segment", "zip_code", "channel", "segment")
_REQUIRED = (*PROFILE_FEATURES, "segment", *OUTCOME_COLUMNS)
# What each numeric column may hold, checked row by row before any type is fixed.
_FLAGS = ("mens", "womens", "newbie", "visit", "conversion")
_COUNTS = ("recency",)
_AMOUNTS = ("history", "spend")
# Training splits the data into train and test stratified on (arm, visit). About
# one customer in seven visits, so below this many customers some strata hold a
# handful of rows and the split fails long after loading; we refuse here instead.
MIN_SAMPLE = 1_000


def default_hillstrom_path() -> Path:
    """The copy of the data set shipped in the repository's ``data/`` folder.

    >>> default_hillstrom_path().name
    'hillstrom.csv.gz'
    """
    return Path(__file__).resolve().parents[1] / "data" / "hillstrom.csv.gz"


def load_hillstrom(
    path: Path | None = None, *, sample: int | None = None, seed: int = 0
) -> pd.DataFrame:
    """Read the experiment, adding ``customer_id`` and ``arm``; optionally a stratified sample.

    ``customer_id`` is ``h`` plus the row's position in the file, so a customer keeps
    its id in every sample. ``sample=n`` draws ``n`` rows with each segment's share
    kept (largest-remainder rounding), reproducibly for a given ``seed``; ``n`` must
    be at least 1,000 (enough to train on) unless the file itself is smaller.

    A file that is missing, unreadable or not the Hillstrom CSV, and any value out
    of range, raise ``InvalidRequest`` naming ``path`` or the column; a bad value's
    message gives its customer row, counted from 1 after the header.

    >>> frame = load_hillstrom(sample=1_200, seed=1)
    >>> len(frame), frame["arm"].value_counts().sort_index().to_dict()
    (1200, {'mens_email': 400, 'no_email': 399, 'womens_email': 401})
    >>> frame["customer_id"].str.fullmatch(r"h\\d{5}").all()
    np.True_
    >>> load_hillstrom(sample=10)
    Traceback (most recent call last):
    ...
    features.errors.InvalidRequest: `sample` must be between 1000 and 64000, got 10
    """
    path = default_hillstrom_path() if path is None else Path(path)
    raw = _read(path)
    _check_columns(raw, path)
    frame = _typed(raw, path)
    ids = pd.array([f"h{i:05d}" for i in range(len(frame))], dtype="string")
    frame.insert(0, "customer_id", ids)
    frame["arm"] = frame["segment"].map(SEGMENT_TO_ARM).astype("string")
    if sample is not None:
        frame = _stratified_sample(frame, sample, seed)
    return frame


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InvalidRequest("path", "must be an existing CSV file", str(path))
    try:
        raw = pd.read_csv(path)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError) as error:
        # pandas' EmptyDataError and ParserError and UnicodeDecodeError are all
        # ValueErrors; a corrupt .gz/.bz2 is an OSError, a truncated one EOFError.
        raise InvalidRequest("path", _unreadable(_read_error(error)), str(path)) from None
    if not set(_REQUIRED) & set(raw.columns):
        # A text file that is not a CSV (a README, say) parses as one odd column.
        raise InvalidRequest("path", _unreadable("no Hillstrom column in its header"), str(path))
    if not isinstance(raw.index, pd.RangeIndex):
        # pandas takes a first row longer than the header to mean the leading
        # fields are an index, and would shift every value one column over.
        reason = "the first customer row has more fields than the header"
        raise InvalidRequest("path", _unreadable(reason), str(path))
    return raw


def _unreadable(reason: str) -> str:
    return f"could not be read as the Hillstrom CSV: {reason}"


def _read_error(error: Exception) -> str:
    if isinstance(error, pd.errors.EmptyDataError):
        return "the file is empty"
    if isinstance(error, UnicodeDecodeError):
        return "it is not UTF-8 text (a binary file?)"
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return lines[0][:120]


def _check_columns(raw: pd.DataFrame, path: Path) -> None:
    for column in _REQUIRED:
        if column not in raw.columns:
            raise InvalidRequest(column, f"must be a column of {path}", sorted(raw.columns))
    if raw.empty:
        raise InvalidRequest("path", "must contain at least one customer row", str(path))


def _typed(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    frame = raw.copy()
    numbers = _checked_numbers(raw, path)
    for column in _INT_COLUMNS:
        frame[column] = numbers[column].astype("int64")
    for column in _FLOAT_COLUMNS:
        frame[column] = numbers[column].astype("float64")
    for column in _TEXT_COLUMNS:
        if column in frame.columns:
            frame[column] = frame[column].astype("string")
    # The original file spells the suburban zip code "Surburban"; we fix it once
    # here so that features, models and reports all use the correct word.
    frame["zip_code"] = frame["zip_code"].replace("Surburban", "Suburban")
    unknown = sorted(set(frame["segment"].dropna()) - set(SEGMENT_TO_ARM))
    if unknown or frame["segment"].isna().any():
        expected = f"must be one of {sorted(SEGMENT_TO_ARM)} in {path}"
        raise InvalidRequest("segment", expected, unknown or [None])
    return frame


def _checked_numbers(raw: pd.DataFrame, path: Path) -> dict[str, pd.Series]:
    """Each numeric column as float64, once every row is known to be in range."""
    numbers: dict[str, pd.Series] = {}
    for column in (*_COUNTS, *_FLAGS, *_AMOUNTS):
        given = raw[column]
        _reject_first(given, given.isna().to_numpy(), "must be present", path)
        values = pd.to_numeric(given, errors="coerce").astype("float64")
        _reject_first(given, ~np.isfinite(values.to_numpy()), "must be a finite number", path)
        if column in _FLAGS:
            rule, ok = "must be 0 or 1", values.isin((0, 1))
        elif column in _COUNTS:
            rule, ok = "must be a whole number, at least 0", (values >= 0) & (values % 1 == 0)
        else:
            rule, ok = "must be at least 0", values >= 0
        _reject_first(given, ~ok.to_numpy(), rule, path)
        numbers[column] = values
    return numbers


def _reject_first(given: pd.Series, bad: np.ndarray, rule: str, path: Path) -> None:
    if not bad.any():
        return
    row = int(np.flatnonzero(bad)[0])
    expected = f"{rule} in every row of {path} (customer row {row + 1} is not)"
    value = given.iloc[row]
    if pd.isna(value):
        raise InvalidRequest(str(given.name), expected)
    # A NumPy scalar would print as ``np.int64(2)``; the message shows ``2``.
    plain = value.item() if isinstance(value, np.generic) else value
    raise InvalidRequest(str(given.name), expected, plain)


def _stratified_sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    if isinstance(n, bool) or not isinstance(n, Integral):
        raise InvalidRequest("sample", "must be a whole number of customers", n)
    # A file smaller than MIN_SAMPLE is a deliberate small one (a test fixture, a
    # trial run) and cannot meet the minimum anyway: any sample from one customer
    # per segment to the whole file is allowed, and training reports its own
    # error if the result is too small to split.
    low = MIN_SAMPLE if len(frame) >= MIN_SAMPLE else 3
    if not low <= n <= len(frame):
        raise InvalidRequest("sample", f"must be between {low} and {len(frame)}", n)
    groups = frame.groupby("segment", sort=True).indices
    quotas = _largest_remainder(n, {name: len(rows) for name, rows in groups.items()})
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(groups[name], size=quotas[name], replace=False) for name in groups]
    return frame.iloc[np.sort(np.concatenate(chosen))].reset_index(drop=True)


def _largest_remainder(n: int, sizes: dict[str, int]) -> dict[str, int]:
    """Split ``n`` in proportion to ``sizes`` with whole numbers that add up to ``n``.

    >>> _largest_remainder(10, {"a": 1, "b": 1, "c": 1})
    {'a': 4, 'b': 3, 'c': 3}
    """
    total = sum(sizes.values())
    exact = {name: n * size / total for name, size in sizes.items()}
    quotas = {name: int(share) for name, share in exact.items()}
    by_remainder = sorted(exact, key=lambda name: quotas[name] - exact[name])
    for name in by_remainder[: n - sum(quotas.values())]:
        quotas[name] += 1
    return quotas


@dataclass(frozen=True)
class HillstromLog:
    """The experiment as three event tables, with the campaign's time boundaries.

    ``profiles`` has a pre-campaign snapshot of every customer and, for each
    converter, a second snapshot at ``tracking_end`` showing the purchase; a
    training join that leaks the future would pick up that second one.
    """

    profiles: pd.DataFrame
    decisions: pd.DataFrame
    outcomes: pd.DataFrame
    campaign_start: datetime
    campaign_end: datetime
    tracking_end: datetime


def build_hillstrom_log(
    raw: pd.DataFrame,
    *,
    seed: int = 0,
    campaign_start: datetime = datetime(2008, 3, 1, tzinfo=UTC),
    campaign_days: int = 14,
    tracking_days: int = 14,
) -> HillstromLog:
    """Place the loaded experiment on a timeline: profiles, logged decisions and outcomes.

    Each customer's decision time is drawn uniformly (to the second) over the
    campaign window; the logged propensity is the experiment's own 1/3.

    >>> raw = load_hillstrom(sample=1_000, seed=0)
    >>> log = build_hillstrom_log(raw, seed=0)
    >>> len(log.decisions), float(log.decisions["propensity"].iloc[0])
    (1000, 0.3333333333333333)
    >>> log.campaign_start <= log.decisions["decided_at"].min()
    True
    >>> log.tracking_end - log.campaign_end
    datetime.timedelta(days=14)
    """
    _check_log_inputs(raw, campaign_start, campaign_days, tracking_days)
    campaign_end = campaign_start + timedelta(days=campaign_days)
    tracking_end = campaign_end + timedelta(days=tracking_days)
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, campaign_days * 86_400, size=len(raw))
    decided_at = (pd.Timestamp(campaign_start) + pd.to_timedelta(offsets, unit="s")).as_unit("ns")
    customer_id = pd.array(raw["customer_id"], dtype="string")

    decisions = pd.DataFrame(
        {
            "customer_id": customer_id,
            "decided_at": decided_at,
            "arm": pd.array(raw["arm"], dtype="string"),
            "propensity": np.full(len(raw), 1 / len(ARMS)),
        }
    )
    outcomes = pd.DataFrame(
        {
            "customer_id": customer_id,
            "decided_at": decided_at,
            "observed_at": decided_at + pd.Timedelta(days=tracking_days),
            "visit": raw["visit"].astype("int64").to_numpy(),
            "conversion": raw["conversion"].astype("int64").to_numpy(),
            "spend": raw["spend"].astype("float64").to_numpy(),
        }
    )
    order = np.argsort(decided_at.to_numpy(), kind="stable")
    return HillstromLog(
        profiles=_profiles(raw, campaign_start - timedelta(days=1), tracking_end),
        decisions=decisions.iloc[order].reset_index(drop=True),
        outcomes=outcomes.iloc[order].reset_index(drop=True),
        campaign_start=campaign_start,
        campaign_end=campaign_end,
        tracking_end=tracking_end,
    )


def _check_log_inputs(
    raw: pd.DataFrame, campaign_start: datetime, campaign_days: int, tracking_days: int
) -> None:
    for column in ("customer_id", "arm", *PROFILE_FEATURES, *OUTCOME_COLUMNS):
        if column not in raw.columns:
            raise InvalidRequest(column, "must be a column of `raw` (see load_hillstrom)")
    if campaign_start.tzinfo is None:
        raise InvalidRequest("campaign_start", "must be timezone-aware", campaign_start)
    if campaign_days < 1:
        raise InvalidRequest("campaign_days", "must be at least 1", campaign_days)
    if tracking_days < 1:
        raise InvalidRequest("tracking_days", "must be at least 1", tracking_days)


def _profiles(raw: pd.DataFrame, baseline_at: datetime, after_at: datetime) -> pd.DataFrame:
    baseline = _snapshot(raw, baseline_at)
    converted = raw[raw["conversion"].to_numpy() == 1]
    after = _snapshot(converted, after_at)
    # A purchase this month resets recency to 0 and adds to last year's spend.
    after["recency"] = np.zeros(len(after), dtype="int64")
    after["history"] = after["history"] + converted["spend"].to_numpy()
    return pd.concat([baseline, after], ignore_index=True)


def _snapshot(raw: pd.DataFrame, at: datetime) -> pd.DataFrame:
    snapshot = pd.DataFrame({"customer_id": pd.array(raw["customer_id"], dtype="string")})
    for column in PROFILE_FEATURES:
        values = raw[column].to_numpy()
        if column in CATEGORICAL_FEATURES:
            snapshot[column] = pd.array(values, dtype="string")
        elif column == "history":
            snapshot[column] = values.astype("float64")
        else:
            snapshot[column] = values.astype("int64")
    stamp = pd.Series(pd.Timestamp(at).as_unit("ns"), index=snapshot.index)
    snapshot["event_timestamp"] = stamp
    snapshot["created_at"] = stamp
    return snapshot
