"""CalibratedPropensityModel: better calibrated than its base on held-out data, and a PriorModel."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features import InvalidRequest, Unavailable
from models import ArmPropensityModel, CalibratedPropensityModel, PriorModel
from training import expected_calibration_error

ACTIONS = ("email", "none")

Data = tuple[pd.DataFrame, pd.Series, np.ndarray]


def simulated(n: int, seed: int) -> Data:
    """A weak, noisy signal: easy for a large booster to overfit into overconfidence."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "recency": rng.integers(1, 13, n),
            "history": rng.gamma(2.0, 150.0, n).round(2),
            "zip_code": rng.choice(["Urban", "Suburban", "Rural"], n),
        }
    )
    actions = pd.Series(rng.choice(ACTIONS, n), name="arm")
    logit = -1.0 - 0.08 * frame["recency"] + 0.001 * frame["history"] + 0.4 * (actions == "email")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame, actions, y.to_numpy()


# Deep trees, few rows a leaf, a fast rate: the base memorises its rows and
# pushes its probabilities towards 0 and 1.
OVERFIT = {"num_boost_round": 150, "learning_rate": 0.3, "num_leaves": 32, "min_data_in_leaf": 5}


@pytest.fixture(scope="module")
def train() -> Data:
    return simulated(8_000, seed=0)


@pytest.fixture(scope="module")
def held_out() -> Data:
    return simulated(8_000, seed=1)


@pytest.fixture(scope="module")
def model(train: Data) -> CalibratedPropensityModel:
    frame, actions, y = train
    return CalibratedPropensityModel(ArmPropensityModel(**OVERFIT), seed=3).fit(frame, actions, y)


def test_is_better_calibrated_than_its_base_on_held_out_rows(
    model: CalibratedPropensityModel, train: Data, held_out: Data
) -> None:
    base = ArmPropensityModel(**OVERFIT).fit(*train)
    frame, actions, y = held_out
    raw, calibrated = base.predict_frame(frame), model.predict_frame(frame)
    for action in ACTIONS:
        rows = (actions == action).to_numpy()
        before = expected_calibration_error(y[rows], raw[action][rows], strategy="quantile")
        after = expected_calibration_error(y[rows], calibrated[action][rows], strategy="quantile")
        # Seen: 0.193 → 0.020 (email), 0.161 → 0.022 (none); half is a wide margin.
        assert after < before / 2, (action, before, after)


def test_the_maps_keep_each_actions_ranking(
    model: CalibratedPropensityModel, held_out: Data
) -> None:
    frame = held_out[0]
    raw, calibrated = model.base_.predict_frame(frame), model.predict_frame(frame)
    for action in ACTIONS:
        order = np.argsort(raw[action].to_numpy(), kind="stable")
        assert (np.diff(calibrated[action].to_numpy()[order]) >= 0).all()
        assert calibrated[action].between(0, 1).all()


def test_one_row_alone_equals_the_same_row_in_a_batch(
    model: CalibratedPropensityModel, held_out: Data
) -> None:
    frame = held_out[0].head(200)
    batch = model.predict_frame(frame)
    for i, row in enumerate(frame.to_dict("records")):
        one = model.predict_one(row)
        assert list(one) == list(ACTIONS)
        assert list(one.values()) == batch.iloc[i].tolist()
    reordered = frame[list(reversed(frame.columns))].assign(extra=1)
    pd.testing.assert_frame_equal(model.predict_frame(reordered), batch, rtol=0, atol=0)
    missing = model.predict_one({"recency": None, "zip_code": "Mars"})
    assert all(0 <= p <= 1 for p in missing.values())


def test_is_a_prior_model_with_the_learned_attributes(model: CalibratedPropensityModel) -> None:
    prior: PriorModel = model  # what the decision engine serves
    assert prior.actions == ACTIONS
    assert model.feature_names_ == ("recency", "history", "zip_code")
    assert model.categories_ == {"zip_code": ["Rural", "Suburban", "Urban"]}
    assert sorted(model.maps_) == list(ACTIONS)


def test_clone_pickle_and_seed(model: CalibratedPropensityModel, train: Data) -> None:
    fresh = model.clone()
    assert fresh.get_params()["calibration_fraction"] == 0.25
    assert fresh.get_params()["base"].get_params() == ArmPropensityModel(**OVERFIT).get_params()
    assert fresh.base is not model.base
    with pytest.raises(Unavailable, match="not fitted"):
        fresh.predict_one({"recency": 1})
    with pytest.raises(Unavailable, match="not fitted"):
        _ = fresh.actions
    frame = train[0].head(100)
    restored = pickle.loads(pickle.dumps(model))
    pd.testing.assert_frame_equal(restored.predict_frame(frame), model.predict_frame(frame))
    again = fresh.fit(*train)
    pd.testing.assert_frame_equal(again.predict_frame(frame), model.predict_frame(frame))
    assert model.base is not None
    assert not hasattr(model.base, "boosters_")  # the argument stays unfitted


def test_default_base() -> None:
    frame, actions, y = simulated(3_000, seed=2)
    model = CalibratedPropensityModel(seed=5).fit(frame, actions, y)
    assert model.base is None
    assert model.base_.get_params() == ArmPropensityModel(seed=5).get_params()


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (
            {"calibration_fraction": 0},
            r"`calibration_fraction` must be a number in \(0, 1\), got 0",
        ),
        ({"calibration_fraction": 1.0}, r"`calibration_fraction` must be a number in \(0, 1\)"),
        ({"calibration_fraction": "0.2"}, r"`calibration_fraction` must be a number in \(0, 1\)"),
        ({"seed": -1}, r"`seed` must be an integer >= 0, got -1"),
        ({"base": "lightgbm"}, r"`base` must be an ArmPropensityModel, got 'str'"),
    ],
)
def test_bad_params(params: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        CalibratedPropensityModel(**params)


TINY_X = pd.DataFrame({"recency": list(range(16))})


@pytest.mark.parametrize(
    ("actions", "y", "match"),
    [
        (
            ["a", "b"] * 8,
            [0, 0, 1, 1] + [0, 0, 1, 0] * 3,
            r"`y` must have at least 2 rows of each outcome for every action.*'b\|1': 1",
        ),
        (["a", "b"] * 8, [0, 0, 2, 1] * 4, r"`y` must contain only 0 and 1"),
        (["a", None] * 8, [0, 0, 1, 1] * 4, r"`actions` must not contain missing values"),
        (
            pd.Series(pd.Categorical(["a", "b"] * 8, categories=["a", "b", "c"])),
            [0, 0, 1, 1] * 4,
            r"`actions` must have at least one row for action 'c'",
        ),
    ],
)
def test_bad_training_data(actions: Any, y: Any, match: str) -> None:
    model = CalibratedPropensityModel(ArmPropensityModel(num_boost_round=2, min_data_in_leaf=1))
    with pytest.raises(InvalidRequest, match=match):
        model.fit(TINY_X, actions, y)
