"""The shared neural pieces (recommender.models.neural): negative sampling and its q, the
target sampler's leakage-free batches, and the losses on hand-built cases."""

import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf

from recommender.models.neural import (TargetSampler, logq_correction, multinomial_loss,
                                       remove_accidental_hits, sample_negatives,
                                       sampled_softmax_loss, sampling_distribution)


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
def test_target_batches_hold_targets_out_of_the_query(loss):
    history = sp.random(20, 50, density=0.3, format="csr", random_state=2)
    history.data[:] = 1.0
    sampler = TargetSampler(history, loss, target_fraction=0.3, max_targets=8, dropout=0.0,
                            num_negatives=64, activity=np.array([0.0, 1.0]))
    batch = sampler({"user": np.arange(20)}, np.random.default_rng(0))
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
