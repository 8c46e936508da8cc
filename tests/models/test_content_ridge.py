"""Content ridge: the closed form against a per-user ridge regression, the smoothing in rank
space, brand-new movies on planted genres, and cold movies of planted synthetic data."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from recommender.core.errors import DataError
from recommender.data import splits
from recommender.evaluation import item_cold_start
from recommender.models import make_model

# Movies 1-10 "Horror" (1980), 11-20 "Musical" (2005); users 1-10 love horror and dislike
# musicals, users 11-20 the reverse. Nobody rated movies 21 (Horror) and 22 (Musical).
IDS = np.arange(1, 23)
HORROR = (IDS <= 10) | (IDS == 21)
MOVIES = pd.DataFrame({
    "movieId": IDS,
    "title": np.where(HORROR, [f"Night Terror {i} (1980)" for i in IDS],
                      [f"Happy Song {i} (2005)" for i in IDS]),
    "year": np.where(HORROR, 1980, 2005),
    "genres": [["Horror"] if h else ["Musical"] for h in HORROR]})
NEWCOMER = pd.DataFrame({"userId": [500, 500, 500], "movieId": [1, 2, 12],
                         "rating": [5.0, 4.0, 1.0]})


def _ratings() -> pd.DataFrame:
    """Each user rates the train movies whose id plus the user's is not a multiple of 3 (13
    or 14 of them): 5 stars to their genre, 1 to the other."""
    pairs = [(user, movie) for user in range(1, 21) for movie in range(1, 21)
             if (user + movie) % 3]
    users, movies = np.array(pairs).T
    return pd.DataFrame({"userId": users, "movieId": movies,
                         "rating": np.where((movies <= 10) == (users <= 10), 5.0, 1.0)})


def _ridge_scores(model, targets: np.ndarray, movie_ids) -> np.ndarray:
    """What scikit-learn's ridge regression (no intercept) from the train movies' content to
    ``targets`` predicts for ``movie_ids``."""
    train = model.features[model.catalogue.encode(model.items.ids)]
    fitted = Ridge(alpha=model.settings.ridge, fit_intercept=False).fit(train, targets)
    return fitted.predict(model.features[model.catalogue.encode(movie_ids)])


def _newcomer_row(model) -> np.ndarray:
    row = np.zeros(model.n_items)
    row[model.items.encode(NEWCOMER["movieId"])] = NEWCOMER["rating"]
    return row


def test_scores_are_a_ridge_regression_from_content_to_powered_ratings():
    model = make_model("content-ridge", smoothing=0.0, rating_power=2.0).fit(
        _ratings(), movies=MOVIES)
    expected = _ridge_scores(model, _newcomer_row(model) ** 2, [21, 22, 3])
    assert model.fold_in(NEWCOMER, [21, 22, 3])[0] == pytest.approx(expected, rel=1e-4,
                                                                     abs=1e-5)


def test_smoothing_regresses_on_targets_plus_the_rank_projection():
    model = make_model("content-ridge", smoothing=0.5, rank=3).fit(_ratings(), movies=MOVIES)
    targets = _newcomer_row(model) ** model.settings.rating_power
    projected = (targets != 0) @ model.basis @ model.basis.T  # x V V^T, made in full here
    smoothed = targets + 0.5 * np.linalg.norm(targets) / np.linalg.norm(projected) * projected
    expected = _ridge_scores(model, smoothed, [21, 22, 3])
    assert model.fold_in(NEWCOMER, [21, 22, 3])[0] == pytest.approx(expected, rel=1e-3,
                                                                     abs=1e-4)


def test_brand_new_movie_is_scored_from_its_features():
    model = make_model("content-ridge").fit(_ratings(), movies=MOVIES)
    scores = model.fold_in(NEWCOMER, [21, 22, 999])[0]
    assert scores[0] > scores[1]  # the new horror movie beats the new musical
    assert scores[2] == -np.inf  # not in the movies table: cannot be scored
    warm = model.score(model.users.encode([15]))[0]  # a musical fan, from their train ratings
    musical = model.items.ids > 10
    assert warm[musical].mean() > warm[~musical].mean()


def test_needs_the_movies_table():
    with pytest.raises(DataError, match="content-ridge needs the movies table"):
        make_model("content-ridge").fit(_ratings())


def test_ranks_cold_movies_of_planted_data_above_chance(synthetic_small):
    train, test = splits.cold_start_split(synthetic_small.ratings, "movie", 0.2, seed=0)
    model = make_model("content-ridge").fit(train, movies=synthetic_small.movies)
    result = item_cold_start(model, train, test).metrics
    assert result["users"] > 200
    assert result["auc"] > 0.6  # genres carry the planted tastes (random order: 0.5; 0.667 here)
