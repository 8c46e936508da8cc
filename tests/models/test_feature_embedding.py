"""feature-embedding: the density kernel, cold movies and new users from content, the scoring
method chosen per call, both stages in one run, artifacts."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recommender.core.errors import SettingError
from recommender.data.preprocessing import Interactions
from recommender.data.synthetic import planted_clusters
from recommender.models import load_model, make_model
from recommender.models.feature_embedding import density, density_scores
from recommender.reporting.analysis.content import method_comparison

FAST = {"epochs": 3, "head_epochs": 3, "patience": 3, "dim": 16, "hidden": 32,
        "head_hidden": 16, "head_dim": 8, "batch_size": 32}


def test_density_score_by_hand():
    watched = np.array([[1.0, 0.0], [0.0, 1.0]])  # the user's two movies
    candidates = np.array([[1.0, 0.0], [-1.0, 0.0]])
    history = sp.csr_matrix(np.array([[5.0, 3.0]]))
    got = density_scores(history, watched, candidates, sigma=0.5)
    # cos to the two movies: (1, 0) and (-1, 0); kernel exp(-(1 - cos)^2 / (2 * 0.25))
    want = [1.0 + np.exp(-2.0), np.exp(-8.0) + np.exp(-2.0)]
    np.testing.assert_allclose(got[0], want, rtol=1e-6)
    assert density(np.array(1.0), 0.3) == 1.0  # a perfect match weighs most (not least)
    assert density(np.array(0.9), 0.3) > density(np.array(0.2), 0.3)


@pytest.fixture(scope="module")
def clusters():
    """Four taste clusters of 50 movies (one genre each); 20% of the movies held out cold,
    and movie 999 (Genre 2) in the movies table only: nobody has rated it."""
    ratings, movies = planted_clusters(n_clusters=4, movies_per_cluster=50, n_users=400,
                                       per_user=20, seed=1)
    movies = pd.concat([movies, pd.DataFrame({"movieId": [999], "genres": [["Genre 2"]]})],
                       ignore_index=True)
    cold = np.sort(np.random.default_rng(0).choice(np.arange(1, 201), 40, replace=False))
    train = ratings[~ratings["movieId"].isin(cold)]
    epochs = []
    model = make_model("feature-embedding", **FAST).fit(train, movies=movies,
                                                        on_epoch=epochs.append)
    return ratings, movies, cold, train, model, epochs


def _matrix(model, history: pd.DataFrame) -> sp.csr_matrix:
    """``history`` as rows of a users x train-movies ratings matrix (ascending userId)."""
    return Interactions.from_ratings(history, items=model.items).matrix("rating")


@pytest.mark.slow
def test_ranks_cold_movies_of_the_users_cluster_first(clusters):
    ratings, movies, cold, train, model, _ = clusters
    users = np.unique(train["userId"])
    for method in ("network", "density"):
        scores = model.score_history(_matrix(model, train), cold, method=method)
        assert np.isfinite(scores).all()
        cluster = (cold - 1) // 50
        mine = cluster[None, :] == ((users - 1) % 4)[:, None]
        # every user's best cold movie is one of their own cluster (random: 25%)
        best = scores.argmax(axis=1)
        assert mine[np.arange(len(users)), best].mean() > 0.95, method


@pytest.mark.slow
def test_the_method_is_a_call_argument_and_the_setting_stays(clusters):
    ratings, movies, cold, train, model, _ = clusters
    history = train[train["userId"] < 30]
    matrix = _matrix(model, history)
    by_setting = model.fold_in(history, cold)  # method "network", the default
    np.testing.assert_array_equal(model.score_history(matrix, cold), by_setting)
    np.testing.assert_array_equal(model.score_history(matrix, cold, method="network"),
                                  by_setting)
    density_scores_ = model.score_history(matrix, cold, method="density")
    assert not np.allclose(density_scores_, by_setting)
    assert model.settings.method == "network"
    np.testing.assert_array_equal(model.fold_in(history, cold), by_setting)
    # a model whose setting is density answers with the same scores as the per-call choice
    dense = make_model("feature-embedding", method="density", **FAST)
    dense.fit(train, movies=movies)
    np.testing.assert_array_equal(dense.fold_in(history, cold), density_scores_)


@pytest.mark.slow
def test_both_stages_run_once_and_report_epochs(clusters):
    ratings, movies, cold, train, model, epochs = clusters
    meta = model.meta
    assert len(model.history) == 1 and meta["refit"] is False
    assert 1 <= meta["encoder_epochs"] <= FAST["epochs"]
    assert 1 <= meta["best_epoch"] <= meta["epochs_run"] <= FAST["head_epochs"]
    assert meta["validation_metric"] == "ndcg@10" and 0 < meta["validation"] <= 1
    assert 0 < meta["validation_density"] <= 1 and meta["features"] > 4
    # on_epoch after every epoch of stage 1, then of stage 2 (numbered from 1 again)
    assert epochs[-meta["epochs_run"]:] == list(range(1, meta["epochs_run"] + 1))
    assert len(epochs) > meta["epochs_run"]


@pytest.mark.slow
def test_fold_in_a_brand_new_user_and_a_brand_new_movie(clusters):
    ratings, movies, cold, train, model, _ = clusters
    warm = np.unique(train["movieId"])
    zero, two = warm[warm <= 50], warm[(warm > 100) & (warm <= 150)]  # clusters 0 and 2
    history = pd.DataFrame({"userId": [5000] * 3 + [6000] * 2,  # users unknown to train
                            "movieId": [*two[:3], *zero[:2]], "rating": 4.0})
    candidates = [999, zero[-1], two[-1], 12345]
    scores = model.fold_in(history, candidates)
    assert scores.shape == (2, 4)
    assert np.isinf(scores[:, 3]).all()  # no content, no ratings: cannot be scored
    assert np.isfinite(scores[:, :3]).all()
    assert scores[0, 0] > scores[1, 0]  # the new Genre-2 movie suits the cluster-2 user
    assert scores[0, 2] > scores[0, 1] and scores[1, 1] > scores[1, 2]


@pytest.mark.slow
def test_content_terms_score_cold_movies_only(clusters, monkeypatch):
    ratings, movies, cold, train, model, _ = clusters
    rows = model.catalogue.encode(cold)
    assert (model.content_weight[model.rows] == 0).all()  # train movies have an id bias
    assert (model.content_weight[rows] > 0).all()
    history = train[train["userId"].isin([1, 2])]
    history = history.assign(rating=np.where(np.arange(len(history)) % 3, 4.5, 2.0))
    matrix = _matrix(model, history)
    train_features = model.features[model.rows].toarray()
    liked = model.settings
    for profile, counted in (("watched", matrix.toarray() > 0), ("liked", matrix.toarray() >= 4)):
        monkeypatch.setattr(model, "settings", liked.replace(model.name, profile=profile))
        # by hand: cosine of the sum of the counted movies' unit content vectors with each movie
        sums = counted @ train_features
        want = sums / np.linalg.norm(sums, axis=1, keepdims=True) @ model.features[rows].toarray().T
        cosine = model.content_cosine(matrix, rows)
        np.testing.assert_allclose(cosine, want, rtol=1e-5, atol=1e-6)
    # the network's logit of a cold movie carries exactly weight x cosine (liked profile)
    logit = lambda p: np.log(p) - np.log1p(-p)  # noqa: E731
    with_terms = logit(model.fold_in(history, cold).astype(np.float64))
    weight = model.content_weight[rows]
    monkeypatch.setattr(model, "content_weight", np.zeros_like(model.content_weight))
    without = logit(model.fold_in(history, cold).astype(np.float64))
    np.testing.assert_allclose(with_terms - without,
                               weight * cosine, rtol=0.01)  # float32 sigmoid near 1


@pytest.mark.slow
def test_method_comparison_scores_the_same_users(clusters):
    ratings, movies, cold, train, model, _ = clusters
    table = method_comparison(model, train, ratings[ratings["movieId"].isin(cold)])
    assert list(table.index) == ["network", "density"]
    assert table["users"].nunique() == 1 and table["users"].iloc[0] > 300
    assert (table["candidates"] == len(cold)).all()
    assert table["ndcg@10"].min() > 0.5 and table["auc"].min() > 0.8


def test_refit_is_refused():
    """There is no refit: the validation movies' ratings stay out of training."""
    with pytest.raises(SettingError, match="refit"):
        make_model("feature-embedding", refit=True)


@pytest.mark.slow
def test_every_scoring_method_survives_save_and_load(clusters, tmp_path):
    ratings, movies, cold, train, model, _ = clusters
    loaded = load_model(model.save(tmp_path / "fe"))
    matrix = _matrix(model, train[train["userId"] < 20])
    for method in ("network", "density", "mean"):
        np.testing.assert_array_equal(model.score_history(matrix, cold, method=method),
                                      loaded.score_history(matrix, cold, method=method))
