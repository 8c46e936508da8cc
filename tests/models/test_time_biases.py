"""Time-aware biases: planted drift and day effects are recovered, the fit solves its least
squares problem, a prediction is the formula by hand, a prediction without a date is the one
at the user's last train date, ranking scores are the predicted ratings. What every model does
(save/load, fold-in, settings) is in test_contract.py."""

import numpy as np
import pandas as pd
import pytest

from recommender import metrics
from recommender.core.errors import UsageError
from recommender.data import make_synthetic
from recommender.data.splits import per_user_split
from recommender.models import make_model
from recommender.models.time_biases import DAY

SESSIONS = 4  # rating days per user in the planted set
BETA = 0.2  # the shipped exponent, also the planted one


@pytest.fixture(scope="module")
def planted():
    """A planted rank-4 set whose ratings also move in time: each user rates on four days
    over two years, with a slope ``alpha_u`` along ``dev_u(t)`` and a bias per rating day."""
    data = make_synthetic(n_users=200, n_movies=300, n_ratings=12_000, rank=4, seed=3)
    ratings = data.ratings.copy()
    rng = np.random.default_rng(3)
    n_users = int(ratings["userId"].max())
    user = ratings["userId"].to_numpy() - 1
    days = np.sort(rng.integers(0, 730, (n_users, SESSIONS)), axis=1) + 15_000
    session = rng.integers(0, SESSIONS, len(ratings))
    day = days[user, session]
    ratings["timestamp"] = day * DAY + rng.integers(0, 3_600, len(ratings))
    mean_day = (pd.Series(ratings["timestamp"] / DAY).groupby(user).mean()
                .reindex(range(n_users)).to_numpy())
    gap = ratings["timestamp"].to_numpy() / DAY - mean_day[user]
    drift = rng.normal(0.0, 0.25, n_users)
    day_bias = rng.normal(0.0, 0.5, (n_users, SESSIONS))
    ratings["rating"] = (ratings["rating"] + drift[user] * np.sign(gap) * np.abs(gap) ** BETA
                         + day_bias[user, session]).astype(np.float32)
    train, test = per_user_split(ratings, 0.2, seed=3)
    return train, test, {"drift": drift, "day_bias": day_bias, "days": days}


@pytest.fixture(scope="module")
def fitted(planted):
    return make_model("time-biases").fit(planted[0])


def test_planted_drift_and_day_biases_are_recovered(fitted, planted):
    train, test, truth = planted
    drift = fitted.terms.drift[fitted.users.encode(np.arange(1, len(truth["drift"]) + 1),
                                                   unknown="missing")]
    assert np.corrcoef(drift, truth["drift"])[0, 1] > 0.8
    # a user's bias on each of their rating days, less its mean over the four days (the
    # mean is b_u's, which the planted set draws from its own users' biases)
    t = fitted.terms
    index = fitted.users.encode(np.arange(1, len(truth["drift"]) + 1))[:, None]
    when = truth["days"] * DAY
    found = (t.drift[index] * t.deviation(index, when) + t.day_terms(index, when))
    gap = truth["days"] - t.mean_day[index]
    planted_bias = (truth["drift"][:, None] * np.sign(gap) * np.abs(gap) ** BETA
                    + truth["day_bias"])
    centred = [x - x.mean(axis=1, keepdims=True) for x in (found, planted_bias)]
    assert np.corrcoef(centred[0].ravel(), centred[1].ravel())[0, 1] > 0.85

    timed = metrics.rmse(test["rating"], fitted.predict(test["userId"], test["movieId"],
                                                        test["timestamp"]))
    biases = make_model("baseline").fit(train)
    plain = metrics.rmse(test["rating"], biases.predict(test["userId"], test["movieId"]))
    assert timed < plain - 0.15, (timed, plain)


