"""softmax-dnn: the losses on hand-built cases, batches, learning, fold-in, artifacts."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import tensorflow as tf

from recommender.evaluation import fit_and_evaluate
from recommender.models import load_model, make_model
from recommender.models.softmax_dnn import (_Batches, multinomial_loss,
                                            sampled_softmax_loss)
from recommender.data.splits import per_user_split
from recommender.data.synthetic import planted_clusters

FAST = {"epochs": 15, "patience": 15, "refit": False, "hidden": [32], "batch_size": 64}


@pytest.fixture(scope="module")
def data():
    """Planted taste clusters: 4 genres of 50 movies, each user watches 20 of one genre."""
    return planted_clusters(n_clusters=4, movies_per_cluster=50, n_users=400, per_user=20)


@pytest.fixture(scope="module")
def split(data):
    return per_user_split(data[0], 0.2, seed=3)


@pytest.fixture(scope="module")
def fitted(split):
    return fit_and_evaluate("softmax-dnn", *split, **FAST)


def test_multinomial_loss_on_a_hand_built_case():
    logits = tf.constant([[0.0, np.log(2.0), np.log(5.0)]])  # softmax: 1/8, 2/8, 5/8
    targets = tf.constant([[1.0, 0.0, 2.0]])
    expected = -(np.log(1 / 8) + 2 * np.log(5 / 8))
    np.testing.assert_allclose(multinomial_loss(logits, targets).numpy(), [expected], rtol=1e-6)


def test_sampled_loss_masks_accidental_hits_on_a_hand_built_case():
    negative = tf.constant([[0.0, np.log(3.0), 9.0], [np.log(2.0), 0.0, 0.0]])
    hits = tf.constant([[False, False, True], [False, True, True]])  # masked: 9.0 and two 0s
    positive = tf.constant([0.0, np.log(4.0), 0.0])
    segment = tf.constant([0, 0, 1])
    # user 0: negatives exp = 1 + 3; user 1: 2
    expected = [-np.log(1 / (1 + 4)), -np.log(4 / (4 + 4)), -np.log(1 / (1 + 2))]
    np.testing.assert_allclose(sampled_softmax_loss(positive, negative, hits, segment).numpy(),
                               expected, rtol=1e-5)


@pytest.mark.parametrize("loss", ["full", "sampled-popularity", "in-batch"])
def test_batches_drop_input_and_target_the_whole_history(loss):
    history = sp.random(20, 50, density=0.3, format="csr", random_state=2, dtype=np.float32)
    history.data[:] = 1.0
    params = {"loss": loss, "dropout": 0.5, "num_negatives": 64}
    batch = _Batches(history, params)({"user": np.arange(20)}, np.random.default_rng(0))
    for b in range(20):
        inputs = set(batch["item"][(batch["segment"] == b) & (batch["weight"] > 0)])
        targets = set(batch["target_item"][(batch["target_segment"] == b)
                                           & (batch["target_weight"] > 0)])
        assert targets == set(history[b].indices) and inputs <= targets
    assert 0.3 < (batch["weight"] > 0).sum() / history.nnz < 0.7  # about half dropped
    if loss != "full":
        for b in range(20):
            own = np.isin(batch["candidates"], history[b].indices)
            np.testing.assert_array_equal(batch["hits"][b], own)


def test_learns_planted_structure_better_than_popularity(split, fitted):
    _, popularity = fit_and_evaluate("popularity", *split)
    model, result = fitted
    assert result.metrics["ndcg@10"] > popularity.metrics["ndcg@10"] + 0.1
    assert 1 <= model.meta["validation"]["best_epoch"] <= FAST["epochs"]


@pytest.mark.parametrize("loss", ["sampled-uniform", "in-batch"])
def test_negative_sampling_also_learns_the_clusters(split, loss):
    _, popularity = fit_and_evaluate("popularity", *split)
    _, result = fit_and_evaluate("softmax-dnn", *split, loss=loss, num_negatives=64, **FAST)
    assert result.metrics["ndcg@10"] > popularity.metrics["ndcg@10"] + 0.1


def test_fold_in_scores_new_users_from_their_history(data, fitted):
    model, _ = fitted
    movies = data[1]
    train_user = model.users.ids[0]
    own = model.seen[0].indices
    history = pd.DataFrame({"userId": train_user, "movieId": model.items.decode(own),
                            "rating": np.float32(4.0)})
    np.testing.assert_allclose(model.fold_in(history), model.score([0]), rtol=1e-5, atol=1e-5)
    genre = {m: g[0] for m, g in zip(movies["movieId"], movies["genres"])}
    newcomer = pd.DataFrame({"userId": 10_000, "movieId": [1, 2, 3, 4, 5], "rating": 4.0})
    scores = model.fold_in(newcomer, movie_ids=movies["movieId"])[0]
    top = movies["movieId"].to_numpy()[np.argsort(-scores)[:20]]
    assert sum(genre[m] == "Genre 0" for m in top) >= 18  # the newcomer's cluster
    assert np.isneginf(model.fold_in(newcomer, movie_ids=[10**9])).all()


def test_artifact_round_trip(fitted, tmp_path):
    model, _ = fitted
    model.save(tmp_path / "dnn")
    loaded = load_model(tmp_path / "dnn")
    users = np.arange(5)
    assert loaded.name == "softmax-dnn" and loaded.folds_in
    np.testing.assert_allclose(loaded.score(users), model.score(users), rtol=1e-5, atol=1e-5)


def test_unknown_loss_is_refused(split):
    with pytest.raises(ValueError, match="unknown loss"):
        make_model("softmax-dnn", loss="hinge").fit(split[0])
