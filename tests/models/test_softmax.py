"""Softmax DNN: the negative sampler, leakage-free batches, learning, folding, artifacts."""

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.reporting.analysis.sampling import folding, folding_comparison, genre_similarity
from recommender.evaluation import fit_and_evaluate
from recommender.models import load_model, make_model
from recommender.models.baselines import EASE
from recommender.models.softmax import (NegativeSampler, Softmax, logq_correction,
                                        remove_accidental_hits, sample_negatives,
                                        sampling_distribution)
from recommender.data.splits import per_user_split
from recommender.data.synthetic import planted_clusters

FAST = {"epochs": 25, "patience": 5, "refit": False, "wide": False}  # the deep softmax alone


@pytest.fixture(scope="module")
def data():
    """Planted taste clusters: 4 genres of 50 movies; each user watches 20 movies of one
    genre, movie popularity within a genre follows Zipf, so popularity alone is weak."""
    return planted_clusters(n_clusters=4, movies_per_cluster=50, n_users=400, per_user=20)


@pytest.fixture(scope="module")
def split(data):
    return per_user_split(data[0], 0.2, seed=3)


@pytest.fixture(scope="module")
def fitted(data, split):
    train, test = split
    return fit_and_evaluate("softmax", train, test, movies=data[1], use_genres=False, **FAST)


def test_popularity_distribution_follows_count_power():
    q = sampling_distribution(np.array([1, 16, 81]), "popularity", power=0.75)
    np.testing.assert_allclose(q, np.array([1, 8, 27]) / 36)
    np.testing.assert_allclose(sampling_distribution(np.array([5, 0]), "uniform"), [0.5, 0.5])


def test_sampling_is_seeded_and_follows_q():
    q = sampling_distribution(np.arange(1, 51), "popularity")
    a = sample_negatives(q, 1000, np.random.default_rng(7))
    b = sample_negatives(q, 1000, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    big = sample_negatives(q, 200_000, np.random.default_rng(1))
    np.testing.assert_allclose(np.bincount(big, minlength=50) / len(big), q, atol=3e-3)


def test_logq_correction_is_log_of_the_sampling_probability():
    q = sampling_distribution(np.array([3, 1, 9, 4]), "popularity")
    items = np.array([[2, 0], [1, 3]])
    np.testing.assert_allclose(logq_correction(q, items), np.log(q[items]), rtol=1e-6)


def test_no_positive_survives_accidental_hit_removal():
    rng = np.random.default_rng(0)
    positives = sp.random(8, 30, density=0.3, format="csr", random_state=1)
    candidates = sample_negatives(np.full(30, 1 / 30), 200, rng)
    hits = remove_accidental_hits(candidates, positives)
    for b in range(8):
        kept = set(candidates[~hits[b]])
        assert kept.isdisjoint(positives[b].indices)
        assert set(candidates[hits[b]]) <= set(positives[b].indices)


@pytest.mark.parametrize("loss", ["full", "in-batch", "sampled-popularity"])
def test_batches_hold_targets_out_of_the_query(loss):
    history = sp.random(20, 50, density=0.3, format="csr", random_state=2)
    history.data[:] = 1.0
    params = {"loss": loss, "target_fraction": 0.3, "max_targets": 8, "dropout": 0.0,
              "num_negatives": 64}
    batch = NegativeSampler(history, params, np.array([0.0, 1.0]))(
        {"user": np.arange(20)}, np.random.default_rng(0))
    real = batch["weight"] > 0
    for b in range(20):
        targets = set(batch["targets"][b][batch["target_weight"][b] > 0])
        inputs = set(batch["item"][real & (batch["segment"] == b)])
        assert targets and targets.isdisjoint(inputs)
        assert targets | inputs == set(history[b].indices)  # no dropout: nothing lost
    if "hits" in batch:  # the user's own targets are never negatives
        for b in range(20):
            own = np.isin(batch["candidates"], history[b].indices)
            assert batch["hits"][b][own].all()


def test_learns_planted_structure_better_than_popularity(split, fitted):
    train, test = split
    _, popularity = fit_and_evaluate("popularity", train, test)
    model, result = fitted
    assert result.metrics["ndcg@10"] > popularity.metrics["ndcg@10"] + 0.05
    assert model.meta["validation"]["best_epoch"] >= 1


def test_folding_measure_and_artifact_round_trip(data, fitted, tmp_path):
    model, _ = fitted
    measure = folding(model, data[1])
    assert -1.0 <= measure["between"] < measure["within"] <= 1.0  # clusters learned apart
    model.save(tmp_path / "softmax")
    loaded = load_model(tmp_path / "softmax")
    users = np.arange(5)
    np.testing.assert_allclose(loaded.score(users), model.score(users), rtol=1e-5, atol=1e-5)


def test_unknown_loss_is_refused(split):
    with pytest.raises(ValueError, match="unknown loss"):
        make_model("softmax", loss="hinge").fit(split[0])


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


def test_wide_path_adds_gated_ease_scores(split, wide_fitted, tmp_path):
    train, _ = split
    model, _ = wide_fitted
    assert model.params["wide"] and model.meta["wide_gate"] > 0
    ease = EASE(l2=model.params["wide_l2"],
                rating_weight=model.params["wide_rating_weight"]).fit(train)
    np.testing.assert_allclose(model.wide[1], ease.B, atol=1e-5)  # W on all of train
    users = np.arange(6)
    deep = Softmax(**{**model.params, "wide": False})
    deep.towers, deep.history, deep.activity = model.towers, model.history, model.activity
    wide_part = model.meta["wide_gate"] * ease.score(users)
    np.testing.assert_allclose(model.score(users) - deep._logits(model.towers, model.history,
                                                                 users),
                               wide_part, rtol=1e-4, atol=1e-4)
    model.save(tmp_path / "wide")  # W is recomputed at load time, not saved
    np.testing.assert_allclose(load_model(tmp_path / "wide").score(users), model.score(users),
                               rtol=1e-5, atol=1e-5)


def test_wide_and_deep_beats_popularity(split, wide_fitted):
    train, test = split
    _, popularity = fit_and_evaluate("popularity", train, test)
    assert wide_fitted[1].metrics["ndcg@10"] > popularity.metrics["ndcg@10"] + 0.05


def test_without_wide_path_there_is_no_gate(data, split):
    train, test = split
    model, result = fit_and_evaluate("softmax", train, test, movies=data[1], use_genres=False,
                                     wide=False, epochs=3, patience=3, refit=False)
    assert model.wide is None and "log_gate" not in {
        v.name.split(":")[0] for v in model.towers.trainable_variables}
    assert np.isfinite(result.metrics["ndcg@10"])
