"""The neighbourhood model: a prediction is Koren's formula computed by hand from the learned
weights, ranking (sparse products) gives the same numbers as the pairwise formula, the
neighbours are the most alike movies by brute force, it beats the biases on planted data, and
a train user folded in from their own ratings is scored as the model scores them. What every
model does (save/load, fold-in of a new user, settings) is in test_contract.py."""

import numpy as np
import pytest
import scipy.sparse as sp

from contract import fold_in_agreement, planted_split, rmse_against_biases
from recommender.models import make_model
from recommender.models.neighbourhood import neighbours

QUICK = {"epochs": 4, "neighbours": 20, "dim": 4, "refit": False}


@pytest.fixture(scope="module")
def split():
    return planted_split()


@pytest.fixture(scope="module")
def fitted(split):
    return make_model("neighbourhood", seed=2, **QUICK).fit(split[0])


def test_a_prediction_is_the_formula_by_hand(fitted, split):
    test = split[1].head(40)
    u = fitted.users.encode(test["userId"].to_numpy(), unknown="missing")
    i = fitted.items.encode(test["movieId"].to_numpy(), unknown="missing")
    r, module = fitted.residuals, fitted.module
    residual = r.matrix.toarray()
    rated = np.zeros_like(residual, bool)  # the history it kept (without refit: 90% of train)
    coo = r.matrix.tocoo()
    rated[coo.row, coo.col] = True
    w, c = module.weights.numpy(), module.offsets.numpy()
    p, q = module.user_factors.numpy(), module.item_factors.numpy()
    by_hand = []
    for user, item in zip(u, i):
        if user < 0 or item < 0:
            by_hand.append(np.nan)
            continue
        total, count = 0.0, 0
        for slot, j in enumerate(r.neighbours[item]):
            if rated[user, j]:
                total += residual[user, j] * w[item, slot] + c[item, slot]
                count += 1
        by_hand.append(r.mu + module.user_bias.numpy()[user] + module.item_bias.numpy()[item]
                       + p[user] @ q[item] + total / np.sqrt(max(count, 1)))
    by_hand = np.asarray(by_hand)
    known = np.isfinite(by_hand)
    assert known.sum() > 30 and np.abs(w).max() > 0  # the weights were learned
    predicted = fitted.predict(test["userId"], test["movieId"])
    np.testing.assert_allclose(predicted[known], np.clip(by_hand[known], *fitted.rating_scale),
                               atol=1e-4)


def test_ranking_scores_are_the_predicted_ratings(fitted):
    users = np.arange(0, len(fitted.users), 20)
    scores = fitted.score(users)
    pairs_u = np.repeat(users, fitted.n_items)
    pairs_i = np.tile(np.arange(fitted.n_items), len(users))
    predicted = fitted.predict(fitted.users.decode(pairs_u), fitted.items.decode(pairs_i))
    np.testing.assert_allclose(np.clip(scores.ravel(), *fitted.rating_scale), predicted,
                               atol=1e-4)


def test_neighbours_are_the_most_alike_movies_by_brute_force():
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(40, 12)) * (rng.random((40, 12)) < 0.6)
    residuals = sp.csr_matrix(dense)
    chosen = neighbours(residuals, 4, shrink=5.0)
    rated = (dense != 0).astype(float)
    common = rated.T @ rated
    norm = np.sqrt((dense ** 2).sum(0))
    likeness = dense.T @ dense / np.outer(norm, norm) * common / (common + 5.0)
    np.fill_diagonal(likeness, -np.inf)
    for movie, row in enumerate(chosen):
        assert movie not in row
        expected = np.lexsort((np.arange(12), -likeness[movie]))[:4]
        np.testing.assert_array_equal(row, expected)
    assert neighbours(residuals, 50, shrink=5.0).shape == (12, 11)  # at most the others


def test_beats_the_biases_on_planted_data(fitted, split):
    rmse, biases = rmse_against_biases(fitted, split)
    assert rmse < biases - 0.01, (rmse, biases)


def test_a_train_user_folded_in_from_their_ratings_scores_as_the_model_does(fitted, split):
    assert fold_in_agreement(fitted, split[0]) > 0.9
