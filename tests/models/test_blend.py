"""The blend: its weights are learned on a validation slice of train only (a spy member sees
every table it is fitted on and asked about), the stacking is the ridge solution on that
slice, the list weights come from the grid, and members are named as registered models.
What every model does (save/load, fold-in, settings) is in test_contract.py."""

import threading

import numpy as np
import pandas as pd
import pytest

from recommender import metrics
from recommender.core.errors import SettingError
from recommender.data.splits import per_user_split, validation_split
from recommender.data.synthetic import make_synthetic
import recommender.models.blend as blend_module
from recommender.models import MODELS, make_model
from recommender.models.baselines import Biases
from recommender.models.blend import WEIGHT_GRID, zscore
from recommender.models.factorization import Regression, RegressionSettings


class SpyBiases(Biases):
    """The biases model, recording the (userId, movieId) pairs of every table it meets."""

    name = "spy"
    seen_tables: list[set] = []

    def fit(self, train, movies=None, tags=None, **options):
        SpyBiases.seen_tables.append(set(zip(train["userId"], train["movieId"])))
        return super().fit(train, movies, tags, **options)

    def predict(self, users, movies, times=None):
        SpyBiases.seen_tables.append(set(zip(np.asarray(users), np.asarray(movies))))
        return super().predict(users, movies, times)


@pytest.fixture(scope="module")
def split():
    data = make_synthetic(n_users=200, n_movies=300, n_ratings=12_000, seed=5)
    return per_user_split(data.ratings, 0.2, seed=5)


@pytest.fixture
def spy(monkeypatch):
    monkeypatch.setitem(MODELS, "spy", f"{__name__}:SpyBiases")
    SpyBiases.seen_tables = []
    return SpyBiases


def pairs(table: pd.DataFrame) -> set:
    return set(zip(table["userId"], table["movieId"]))


def test_weights_are_learned_on_a_validation_slice_of_train_never_on_test(split, spy):
    train, test = split
    blend = make_model("blend", seed=3, rating_members=("spy",), list_members=("ease",),
                       validation=0.2).fit(train)
    fit, held = validation_split(train, 0.2, seed=3)
    first_fit, weighed, refit = spy.seen_tables[:3]
    assert first_fit == pairs(fit)  # fitted on train less the validation slice,
    assert weighed == pairs(held)  # asked about the slice to learn the weights,
    assert refit == pairs(train)  # then refitted on all of train
    assert not set().union(*spy.seen_tables[:3]) & pairs(test)  # and never shown test
    # the stacking is the ridge solution on the slice, by hand
    member = Biases(seed=3).fit(fit)
    x = np.column_stack([np.ones(len(held)), member.predict(held["userId"], held["movieId"]),
                         np.log1p(held["userId"].map(fit["userId"].value_counts())),
                         np.log1p(held["movieId"].map(fit["movieId"].value_counts())
                                  .fillna(0))])
    penalty = np.diag([0.0, *[blend.settings.ridge] * (x.shape[1] - 1)])
    expected = np.linalg.solve(x.T @ x + penalty, x.T @ held["rating"].to_numpy())
    np.testing.assert_allclose(blend.coefficients, expected, rtol=1e-4, atol=1e-6)
    assert blend.meta["validation_rmse"]["blend"] <= blend.meta["validation_rmse"]["spy"]
    # the same train and seed give the same weights whatever the test file holds
    again = make_model("blend", seed=3, rating_members=("spy",), list_members=("ease",),
                       validation=0.2).fit(train)
    np.testing.assert_array_equal(again.coefficients, blend.coefficients)


def test_list_weights_come_from_the_grid_and_do_no_worse_than_the_first_member(split):
    train, test = split
    blend = make_model("blend", rating_members=("baseline",),
                       list_members=("ease", "popularity")).fit(train)
    assert blend.list_weights[0] == 1.0 and blend.list_weights[1] in WEIGHT_GRID
    ndcg = blend.meta["validation_ndcg"]
    assert ndcg["blend"] >= ndcg["ease"]
    scores = blend.score(np.arange(3))
    expected = sum(w * zscore(blend.members[n].score(np.arange(3)))
                   for w, n in zip(blend.list_weights, ("ease", "popularity")))
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_zscore_centres_each_row_and_puts_unscorable_movies_last():
    scores = np.array([[1.0, 2.0, 3.0, -np.inf], [5.0, 5.0, 5.0, 5.0]])
    z = zscore(scores)
    np.testing.assert_allclose(z[0, :3], [-1.2247449, 0.0, 1.2247449], rtol=1e-6)
    assert z[0, 3] < z[0, :3].min()
    np.testing.assert_array_equal(z[1], 0.0)  # a constant row: no division by zero
    # other movies standardised by the statistics of a reference (the train catalogue)
    some = zscore(np.array([[3.0, 2.0, np.nan]]), reference=scores[:1])
    np.testing.assert_allclose(some[0, :2], z[0, [2, 1]], rtol=1e-6)
    assert some[0, 2] == pytest.approx(z[0, 3])


