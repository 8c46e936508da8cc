"""make_synthetic: MovieLens shape, long tails, repeatability and a planted model to learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommender.core.errors import DataError
from recommender.models import make_model
from recommender.data.splits import per_user_split
from recommender.data.synthetic import make_synthetic, planted_clusters


def test_shape_and_dtypes(synthetic_small):
    r, movies = synthetic_small.ratings, synthetic_small.movies
    assert len(r) == 15_000
    assert [str(t) for t in r.dtypes] == ["int32", "int32", "float32", "int64"]
    assert r["userId"].between(1, 300).all() and r["movieId"].between(1, 400).all()
    assert r["userId"].nunique() == 300
    assert set(np.unique(r["rating"])) <= set(np.arange(1, 11) / 2)
    assert not r.duplicated(["userId", "movieId"]).any()
    assert r["timestamp"].between(820_454_400, 1_696_118_400).all()
    assert (r.groupby("userId").size() >= 20).all()
    assert list(movies.columns) == ["movieId", "title", "year", "genres"]
    assert str(movies["year"].dtype) == "Int64"
    assert movies["title"].str.fullmatch(r"Synthetic Movie \d+ \(\d{4}\)").all()
    genres = set(synthetic_small.truth["genres"])
    assert movies["genres"].map(lambda g: 1 <= len(g) <= 3 and set(g) <= genres).all()
    assert synthetic_small.tags["movieId"].isin(movies["movieId"]).all()


def test_seed_repeats_and_varies():
    a, b = make_synthetic(200, 300, 8_000, seed=7), make_synthetic(200, 300, 8_000, seed=7)
    pd.testing.assert_frame_equal(a.ratings, b.ratings)
    pd.testing.assert_frame_equal(a.movies, b.movies)
    assert not make_synthetic(200, 300, 8_000, seed=8).ratings.equals(a.ratings)


def test_popularity_and_activity_have_long_tails(synthetic_small):
    r = synthetic_small.ratings
    movie_counts = np.sort(r["movieId"].value_counts().to_numpy())[::-1]
    assert movie_counts[: len(movie_counts) // 10].sum() > 0.3 * len(r)  # top 10% of movies
    user_counts = r["userId"].value_counts()
    assert user_counts.max() > 4 * user_counts.median()


def test_planted_model_explains_ratings(synthetic_small):
    r, truth = synthetic_small.ratings, synthetic_small.truth
    expected = truth["expected"](r["userId"], r["movieId"])
    assert np.corrcoef(expected, r["rating"])[0, 1] > 0.8
    residual = r["rating"].to_numpy() - expected
    assert abs(residual.mean()) < 0.1 and residual.std() < 0.65  # noise 0.5 + rounding
    # movie factors are mostly their genres' factors
    factors, genres = truth["movie_factors"], truth["genre_matrix"]
    fitted = genres @ np.linalg.lstsq(genres, factors, rcond=None)[0]
    assert 1 - ((factors - fitted) ** 2).sum() / ((factors - factors.mean(0)) ** 2).sum() > 0.6


def test_a_model_learns_the_planted_biases(synthetic_small):
    train, test = per_user_split(synthetic_small.ratings, 0.2, seed=0)
    model = make_model("baseline").fit(train)
    pred = model.predict(test["userId"], test["movieId"])
    truth = synthetic_small.truth["expected"](test["userId"], test["movieId"])
    assert np.corrcoef(pred, truth)[0, 1] > 0.6


@pytest.mark.parametrize("kwargs", [{"n_users": 0}, {"noise": -1.0},
                                    {"n_users": 10, "n_movies": 10, "n_ratings": 60}])
def test_bad_arguments(kwargs):
    with pytest.raises(DataError, match="make_synthetic"):
        make_synthetic(**kwargs)


def test_planted_clusters_never_mix():
    ratings, movies = planted_clusters(n_clusters=3, movies_per_cluster=10, n_users=30,
                                       per_user=5, seed=1)
    assert len(ratings) == 150 and not ratings.duplicated(["userId", "movieId"]).any()
    cluster = (ratings["movieId"] - 1) // 10
    assert (cluster.groupby(ratings["userId"]).nunique() == 1).all()
    assert movies.set_index("movieId").loc[ratings["movieId"], "genres"].map(len).eq(1).all()
    with pytest.raises(ValueError, match="per_user"):
        planted_clusters(movies_per_cluster=5, per_user=6)


@pytest.mark.parametrize("layout", ["csv", "dat", "100k"])
def test_a_written_release_reads_back_in_its_own_layout(tmp_path, layout):
    from recommender.data import load_movielens
    from recommender.data.synthetic import write_release

    data = make_synthetic(n_users=40, n_movies=60, n_ratings=800, seed=2)
    folder = write_release(data, tmp_path / f"ml-synthetic-{layout}", layout)
    back = load_movielens(folder)
    assert back.layout == layout
    pd.testing.assert_frame_equal(back.ratings, data.ratings)
    order = sorted if layout == "100k" else list  # u.item has a flag per genre, no order
    assert [order(g) for g in back.movies["genres"]] == [order(g) for g in data.movies["genres"]]
    assert back.movies["year"].tolist() == data.movies["year"].tolist()
    if layout == "100k":  # as ml-100k: no tags
        assert back.tags is None
    else:
        assert back.tags[["userId", "movieId", "tag"]].values.tolist() == \
            data.tags[["userId", "movieId", "tag"]].values.tolist()
