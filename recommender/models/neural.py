"""The pieces the TensorFlow models share, written once.

- negative sampling in numpy: the law ``q`` negatives are drawn from, the draws, accidental
  hits, and the logQ correction every sampled or in-batch softmax subtracts;
- histories as padded flat index lists (fixed shapes per size bucket, so XLA compiles few
  programs) and the target sampler that holds targets out of each user's input every epoch;
- variables and layers: seeded initialisers and an MLP builder, applied in TensorFlow while
  training and in numpy when a model scores without TensorFlow;
- the losses: full softmax over the catalogue, the multinomial likelihood, sampled softmax
  and in-batch softmax.

Every random draw comes from a generator the model seeds, so equal seeds give equal models.
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from pydantic import Field

from recommender.core.errors import SettingError
from recommender.models.settings import TowerSettings

__all__ = ["MASKED_LOGIT", "SoftmaxLoss", "LOSS_HELP", "SAMPLED_LOSSES", "HistorySoftmaxSettings", "sampling_distribution", "negative_distribution",
           "sample_negatives", "remove_accidental_hits", "logq_correction", "flat_history",
           "TargetSampler", "variable", "dense_layers", "mlp", "mlp_numpy",
           "full_softmax_loss", "multinomial_loss", "sampled_softmax_loss",
           "in_batch_softmax_loss"]

MASKED_LOGIT = -1e9  # logit of a masked candidate: exp() underflows to 0 without NaN gradients
# The losses of a softmax over the catalogue: exact (``full``), over negatives drawn from
# ``q`` (``sampled-*``) or taken from the batch (``in-batch``), or none (``positives-only``).
SoftmaxLoss = Literal["full", "sampled-uniform", "sampled-popularity", "in-batch",
                      "positives-only"]
LOSS_HELP = ("softmax over the whole catalogue, over sampled or in-batch negatives, or "
             "sigmoid on the positives alone")
SAMPLED_LOSSES = ("sampled-uniform", "sampled-popularity", "in-batch")


class HistorySoftmaxSettings(TowerSettings):
    """Settings of a softmax over the catalogue trained from users' histories."""

    loss: SoftmaxLoss = Field("full", description=LOSS_HELP)
    num_negatives: int = Field(1024, ge=1, description="negatives per batch of a sampled loss")
    epochs: int = Field(200, ge=1, description="most epochs; early stopping picks the count")


# ---------------------------------------------------------------------------------------------
# Negative sampling (numpy)


def sampling_distribution(counts: np.ndarray, kind: str = "popularity",
                          power: float = 0.75) -> np.ndarray:
    """Probability ``q(j)`` of drawing item ``j`` as a negative.

    Args:
        counts: train interactions per item.
        kind: ``uniform`` or ``popularity`` (``q ~ count^power``; unseen items get count 1 so
            every item can be drawn).
        power: the popularity exponent (0.75 as in word2vec).

    Returns:
        ``(n_items,)`` float64 probabilities summing to 1.
    """
    if kind == "uniform":
        weights = np.ones(len(counts))
    elif kind == "popularity":
        weights = np.maximum(np.asarray(counts, np.float64), 1.0) ** power
    else:
        raise SettingError(f"unknown sampling distribution {kind!r}; use uniform or popularity")
    return weights / weights.sum()


def negative_distribution(history: sp.csr_matrix, loss: str,
                          targets_per_user: np.ndarray | float = 1.0) -> np.ndarray:
    """``q(j)`` of a sampled or in-batch loss over the users x items ``history``.

    For ``sampled-uniform`` / ``sampled-popularity`` the law negatives are drawn from; for
    ``in-batch`` the exact marginal law of one in-batch target, when each user's targets
    (``targets_per_user``, one per user by default) are drawn uniformly from their history.
    """
    if loss == "in-batch":
        n_u = np.diff(history.indptr)
        share = np.divide(targets_per_user, n_u, out=np.zeros(len(n_u)), where=n_u > 0)
        mass = np.asarray((history != 0).T @ share).ravel()
        return mass / mass.sum()
    counts = np.asarray((history != 0).sum(axis=0)).ravel()
    return sampling_distribution(counts, loss.removeprefix("sampled-"))


