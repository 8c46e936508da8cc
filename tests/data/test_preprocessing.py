"""Id encoders, sparse matrices, count filters, Cinematch's ratings matrix, movie features."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recommender.core.errors import DataError
from recommender.data.preprocessing import (IdEncoder, Interactions, filter_min_counts,
                                       movie_features, popularity_prior, ratings_matrix,
                                       weighted_content)

RATINGS = pd.DataFrame({"userId": [10, 10, 20, 30, 30, 30],
                        "movieId": [5, 7, 5, 5, 7, 9],
                        "rating": [4.0, 3.0, 5.0, 2.0, 1.0, 4.5],
                        "timestamp": [1, 2, 3, 4, 5, 6]})


def test_encoder_is_contiguous_ascending_and_explicit_about_unknowns():
    enc = IdEncoder.fit([30, 10, 20, 10])
    assert enc.ids.tolist() == [10, 20, 30]
    assert enc.encode([20, 30]).tolist() == [1, 2]
    assert enc.encode([20, 99], unknown="missing").tolist() == [1, -1]
    with pytest.raises(KeyError, match="unknown id 99"):
        enc.encode([99])
    assert enc.decode([2, 0]).tolist() == [30, 10]


def test_interactions_matrix_is_sparse_users_by_items():
    data = Interactions.from_ratings(RATINGS)
    m = data.matrix()
    assert m.shape == (3, 3) and m.nnz == 6
    assert m[2, 2] == pytest.approx(4.5)  # user 30, movie 9
    assert data.matrix("binary").sum() == 6
    assert data.item_counts().tolist() == [3, 2, 1]


def test_interactions_refuse_empty_data():
    with pytest.raises(DataError, match="empty"):
        Interactions.from_ratings(RATINGS.iloc[:0])


def test_filter_min_counts_iterates_to_a_fixed_point():
    out = filter_min_counts(RATINGS, min_user=2, min_movie=2)
    assert out.groupby("userId").size().min() >= 2
    assert out.groupby("movieId").size().min() >= 2
    assert set(out["movieId"]) == {5, 7} and set(out["userId"]) == {10, 30}


def test_ratings_matrix_rows_movies_columns_users_capped():
    rm = ratings_matrix(RATINGS, n_movies=2, n_users=2)
    assert rm.Y.shape == (2, 2)  # capped
    assert rm.movie_ids.tolist() == [5, 7] and rm.user_ids.tolist() == [10, 30]
    assert rm.Y[0, 1] == pytest.approx(2.0) and rm.R.sum() == 4
    assert rm.summary()["sparsity"] == pytest.approx(0.0)
    full = ratings_matrix(RATINGS)
    assert full.Y.shape == (3, 3) and full.sparsity == pytest.approx(1 - 6 / 9)


def test_movie_features_align_with_encoder():
    movies = pd.DataFrame({"movieId": [5, 7], "title": ["A (1990)", "B"],
                           "year": pd.array([1990, None], dtype="Int64"),
                           "genres": [["Drama", "Comedy"], ["Drama"]]})
    tags = pd.DataFrame({"userId": [1], "movieId": [7], "tag": ["dark"], "timestamp": [0]})
    items = IdEncoder.fit([5, 7, 9])
    feats = movie_features(movies, items, tags).toarray()
    assert feats.shape == (3, 2 + 2 + 1)  # 2 genres, year, year-known, 1 tag term
    assert feats[2, :2].sum() == 0  # movie 9 is unknown to the movies table
    assert feats[1, -1] > 0 and feats[0, -1] == 0


def test_user_activity_buckets_are_one_definition():
    from recommender.data.preprocessing import ACTIVITY_LABELS, user_activity

    train = pd.DataFrame({"userId": [1] * 25 + [2], "movieId": range(26), "rating": 4.0})
    buckets = user_activity([1, 2, 3], train)
    assert list(buckets) == ["21-50", "1-20", "0"]
    assert list(buckets.categories) == list(ACTIVITY_LABELS)


def test_weighted_content_weighs_blocks_and_gives_unit_rows():
    features = sp.csr_matrix(np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    names = ["genre:Drama", "genre:Comedy", "title:love"]
    got = weighted_content(features, names, {"genre": 1.0, "title": 0.5}).toarray()
    np.testing.assert_allclose(got[0], np.array([1.0, 0.0, 0.5]) / np.sqrt(1.25), rtol=1e-6)
    np.testing.assert_allclose(got[1], [0.0, 1.0, 0.0])
    assert not got[2].any()  # no content stays empty (no division by zero)
    assert weighted_content(features, names, {"genre": 1.0, "title": 0.0})[0, 2] == 0.0


def test_popularity_prior_ranks_unrated_movies_by_their_content():
    # feature 0 marks much-watched movies, feature 1 rarely watched ones
    rng = np.random.default_rng(0)
    popular = rng.random(40) < 0.5
    features = sp.csr_matrix(np.c_[popular, ~popular].astype(np.float32))
    counts = np.where(popular, 100, 2)
    known = np.arange(30)  # the last 10 movies are unrated (cold)
    prior = popularity_prior(features, counts, known)
    assert prior[known].mean() == pytest.approx(0.0, abs=1e-5)
    assert prior[known].std() == pytest.approx(1.0, rel=1e-4)
    cold = np.arange(30, 40)
    assert (prior[cold][popular[cold]].min() > prior[cold][~popular[cold]].max())
