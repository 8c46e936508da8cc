"""recvae: a score is the decoder's logit at the encoder's posterior mean (checked by hand), the
composite prior is the stated mixture, batches drop input in encoder passes only, the phases
alternate with the prior remembering the encoder, and it learns planted clusters and folds in.
What every model does (save/load, settings, top-K, seeds) is in test_contract.py."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import tensorflow as tf

from contract import newcomer_cluster_share
from recommender.evaluation import fit_and_evaluate
from recommender.models import make_model
from recommender.models.recvae import _Batches, composite_prior

SMALL = {"hidden": 16, "depth": 2, "latent": 8, "batch_size": 64}
FAST = {**SMALL, "epochs": 40, "patience": 40, "refit": False, "learning_rate": 3e-3,
        "dropout": 0.5}


@pytest.fixture(scope="module")
def short(split):
    """A few epochs, rating-weighted inputs: enough to check formulas."""
    ratings = split[0].assign(rating=np.resize([2.0, 3.0, 4.5, 5.0], len(split[0])))
    return make_model("recvae", seed=1, epochs=3, validation=0.0, **SMALL).fit(ratings)


def normal_log_density(z, mean, logvar):
    return -0.5 * (logvar + np.log(2 * np.pi) + (z - mean) ** 2 / np.exp(logvar))


def test_the_composite_prior_is_the_stated_mixture():
    rng = np.random.default_rng(0)
    z, mu, logvar = rng.normal(size=(3, 5, 4)).astype(np.float32)
    by_hand = np.log(3 / 20 * np.exp(normal_log_density(z, 0.0, 0.0))
                     + 3 / 4 * np.exp(normal_log_density(z, mu, logvar))
                     + 1 / 10 * np.exp(normal_log_density(z, 0.0, 10.0)))
    got = composite_prior(tf.constant(z), tf.constant(mu), tf.constant(logvar)).numpy()
    np.testing.assert_allclose(got, by_hand, rtol=1e-5, atol=1e-5)


def test_a_score_is_the_decoders_logit_at_the_posterior_mean(short):
    vae, latent = short.module, short.settings.latent
    ratings = short.seen[:5].astype(np.float32).tocsr()
    ratings.data = np.resize(np.float32([2.0, 3.0, 4.5, 5.0]), ratings.nnz)
    r = ratings.toarray()
    rated = r > 0
    user_mean = r.sum(axis=1, keepdims=True) / rated.sum(axis=1, keepdims=True)
    x = np.where(rated, np.maximum(1 + 0.5 * (r - user_mean), 0.05), 0.0)  # ease-rated's
    h, total = x / np.linalg.norm(x, axis=1, keepdims=True), 0.0
    for (kernel, bias), (gain, shift) in zip(vae.encoder.layers, vae.encoder.norms):
        into = h @ kernel.numpy() + bias.numpy() + total
        swish = into / (1 + np.exp(-into))
        mean, var = swish.mean(axis=1, keepdims=True), swish.var(axis=1, keepdims=True)
        h = (swish - mean) / np.sqrt(var + 0.1) * gain.numpy() + shift.numpy()
        total = total + h
    kernel, bias = (v.numpy() for v in vae.encoder.posterior)
    mu = h @ kernel[:, :latent] + bias[:latent]
    by_hand = mu @ vae.decoder.numpy() + vae.decoder_bias.numpy()
    users = pd.DataFrame({"userId": 10_000 + np.repeat(np.arange(5), np.diff(ratings.indptr)),
                          "movieId": short.items.decode(ratings.indices),
                          "rating": ratings.data})
    np.testing.assert_allclose(short.fold_in(users), by_hand, rtol=1e-4, atol=1e-4)


def test_batches_drop_input_in_encoder_passes_only():
    history = sp.random(30, 60, density=0.3, format="csr", random_state=2, dtype=np.float32)
    batches = _Batches(history, dropout=0.6, latent=4)
    users = {"user": np.arange(30)}
    batch = batches(users, np.random.default_rng(0))
    real = batch["weight"] > 0
    kept = batch["keep"][real]
    assert set(np.round(np.unique(kept), 4)) == {0.0, round(1 / 0.4, 4)}
    assert 0.5 < (kept == 0).mean() < 0.7  # about 60% dropped
    assert batch["noise"].shape == (30, 4) and (batch["encoder_phase"] == 1).all()
    batches.train_encoder = False
    batch = batches(users, np.random.default_rng(0))
    assert (batch["keep"] == 1).all() and (batch["encoder_phase"] == 0).all()
    np.testing.assert_array_equal(np.sort(batch["item"][batch["weight"] > 0]),
                                  np.sort(history.indices))


def test_phases_alternate_and_the_prior_remembers_the_encoder(split):
    model = make_model("recvae", seed=2, epochs=7, validation=0.0, encoder_passes=3,
                       decoder_passes=1, **SMALL)
    seen = {}

    def snapshot(epoch: int) -> None:
        vae = model.module
        seen[epoch] = {"decoder": vae.decoder.numpy().copy(),
                       "encoder": [v.numpy().copy() for v in vae.encoder.variables],
                       "old": [v.numpy().copy() for v in vae.old.variables]}

    model.fit(split[0], on_epoch=snapshot)

    def same(a, b):
        return all(np.array_equal(x, y) for x, y in zip(a, b))

    # epochs 1-3 train the encoder alone: the decoder never had a gradient, so it stays put
    assert np.array_equal(seen[1]["decoder"], seen[3]["decoder"])
    assert not same(seen[1]["encoder"], seen[3]["encoder"])
    # epoch 4 trains the decoder; the prior took the encoder as the encoder passes ended
    assert not np.array_equal(seen[3]["decoder"], seen[4]["decoder"])
    assert same(seen[3]["old"], seen[3]["encoder"]) and not same(seen[2]["old"],
                                                                 seen[2]["encoder"])
    # and keeps it through the next encoder passes, until they end (epoch 7)
    assert same(seen[6]["old"], seen[3]["encoder"]) and not same(seen[6]["old"],
                                                                 seen[6]["encoder"])
    assert same(seen[7]["old"], seen[7]["encoder"])
    # the frozen encoder is not trained and not saved
    assert {v.name.split(":")[0] for v in model.module.trainable_variables}.isdisjoint(
        {v.name.split(":")[0] for v in model.module.old.variables})


@pytest.fixture(scope="module")
def fitted(split):
    return fit_and_evaluate("recvae", *split, **FAST)


@pytest.mark.slow  # trains the model (the fast suite fits it once, in test_contract.py)
def test_learns_planted_structure_better_than_popularity(fitted, popularity):
    _, result = fitted
    assert result.metrics["ndcg@10"] > popularity + 0.1


@pytest.mark.slow  # trains the model (the fast suite fits it once, in test_contract.py)
def test_fold_in_scores_new_users_from_their_history(data, fitted):
    assert newcomer_cluster_share(fitted[0], data[1], tolerance=1e-4) >= 18
