"""The multitask two-tower model (origin 001): the loss combination, the in-batch softmax and
top-K accuracy on hand-built cases, the origin system's preset, the per-epoch traces, ranking
per call, artifacts, and that it learns a planted structure."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from recommender import metrics, topk
from recommender.core.errors import SettingError
from recommender.data.preprocessing import IdEncoder
from recommender.data.splits import per_user_split
from recommender.evaluation import evaluate, top_k_accuracy
from recommender.models import make_model
from recommender.models.multitask import MultiTask, _Towers
from recommender.models.neural import in_batch_softmax_loss
from recommender.reporting.analysis.multitask import fit_traced, ranking_modes, retrieval_alone

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


def _gradients(towers: _Towers, weights: tuple[float, float], batch: dict
               ) -> dict[str, np.ndarray]:
    """Gradient of the mean combined loss with these task weights for every variable of the
    fitted ``towers`` (zeros where none flows)."""
    model = MultiTask(**FAST, rating_weight=weights[0], retrieval_weight=weights[1])
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model._losses(towers, batch, None))
    grads = tape.gradient(loss, towers.trainable_variables)
    return {v.name: np.zeros(v.shape) if g is None else tf.convert_to_tensor(g).numpy()
            for v, g in zip(towers.trainable_variables, grads)}


@pytest.mark.slow
def test_a_zero_weight_switches_its_task_off(fitted, split):
    _, train, _ = split
    rows = train.iloc[:64]
    batch = {"user": tf.constant(fitted.users.encode(rows["userId"]), tf.int32),
             "item": tf.constant(fitted.items.encode(rows["movieId"]), tf.int32),
             "rating": tf.constant(rows["rating"].to_numpy(np.float32))}
    weights = {pair: _gradients(fitted.module, pair, batch)
               for pair in [(1.0, 0.0), (0.0, 1.0), (2.0, 3.0)]}
    retrieval_only, rating_only = weights[0.0, 1.0], weights[1.0, 0.0]
    head = [name for name in retrieval_only if "kernel" in name or "bias" in name]
    assert head and all(not retrieval_only[name].any() for name in head)  # head untouched
    assert rating_only["head0_kernel:0"].any() and retrieval_only["item_embedding:0"].any()
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
    model.module = _Towers(2, 3, model.settings, None, 3.0, np.random.default_rng(0))
    model.module.user_embedding.assign([[1.0, 0.0], [0.0, 1.0]])
    model.module.item_embedding.assign([[3.0, 0.0], [2.0, 1.0], [1.0, 2.0]])
    # user 10 scores movies 3, 2, 1; user 20 scores 0, 1, 2
    pairs = pd.DataFrame({"userId": [10, 10, 20, 20], "movieId": [1, 3, 3, 99]})
    acc = top_k_accuracy(model.with_ranking(rerank=0), pairs, ks=(1, 2, 3))
    # ranks 0, 2, 0 and a movie not in the catalogue (a miss)
    assert acc == pytest.approx({"top_1_accuracy": 0.5, "top_2_accuracy": 0.5,
                                 "top_3_accuracy": 0.75})


def test_seed_preset_fills_the_defaults_and_explicit_settings_win():
    seed = make_model("multitask", preset="seed").settings
    assert seed.optimizer == "adagrad" and seed.learning_rate == 0.1
    assert (seed.epochs, seed.batch_size) == (15, 1000)
    assert not seed.biases and seed.validation == 0.0 and seed.retrieval_sum
    assert make_model("multitask", preset="seed", epochs=3).settings.epochs == 3
    assert make_model("multitask").settings.optimizer == "adam"  # no preset: the tuned ones
    # a saved model's settings (preset and every value) load back as they were
    assert type(seed)(**seed.as_dict()) == seed


def test_both_task_weights_zero_is_a_one_line_error():
    """One setting at a time is the contract suite's; this rule joins two."""
    with pytest.raises(SettingError, match="not both 0") as error:
        make_model("multitask", rating_weight=0.0, retrieval_weight=0.0)
    assert str(error.value).startswith("multitask: ") and "\n" not in str(error.value)