@pytest.mark.parametrize("settings, words", [
    ({"rating_members": ("no-such-model",)}, "not a registered model"),
    ({"list_members": ("blend",)}, "not a registered model"),
    ({"rating_members": ("ease",)}, "do not predict ratings"),
    ({"list_members": ("ease", "ease")}, "named twice"),
])
def test_members_must_be_registered_rating_models_where_ratings_are_stacked(settings, words):
    with pytest.raises(SettingError, match=words) as error:
        make_model("blend", **settings)
    assert len(str(error.value).splitlines()) == 1


def test_a_blend_of_bpmf_and_the_biases_predicts_better_than_the_biases(split):
    train, test = split
    blend = make_model("blend", rating_members=("bpmf", "baseline"),
                       list_members=("ease",)).fit(train)
    rmse = {name: metrics.rmse(test["rating"], model.predict(test["userId"], test["movieId"]))
            for name, model in [("blend", blend), *blend.members.items()]
            if model.predicts_ratings}
    assert rmse["blend"] < rmse["baseline"] - 0.02, rmse


class QuickRegressionSettings(RegressionSettings):
    """`regression`'s settings, small enough for a test (it early-stops and refits)."""

    dim: int = 4
    epochs: int = 30
    patience: int = 1
    learning_rate: float = 0.3


class QuickRegression(Regression):
    """`regression` with :class:`QuickRegressionSettings`."""

    name = "quick-regression"
    Settings = QuickRegressionSettings


def test_a_member_that_early_stops_does_it_once_and_refits_for_the_carve_epoch_count(
        split, monkeypatch):
    """On the carve the member early-stops on its own holdout and keeps its best epoch (no
    retraining on the whole carve); on all of train it trains once, for that epoch count,
    with no holdout of its own (no second early stopping)."""
    monkeypatch.setitem(MODELS, "quick-regression", f"{__name__}:QuickRegression")
    made = []

    def recording(name, seed=0, **settings):
        made.append(make_model(name, seed=seed, **settings))
        return made[-1]

    monkeypatch.setattr(blend_module, "make_model", recording)
    train, _ = split
    blend = blend_module.Blend(seed=1, rating_members=("quick-regression",),
                               list_members=("ease",)).fit(train)
    carved, final = [m for m in made if m.name == "quick-regression"]
    assert carved.settings.refit is False and carved.settings.validation > 0
    assert len(carved.history) == 1 and 1 <= carved.meta["best_epoch"] < 30
    assert final.settings.validation == 0 and final.meta["refit"] is False
    assert final.settings.epochs == carved.meta["best_epoch"] == final.meta["epochs_run"]
    assert blend.members["quick-regression"] is final
    # models without early stopping (ease) are fitted with their shipped settings both times
    assert [m.settings for m in made if m.name == "ease"] == [make_model("ease").settings] * 2


def test_members_outside_the_training_loop_fit_beside_it_with_the_same_result(
        split, spy, monkeypatch):
    """The NumPy member fits in a second thread, the TensorFlow one in this thread (the
    shared loop seeds TensorFlow globally, one fit at a time); the blend is the same as
    with every member fitted one after another."""
    monkeypatch.setitem(MODELS, "quick-regression", f"{__name__}:QuickRegression")
    threads = {}
    for cls in (SpyBiases, QuickRegression):
        def fit(self, *args, _fit=cls.fit, **kwargs):
            threads[self.name] = threading.current_thread().name
            return _fit(self, *args, **kwargs)
        monkeypatch.setattr(cls, "fit", fit)
    train, test = split
    members = {"rating_members": ("quick-regression", "spy"), "list_members": ("ease",)}
    beside = blend_module.Blend(seed=2, **members).fit(train)
    assert threads["spy"].startswith("blend-member")
    assert threads["quick-regression"] == threading.current_thread().name

    def one_after_another(self, table, movies, tags, settings):
        return {name: make_model(name, seed=self.seed, **settings(name)).fit(
                    table, movies=movies, tags=tags) for name in self._names()}

    monkeypatch.setattr(blend_module.Blend, "_fit_members", one_after_another)
    serial = blend_module.Blend(seed=2, **members).fit(train)
    np.testing.assert_array_equal(beside.coefficients, serial.coefficients)
    np.testing.assert_array_equal(beside.predict(test["userId"], test["movieId"]),
                                  serial.predict(test["userId"], test["movieId"]))


def test_a_blend_with_a_time_aware_member_passes_the_dates_on(split):
    """The stacking is learned on the slice's dates and applied at the dates asked about;
    without dates the member answers for each user's last train date."""
    train, test = split
    blend = make_model("blend", rating_members=("time-biases", "baseline"),
                       list_members=("popularity",)).fit(train)
    assert blend.uses_time and not make_model("blend", rating_members=("bpmf",)).uses_time
    users, movies, times = test["userId"], test["movieId"], test["timestamp"]
    member = blend.members["time-biases"]
    for when in (times, None):
        stacked = np.column_stack(
            [np.ones(len(test)), member.predict(users, movies, when),
             blend.members["baseline"].predict(users, movies),
             np.log1p(users.map(train["userId"].value_counts())),
             np.log1p(movies.map(train["movieId"].value_counts()).fillna(0))]
        ) @ blend.coefficients
        np.testing.assert_allclose(blend.predict(users, movies, when),
                                   np.clip(stacked, *blend.rating_scale), atol=1e-5)
    assert not np.allclose(blend.predict(users, movies, times), blend.predict(users, movies))
