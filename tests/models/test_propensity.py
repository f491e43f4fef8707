"""ArmPropensityModel: the estimator contract, input handling, and bad input."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features import InvalidRequest, Unavailable
from models import ArmPropensityModel, PriorModel

ARMS = ("mens_email", "no_email", "womens_email")
FEATURES = ["recency", "history", "mens", "zip_code", "channel"]


def true_probability(frame: pd.DataFrame, action: str) -> np.ndarray:
    """The simulation's visit probability: mens e-mail works on mens buyers, womens on all."""
    logit = -1.5 - 0.15 * frame["recency"] + 0.002 * frame["history"]
    if action == "mens_email":
        logit = logit + 0.8 * frame["mens"]
    if action == "womens_email":
        logit = logit + 0.5
    return np.asarray(1 / (1 + np.exp(-logit)))


def simulated(n: int = 3_000, seed: int = 0) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """Customers randomised to the arms, with visits drawn from ``true_probability``."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "recency": rng.integers(1, 13, n),
            "history": rng.gamma(2.0, 150.0, n).round(2),
            "mens": rng.integers(0, 2, n),
            "zip_code": rng.choice(["Urban", "Suburban", "Rural"], n),
            "channel": pd.Categorical(rng.choice(["Phone", "Web", "Multichannel"], n)),
        }
    )
    arm = pd.Series(rng.choice(ARMS, n), name="arm")
    p = np.select([arm == action for action in ARMS], [true_probability(frame, a) for a in ARMS])
    y = (rng.random(n) < p).astype(int)
    return frame, arm, y


SMALL = {"num_boost_round": 100, "learning_rate": 0.1, "min_data_in_leaf": 50}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    return simulated()


@pytest.fixture(scope="module")
def model(data: tuple[pd.DataFrame, pd.Series, np.ndarray]) -> ArmPropensityModel:
    frame, arm, y = data
    return ArmPropensityModel(seed=1, **SMALL).fit(frame, arm, y)


def test_learned_attributes(model: ArmPropensityModel) -> None:
    assert model.actions == ARMS
    assert model.feature_names_ == tuple(FEATURES)
    assert model.categories_ == {
        "zip_code": ["Rural", "Suburban", "Urban"],
        "channel": ["Multichannel", "Phone", "Web"],
    }
    assert sorted(model.boosters_) == list(ARMS)
    prior: PriorModel = model  # the decision engine's protocol
    assert prior.actions == ARMS


def test_recovers_the_simulated_uplift(
    model: ArmPropensityModel, data: tuple[pd.DataFrame, pd.Series, np.ndarray]
) -> None:
    frame = data[0]
    scores = model.predict_frame(frame)
    mens = (frame["mens"] == 1).to_numpy()
    true_mens = true_probability(frame, "mens_email") - true_probability(frame, "no_email")
    true_womens = true_probability(frame, "womens_email") - true_probability(frame, "no_email")
    mens_gain = (scores["mens_email"] - scores["no_email"]).to_numpy()
    womens_gain = (scores["womens_email"] - scores["no_email"]).to_numpy()
    # ~1,000 rows an arm: a difference of two arms' rates has a standard error of
    # about 0.015, so 0.04 is over 2.5 of them (seen: 0.092 vs 0.119, 0.019 vs 0, 0.089 vs 0.069).
    assert mens_gain[mens].mean() == pytest.approx(true_mens[mens].mean(), abs=0.04)
    assert mens_gain[~mens].mean() == pytest.approx(0.0, abs=0.04)
    assert womens_gain.mean() == pytest.approx(true_womens.mean(), abs=0.04)
    assert mens_gain[mens].mean() > mens_gain[~mens].mean() + 0.05


def test_column_order_does_not_matter(
    model: ArmPropensityModel, data: tuple[pd.DataFrame, pd.Series, np.ndarray]
) -> None:
    frame = data[0].head(300)
    shuffled = frame[list(reversed(frame.columns))].assign(extra=1.0)
    pd.testing.assert_frame_equal(model.predict_frame(shuffled), model.predict_frame(frame))


def test_one_row_alone_equals_the_same_row_in_a_batch(
    model: ArmPropensityModel, data: tuple[pd.DataFrame, pd.Series, np.ndarray]
) -> None:
    frame = data[0].head(200)
    batch = model.predict_frame(frame)
    pd.testing.assert_frame_equal(model.predict_frame(frame.iloc[[7]]), batch.iloc[[7]])
    for i, row in enumerate(frame.to_dict("records")):
        one = model.predict_one(row)
        assert list(one) == list(ARMS)
        np.testing.assert_allclose(list(one.values()), batch.iloc[i].to_numpy(), rtol=0, atol=1e-12)


def test_unseen_and_missing_values_count_as_missing(model: ArmPropensityModel) -> None:
    known = {"recency": 3, "history": 250.0, "mens": 1, "zip_code": "Urban", "channel": "Web"}
    as_missing = model.predict_one({**known, "zip_code": None})
    assert model.predict_one({**known, "zip_code": "Mars"}) == as_missing
    assert model.predict_one({k: v for k, v in known.items() if k != "zip_code"}) == as_missing
    assert all(0 < p < 1 for p in as_missing.values())

    frame = pd.DataFrame([known, {**known, "zip_code": "Mars"}, {**known, "zip_code": None}])
    scores = model.predict_frame(frame)
    assert scores.iloc[1].tolist() == scores.iloc[2].tolist() == list(as_missing.values())
    without = model.predict_frame(frame.drop(columns="zip_code").head(1))
    assert without.iloc[0].tolist() == list(as_missing.values())


def test_nullable_integers_and_nan_are_accepted(
    model: ArmPropensityModel, data: tuple[pd.DataFrame, pd.Series, np.ndarray]
) -> None:
    frame = data[0].head(50).copy()
    nullable = frame.assign(recency=frame["recency"].astype("Int64"))
    nullable.loc[nullable.index[:5], "recency"] = pd.NA
    as_float = frame.assign(recency=frame["recency"].astype(float))
    as_float.loc[as_float.index[:5], "recency"] = np.nan
    pd.testing.assert_frame_equal(model.predict_frame(nullable), model.predict_frame(as_float))
    missing = model.predict_one({**frame.iloc[0].to_dict(), "recency": float("nan")})
    assert list(missing.values()) == model.predict_frame(as_float).iloc[0].tolist()


def test_fitting_on_nullable_integers_gives_the_same_model(
    data: tuple[pd.DataFrame, pd.Series, np.ndarray],
) -> None:
    frame, arm, y = data
    plain = ArmPropensityModel(**SMALL).fit(frame, arm, y)
    nullable = ArmPropensityModel(**SMALL).fit(
        frame.astype({"recency": "Int64"}), arm, pd.Series(y)
    )
    pd.testing.assert_frame_equal(nullable.predict_frame(frame), plain.predict_frame(frame))


def test_pickle_round_trip_predicts_the_same(
    model: ArmPropensityModel, data: tuple[pd.DataFrame, pd.Series, np.ndarray]
) -> None:
    frame = data[0].head(100)
    restored = pickle.loads(pickle.dumps(model))
    pd.testing.assert_frame_equal(restored.predict_frame(frame), model.predict_frame(frame))
    row = frame.iloc[0].to_dict()
    assert restored.predict_one(row) == model.predict_one(row)


def test_clone_is_unfitted_with_the_same_params(model: ArmPropensityModel) -> None:
    fresh = model.clone()
    assert fresh.get_params() == model.get_params()
    assert not hasattr(fresh, "boosters_")
    with pytest.raises(Unavailable, match="not fitted"):
        fresh.predict_one({"recency": 1})
    with pytest.raises(Unavailable, match="not fitted"):
        fresh.predict_frame(pd.DataFrame({"recency": [1]}))
    assert hasattr(model, "boosters_")
    assert repr(fresh) == (
        "ArmPropensityModel(num_boost_round=100, learning_rate=0.1, num_leaves=4, "
        "min_data_in_leaf=50, seed=1)"
    )


def test_same_seed_same_predictions(data: tuple[pd.DataFrame, pd.Series, np.ndarray]) -> None:
    frame, arm, y = data
    first = ArmPropensityModel(seed=7, **SMALL).fit(frame, arm, y).predict_frame(frame)
    second = ArmPropensityModel(seed=7, **SMALL).fit(frame, arm, y).predict_frame(frame)
    pd.testing.assert_frame_equal(first, second)


def test_fit_does_not_mutate_its_inputs(data: tuple[pd.DataFrame, pd.Series, np.ndarray]) -> None:
    frame, arm, y = data
    frame_before, arm_before, y_before = frame.copy(), arm.copy(), y.copy()
    ArmPropensityModel(num_boost_round=2).fit(frame, arm, y)
    pd.testing.assert_frame_equal(frame, frame_before)
    pd.testing.assert_series_equal(arm, arm_before)
    np.testing.assert_array_equal(y, y_before)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"num_boost_round": 0}, r"`num_boost_round` must be an integer >= 1, got 0"),
        ({"num_boost_round": 2.5}, r"`num_boost_round` must be an integer >= 1, got 2.5"),
        ({"num_boost_round": True}, r"`num_boost_round` must be an integer >= 1, got True"),
        ({"learning_rate": 0}, r"`learning_rate` must be a number in \(0, 1\], got 0"),
        ({"learning_rate": 1.5}, r"`learning_rate` must be a number in \(0, 1\], got 1.5"),
        ({"learning_rate": "0.1"}, r"`learning_rate` must be a number in \(0, 1\], got '0.1'"),
        ({"num_leaves": 1}, r"`num_leaves` must be an integer >= 2, got 1"),
        ({"min_data_in_leaf": 0}, r"`min_data_in_leaf` must be an integer >= 1, got 0"),
        ({"seed": -1}, r"`seed` must be an integer >= 0, got -1"),
    ],
)
def test_bad_params(params: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        ArmPropensityModel(**params)


TINY_X = pd.DataFrame({"recency": [1, 2, 3, 4], "zip_code": ["Urban", "Rural", "Urban", "Rural"]})
TINY_ARMS = ["a", "a", "b", "b"]
TINY_Y = [0, 1, 1, 0]


@pytest.mark.parametrize(
    ("frame", "actions", "y", "match"),
    [
        (TINY_X.to_numpy(), TINY_ARMS, TINY_Y, r"`X` must be a pandas DataFrame, got 'ndarray'"),
        (TINY_X.head(0), [], [], r"`X` must have at least one row and one column"),
        (TINY_X[[]], TINY_ARMS, TINY_Y, r"`X` must have at least one row and one column"),
        (
            pd.concat([TINY_X, TINY_X["recency"]], axis=1),
            TINY_ARMS,
            TINY_Y,
            r"`X` must not repeat a column name, got \['recency'\]",
        ),
        (
            TINY_X,
            TINY_ARMS[:3],
            TINY_Y,
            r"`actions` must have one entry per row of `X` \(4\), got 3",
        ),
        (TINY_X, TINY_ARMS, [*TINY_Y, 1], r"`y` must have one entry per row of `X` \(4\), got 5"),
        (TINY_X, ["a", None, "b", "b"], TINY_Y, r"`actions` must not contain missing values"),
        (TINY_X, ["a", "a", 3, 3], TINY_Y, r"`actions` must be strings, got 3"),
        (
            TINY_X,
            pd.Series(pd.Categorical(TINY_ARMS, categories=["a", "b", "c"])),
            TINY_Y,
            r"`actions` must have at least one row for action 'c'",
        ),
        (TINY_X, TINY_ARMS, [0, 1, 1, np.nan], r"`y` must not contain missing values, got 1"),
        (TINY_X, TINY_ARMS, [0, 1, 2, 0], r"`y` must contain only 0 and 1, got \[2.0\]"),
        (TINY_X, TINY_ARMS, ["no", "yes", "yes", "no"], r"`y` must contain only 0 and 1"),
        (TINY_X, TINY_ARMS, [[0], [1], [1], [0]], r"`y` must be one-dimensional"),
        (TINY_X, TINY_ARMS, [0, 1, 1, 1], r"`y` must contain both 0 and 1 for action 'b'"),
        (
            TINY_X.assign(when=pd.Timestamp("2026-01-01")),
            TINY_ARMS,
            TINY_Y,
            r"`X\['when'\]` must be numeric or hold strings, got 'datetime64\[s\]'",
        ),
        (
            TINY_X.assign(zip_code=["Urban", 1, "Rural", 2]),
            TINY_ARMS,
            TINY_Y,
            r"`X\['zip_code'\]` must hold only numbers or only strings, got 'mixed-integer'",
        ),
        (
            TINY_X.assign(zip_code=pd.Categorical([1, 2, 1, 2])),
            TINY_ARMS,
            TINY_Y,
            r"`X\['zip_code'\]` must have string categories, got 1",
        ),
    ],
)
def test_bad_fit_input(frame: Any, actions: Any, y: Any, match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        ArmPropensityModel(num_boost_round=1, min_data_in_leaf=1).fit(frame, actions, y)


def test_bad_predict_input(model: ArmPropensityModel) -> None:
    with pytest.raises(InvalidRequest, match=r"`X\['recency'\]` must be numeric, got 'object'"):
        model.predict_frame(pd.DataFrame({"recency": ["three"]}))
    with pytest.raises(InvalidRequest, match=r"`X` must be a pandas DataFrame, got 'dict'"):
        model.predict_frame({"recency": [3]})  # type: ignore[arg-type]
    with pytest.raises(
        InvalidRequest, match=r"`features\['recency'\]` must be a number or None, got 'three'"
    ):
        model.predict_one({"recency": "three"})


def test_empty_frame_gives_an_empty_score_frame(model: ArmPropensityModel) -> None:
    scores = model.predict_frame(pd.DataFrame({"recency": pd.Series([], dtype=float)}))
    assert scores.shape == (0, 3)
    assert list(scores.columns) == list(ARMS)
