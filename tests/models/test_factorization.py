"""Cinematch's factorisation models: they learn a planted model, both data paths agree, unseen
ids fall back, equal seeds agree, artifacts round-trip, and the classifier ranks likes first."""

import numpy as np
import pytest
import tensorflow as tf

from recommender import metrics, topk
from recommender.core.errors import SettingError
from recommender.evaluation import evaluate
from recommender.models import load_model, make_model
from recommender.models.factorization import RegressionSettings, _Factors
from recommender.models.tower import named_variables
from recommender.reporting.analysis.likes import (calibration, classification_report,
                                                  positive_weight)
from recommender.data.splits import per_user_split
from recommender.data.synthetic import make_synthetic

FAST = {"epochs": 40, "batch_size": 1024, "learning_rate": 0.01, "dim": 8, "patience": 3}


@pytest.fixture(scope="module")
def split():
    data = make_synthetic(n_users=300, n_movies=400, n_ratings=15_000, rank=4, n_genres=8,
                          noise=0.3, seed=0)
    return data, *per_user_split(data.ratings, 0.2, seed=0)


@pytest.fixture(scope="module")
def regression(split):
    _, train, _ = split
    return make_model("regression", **FAST).fit(train)


@pytest.mark.slow
def test_planted_low_rank_model_is_recovered(split, regression):
    data, train, test = split
    pred = regression.predict(test["userId"], test["movieId"])
    model_rmse = metrics.rmse(test["rating"], pred)
    mean_rmse = metrics.rmse(test["rating"], np.full(len(test), train["rating"].mean()))
    # planted noise 0.3 plus half-star rounding; the global mean is about 0.85 off
    assert model_rmse < 0.6 and model_rmse < mean_rmse - 0.25, (model_rmse, mean_rmse)
    assert regression.meta["refit"] and 1 <= regression.meta["best_epoch"] <= FAST["epochs"]
    assert regression.meta["validation_metric"] == "mse"
    first = regression.history[0].frame()
    assert regression.meta["validation"] == pytest.approx(first["val"].min())
    assert len(regression.history) == 2  # early-stopped run, then the refit
    assert len(regression.history[1].rows) == regression.meta["best_epoch"]


@pytest.mark.slow
def test_unseen_users_and_movies_fall_back_to_biases(regression):
    module = regression.module
    user, movie = regression.users.ids[0], regression.items.ids[0]
    pred = regression.predict([user, -5, -5], [-7, movie, -7])
    expected = [module.offset + module.user_bias.numpy()[0],
                module.offset + module.item_bias.numpy()[0], module.offset]
    np.testing.assert_allclose(pred, expected, rtol=1e-5)


@pytest.mark.slow
def test_top_k_scores_the_factor_product_on_worker_threads_same_as_batch_scoring(regression):
    users = np.arange(len(regression.users))
    by_batches = topk.top_k(regression.score, users, 10, regression.n_items,
                               regression.seen, batch_size=7)
    assert regression._score_factors(np.arange(3)) is not None
    assert regression.top_k(users, 10).tolist() == by_batches.tolist()


@pytest.mark.slow
def test_dense_and_sparse_paths_reach_the_same_parameters():
    ratings = make_synthetic(n_users=30, n_movies=40, n_ratings=400, rank=2, seed=1).ratings
    common = {"validation": 0.0, "epochs": 5, "batch_size": 10**6, "dim": 4,
              "learning_rate": 0.05}
    dense = make_model("regression", data_path="dense", **common).fit(ratings)
    sparse = make_model("regression", data_path="sparse", **common).fit(ratings)
    sparse_variables = named_variables(sparse.module)
    for name, value in named_variables(dense.module).items():
        np.testing.assert_allclose(value.numpy(), sparse_variables[name].numpy(), atol=1e-4,
                                   err_msg=name)


@pytest.mark.slow
def test_another_seed_gives_another_model(split):
    _, train, test = split
    small = {**FAST, "epochs": 3, "validation": 0.0}
    runs = [make_model("regression", seed=s, **small).fit(train) for s in (4, 5)]
    preds = [m.predict(test["userId"], test["movieId"]) for m in runs]
    assert not np.allclose(preds[0], preds[1])


