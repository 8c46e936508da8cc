"""Seed 001's multitask two-tower model: the loss combination, the in-batch softmax and top-K
accuracy on hand-built cases, the seed preset, the per-epoch trace, artifacts, and that it
learns a planted structure."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from recommender import metrics, topk
from recommender.evaluation import evaluate
from recommender.models import load_model, make_model
from recommender.models.multitask import MultiTask, _Towers, in_batch_softmax_loss, top_k_accuracy
from recommender.data.preprocessing import IdEncoder
from recommender.data.splits import per_user_split

FAST = {"epochs": 8, "batch_size": 500, "learning_rate": 0.01, "dim": 16, "l2": 5.0,
        "features": "none", "patience": 2, "refit": False}


@pytest.fixture(scope="module")
def split(_synthetic_session):
    """The shared 15,000-rating synthetic set (read only), split per user."""
    return _synthetic_session, *per_user_split(_synthetic_session.ratings, 0.2, seed=0)


@pytest.fixture(scope="module")
def fitted(split):
    data, train, _ = split
    return make_model("multitask", **{**FAST, "features": "genres"}).fit(train,
                                                                         movies=data.movies)


def _gradients(model: MultiTask, batch: dict) -> dict[str, np.ndarray]:
    """Gradient of the mean combined loss for every variable (zeros where none flows)."""
    towers = model.towers
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model._losses(towers, batch, None))
    grads = tape.gradient(loss, towers.trainable_variables)
    return {v.name: np.zeros(v.shape) if g is None else tf.convert_to_tensor(g).numpy()
            for v, g in zip(towers.trainable_variables, grads)}


def test_a_zero_weight_switches_its_task_off(fitted, split):
    _, train, _ = split
    rows = train.iloc[:64]
    batch = {"user": tf.constant(fitted.users.encode(rows["userId"]), tf.int32),
             "item": tf.constant(fitted.items.encode(rows["movieId"]), tf.int32),
             "rating": tf.constant(rows["rating"].to_numpy(np.float32))}
    weights = {}
    for rating_weight, retrieval_weight in [(1.0, 0.0), (0.0, 1.0), (2.0, 3.0)]:
        fitted.params.update(rating_weight=rating_weight, retrieval_weight=retrieval_weight)
        weights[rating_weight, retrieval_weight] = _gradients(fitted, batch)
    fitted.params.update(rating_weight=1.0, retrieval_weight=1.0)
    retrieval_only, rating_only = weights[0.0, 1.0], weights[1.0, 0.0]
    head = [name for name in retrieval_only if "kernel" in name or "bias" in name]
    assert head and all(not retrieval_only[name].any() for name in head)  # head untouched
    assert rating_only["kernel_0:0"].any() and retrieval_only["item_embedding:0"].any()
    for name, grad in weights[2.0, 3.0].items():  # gradients add up with the weights
        np.testing.assert_allclose(grad, 2 * rating_only[name] + 3 * retrieval_only[name],
                                   atol=1e-5, err_msg=name)


def test_in_batch_softmax_on_a_hand_built_batch():
    eye = tf.eye(2)
    loss = in_batch_softmax_loss(eye, eye, tf.constant([0, 1])).numpy()
    np.testing.assert_allclose(loss, np.log1p(np.exp(-1.0)) * np.ones(2), rtol=1e-6)
    # the same movie twice: the copy is masked, so each row sees only its positive
    np.testing.assert_allclose(in_batch_softmax_loss(eye, eye, tf.constant([7, 7])).numpy(),
                               [0.0, 0.0], atol=1e-6)
    # temperature 0.5 doubles the logits; logQ subtracts log q of each column
    logq = tf.math.log(tf.constant([0.5, 0.25]))
    corrected = in_batch_softmax_loss(eye, eye, tf.constant([0, 1]), 0.5, logq).numpy()
    logits = np.array([[2.0, 0.0], [0.0, 2.0]]) - np.log([0.5, 0.25])[None, :]
    expected = np.log(np.exp(logits).sum(1)) - np.diag(logits)
    np.testing.assert_allclose(corrected, expected, rtol=1e-5)


def test_top_k_accuracy_on_a_hand_built_case():
    model = MultiTask(dim=2, features="none", biases=False)
    model.users, model.items = IdEncoder(np.array([10, 20])), IdEncoder(np.array([1, 2, 3]))
    model.towers = _Towers(2, 3, 2, None, False, 3.0, 0)
    model.towers.user_embedding.assign([[1.0, 0.0], [0.0, 1.0]])
    model.towers.item_embedding.assign([[3.0, 0.0], [2.0, 1.0], [1.0, 2.0]])
    # user 10 scores movies 3, 2, 1; user 20 scores 0, 1, 2
    pairs = pd.DataFrame({"userId": [10, 10, 20, 20], "movieId": [1, 3, 3, 99]})
    acc = top_k_accuracy(model, pairs, ks=(1, 2, 3))
    # ranks 0, 2, 0 and a movie not in the catalogue (a miss)
    assert acc == pytest.approx({"top_1_accuracy": 0.5, "top_2_accuracy": 0.5,
                                 "top_3_accuracy": 0.75})


def test_seed_preset_and_overrides():
    seed = make_model("multitask", preset="seed")
    assert seed.params["optimizer"] == "adagrad" and seed.params["learning_rate"] == 0.1
    assert (seed.params["epochs"], seed.params["batch_size"]) == (15, 1000)
    assert not seed.params["biases"] and seed.params["validation"] == 0.0
    assert make_model("multitask", preset="seed", epochs=3).params["epochs"] == 3
    with pytest.raises(ValueError, match="unknown preset"):
        make_model("multitask", preset="tfrs")
    with pytest.raises(ValueError, match="not both 0"):
        make_model("multitask", rating_weight=0, retrieval_weight=0)


def test_trace_records_every_epoch_and_selects_nothing(split):
    _, train, test = split
    model = MultiTask(preset="seed", dim=8, epochs=3, batch_size=500)
    model.fit_traced(train, test)
    assert [row["epoch"] for row in model.trace] == [1, 2, 3]
    assert model.meta["best_epoch"] == 3 and not model.meta["refit"]
    last = model.trace[-1]
    assert last["rmse"] == pytest.approx(
        metrics.rmse(test["rating"], model.predict(test["userId"], test["movieId"])), rel=1e-5)
    assert 0 <= last["top_1_accuracy"] <= last["top_100_accuracy"] <= 1


def test_save_and_load_round_trip(fitted, split, tmp_path):
    _, _, test = split
    loaded = load_model(fitted.save(tmp_path / "multitask"))
    users = np.arange(5)
    np.testing.assert_allclose(loaded.score(users), fitted.score(users), rtol=1e-5)
    np.testing.assert_allclose(loaded.predict(test["userId"], test["movieId"]),
                               fitted.predict(test["userId"], test["movieId"]), rtol=1e-5)


def test_learns_the_planted_structure(fitted, split):
    _, train, test = split
    result = evaluate(fitted, test).metrics
    mean_rmse = metrics.rmse(test["rating"], np.full(len(test), train["rating"].mean()))
    popularity = evaluate(make_model("popularity").fit(train), test).metrics
    assert result["rmse"] < mean_rmse - 0.2, (result["rmse"], mean_rmse)
    assert result["ndcg@10"] > popularity["ndcg@10"] + 0.02, (result, popularity)
    # the two-stage list keeps the retrieval tower's candidates
    fitted.params["rerank"] = 0
    alone = topk.top_k(fitted.score, np.arange(20), 50, fitted.n_items, fitted.seen)
    fitted.params["rerank"] = 50
    both = topk.top_k(fitted.score, np.arange(20), 50, fitted.n_items, fitted.seen)
    assert all(set(a) == set(b) for a, b in zip(alone, both))
