"""softmax-dnn: its batches, learning planted clusters with each loss, folding in a new user.
(The shared losses are in test_neural.py; what every model does in test_contract.py.)"""

import numpy as np
import pytest
import scipy.sparse as sp

from contract import newcomer_cluster_share
from recommender.evaluation import fit_and_evaluate
from recommender.models.softmax_dnn import SoftmaxDNNSettings, _Batches

FAST = {"epochs": 15, "patience": 15, "refit": False, "hidden": [32], "batch_size": 64}


@pytest.fixture(scope="module")
def fitted(split):
    return fit_and_evaluate("softmax-dnn", *split, **FAST)


@pytest.mark.parametrize("loss", ["full", "sampled-popularity", "in-batch"])
def test_batches_drop_input_and_target_the_whole_history(loss):
    history = sp.random(20, 50, density=0.3, format="csr", random_state=2, dtype=np.float32)
    history.data[:] = 1.0
    settings = SoftmaxDNNSettings(loss=loss, dropout=0.5, num_negatives=64)
    batch = _Batches(history, settings)({"user": np.arange(20)}, np.random.default_rng(0))
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


@pytest.mark.slow  # trains the model (the fast suite fits it once, in test_contract.py)
def test_learns_planted_structure_better_than_popularity(fitted, popularity):
    model, result = fitted
    assert result.metrics["ndcg@10"] > popularity + 0.1
    assert 1 <= model.meta["best_epoch"] <= FAST["epochs"]


@pytest.mark.slow  # trains the model (the fast suite fits it once, in test_contract.py)
@pytest.mark.parametrize("loss", ["sampled-uniform", "in-batch"])
def test_negative_sampling_also_learns_the_clusters(split, popularity, loss):
    _, result = fit_and_evaluate("softmax-dnn", *split, loss=loss, num_negatives=64, **FAST)
    assert result.metrics["ndcg@10"] > popularity + 0.1


@pytest.mark.slow  # trains the model (the fast suite fits it once, in test_contract.py)
def test_fold_in_scores_new_users_from_their_history(data, fitted):
    assert newcomer_cluster_share(fitted[0], data[1], tolerance=1e-5) >= 18