def test_the_fit_solves_its_least_squares_problem(planted):
    """At the optimum each block is its ridge solution: for every movie the residuals of its
    ratings sum to ``reg_item b_i``, for every user their residuals times ``dev_u(t)`` to
    ``reg_drift alpha_u``."""
    train = planted[0]
    model = make_model("time-biases", sweeps=300).fit(train)
    t, s = model.terms, model.settings
    u = model.users.encode(train["userId"].to_numpy())
    i = model.items.encode(train["movieId"].to_numpy())
    times = train["timestamp"].to_numpy()
    residual = train["rating"].to_numpy(np.float64) - t.rate(model.global_mean, u, i, times)
    np.testing.assert_allclose(np.bincount(i, residual, model.n_items),
                               s.reg_item * t.item_bias, atol=2e-3)
    np.testing.assert_allclose(np.bincount(u, residual * t.deviation(u, times), len(model.users)),
                               s.reg_drift * t.drift, atol=2e-3)


def test_a_prediction_is_the_formula_by_hand(fitted, planted):
    test = planted[1].head(30)
    t = fitted.terms
    by_hand = []
    for user_id, movie_id, when in zip(test["userId"], test["movieId"], test["timestamp"]):
        u, i = fitted.users.encode([user_id])[0], fitted.items.encode([movie_id],
                                                                      unknown="missing")[0]
        gap = when / DAY - t.mean_day[u]
        day = (when - t.first_time) // DAY
        span = (t.last_train_time - t.first_time) // DAY + 1
        keys = list(t.day_keys)
        bias_day = t.day_bias[keys.index(u * span + day)] if u * span + day in keys else 0.0
        share = (when - t.first_time) / (t.last_train_time - t.first_time)
        b = min(int(share * fitted.settings.bins), fitted.settings.bins - 1)
        movie = t.item_bias[i] + t.bin_bias[i, b] if i >= 0 else 0.0
        by_hand.append(fitted.global_mean + t.user_bias[u] + t.drift[u] * np.sign(gap)
                       * abs(gap) ** BETA + bias_day + movie)
    predicted = fitted.predict(test["userId"], test["movieId"], test["timestamp"])
    np.testing.assert_allclose(predicted, np.clip(by_hand, *fitted.rating_scale), atol=1e-4)


def test_without_a_date_a_user_is_asked_about_their_last_train_date(fitted, planted):
    train, test, _ = planted
    last = train.groupby("userId")["timestamp"].max()
    at_last = fitted.predict(test["userId"], test["movieId"],
                             last.loc[test["userId"]].to_numpy())
    np.testing.assert_array_equal(fitted.predict(test["userId"], test["movieId"]), at_last)
    np.testing.assert_array_equal(
        fitted.predict(test["userId"], test["movieId"], np.zeros(len(test), np.int64)), at_last)
    assert not np.array_equal(
        fitted.predict(test["userId"], test["movieId"], test["timestamp"]), at_last)


def test_ranking_scores_are_the_predicted_ratings_at_the_last_train_date(fitted):
    users = np.arange(0, len(fitted.users), 25)
    scores = fitted.score(users)
    for row, u in enumerate(users):
        movies = fitted.items.ids
        predicted = fitted.predict(np.full(len(movies), fitted.users.ids[u]), movies)
        np.testing.assert_allclose(np.clip(scores[row], *fitted.rating_scale), predicted,
                                   atol=1e-5)


def test_strangers_and_dates_outside_train_fall_back_to_what_is_known(fitted, planted):
    t = fitted.terms
    movie = int(fitted.items.ids[0])
    stranger = fitted.predict([10**6], [movie], [t.last_train_time + 400 * DAY])[0]
    latest = t.item_bias[0] + t.bin_bias[0, -1]
    assert stranger == pytest.approx(np.clip(fitted.global_mean + latest,
                                             *fitted.rating_scale), abs=1e-5)
    unknown_movie = fitted.predict([int(fitted.users.ids[0])], [10**6])
    assert np.isfinite(unknown_movie).all()


def test_bad_dates_are_one_line_errors(fitted):
    with pytest.raises(UsageError, match="one Unix timestamp per pair"):
        fitted.predict([1, 2], [1, 2], [1_000_000])
    with pytest.raises(UsageError, match=">= 0"):
        fitted.predict([1], [1], [-5])
    with pytest.raises(UsageError, match="one Unix timestamp per pair"):
        fitted.predict([1], [1], ["yesterday"])
