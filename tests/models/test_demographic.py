"""Weighted popularity: the IMDB formula on a hand-computed case, charts, fold-in."""

import numpy as np
import pandas as pd
import pytest

from recommender.models import make_model
from recommender.models.demographic import weighted_chart, weighted_rating

# movie 1: two 5s; movie 2: four 4s; movie 3: one 1. C = (5 + 4 + 1) / 3; the median vote
# count m = 2 (quantile 0.5).
RATINGS = pd.DataFrame({"userId": [1, 2, 1, 2, 3, 4, 5], "movieId": [1, 1, 2, 2, 2, 2, 3],
                        "rating": [5.0, 5.0, 4.0, 4.0, 4.0, 4.0, 1.0]})
MOVIES = pd.DataFrame({"movieId": [1, 2, 3, 4], "title": ["A", "B", "C", "D"],
                       "genres": [["Drama"], ["Comedy"], ["Drama"], ["Drama"]]})
C = 10 / 3
EXPECTED = [2 / 4 * 5 + 2 / 4 * C, 4 / 6 * 4 + 2 / 6 * C, 1 / 3 * 1 + 2 / 3 * C]


def test_weighted_rating_hand_computed():
    got = weighted_rating([2, 4, 1, 0], [5.0, 4.0, 1.0, np.nan], m=2, c=C)
    np.testing.assert_allclose(got, EXPECTED + [C])  # no votes: the prior mean
    assert weighted_rating([0], [np.nan], m=0, c=3.0)[0] == 3.0


def test_model_ranks_by_weighted_rating_and_folds_in_new_movies():
    model = make_model("weighted-popularity", quantile=0.5).fit(RATINGS)
    np.testing.assert_allclose(model.score(np.array([0]))[0], EXPECTED, rtol=1e-6)
    scores = model.fold_in(pd.DataFrame({"userId": [99], "movieId": [1], "rating": [2.0]}),
                           [3, 4, 1])
    np.testing.assert_allclose(scores[0], [EXPECTED[2], C, EXPECTED[0]], rtol=1e-6)


def test_charts_overall_and_per_genre():
    chart = weighted_chart(RATINGS, MOVIES, quantile=0.5)
    assert list(chart["title"]) == ["A", "B"]  # movie 3 has fewer than m = 2 votes
    assert chart.attrs["m"] == 2 and chart.attrs["C"] == pytest.approx(C)
    drama = weighted_chart(RATINGS, MOVIES, quantile=0.0, genre="Drama")
    assert drama.attrs["C"] == pytest.approx(3.0) and drama.attrs["m"] == 1  # movies 1 and 3
    assert list(drama["movieId"]) == [1, 3]
    with pytest.raises(ValueError, match="no rated movie"):
        weighted_chart(RATINGS, MOVIES, genre="Western")
    with pytest.raises(ValueError, match="quantile"):
        weighted_chart(RATINGS, quantile=1.5)