@pytest.mark.slow
def test_traced_fit_measures_every_epoch_and_selects_nothing(split):
    _, train, test = split
    model = MultiTask(preset="seed", dim=8, epochs=3, batch_size=500)
    trace = fit_traced(model, train, test)
    assert trace["epoch"].tolist() == [1, 2, 3]
    assert model.meta["best_epoch"] == 3 and not model.meta["refit"]
    last = trace.iloc[-1]
    assert last["rmse"] == pytest.approx(
        metrics.rmse(test["rating"], model.predict(test["userId"], test["movieId"])), rel=1e-5)
    assert last["top_100_accuracy"] == top_k_accuracy(model.with_ranking(rerank=0), test,
                                                      ks=(100,))["top_100_accuracy"]
    assert 0 <= last["top_1_accuracy"] <= last["top_100_accuracy"] <= 1
    assert model.trace == []  # no validation slice: nothing recorded by the model


@pytest.mark.slow
def test_validation_trace_is_what_early_stopping_read(fitted):
    rows = pd.DataFrame(fitted.trace)
    assert rows["epoch"].tolist() == list(range(1, fitted.meta["epochs_run"] + 1))
    both = rows["val_rmse"] - rows["val_ndcg"]  # monitor="both"
    assert fitted.meta["validation_metric"] == "rmse - ndcg@10"
    assert fitted.meta["validation"] == pytest.approx(both.min())
    assert fitted.meta["best_epoch"] == int(rows.loc[both.idxmin(), "epoch"])
    assert fitted.history[0].frame()["val"].tolist() == pytest.approx(both.tolist())


@pytest.mark.slow
def test_early_stopping_on_ndcg_maximises_it(split):
    _, train, _ = split
    model = make_model("multitask", **{**FAST, "epochs": 3, "monitor": "ndcg"}).fit(train)
    ndcg = pd.DataFrame(model.trace)["val_ndcg"]
    assert model.maximise and model.meta["validation"] == pytest.approx(ndcg.max())


@pytest.mark.slow
def test_with_ranking_shares_the_fitted_model_and_changes_only_the_ranking(fitted, split):
    _, _, test = split
    alone = fitted.with_ranking(rerank=0)
    assert alone.module is fitted.module and fitted.settings.rerank == 50
    assert alone.settings.rerank == 0 and alone.settings.dim == fitted.settings.dim
    users = np.arange(6)
    np.testing.assert_array_equal(alone.score(users), fitted.retrieval_scores(users))
    assert not np.array_equal(fitted.score(users), alone.score(users))
    with pytest.raises(SettingError, match="rerank"):
        fitted.with_ranking(rerank=-1)
    modes = ranking_modes(fitted, test, {"default": {}, "alone": {"rerank": 0}})
    for label, model in [("alone", alone), ("default", fitted)]:
        assert modes.loc[label, "ndcg@10"] == evaluate(model, test).metrics["ndcg@10"]
    row = retrieval_alone(fitted, test)
    assert row["ndcg@10"] == modes.loc["alone", "ndcg@10"]
    assert row["rmse"] == modes.loc["default", "rmse"]  # the head is the same


@pytest.mark.slow
def test_learns_the_planted_structure(fitted, split):
    _, train, test = split
    result = evaluate(fitted, test).metrics
    mean_rmse = metrics.rmse(test["rating"], np.full(len(test), train["rating"].mean()))
    popularity = evaluate(make_model("popularity").fit(train), test).metrics
    assert result["rmse"] < mean_rmse - 0.2, (result["rmse"], mean_rmse)
    assert result["ndcg@10"] > popularity["ndcg@10"] + 0.02, (result, popularity)
    # the two-stage list keeps the retrieval tower's candidates
    retrieval = fitted.with_ranking(rerank=0)
    alone = topk.top_k(retrieval.score, np.arange(20), 50, fitted.n_items, fitted.seen)
    both = topk.top_k(fitted.score, np.arange(20), 50, fitted.n_items, fitted.seen)
    assert all(set(a) == set(b) for a, b in zip(alone, both))
