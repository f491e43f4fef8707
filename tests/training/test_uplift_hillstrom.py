"""On the real Hillstrom experiment: the DR-learner beats the T-learner, greedy targeting holds up.

Five stratified 70/30 splits (seeds 0-4, the ones ``python -m
training.uplift_comparison`` reports); the learners' defaults were tuned on
other seeds (100-109), so these splits are held out from the tuning too. The
learners are deterministic (one thread, fixed seeds), so the figures are exact
on a given platform; the comments give them as measured.
"""

from __future__ import annotations

import pandas as pd
import pytest

from features.hillstrom import PROFILE_FEATURES, default_hillstrom_path, load_hillstrom
from training.uplift_comparison import DEFAULT_SEEDS, UpliftComparison, compare_uplift_learners

pytestmark = pytest.mark.slow

TREATMENTS = ("mens_email", "womens_email")


@pytest.fixture(scope="module")
def experiment() -> pd.DataFrame:
    """All 64,000 customers, from the repository's copy (the same bytes as ../shared's)."""
    return load_hillstrom(default_hillstrom_path())


def compare(experiment: pd.DataFrame, outcome: str) -> UpliftComparison:
    return compare_uplift_learners(
        experiment, list(PROFILE_FEATURES), seeds=DEFAULT_SEEDS, outcome=outcome
    )


def test_dr_beats_t_and_greedy_targeting_is_not_worse_on_visits(experiment: pd.DataFrame) -> None:
    result = compare(experiment, "visit")
    qini = result.mean_qini()
    # Measured: mens 0.00238 (DR) vs 0.00131 (T); womens 0.00695 vs 0.00625.
    for treatment in TREATMENTS:
        assert qini["dr"][treatment] > qini["t"][treatment], treatment

    # Greedy DR vs always mens, IPS per customer: 0.1840 vs 0.1825 averaged over the
    # seeds. The paired difference is small against its noise (each seed's 95 %
    # interval is about ±0.005 and holds 0), so the honest claims are: no worse
    # on average, and not significantly worse on any split.
    assert result.mean_gain_over_baseline()["dr"] >= 0
    for split in result.splits:
        gain = split.gain_over_baseline["dr"]
        assert gain.ci95[1] >= 0, split.seed
        greedy_high = split.policy["greedy_dr"].ci95[1]
        assert greedy_high >= split.policy["always_mens_email"].mean, split.seed


def test_greedy_spend_targeting_is_not_significantly_worse(experiment: pd.DataFrame) -> None:
    result = compare(experiment, "spend")
    # Spend is heavy-tailed (most customers spend nothing), so both learners'
    # Qini on it is mostly noise; measured: DR beats T on womens e-mail (0.070 vs
    # 0.037) but not on mens (-0.069 vs -0.049), so only the policy is checked.
    # Greedy DR $1.444 vs always mens $1.424 a customer on average.
    assert result.outcome == "spend"
    for split in result.splits:
        assert split.gain_over_baseline["dr"].ci95[1] >= 0, split.seed
