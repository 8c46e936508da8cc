"""Feature embedding (seed 000): the density kernel, cold movies and new users from content."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recommender.models import load_model, make_model
from recommender.models.feature_embedding import density, density_scores, method_comparison
from recommender.data.synthetic import planted_clusters

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
    model = make_model("feature-embedding", **FAST).fit(train, movies=movies)
    return ratings, movies, cold, train, model


def test_ranks_cold_movies_of_the_users_cluster_first(clusters):
    ratings, movies, cold, train, model = clusters
    users = np.unique(train["userId"])
    for method in ("network", "density"):
        scores = model.scores_by_method(train, cold, method)
        assert np.isfinite(scores).all()
        cluster = (cold - 1) // 50
        mine = cluster[None, :] == ((users - 1) % 4)[:, None]
        # every user's best cold movie is one of their own cluster (random: 25%)
        best = scores.argmax(axis=1)
        assert mine[np.arange(len(users)), best].mean() > 0.95, method


def test_fold_in_a_brand_new_user_and_a_brand_new_movie(clusters):
    ratings, movies, cold, train, model = clusters
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


def test_content_terms_score_cold_movies_only(clusters, monkeypatch):
    ratings, movies, cold, train, model = clusters
    rows = model.catalogue.encode(cold)
    assert (model.content_weight[model.rows] == 0).all()  # train movies have an id bias
    assert (model.content_weight[rows] > 0).all()
    history = train[train["userId"].isin([1, 2])]
    history = history.assign(rating=np.where(np.arange(len(history)) % 3, 4.5, 2.0))
    matrix = sp.csr_matrix((history["rating"].to_numpy(),
                            (history["userId"].to_numpy() - 1,
                             model.items.encode(history["movieId"]))), shape=(2, len(model.items)))
    train_features = model.features[model.rows].toarray()
    for profile, counted in (("watched", matrix.toarray() > 0), ("liked", matrix.toarray() >= 4)):
        monkeypatch.setitem(model.params, "profile", profile)
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


def test_method_comparison_scores_the_same_users(clusters):
    ratings, movies, cold, train, model = clusters
    table = method_comparison(model, train, ratings[ratings["movieId"].isin(cold)])
    assert list(table.columns) == ["userId", "network", "density"]
    assert len(table) > 300 and table[["network", "density"]].mean().min() > 0.5


def test_needs_movies_and_a_known_method(clusters):
    with pytest.raises(ValueError, match="movies table"):
        make_model("feature-embedding", **FAST).fit(clusters[3])
    with pytest.raises(ValueError, match="method"):
        make_model("feature-embedding", method="kde")
    with pytest.raises(ValueError, match="profile"):
        make_model("feature-embedding", profile="rated")


def test_save_load_round_trip(clusters, tmp_path):
    ratings, movies, cold, train, model = clusters
    loaded = load_model(model.save(tmp_path / "fe"))
    history = train[train["userId"] < 20]
    for method in ("network", "density"):
        np.testing.assert_array_equal(model.scores_by_method(history, cold, method),
                                      loaded.scores_by_method(history, cold, method))
    np.testing.assert_array_equal(model.score(np.arange(5)), loaded.score(np.arange(5)))
