"""The contract every registered model keeps (lenskit's ``ScorerTests``, implicit's
``RecommenderBaseTestMixin``): fitted on a planted synthetic set it beats random order (and
the global mean, if it predicts ratings), never recommends a movie the user rated, saves and
loads to the same answers, folds in a new user if it says it does, refuses bad settings in
one line when it is made, and gives the same scores for the same seed.

Each model is fitted once for the module (``fitted``); pytest groups the tests by model. The
two tests that fit again are slow for the models that compile a TensorFlow training step.
What is particular to one model stays in its own test file.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from contract import (CONSTANT_RANKING, SEED, Split, bad_settings, contract_settings, fit,
                      history_matrix, random_ndcg, refit_cases)
from recommender import metrics
from recommender.core.errors import DataError, SettingError
from recommender.evaluation import evaluate
from recommender.models import MODELS, load_model, make_model, model_class

NDCG_MARGIN = 0.05  # over random order's NDCG@10 (about 0.02 here, standard deviation 0.003)
RMSE_MARGIN = 0.1  # under the global mean's RMSE (about 0.97 here; the biases reach 0.72)


@pytest.fixture(scope="module", params=list(MODELS))
def name(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def data(_synthetic_session) -> Split:
    return Split.of(_synthetic_session)


@pytest.fixture(scope="module")
def fitted(name, data):
    return fit(name, data)


@pytest.fixture(scope="module")
def newcomer(data) -> pd.DataFrame:
    """A brand-new user (an id not in train) who rated what the first train user rated."""
    first = data.train["userId"].iloc[0]
    history = data.train[data.train["userId"] == first]
    return history.assign(userId=int(data.train["userId"].max()) + 1000).reset_index(drop=True)


@pytest.fixture(scope="module")
def random_order(data) -> tuple[float, float]:
    return random_ndcg(data)


def test_ranks_better_than_random_order(name, fitted, data, random_order):
    if name in CONSTANT_RANKING:  # a reference, not a ranker: every movie ties
        scores = fitted.score(np.arange(len(fitted.users)))
        assert (scores == scores[:, :1]).all()
        return
    ndcg = evaluate(fitted, data.test).metrics["ndcg@10"]
    mean, spread = random_order
    assert NDCG_MARGIN > 10 * spread  # the margin is far outside random order's own spread
    assert ndcg > mean + NDCG_MARGIN, (name, ndcg, mean)


def test_predicts_better_than_the_global_mean(name, fitted, data):
    test = data.test
    if not fitted.predicts_ratings:
        with pytest.raises(TypeError, match="does not predict ratings"):
            fitted.predict(test["userId"], test["movieId"])
        return
    rmse = metrics.rmse(test["rating"], fitted.predict(test["userId"], test["movieId"]))
    reference = metrics.rmse(test["rating"], np.full(len(test), data.train["rating"].mean()))
    if name == "global-mean":  # the reference itself
        assert rmse == pytest.approx(reference, rel=1e-6)
    else:
        assert rmse < reference - RMSE_MARGIN, (name, rmse, reference)


@pytest.mark.parametrize("name", refit_cases(), scope="module")
def test_fits_on_ratings_alone_or_names_the_table_it_needs(name, data):
    model = make_model(name, seed=SEED, **contract_settings(name))
    try:
        model.fit(data.train)
    except DataError as error:  # a model that needs side information says which, in one line
        message = str(error)
        assert len(message.splitlines()) == 1 and name in message, message
        assert re.search(r"needs the (movies|tags) table", message), message
        return
    listed = model.top_k(np.arange(len(model.users)), 10)
    assert (listed >= 0).all() and listed.max() < model.n_items


def test_top_k_never_returns_a_movie_rated_in_train(fitted, data):
    users = np.arange(len(fitted.users))
    listed = fitted.top_k(users, k=10)
    pairs = pd.DataFrame({"userId": np.repeat(fitted.users.decode(users), 10),
                          "movieId": np.where(listed.ravel() >= 0,
                                              fitted.items.decode(np.maximum(listed.ravel(), 0)),
                                              -1)})
    pairs = pairs[listed.ravel() >= 0]
    assert len(pairs) == listed.size  # every user has hundreds of unrated movies
    rated = pairs.merge(data.train[["userId", "movieId"]], on=["userId", "movieId"])
    assert rated.empty, rated.head()
    assert all(len(set(row)) == len(row) for row in listed)  # no movie twice in a list


def test_top_k_ranks_every_unrated_movie_by_score(fitted):
    users = np.arange(0, len(fitted.users), 15)
    listed = fitted.top_k(users, k=fitted.n_items)
    scores = fitted.score(users)
    seen = fitted.seen[users].toarray() > 0
    for row, ranked in enumerate(listed):
        ranked = ranked[ranked >= 0]
        expected = np.flatnonzero(~seen[row] & np.isfinite(scores[row]))
        np.testing.assert_array_equal(np.sort(ranked), expected)
        along = scores[row, ranked].astype(np.float64)
        assert (np.diff(along) <= 1e-5 * max(1.0, np.abs(along).max())).all()  # best first


def test_top_k_lists_the_ten_best_by_score_as_brute_force_does(fitted):
    # the fast paths (one product, one sort, the multitask candidates) against a brute force
    # over score(): the listed movies' scores are the ten best unrated ones, best first
    users = np.arange(len(fitted.users))
    listed = fitted.top_k(users, k=10)
    scores = fitted.score(users).astype(np.float64)
    scores[fitted.seen[users].toarray() > 0] = -np.inf
    best = -np.sort(-scores, axis=1)[:, :10]
    got = np.take_along_axis(scores, np.maximum(listed, 0), axis=1)
    np.testing.assert_allclose(got, best, rtol=1e-5, atol=1e-6)


def test_recommend_lists_the_top_k_with_titles_and_refuses_unknown_users(fitted, data):
    user = int(fitted.users.ids[3])
    listed = fitted.recommend(user, k=10, movies=data.movies)
    top = fitted.top_k(fitted.users.encode([user]), 10)[0]
    assert listed["rank"].tolist() == list(range(1, 11))
    assert listed["movieId"].tolist() == fitted.items.decode(top).tolist()
    titles = data.movies.set_index("movieId")["title"]
    assert listed["title"].tolist() == titles.loc[listed["movieId"]].tolist()
    with pytest.raises(KeyError, match="not in the training data"):
        fitted.recommend(int(data.train["userId"].max()) + 1)


def test_save_then_load_gives_identical_answers(name, fitted, data, newcomer, tmp_path):
    loaded = load_model(fitted.save(tmp_path / name))
    assert type(loaded) is type(fitted) and loaded.name == name
    assert loaded.settings == fitted.settings and loaded.seed == fitted.seed
    assert loaded.meta == fitted.meta  # fit time, fingerprints, epochs: what caching reads
    users = np.arange(len(fitted.users))
    np.testing.assert_array_equal(loaded.score(users), fitted.score(users))
    np.testing.assert_array_equal(loaded.top_k(users, 10), fitted.top_k(users, 10))
    if fitted.predicts_ratings:
        pairs = data.test["userId"], data.test["movieId"]
        np.testing.assert_array_equal(loaded.predict(*pairs), fitted.predict(*pairs))
    if fitted.folds_in:
        np.testing.assert_array_equal(loaded.fold_in(newcomer), fitted.fold_in(newcomer))


def test_movies_outside_train_score_minus_inf_where_the_model_says_so(fitted, newcomer, data):
    # the cold-movie protocol does not fit such a model: it relies on this answer
    if fitted.scores_new_movies or not fitted.folds_in:
        pytest.skip(f"{fitted.name} scores movies outside train (or does not fold in)")
    outside = np.setdiff1d(data.movies["movieId"], fitted.items.ids)[:5]
    unknown = np.r_[outside, data.movies["movieId"].max() + np.arange(1, 4)]
    assert np.isneginf(fitted.fold_in(newcomer, unknown)).all()


def test_fold_in_scores_a_new_user_where_the_model_says_it_can(fitted, newcomer):
    assert newcomer["userId"].iloc[0] not in set(fitted.users.ids)
    rows, user_ids = history_matrix(fitted, newcomer)
    if not fitted.folds_in:
        with pytest.raises(NotImplementedError):
            fitted.fold_in(newcomer)
        with pytest.raises(NotImplementedError):
            fitted.score_history(rows, user_ids=user_ids)
        return
    before = fitted.score(np.arange(5))
    scores = fitted.fold_in(newcomer)
    assert scores.shape == (1, fitted.n_items) and scores.dtype == np.float32
    assert not np.isnan(scores).any()
    np.testing.assert_array_equal(fitted.fold_in(newcomer), scores)  # deterministic
    np.testing.assert_array_equal(fitted.score_history(rows, user_ids=user_ids), scores)
    some = fitted.items.ids[::7]  # the same scores, to float32 rounding (other shapes)
    np.testing.assert_allclose(fitted.fold_in(newcomer, movie_ids=some), scores[:, ::7],
                               rtol=1e-5)
    np.testing.assert_array_equal(fitted.score(np.arange(5)), before)  # the model is unchanged


def test_bad_settings_are_one_line_errors_at_construction(name):
    cases = list(bad_settings(name))  # an unknown name always; the rest per typed setting
    for key, value, why in cases:
        with pytest.raises(SettingError) as error:
            make_model(name, **{key: value})
        message = str(error.value)
        assert len(message.splitlines()) == 1, (why, message)
        assert message.startswith(f"{name}:") and key in message, (why, message)


def test_large_data_settings_are_settings_of_the_model(name):
    large = model_class(name).large_data  # what benchmarks/scale.py builds each model with
    if large is None:
        pytest.skip(f"{name} is not run at MovieLens-25M scale (large_data is None)")
    settings = make_model(name, **large).settings
    assert {key: getattr(settings, key) for key in large} == large


def test_settings_are_frozen_and_the_fit_keeps_them(name, fitted):
    asked = contract_settings(name)
    assert fitted.settings == model_class(name).Settings.of(name, asked)
    assert all(getattr(fitted.settings, key) == value for key, value in asked.items())
    key = next(iter(type(fitted.settings).model_fields), "anything")
    with pytest.raises(ValidationError, match="frozen"):
        setattr(fitted.settings, key, getattr(fitted.settings, key, 1))


@pytest.mark.parametrize("name", refit_cases(), scope="module")
def test_the_same_seed_gives_the_same_scores(name, fitted, data):
    again = fit(name, data, seed=SEED)
    users = np.arange(len(fitted.users))
    np.testing.assert_array_equal(again.score(users), fitted.score(users))
    if fitted.predicts_ratings:
        pairs = data.test["userId"], data.test["movieId"]
        np.testing.assert_array_equal(again.predict(*pairs), fitted.predict(*pairs))
