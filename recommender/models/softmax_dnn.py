"""The softmax DNN of the origin write-up on content and deep recommenders, trained as a
Mult-DAE (Liang et al. 2018): the whole history in, a softmax over the catalogue out.

A user's input is their history weighted like :class:`~recommender.models.ease.RatedEASE`
(``rating_weight``: loved movies count more), L2-normalised and dropped out (``dropout``);
``tanh`` layers map it to ``psi(x)``; a movie's logit is ``psi(x) . v_j + b_j``. The loss
reconstructs the same weighted history: the multinomial likelihood over the whole catalogue
(``full``), or a sampled / in-batch softmax with the logQ correction (the other ``loss``
values). Because the input is a history, a user the model never saw is scored with the same
forward pass (it folds in). Settings and measurements: ``docs/models/softmax-dnn.md``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import tensorflow as tf
from pydantic import Field

from recommender.models.ease import ease_inputs
from recommender.models.neural import (HistorySoftmaxSettings, SAMPLED_LOSSES, dense_layers, flat_history, mlp,
                                       multinomial_loss, negative_distribution,
                                       logq_correction, remove_accidental_hits,
                                       sample_negatives, sampled_softmax_loss, variable)
from recommender.models.settings import Sizes
from recommender.models.tower import TowerModel, ndcg_validation
from recommender.models.training import History

__all__ = ["SoftmaxDNN", "SoftmaxDNNSettings"]

_QUERY_BATCH = 1024  # users whose query vectors are made at once when every user is ranked

class SoftmaxDNNSettings(HistorySoftmaxSettings):
    """Settings of :class:`SoftmaxDNN`."""

    hidden: Sizes = Field((600,), description="tanh layer sizes of the query tower")
    dropout: float = Field(0.3, ge=0, lt=1, description="share of input movies dropped per step")
    rating_weight: float = Field(1.0, ge=0, description="weight of a rating's distance from "
                                 "the user's mean in input and target (0: binary)")
    l2: float = Field(0.0, ge=0, description="L2 weight on the kernels and item vectors")
    batch_size: int = Field(128, ge=1, description="users per step")
    patience: int = Field(10, ge=1, description="epochs without a better validation NDCG@10 "
                          "before stopping")


class _Batches:
    """Training batches: the dropped-out input, the whole history as targets, negatives."""

    def __init__(self, history: sp.csr_matrix, settings: SoftmaxDNNSettings):
        self.history, self.settings = history, settings
        if settings.loss in SAMPLED_LOSSES:  # in-batch: one positive per user drawn uniformly
            self.q = negative_distribution(history, settings.loss)

    def __call__(self, batch: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
        s = self.settings
        rows = self.history[batch["user"]].tocoo()
        keep = rng.random(rows.nnz) >= s.dropout
        inputs = sp.csr_matrix((rows.data[keep], (rows.row[keep], rows.col[keep])),
                               shape=rows.shape)
        out = {**_inputs(inputs), **{f"target_{k}": v for k, v in flat_history(rows).items()}}
        if s.loss in SAMPLED_LOSSES:
            if s.loss == "in-batch":  # a random positive of every user of the batch
                csr = rows.tocsr()
                start, count = csr.indptr[:-1], np.diff(csr.indptr)
                pick = start + np.floor(rng.random(len(count)) * count).astype(np.int64)
                candidates = csr.indices[np.minimum(pick, max(csr.nnz - 1, 0))]
            else:
                candidates = sample_negatives(self.q, s.num_negatives, rng)
            out.update(candidates=candidates.astype(np.int32),
                       hits=remove_accidental_hits(candidates, rows.tocsr()),
                       candidate_logq=logq_correction(self.q, candidates),
                       target_logq=logq_correction(self.q, out["target_item"]))
        return out


def _inputs(rows: sp.csr_matrix) -> dict[str, np.ndarray]:
    """The query tower's input: flat history lists, and ``n_users``, a ``[B]`` placeholder
    that tells the compiled step the batch size."""
    return {**flat_history(rows), "n_users": np.zeros(rows.shape[0], np.float32)}


class _Towers(tf.Module):
    """``psi(x)`` from the L2-normalised history; logits ``psi V^T + b``."""

    def __init__(self, n_items: int, hidden: tuple[int, ...], rng: np.random.Generator):
        super().__init__(name="softmax_dnn")
        self.layers = dense_layers(rng, [n_items, *hidden], "layer", init="glorot_uniform")
        self.item_out = variable(rng, (n_items, hidden[-1]), "glorot_uniform", "item_out")
        self.item_bias = tf.Variable(tf.zeros([n_items]), name="item_bias")

    def query(self, batch: dict) -> tf.Tensor:
        """``psi(x)`` ``[B, d]``: the first layer is a gather over the flat history
        (O(history x d), not O(catalogue)), then tanh layers.

        Outside a compiled step (validation, scoring) the first layer is a sparse product
        instead, the same sums in the same order (so the same floats) without the gathered
        history x d copies, which made most of a validation's time.
        """
        n = tf.shape(batch["n_users"])[0]
        w, seg = batch["weight"], batch["segment"]
        norm = tf.sqrt(tf.math.unsorted_segment_sum(w * w, seg, n))
        w = w / tf.gather(tf.maximum(norm, 1e-6), seg)
        (kernel, bias), rest = self.layers[0], self.layers[1:]
        if tf.executing_eagerly():
            rows = sp.csr_matrix((w.numpy(), (np.asarray(seg), np.asarray(batch["item"]))),
                                 shape=(int(n), kernel.shape[0]))
            h = tf.constant(rows @ kernel.numpy())
        else:
            h = tf.math.unsorted_segment_sum(w[:, None] * tf.gather(kernel, batch["item"]),
                                             seg, n)
        return mlp(tf.tanh(h + bias), rest, activation=tf.tanh, last=tf.tanh)

    def items(self, index: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """Item vectors ``v_j`` and biases ``b_j``, all or ``index``."""
        if index is None:
            return self.item_out, self.item_bias
        return tf.gather(self.item_out, index), tf.gather(self.item_bias, index)

    def logits(self, batch: dict) -> tf.Tensor:
        vectors, bias = self.items()
        return self.query(batch) @ tf.transpose(vectors) + bias

    def penalty(self) -> tf.Tensor:
        """Squared norm of the kernels and item vectors."""
        return tf.add_n([tf.reduce_sum(k ** 2) for k, _ in self.layers]
                        + [tf.reduce_sum(self.item_out ** 2)])


class SoftmaxDNN(TowerModel):
    """Softmax DNN trained as a Mult-DAE: the whole history in, the catalogue's softmax out."""

    name = "softmax-dnn"
    Settings = SoftmaxDNNSettings
    folds_in = True
    scores_new_movies = False  # its scores span the train catalogue only
    validation_metric, maximise = "ndcg@10", True
    # Adam updates both 59,047 x 600 tables every step whatever the batch: 512 users a step
    # make a quarter of the steps; three epochs of a fresh 30% of the users each, 0.9 of a
    # pass over 25M ratings (docs/models/softmax-dnn.md).
    large_data = {"batch_size": 512, "learning_rate": 3e-3, "epochs": 3, "epoch_fraction": 0.3,
                  "refit": False}

    def _train(self, part: sp.csr_matrix, held: sp.csr_matrix | None, epochs: int,
               on_epoch=None) -> tuple[_Towers, History]:
        s = self.settings
        history = self._weighted(part)
        towers = self._fresh()

        def loss_fn(batch):
            psi = towers.query(batch)
            n = tf.shape(psi)[0]
            seg, item, weight = (batch["target_segment"], batch["target_item"],
                                 batch["target_weight"])
            if s.loss == "full":
                logits = towers.logits(batch)
                target = tf.scatter_nd(tf.stack([seg, item], axis=1), weight, tf.shape(logits))
                per_user = multinomial_loss(logits, target)
            else:
                vectors, bias = towers.items(item)
                pos = tf.reduce_sum(tf.gather(psi, seg) * vectors, axis=1) + bias
                if s.loss == "positives-only":
                    per_target = tf.nn.softplus(-pos)  # -log sigmoid(pos)
                else:
                    vectors, bias = towers.items(batch["candidates"])
                    neg = psi @ tf.transpose(vectors) + bias - batch["candidate_logq"]
                    per_target = sampled_softmax_loss(pos - batch["target_logq"], neg,
                                                      batch["hits"], seg)
                per_user = tf.math.unsorted_segment_sum(weight * per_target, seg, n)
            return per_user, s.l2 * towers.penalty()

        validate = None
        if held is not None:
            validate = ndcg_validation(lambda u: self._logits(towers, history[u]), history, held,
                                       self.seed)
        users = np.flatnonzero(np.diff(history.indptr) > 0).astype(np.int64)
        result = self._loop(towers, loss_fn, {"user": users}, epochs, validate=validate,
                            batch_fn=_Batches(history, s), on_epoch=on_epoch)
        return towers, result

    def _finish(self, whole: sp.csr_matrix) -> None:
        self.inputs = self._weighted(whole)

    def _build(self) -> _Towers:
        return _Towers(self.n_items, self.settings.hidden, np.random.default_rng(self.seed))

    def _weighted(self, ratings: sp.csr_matrix) -> sp.csr_matrix:
        """A users x items ratings matrix as the model's input and target weights."""
        return ease_inputs(ratings, self.settings.rating_weight)

    @staticmethod
    def _logits(towers: _Towers, rows: sp.csr_matrix) -> np.ndarray:
        """Catalogue logits for users given by their input rows (whole history, no dropout)."""
        return towers.logits(_inputs(rows)).numpy()

    def item_vectors(self) -> np.ndarray:
        """The output item vectors ``v_j``, ``(n_items, last hidden size)``."""
        self._check_fitted()
        return self.module.item_out.numpy()

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        return self._logits(self.module, self.inputs[user_index])

    def _score_factors(self, user_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``[psi(x_u), 1]`` and ``[v_j; b_j]``: the logits are one product. ``psi`` is made
        ``_QUERY_BATCH`` users at a time (its first layer gathers a kernel row per rating)."""
        rows = np.empty((len(user_index), self.settings.hidden[-1] + 1), np.float32)
        rows[:, -1] = 1.0
        for lo in range(0, len(user_index), _QUERY_BATCH):
            batch = self.inputs[user_index[lo: lo + _QUERY_BATCH]]
            rows[lo: lo + batch.shape[0], :-1] = self.module.query(_inputs(batch)).numpy()
        vectors, bias = self.module.items()
        return rows, np.ascontiguousarray(np.vstack([vectors.numpy().T, bias.numpy()[None]]))

    def _score_history(self, ratings, movie_ids, user_ids):
        return self._pick(self._logits(self.module, self._weighted(ratings)), movie_ids)

    def _arrays(self) -> dict[str, np.ndarray]:
        x = self.inputs
        return {"inputs_data": x.data, "inputs_indices": x.indices, "inputs_indptr": x.indptr}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.inputs = sp.csr_matrix(
            (arrays["inputs_data"], arrays["inputs_indices"], arrays["inputs_indptr"]),
            shape=(len(self.users), len(self.items)))
