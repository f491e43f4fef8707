"""Uplift learners compared on a randomised experiment, over several held-out splits.

For each split seed the frame is split (stratified on arm × whether the
outcome is positive), every learner is fitted on the training part, and on
the held-out part we measure:

- the Qini coefficient of each treatment, ranking that treatment's and the
  control's held-out customers by the learner's predicted uplift;
- the value of the learner's greedy policy (each customer gets the treatment
  with the highest predicted incremental outcome, or the control when none is
  positive) and of always sending one baseline arm, by IPS on the randomised
  held-out rows, and their paired difference, each with a 95 % interval.

Run ``python -m training.uplift_comparison`` for the Hillstrom table.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from features import InvalidRequest
from models import DRLearner, TLearner, UpliftModel
from training.policy_value import PolicyValue, mean_with_ci
from training.split import stratified_split
from training.uplift_metrics import qini_coefficient, qini_curve

__all__ = [
    "DEFAULT_SEEDS",
    "SeedComparison",
    "UpliftComparison",
    "compare_uplift_learners",
    "default_learners",
    "greedy_arms",
]

DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)
"""The split seeds reported; the learners' defaults were tuned on others (100-109)."""


def default_learners(control: str = "no_email") -> dict[str, UpliftModel]:
    """The plain T-learner and the DR-learner with their default parameters.

    >>> sorted(default_learners())
    ['dr', 't']
    """
    return {"t": TLearner(control=control), "dr": DRLearner(control=control)}


def greedy_arms(uplift: pd.DataFrame, control: str) -> pd.Series:
    """Per row, the treatment with the highest predicted uplift, or ``control`` when none is > 0.

    ``uplift`` has one column per treatment (as ``predict_uplift`` returns);
    ties between treatments go to the first column.

    >>> uplift = pd.DataFrame({"mens": [0.02, -0.01, 0.01], "womens": [0.03, -0.02, 0.01]})
    >>> greedy_arms(uplift, control="none").tolist()
    ['womens', 'none', 'mens']
    """
    if not isinstance(uplift, pd.DataFrame) or uplift.shape[1] == 0:
        raise InvalidRequest("uplift", "must be a DataFrame with one column per treatment")
    if control in uplift.columns:
        raise InvalidRequest("control", "must not be one of the treatment columns", control)
    values = uplift.to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        raise InvalidRequest("uplift", "must not contain missing values")
    best = values.argmax(axis=1)
    names = np.asarray([str(column) for column in uplift.columns], dtype=object)
    chosen = np.where(values.max(axis=1) > 0, names[best], control)
    return pd.Series(chosen, index=uplift.index, dtype=object, name="arm")


@dataclass(frozen=True)
class SeedComparison:
    """The held-out results of one split."""

    seed: int
    qini: dict[str, dict[str, float]]
    """Learner → treatment → Qini coefficient (outcome per customer)."""
    policy: dict[str, PolicyValue]
    """``greedy_<learner>`` and ``always_<baseline>`` → IPS value per customer."""
    gain_over_baseline: dict[str, PolicyValue]
    """Learner → IPS value of its greedy policy minus the baseline's, paired on the same rows."""
    n_train: int
    n_test: int
    elapsed_s: float


