"""I-AutoRec: a prediction is the biases plus the decoded hidden vector of the movie's ratings
(checked by hand), it beats the biases on planted data, input dropout drops observed inputs
only and keeps every target, and without ``baseline`` it learns raw ratings with the global
mean for what it never saw. What every model does (save/load, settings, top-K) is in
test_contract.py."""

import numpy as np
import pytest

from contract import planted_split, rmse_against_biases
from recommender import metrics
from recommender.models import make_model
from recommender.models.autorec import MovieBatches

QUICK = {"epochs": 40, "validation": 0.0, "hidden": 32, "learning_rate": 3e-3, "l2": 3.0,
         "batch_size": 64}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture(scope="module")
def split():
    return planted_split()


@pytest.fixture(scope="module")
def fitted(split):
    return make_model("autorec", seed=3, **QUICK).fit(split[0])


def test_a_prediction_is_the_biases_plus_the_decoded_ratings_of_the_movie(fitted, split):
    train, test = split
    test = test.head(40)
    m = fitted.module
    encoder, encoder_bias = m.encoder.numpy(), m.encoder_bias.numpy()
    decoder, decoder_bias = m.decoder.numpy(), m.decoder_bias.numpy()
    mu = train["rating"].mean()  # no holdout: the biases are fitted on all of train
    assert fitted.offset == pytest.approx(mu)
    predicted = fitted.predict(test["userId"], test["movieId"])
    for (user, movie), got in zip(test[["userId", "movieId"]].to_numpy(), predicted):
        u, i = fitted.users.encode([user])[0], fitted.items.encode([movie])[0]
        rated = train[train["movieId"] == movie]
        raters = fitted.users.encode(rated["userId"].to_numpy())
        inputs = np.zeros(fitted.n_users)  # the movie's ratings less the biases
        inputs[raters] = (rated["rating"].to_numpy() - mu - fitted.user_bias[raters]
                          - fitted.item_bias[i])
        hidden = sigmoid(inputs @ encoder + encoder_bias)
        base = mu + fitted.user_bias[u] + fitted.item_bias[i]
        by_hand = base + hidden @ decoder[:, u] + decoder_bias[u]
        assert got == pytest.approx(np.clip(by_hand, *fitted.rating_scale), abs=1e-4)


def test_beats_the_biases_on_planted_factors(fitted, split):
    rmse, biases = rmse_against_biases(fitted, split)
    assert rmse < biases - 0.02, (rmse, biases)


def test_input_dropout_drops_observed_inputs_only_and_keeps_every_target(fitted, split):
    movies = fitted.seen.T.tocsr()  # any movies x users matrix: ones where rated
    batches = MovieBatches(movies, dropout=0.5)
    batch = batches({"movie": np.arange(60)}, np.random.default_rng(0))
    n = movies[np.arange(60)].nnz
    observed = batch["observed"]
    assert observed[:n].all() and not observed[n:].any()  # the padding is never a target
    np.testing.assert_array_equal(batch["target"][n:], 0.0)
    kept = batch["input"][:n] != 0
    assert 0.4 < kept.mean() < 0.6
    # inverted dropout: what is kept is scaled by 1 / (1 - p), the rest is 0
    np.testing.assert_allclose(batch["input"][:n][kept], 2 * batch["target"][:n][kept],
                               rtol=1e-6)
    assert len(batch["n_movies"]) == 60


def test_without_baseline_it_learns_raw_ratings_and_falls_back_to_the_mean(split):
    train, test = split
    model = make_model("autorec", seed=3, **{**QUICK, "baseline": False}).fit(train)
    assert not model.user_bias.any() and not model.item_bias.any() and model.offset == 0.0
    rmse = metrics.rmse(test["rating"], model.predict(test["userId"], test["movieId"]))
    mean = metrics.rmse(test["rating"], np.full(len(test), train["rating"].mean()))
    assert rmse < mean - 0.05, (rmse, mean)  # slower than from the biases, but it learns
    unseen = model.predict([10**6, int(train["userId"].iloc[0])], [int(train["movieId"].iloc[0]),
                                                                     10**6])
    np.testing.assert_allclose(unseen, train["rating"].mean(), rtol=1e-6)
