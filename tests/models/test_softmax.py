"""Softmax DNN with a wide path: the deep tower alone learns planted clusters, folding with and
without negatives, and the wide path is EASE's closed form behind a learned gate. (The shared
sampler and losses are in test_neural.py; what every model does in test_contract.py.)"""

import numpy as np
import pytest

from recommender.evaluation import fit_and_evaluate
from recommender.models.ease import EASE
from recommender.reporting.analysis.sampling import folding, folding_comparison, genre_similarity

# Every test here trains the model (25 epochs, several fits): the slow suite. The fast suite
# fits softmax once, in test_contract.py.
pytestmark = pytest.mark.slow

FAST = {"epochs": 25, "patience": 5, "refit": False, "wide": False}  # the deep softmax alone


@pytest.fixture(scope="module")
def fitted(data, split):
    train, test = split
    return fit_and_evaluate("softmax", train, test, movies=data[1], use_genres=False, **FAST)


def test_learns_planted_structure_better_than_popularity(fitted, popularity):
    model, result = fitted
    assert result.metrics["ndcg@10"] > popularity + 0.05
    assert 1 <= model.meta["best_epoch"] <= FAST["epochs"]


def test_folding_measure_separates_the_learned_clusters(data, fitted):
    measure = folding(fitted[0], data[1])
    assert -1.0 <= measure["between"] < measure["within"] <= 1.0


def test_positives_only_training_folds_the_clusters(data, split):
    table, models = folding_comparison(*split, data[1], losses=["positives-only", "full"],
                                       **FAST)
    gap = table.set_index("loss")["gap"]
    assert gap["positives-only"] < gap["full"] / 2
    assert set(models) == {"positives-only", "full"}
    similarity = genre_similarity(models["full"], data[1])
    assert similarity.shape == (4, 4)  # same-cluster pairs far closer than the rest
    assert np.diag(similarity).min() > similarity.to_numpy()[~np.eye(4, dtype=bool)].max()


@pytest.fixture(scope="module")
def wide_fitted(data, split):
    train, test = split
    return fit_and_evaluate("softmax", train, test, movies=data[1], use_genres=False,
                            **{**FAST, "epochs": 5, "wide": True})


def test_wide_path_adds_gated_ease_scores(split, wide_fitted):
    train, _ = split
    model, _ = wide_fitted
    s = model.settings
    assert s.wide and model.meta["wide_gate"] > 0
    ease = EASE(l2=s.wide_l2, rating_weight=s.wide_rating_weight).fit(train)
    np.testing.assert_allclose(model.wide[1], ease.B, atol=1e-5)  # W on all of train
    users = np.arange(6)
    deep = model._logits(model.module, model.inputs, None, users)  # the towers alone
    np.testing.assert_allclose(model.score(users) - deep,
                               model.meta["wide_gate"] * ease.score(users), rtol=1e-4, atol=1e-4)


def test_wide_and_deep_beats_popularity(wide_fitted, popularity):
    assert wide_fitted[1].metrics["ndcg@10"] > popularity + 0.05


def test_without_wide_path_there_is_no_gate(fitted):
    model, _ = fitted
    assert model.wide is None and float(model.module.gate()) == 0.0
    assert "log_gate" not in {v.name.split(":")[0] for v in model.module.trainable_variables}