@dataclass(frozen=True)
class UpliftComparison:
    """Every split's results and their means over the split seeds."""

    outcome: str
    control: str
    baseline: str
    learners: tuple[str, ...]
    treatments: tuple[str, ...]
    splits: tuple[SeedComparison, ...] = field(repr=False)

    @property
    def seeds(self) -> tuple[int, ...]:
        """The split seeds, in the order they ran."""
        return tuple(split.seed for split in self.splits)

    @property
    def policy_names(self) -> tuple[str, ...]:
        """``greedy_<learner>`` for each learner, then ``always_<baseline>``."""
        return tuple(self.splits[0].policy)

    def mean_qini(self) -> dict[str, dict[str, float]]:
        """Learner → treatment → Qini coefficient averaged over the seeds."""
        return {
            learner: {
                treatment: float(np.mean([s.qini[learner][treatment] for s in self.splits]))
                for treatment in self.treatments
            }
            for learner in self.learners
        }

    def mean_policy_value(self) -> dict[str, float]:
        """Policy → IPS value averaged over the seeds."""
        return {
            name: float(np.mean([s.policy[name].mean for s in self.splits]))
            for name in self.policy_names
        }

    def mean_gain_over_baseline(self) -> dict[str, float]:
        """Learner → greedy minus baseline IPS value, averaged over the seeds."""
        return {
            learner: float(np.mean([s.gain_over_baseline[learner].mean for s in self.splits]))
            for learner in self.learners
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the per-seed results and the means."""
        return {
            "outcome": self.outcome,
            "control": self.control,
            "baseline": self.baseline,
            "seeds": list(self.seeds),
            "mean_qini": self.mean_qini(),
            "mean_policy_value": self.mean_policy_value(),
            "mean_gain_over_baseline": self.mean_gain_over_baseline(),
            "splits": [
                {
                    "seed": s.seed,
                    "qini": s.qini,
                    "policy": {name: value.to_dict() for name, value in s.policy.items()},
                    "gain_over_baseline": {
                        name: value.to_dict() for name, value in s.gain_over_baseline.items()
                    },
                    "n_train": s.n_train,
                    "n_test": s.n_test,
                }
                for s in self.splits
            ],
        }

    def table(self) -> str:
        """The figures as plain text: Qini per seed and mean, then policy values with CIs."""
        lines = [f"Outcome: {self.outcome}; control {self.control}; seeds {list(self.seeds)}"]
        columns = [(learner, t) for t in self.treatments for learner in self.learners]
        labels = [f"{learner} {t}" for learner, t in columns]
        width = max(12, *(len(label) for label in labels)) + 2
        lines += ["", "Qini coefficient (held out)"]
        lines.append(f"{'seed':<6}" + "".join(f"{label:>{width}}" for label in labels))
        for s in self.splits:
            cells = "".join(f"{s.qini[learner][t]:>{width}.5f}" for learner, t in columns)
            lines.append(f"{s.seed:<6}{cells}")
        mean = self.mean_qini()
        cells = "".join(f"{mean[learner][t]:>{width}.5f}" for learner, t in columns)
        lines.append(f"{'mean':<6}{cells}")

        baseline = f"always_{self.baseline}"
        names = [*self.policy_names, *(f"greedy_{lr} − {baseline}" for lr in self.learners)]
        width = max(26, *(len(name) for name in names)) + 2
        lines += ["", "Policy value per customer by IPS on the held-out rows, with 95 % CI"]
        lines.append(f"{'seed':<6}" + "".join(f"{name:>{width}}" for name in names))
        for s in self.splits:
            values = [*s.policy.values(), *s.gain_over_baseline.values()]
            lines.append(f"{s.seed:<6}" + "".join(f"{_with_ci(v):>{width}}" for v in values))
        means = [*self.mean_policy_value().values(), *self.mean_gain_over_baseline().values()]
        lines.append(f"{'mean':<6}" + "".join(f"{m:>{width}.4f}" for m in means))
        return "\n".join(lines)


def compare_uplift_learners(
    frame: pd.DataFrame,
    features: Sequence[str],
    seeds: Sequence[int] = DEFAULT_SEEDS,
    test_fraction: float = 0.3,
    outcome: str = "visit",
    *,
    learners: Mapping[str, UpliftModel] | None = None,
    arm_col: str = "arm",
    control: str = "no_email",
    baseline: str = "mens_email",
    propensities: Mapping[str, float] | None = None,
    progress: Callable[[str], None] | None = None,
) -> UpliftComparison:
    """Fit every learner on each seed's training split and compare them on its held-out split.

    ``outcome`` names the outcome column: ``visit`` (0/1) or ``spend`` (dollars)
    on Hillstrom. ``learners`` maps a name to an unfitted model (a clone of each is fitted);
    the default is :func:`default_learners`. ``propensities`` are the
    randomisation probabilities of the arms for IPS; ``None`` means a uniform
    draw (Hillstrom's 1/3 each). ``progress`` gets one line per seed.

    >>> rng = np.random.default_rng(0)
    >>> n = 3_000
    >>> frame = pd.DataFrame({"mens": rng.integers(0, 2, n), "arm": rng.choice(["m", "c"], n)})
    >>> frame["visit"] = (rng.random(n) < 0.1 + 0.2 * frame["mens"] * (frame["arm"] == "m"))
    >>> frame["visit"] = frame["visit"].astype(int)
    >>> small = {"num_boost_round": 20, "min_data_in_leaf": 50}
    >>> learners = {"t": TLearner(control="c", **small),
    ...             "dr": DRLearner(control="c", effect_min_data_in_leaf=50, **small)}
    >>> result = compare_uplift_learners(frame, ["mens"], seeds=(0, 1), learners=learners,
    ...                                  control="c", baseline="m")
    >>> result.seeds, result.treatments, sorted(result.policy_names)
    ((0, 1), ('m',), ['always_m', 'greedy_dr', 'greedy_t'])
    >>> all(by_arm["m"] > 0 for by_arm in result.mean_qini().values())  # mens first is right
    True
    """
    features = _check_inputs(frame, features, arm_col, outcome, test_fraction)
    seeds = _check_seeds(seeds)
    models = dict(default_learners(control) if learners is None else learners)
    if not models:
        raise InvalidRequest("learners", "must name at least one uplift model")
    arms = frame[arm_col].astype(str).to_numpy(dtype=object)
    arm_set = sorted(set(arms))
    for name, arm in (("control", control), ("baseline", baseline)):
        if arm not in arm_set:
            raise InvalidRequest(name, f"must be one of the arms {arm_set}", arm)
    logging = _logging_propensities(arms, arm_set, propensities)
    y = pd.to_numeric(frame[outcome]).to_numpy(dtype=np.float64)
    # Stratified on arm × responded: every split keeps each arm's share and response rate.
    keys = pd.DataFrame({"arm": arms, "responded": y > 0})
    treatments = tuple(arm for arm in arm_set if arm != control)

    splits: list[SeedComparison] = []
    for seed in seeds:
        started = time.perf_counter()
        train_keys, test_keys = stratified_split(
            keys, test_size=test_fraction, seed=seed, by=("arm", "responded")
        )
        train, test = train_keys.index.to_numpy(), np.sort(test_keys.index.to_numpy())
        test_arms, test_y = arms[test], y[test]
        qini: dict[str, dict[str, float]] = {}
        policy: dict[str, PolicyValue] = {}
        gains: dict[str, PolicyValue] = {}
        for name, model in models.items():
            fitted = model.clone().fit(
                frame[features].iloc[train], pd.Series(arms[train]), y[train]
            )
            uplift = fitted.predict_uplift(frame[features].iloc[test])
            qini[name] = {
                t: _qini(test_arms, test_y, uplift[t].to_numpy(), t, control) for t in treatments
            }
            chosen = greedy_arms(uplift, control).to_numpy(dtype=object)
            policy[f"greedy_{name}"] = _ips(test_arms, test_y, logging[test], chosen)
            gains[name] = _ips_difference(test_arms, test_y, logging[test], chosen, baseline)
        policy[f"always_{baseline}"] = _ips(test_arms, test_y, logging[test], baseline)
        split = SeedComparison(
            seed=seed,
            qini=qini,
            policy=policy,
            gain_over_baseline=gains,
            n_train=len(train),
            n_test=len(test),
            elapsed_s=time.perf_counter() - started,
        )
        splits.append(split)
        if progress is not None:
            progress(_progress_line(split, len(splits), len(seeds)))
    return UpliftComparison(
        outcome=outcome,
        control=control,
        baseline=baseline,
        learners=tuple(models),
        treatments=treatments,
        splits=tuple(splits),
    )


def _check_inputs(
    frame: pd.DataFrame, features: Sequence[str], arm_col: str, outcome: str, test_fraction: float
) -> list[str]:
    if not isinstance(frame, pd.DataFrame) or frame.empty:
        raise InvalidRequest("frame", "must be a non-empty pandas DataFrame")
    if isinstance(features, str) or not features:
        raise InvalidRequest("features", "must be a non-empty sequence of column names", features)
    missing = [column for column in features if column not in frame.columns]
    if missing:
        raise InvalidRequest("features", "must name columns of `frame`", missing)
    for name, column in (("arm_col", arm_col), ("outcome", outcome)):
        if column not in frame.columns:
            raise InvalidRequest(name, "must name a column of `frame`", column)
        if column in features:
            raise InvalidRequest("features", f"must not include the {name} column", column)
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, int | float):
        raise InvalidRequest("test_fraction", "must be a number in (0, 1)", test_fraction)
    if not 0 < test_fraction < 1:
        raise InvalidRequest("test_fraction", "must be a number in (0, 1)", test_fraction)
    return list(features)


def _check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    if isinstance(seeds, str | bytes) or not isinstance(seeds, Iterable):
        raise InvalidRequest("seeds", "must be a sequence of split seeds", seeds)
    checked = tuple(seeds)
    if not checked or len(set(checked)) != len(checked):
        raise InvalidRequest("seeds", "must be at least one seed, none repeated", list(checked))
    for seed in checked:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise InvalidRequest("seeds", "must be whole numbers >= 0", seed)
    return tuple(int(seed) for seed in checked)


def _logging_propensities(
    arms: NDArray[Any], arm_set: list[str], propensities: Mapping[str, float] | None
) -> NDArray[np.float64]:
    """Each row's probability of the arm it got, under the experiment's randomisation."""
    given = dict.fromkeys(arm_set, 1 / len(arm_set)) if propensities is None else propensities
    missing = [arm for arm in arm_set if arm not in given]
    if missing:
        raise InvalidRequest("propensities", "must give every arm's probability", missing)
    return np.array([given[arm] for arm in arms], dtype=np.float64)


def _qini(
    arms: NDArray[Any], y: NDArray[np.float64], score: NDArray[np.float64], t: str, control: str
) -> float:
    rows = (arms == t) | (arms == control)
    return qini_coefficient(qini_curve(y[rows], arms[rows] == t, score[rows]))


def _ips(
    arms: NDArray[Any], y: NDArray[np.float64], propensities: NDArray[np.float64], target: Any
) -> PolicyValue:
    return mean_with_ci((arms == target) * y / propensities)


def _ips_difference(
    arms: NDArray[Any],
    y: NDArray[np.float64],
    propensities: NDArray[np.float64],
    chosen: NDArray[Any],
    baseline: str,
) -> PolicyValue:
    # Paired on the same rows: the rows both policies agree on cancel, so the
    # interval is much narrower than the two values' own intervals suggest.
    agreement = (arms == chosen).astype(np.float64) - (arms == baseline)
    return mean_with_ci(agreement * y / propensities)


def _with_ci(value: PolicyValue) -> str:
    low, high = value.ci95
    return f"{value.mean:.4f} [{low:.4f}, {high:.4f}]"


def _progress_line(split: SeedComparison, done: int, total: int) -> str:
    qini = "  ".join(
        f"{learner} " + "/".join(f"{q:.4f}" for q in by_treatment.values())
        for learner, by_treatment in split.qini.items()
    )
    return f"seed {split.seed} ({done}/{total}): Qini {qini}  ({split.elapsed_s:.1f} s)"


def _seed_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(seed) for seed in text.split(",") if seed.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be whole numbers separated by commas: {text!r}"
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Print the comparison on the Hillstrom experiment."""
    from features.hillstrom import PROFILE_FEATURES, default_hillstrom_path, load_hillstrom

    parser = argparse.ArgumentParser(
        prog="python -m training.uplift_comparison", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--outcome", choices=("visit", "spend"), default="visit", help="default: %(default)s"
    )
    parser.add_argument(
        "--seeds",
        type=_seed_list,
        default=DEFAULT_SEEDS,
        help="comma-separated split seeds (default: 0,1,2,3,4)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=default_hillstrom_path(),
        help="the Hillstrom CSV (default: the repository's copy)",
    )
    args = parser.parse_args(argv)
    frame = load_hillstrom(args.data)
    print(f"Hillstrom: {len(frame):,} customers from {args.data}", flush=True)
    result = compare_uplift_learners(
        frame,
        list(PROFILE_FEATURES),
        seeds=args.seeds,
        outcome=args.outcome,
        progress=lambda line: print(line, flush=True),
    )
    print()
    print(result.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
