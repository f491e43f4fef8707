"""Open Bandit Dataset: the BTS click rate estimated from the random log, against BTS's own log.

Also the loader: checksums, where the folder is looked for, and errors naming the bad file.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest

from features import InvalidRequest, NotFound
from training.open_bandit import (
    OBD_DIR_VARIABLE,
    OpenBanditLog,
    load_open_bandit,
    obd_dir,
    read_open_bandit_log,
)
from training.open_bandit_ope import (
    OpenBanditEvaluation,
    evaluate_open_bandit,
    logged_action_distribution,
)

# Measured with seed 0 and 1,000 resamples on the sample (10,000 rows per log):
#   truth (mean click of the BTS log)  0.00420  [0.00300, 0.00550]
#   IPS    0.00453  [0.00248, 0.00720]  relative error 0.078
#   SNIPS  0.00468  [0.00258, 0.00742]  relative error 0.115
#   DR     0.00452  [0.00252, 0.00718]  relative error 0.077  (0.069–0.088 over seeds 0–5)
# The bound pins this fixed sample, not the sampling error: with 38 clicks in the random
# log, a correct estimator on another sample of this size could miss by 30 %. It is tight
# enough that the breaks we tried fail it (relative errors IPS / SNIPS / DR): plain instead
# of harmonic means of the logged propensities 0.44 / 0.49 / 0.44; items mapped off by one
# 0.40 / 0.38 / 0.39; the BTS log's propensity column as the logging propensity, all fail;
# target probabilities not normalised per position 0.19 / 0.12 / 0.19 (SNIPS normalises
# the weights itself, so only IPS and DR fail). Breaks this data cannot see: positions
# mapped wrongly (clicks barely depend on position here; errors 0.03–0.10) and a uniform
# target (the random policy's own rate, 0.0038, is 9.5 % off); the effective-n test below
# catches the latter.
RELATIVE_ERROR_BOUND = 0.15
SEED = 0


@pytest.fixture(scope="module")
def random_log() -> OpenBanditLog:
    return load_open_bandit("random")


@pytest.fixture(scope="module")
def bts_log() -> OpenBanditLog:
    return load_open_bandit("bts")


@pytest.fixture(scope="module")
def evaluation(random_log: OpenBanditLog, bts_log: OpenBanditLog) -> OpenBanditEvaluation:
    return evaluate_open_bandit(random_log, bts_log, resamples=1000, seed=SEED)


@pytest.mark.parametrize("estimator", ["ips", "snips", "dr"])
def test_bts_click_rate_estimated_from_the_random_log(
    evaluation: OpenBanditEvaluation, estimator: str
) -> None:
    assert evaluation.relative_errors[estimator] < RELATIVE_ERROR_BOUND, evaluation.to_dict()
    assert evaluation.covers_truth(estimator), evaluation.to_dict()


def test_the_truth_is_the_bts_logs_mean_click_with_its_interval(
    evaluation: OpenBanditEvaluation, bts_log: OpenBanditLog
) -> None:
    assert evaluation.truth.mean == pytest.approx(bts_log.click.mean())
    low, high = evaluation.truth.ci95
    assert low < evaluation.truth.mean < high
    assert (evaluation.logging_policy, evaluation.target_policy) == ("random", "bts")


def test_the_weights_rest_on_a_target_unlike_the_logging_policy(
    evaluation: OpenBanditEvaluation,
) -> None:
    # BTS concentrates on few items: some 3,000 of the 10,000 rows carry the estimate. A
    # target equal to the logging policy (all weights 1) would give 10,000.
    assert 2000 < evaluation.effective_n < 4000


def test_same_seed_same_figures(random_log: OpenBanditLog, bts_log: OpenBanditLog) -> None:
    first = evaluate_open_bandit(random_log, bts_log, resamples=200, seed=3)
    again = evaluate_open_bandit(random_log, bts_log, resamples=200, seed=3)
    other = evaluate_open_bandit(random_log, bts_log, resamples=200, seed=4)
    assert first.to_dict() == again.to_dict()
    assert first.estimates["ips"].mean == other.estimates["ips"].mean
    assert first.estimates["ips"].ci95 != other.estimates["ips"].ci95


def test_the_logged_propensity_is_the_probability_of_the_item_at_its_position(
    bts_log: OpenBanditLog,
) -> None:
    # Harmonic means per (position, item) add up to about 1 per position, as probabilities
    # over the 80 items at one position should; plain means are inflated by size bias.
    pairs = (bts_log.position - 1, bts_log.item_id)
    counts, inverse, total = np.zeros((3, 80)), np.zeros((3, 80)), np.zeros((3, 80))
    np.add.at(counts, pairs, 1.0)
    np.add.at(inverse, pairs, 1 / bts_log.propensity_score)
    np.add.at(total, pairs, bts_log.propensity_score)
    shown = counts > 0
    harmonic = np.where(shown, counts / np.where(shown, inverse, 1), 0).sum(axis=1)
    plain = np.where(shown, total / np.where(shown, counts, 1), 0).sum(axis=1)
    assert np.all((harmonic > 1.0) & (harmonic < 1.15)), harmonic
    assert np.all(plain > 1.9), plain
    np.testing.assert_allclose(logged_action_distribution(bts_log).sum(axis=1), 1.0)


def test_the_random_logs_distribution_is_uniform(random_log: OpenBanditLog) -> None:
    np.testing.assert_allclose(logged_action_distribution(random_log), 1 / 80)


def test_harmonic_means_undo_the_size_bias_of_a_drifting_policy() -> None:
    # Item 0 has probability 0.9 for the first half of the log and 0.1 for the second:
    # 0.5 on average over time, while the rows that show it average 0.82.
    rng = np.random.default_rng(7)
    n = 20_000
    p0 = np.where(np.arange(n) < n // 2, 0.9, 0.1)
    item = (rng.random(n) >= p0).astype(np.int64)
    log = OpenBanditLog(
        "drifting",
        item,
        np.ones(n, dtype=np.int64),
        np.zeros(n),
        np.where(item == 0, p0, 1 - p0),
        source="simulated",
        n_items=2,
        n_positions=1,
    )
    assert log.propensity_score[item == 0].mean() > 0.8
    np.testing.assert_allclose(logged_action_distribution(log), [[0.5, 0.5]], atol=0.01)


# The loader.


def test_the_folder_is_the_argument_then_the_variable_then_the_repository_copy(
    tmp_path: Path,
) -> None:
    environ = {OBD_DIR_VARIABLE: str(tmp_path / "from_env")}
    assert obd_dir(tmp_path, environ) == tmp_path
    assert obd_dir(None, environ) == tmp_path / "from_env"
    shipped = Path(__file__).resolve().parents[2] / "data" / "obd"
    assert obd_dir(None, {}) == shipped


def test_the_variable_is_used_to_load(tmp_path: Path) -> None:
    (tmp_path / "random_all").mkdir()
    # The dataset as distributed: a plain CSV, found before any .gz.
    (tmp_path / "random_all" / "all.csv").write_bytes(
        gzip.decompress((obd_dir(None, {}) / "random_all" / "all.csv.gz").read_bytes())
    )
    log = load_open_bandit("random", environ={OBD_DIR_VARIABLE: str(tmp_path)})
    assert log.source == str(tmp_path / "random_all" / "all.csv")
    assert len(log) == 10_000


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=re.escape(str(tmp_path / "bts_all" / "all.csv"))):
        load_open_bandit("bts", tmp_path)


def test_a_file_whose_checksum_differs_is_named(tmp_path: Path) -> None:
    (tmp_path / "bts_all").mkdir()
    copy = tmp_path / "bts_all" / "all.csv"
    shipped = obd_dir(None, {}) / "bts_all" / "all.csv.gz"
    lines = gzip.decompress(shipped.read_bytes()).decode().splitlines(keepends=True)
    copy.write_text("".join(lines[:-1]))  # one row short
    with pytest.raises(InvalidRequest, match=re.escape(f"`{copy}` must have the sha256")):
        load_open_bandit("bts", tmp_path)


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"`policy` must be one of \['bts', 'random'\]"):
        load_open_bandit("greedy")  # type: ignore[arg-type]


HEADER = ",timestamp,item_id,position,click,propensity_score,user_feature_0\n"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("0,t,80,1,0,0.0125,a", "item_id` must be whole numbers in [0, 79], got 80"),
        ("0,t,1.5,1,0,0.0125,a", "item_id` must be whole numbers in [0, 79], got 1.5"),
        ("0,t,3,0,0,0.0125,a", "position` must be whole numbers in [1, 3], got 0"),
        ("0,t,3,1,2,0.0125,a", "click` must be 0 or 1, got 2.0"),
        ("0,t,3,1,0,0,a", "propensity_score` must be in (0, 1], got 0.0"),
        ("0,t,3,1,0,,a", "propensity_score` must be numbers with no blanks"),
        ("0,t,x,1,0,0.0125,a", "item_id` must be numbers with no blanks"),
    ],
)
def test_bad_contents_name_the_file_and_column(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "all.csv"
    path.write_text(HEADER + "1,t,3,2,1,0.0125,b\n" + row + "\n")
    with pytest.raises(InvalidRequest, match=re.escape(f"`{path}: ") + ".*" + re.escape(message)):
        read_open_bandit_log(path, policy="random", sha256=None)


def test_a_missing_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "all.csv"
    path.write_text(",item_id,position,click\n0,3,1,0\n")
    with pytest.raises(InvalidRequest, match=re.escape(f"`{path}` must have the columns")):
        read_open_bandit_log(path, policy="random", sha256=None)


def test_the_log_is_read_only(random_log: OpenBanditLog) -> None:
    with pytest.raises(ValueError, match="read-only"):
        random_log.click[0] = 1.0