def sample_negatives(q: np.ndarray, num: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``num`` item indices with replacement from ``q`` (inverse-CDF, O(num log n)).

    Returns:
        ``(num,)`` int64 item indices; equal generator states give equal draws.
    """
    cdf = np.cumsum(q)
    drawn = np.searchsorted(cdf, rng.random(num) * cdf[-1], side="right")
    return np.minimum(drawn, len(q) - 1).astype(np.int64)


def remove_accidental_hits(candidates: np.ndarray, positives: sp.csr_matrix) -> np.ndarray:
    """Which candidates are positives of each user: those must be masked out as negatives.

    Args:
        candidates: ``(S,)`` candidate item indices shared by the batch.
        positives: ``(B, n_items)`` sparse matrix, non-zero where an item is a positive of
            that user (its history and its targets).

    Returns:
        ``(B, S)`` bool, True where candidate ``s`` is an accidental hit for user ``b``.
    """
    return np.asarray(positives[:, candidates].toarray() != 0)


def logq_correction(q: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``log q(j)`` of each item, the term subtracted from its logit in a sampled softmax.

    Subtracting it makes the sampled softmax an unbiased estimate of the full one's ranking
    (Bengio & Senecal 2008; Yi et al. 2019 for in-batch negatives).

    Returns:
        float32 array shaped like ``items``.
    """
    return np.log(q[items]).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Histories as padded flat index lists, and the target sampler


def _bucket(n: int, low: int = 1024) -> int:
    """Smallest power of two >= ``n`` (at least ``low``): few shapes, few XLA compilations."""
    return max(low, 1 << max(int(n) - 1, 0).bit_length())


def flat_history(rows: sp.csr_matrix) -> dict[str, np.ndarray]:
    """The non-zeros of ``rows`` as padded ``item``, ``segment`` (row) and ``weight`` lists."""
    coo = rows.tocoo()
    size = _bucket(coo.nnz)
    item, segment, weight = (np.zeros(size, np.int32), np.zeros(size, np.int32),
                             np.zeros(size, np.float32))
    item[: coo.nnz], segment[: coo.nnz], weight[: coo.nnz] = coo.col, coo.row, coo.data
    return {"item": item, "segment": segment, "weight": weight}


class TargetSampler:
    """Training batches that keep the answer out of the question: each user's history is split
    afresh at random into targets and a dropped-out input, and negatives are drawn.

    Called by the training loop with a batch of user indices and its seeded generator. Each
    user gets ``round(target_fraction * n)`` targets (at least 1, at most ``max_targets`` and
    one less than the history). The batch holds the input as :func:`flat_history` lists,
    ``targets`` and ``target_weight`` (``[B, max_targets]``, zero-padded), the standardised
    log input count ``activity``, and per ``loss``: for ``full`` the non-target history
    (``known_*``, left out of the softmax); for sampled and in-batch losses ``candidates``,
    their accidental ``hits`` and the logQ terms of candidates and targets. Negatives are
    drawn from ``q`` (default: :func:`negative_distribution` of the history).
    """

    def __init__(self, history: sp.csr_matrix, loss: str, target_fraction: float,
                 max_targets: int, dropout: float, num_negatives: int,
                 activity: np.ndarray = np.array([0.0, 1.0], np.float32),
                 q: np.ndarray | None = None):
        self.history, self.loss = history, loss
        self.max_targets, self.dropout, self.num_negatives = max_targets, dropout, num_negatives
        self.activity = activity  # (mean, std) of log1p(user count)
        n_u = np.diff(history.indptr)
        n_targets = np.clip(np.round(target_fraction * n_u), 1,
                            np.minimum(max_targets, np.maximum(n_u - 1, 1)))
        self.n_targets = np.where(n_u > 0, n_targets, 0).astype(np.int64)
        if loss in SAMPLED_LOSSES:
            self.q = negative_distribution(history, loss, self.n_targets) if q is None else q

    def __call__(self, batch: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return self.split(batch, rng)[0]

    def split(self, batch: dict, rng: np.random.Generator
              ) -> tuple[dict[str, np.ndarray], sp.csr_matrix]:
        """The batch (see the class docstring) and each user's non-target history, ``[B,
        n_items]`` ones: what a model may add to its input without seeing the targets."""
        users = batch["user"]
        rows = self.history[users].tocoo()
        # a random rank of every entry within its row: the first n_targets are the targets
        order = np.lexsort((rng.random(rows.nnz), rows.row))
        row, col, val = rows.row[order], rows.col[order], rows.data[order]
        start = np.searchsorted(row, np.arange(len(users)))
        rank = np.arange(len(row)) - start[row]
        is_target = rank < self.n_targets[users][row]
        targets = np.zeros((len(users), self.max_targets), np.int32)
        target_weight = np.zeros((len(users), self.max_targets), np.float32)
        targets[row[is_target], rank[is_target]] = col[is_target]
        target_weight[row[is_target], rank[is_target]] = 1.0
        n_input = np.bincount(row[~is_target], minlength=len(users))
        keep = ~is_target & (rng.random(len(row)) >= self.dropout)
        inputs = sp.csr_matrix((val[keep], (row[keep], col[keep])), shape=rows.shape)
        other = ~is_target
        known = sp.csr_matrix((np.ones(other.sum(), np.float32), (row[other], col[other])),
                              shape=rows.shape)
        out = {**flat_history(inputs), "targets": targets, "target_weight": target_weight,
               "activity": self.standardised_activity(n_input)}
        if self.loss == "full":  # the user's non-target positives leave the softmax
            out.update({f"known_{k}": v for k, v in flat_history(known).items()})
        if self.loss in SAMPLED_LOSSES:
            if self.loss == "in-batch":
                candidates = targets.ravel()
                padding = np.tile(target_weight.ravel() == 0, (len(users), 1))
            else:
                candidates = sample_negatives(self.q, self.num_negatives, rng)
                padding = False
            hits = remove_accidental_hits(candidates, self.history[users]) | padding
            out.update(candidates=candidates.astype(np.int32), hits=hits,
                       candidate_logq=logq_correction(self.q, candidates),
                       target_logq=logq_correction(self.q, targets))
        return out, known

    def standardised_activity(self, counts: np.ndarray) -> np.ndarray:
        """``(log1p(count) - mean) / std`` per user, ``[B, 1]`` float32."""
        mean, std = self.activity
        return ((np.log1p(counts) - mean) / std).astype(np.float32)[:, None]


# ---------------------------------------------------------------------------------------------
# Variables and layers


def variable(rng: np.random.Generator, shape: tuple[int, ...], init: str | float,
             name: str) -> tf.Variable:
    """A float32 variable drawn with the model's generator.

    ``init``: a number, the standard deviation of ``N(0, std^2)``; ``"glorot_normal"`` (std
    ``sqrt(2 / (fan_in + fan_out))``); ``"he_normal"`` (std ``sqrt(2 / fan_in)``);
    ``"glorot_uniform"`` (``U(-sqrt(6 / (fan_in + fan_out)), ...)``, as Mult-DAE's code).
    """
    fan_in, fan_out = shape[0], shape[-1]
    if init == "glorot_uniform":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return tf.Variable(rng.uniform(-limit, limit, shape).astype(np.float32), name=name)
    if init == "glorot_normal":
        std = np.sqrt(2.0 / (fan_in + fan_out))
    elif init == "he_normal":
        std = np.sqrt(2.0 / fan_in)
    else:
        std = init
    return tf.Variable(rng.normal(0.0, std, shape).astype(np.float32), name=name)


def dense_layers(rng: np.random.Generator, sizes: list[int], name: str,
                 init: str = "glorot_normal") -> list[tuple[tf.Variable, tf.Variable]]:
    """``(kernel, bias)`` variables of an MLP with the given layer sizes, biases at zero.

    Kernels are drawn in layer order by :func:`variable` with ``init``; variables are named
    ``{name}{n}_kernel`` and ``{name}{n}_bias``.
    """
    return [(variable(rng, (a, b), init, f"{name}{n}_kernel"),
             tf.Variable(tf.zeros([b]), name=f"{name}{n}_bias"))
            for n, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]


def mlp(x: tf.Tensor, layers, activation: Callable = tf.nn.relu,
        last: Callable | None = None) -> tf.Tensor:
    """``x`` through the layers; ``activation`` between them, ``last`` (if any) at the end."""
    for n, (kernel, bias) in enumerate(layers):
        x = x @ kernel + bias
        if n < len(layers) - 1:
            x = activation(x)
        elif last is not None:
            x = last(x)
    return x


def mlp_numpy(x: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """A ReLU MLP in numpy (no activation after the last layer), for scoring without TF."""
    for n, (kernel, bias) in enumerate(layers):
        x = x @ kernel + bias
        x = np.maximum(x, 0.0) if n < len(layers) - 1 else x
    return x


# ---------------------------------------------------------------------------------------------
# Losses


def full_softmax_loss(logits: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
    """``-log softmax(logits)`` at each target, ``[B, T]`` (``targets``: ``[B, T]`` indices)."""
    return -tf.gather(tf.nn.log_softmax(logits), targets, batch_dims=1)


def multinomial_loss(logits: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
    """``-sum_j t_j log softmax(logits)_j`` per row: the Mult-DAE likelihood, ``[B]``.

    Args:
        logits: ``[B, n_items]`` scores over the whole catalogue.
        targets: ``[B, n_items]`` non-negative target weights (the user's history).
    """
    return -tf.reduce_sum(targets * tf.nn.log_softmax(logits), axis=1)


def sampled_softmax_loss(positive: tf.Tensor, negative: tf.Tensor, hits: tf.Tensor,
                         segment: tf.Tensor | None = None) -> tf.Tensor:
    """``-log`` of each positive's softmax over itself and its user's negatives.

    Logits come logQ-corrected (:func:`logq_correction`) where they were sampled.

    Args:
        positive: ``[B, T]`` logits of each user's positives, or ``[P]`` with ``segment``.
        negative: ``[B, S]`` logits of the candidates shared by the batch, per user.
        hits: ``[B, S]`` bool, True where a candidate is a positive of that user (masked).
        segment: ``[P]`` the user (row of ``negative``) of each flat positive.

    Returns:
        Losses shaped like ``positive``.
    """
    if segment is None:
        negatives = tf.reduce_logsumexp(tf.where(hits, MASKED_LOGIT, negative), axis=1,
                                        keepdims=True)
    else:
        negatives = tf.gather(tf.reduce_logsumexp(tf.where(hits, MASKED_LOGIT, negative),
                                                  axis=1), segment)
    return tf.nn.softplus(negatives - positive)


def in_batch_softmax_loss(users: tf.Tensor, movies: tf.Tensor, movie_ids: tf.Tensor,
                          temperature: float = 1.0,
                          logq: tf.Tensor | None = None) -> tf.Tensor:
    """Per-example in-batch softmax cross-entropy of a batch of positive pairs.

    Row ``b`` scores user ``b`` against every movie of the batch; the positive is column
    ``b``; other columns holding the same movie are masked (they are not negatives).

    Args:
        users: ``[B, d]`` user vectors.
        movies: ``[B, d]`` movie vectors of the positives, row for row.
        movie_ids: ``[B]`` movie indices (to find copies of the positive).
        temperature: logits are divided by it.
        logq: ``[B]`` log sampling probability of each batch movie, subtracted from its column.

    Returns:
        ``[B]`` losses.
    """
    logits = tf.matmul(users, movies, transpose_b=True) / temperature
    if logq is not None:
        logits -= logq[None, :]
    same = tf.equal(movie_ids[:, None], movie_ids[None, :])
    copies = tf.logical_and(same, tf.logical_not(tf.eye(tf.shape(movie_ids)[0], dtype=tf.bool)))
    logits = tf.where(copies, MASKED_LOGIT, logits)
    return tf.reduce_logsumexp(logits, axis=1) - tf.linalg.diag_part(logits)