@pytest.mark.slow
def test_loaded_classifier_gives_identical_probabilities(split, tmp_path):
    data, train, test = split
    model = make_model("classification", **{**FAST, "epochs": 2, "validation": 0.0})
    model.fit(train)
    loaded = load_model(model.save(tmp_path / "classification"))
    np.testing.assert_array_equal(loaded.predict_proba(test["userId"], test["movieId"]),
                                  model.predict_proba(test["userId"], test["movieId"]))


@pytest.mark.slow
def test_classifier_ranks_liked_pairs_first_on_planted_data(split):
    _, train, test = split
    model = make_model("classification", **FAST).fit(train)
    report = classification_report(model, test)
    assert report["auc"] > 0.8 and 0 < report["log_loss"] < 0.693
    extra = evaluate(model, test).metrics  # the evaluation adds the same measures
    assert all(extra[key] == pytest.approx(value, nan_ok=True) for key, value in report.items())
    liked = train["rating"] >= 4.0
    assert model.pos_weight == pytest.approx(positive_weight(liked))
    curve = calibration(model, test, n_bins=5)
    assert list(curve.columns) == ["predicted", "observed"] and len(curve) == 5


def test_settings_that_cannot_go_together_are_refused_in_one_line():
    """One setting at a time is the contract suite's; these rules join two."""
    for settings, message in [({"data_path": "dense", "hidden": (8,)}, "dense path"),
                              ({"data_path": "dense", "penalty": "batch"}, "full batch")]:
        with pytest.raises(SettingError, match=message) as error:
            make_model("regression", **settings)
        assert str(error.value).startswith("regression: ") and "\n" not in str(error.value)


def test_settings_hold_the_tuned_defaults_and_the_hybrid_turns_its_options_on():
    regression, hybrid = make_model("regression"), make_model("regression-hybrid")
    assert (regression.settings.dim, regression.settings.learning_rate) == (128, 0.003)
    assert not regression.settings.features and regression.settings.hidden == ()
    assert hybrid.settings.features and hybrid.settings.hidden == (64,)
    assert make_model("classification").settings.threshold == 4.0
    assert isinstance(regression.settings, RegressionSettings)


def test_batch_penalty_estimates_the_table_penalty_with_sparse_gradients():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 20, 300), rng.integers(0, 30, 300)
    settings = RegressionSettings(dim=4, init_std=0.3)
    module = _Factors(20, 30, settings, 3.5, None, np.random.default_rng(0))
    module.user_bias.assign(rng.normal(size=20).astype(np.float32))
    counts = [np.bincount(users, minlength=20), np.bincount(items, minlength=30)]
    weights = [np.maximum(c, 1).astype(np.float32) ** 0.5 for c in counts]
    per_row = [(w / np.maximum(c, 1)).astype(np.float32) for w, c in zip(weights, counts)]
    table = module.regularisation(0.7, 0.2, *weights) / len(users)
    with tf.GradientTape() as tape:  # every example once: the estimate is exact
        batch = module.batch_regularisation(module.rows(users, items), 0.7, 0.2, *per_row)
    np.testing.assert_allclose(batch.numpy(), table.numpy(), rtol=1e-5)
    grads = tape.gradient(batch, [module.user_factors, module.item_factors])
    assert all(isinstance(g, tf.IndexedSlices) for g in grads)  # SGD touches batch rows only


@pytest.mark.slow
def test_sgd_with_the_batch_penalty_learns_the_planted_model(split):
    _, train, test = split
    model = make_model("regression", **{**FAST, "penalty": "batch", "optimizer": "sgd",
                                        "learning_rate": 10.0}).fit(train)
    model_rmse = metrics.rmse(test["rating"], model.predict(test["userId"], test["movieId"]))
    mean_rmse = metrics.rmse(test["rating"], np.full(len(test), train["rating"].mean()))
    assert model_rmse < 0.6 and model_rmse < mean_rmse - 0.25, (model_rmse, mean_rmse)


@pytest.mark.slow
def test_hybrid_regression_uses_movie_features_and_needs_the_movies(split):
    data, train, test = split
    with pytest.raises(ValueError, match="--movies"):
        make_model("regression-hybrid", **FAST).fit(train)
    model = make_model("regression-hybrid", **FAST).fit(train, movies=data.movies)
    assert model.features is not None and model.module.head  # features in, MLP head on
    model_rmse = metrics.rmse(test["rating"], model.predict(test["userId"], test["movieId"]))
    assert model_rmse < 0.6, model_rmse
