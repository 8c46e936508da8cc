"""The softmax DNN of the origin write-up on content and deep recommenders: a query tower over
the watch history, a softmax over the catalogue, and a wide item-item path beside it.

The query ``x`` of a user is the bag of movies they watched (mean-pooled input embeddings,
optionally rating-weighted), their genre profile (mean genre multi-hot of those movies) and
their activity (standardised log count). ReLU layers map it to ``psi(x)`` in R^d; a movie's
logit is ``psi(x) . v_j + b_j`` with ``v_j`` an embedding (plus a projection of its genres).

Training keeps the answer out of the question (:class:`~recommender.models.neural.
TargetSampler`): every epoch each user's history is split afresh into targets and a
dropped-out input. The loss over the targets is the softmax over the whole catalogue
(``full``, the user's other positives left out of the denominator), over sampled or in-batch
negatives with the logQ correction and accidental hits masked, or a sigmoid on the positives
alone (``positives-only``, prone to folding).

Wide & deep (``wide=True``): the logits gain ``g * x_u W``, with ``x_u`` the user's history
weighted like :class:`~recommender.models.ease.RatedEASE`, ``W`` EASE's closed form on the data
being trained on (never on validation or test), held fixed, and ``g`` a learned gate; in
training ``x_u`` is the non-target history. ``W`` is ``n_items^2`` floats, so it is
recomputed from the history when a model is loaded. On u20 the wide path carries the ranking;
``wide=False`` is the pure tower the negative-sampling analyses use (``docs/models/softmax.md``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
import tensorflow as tf
from pydantic import Field

from recommender.data.preprocessing import genre_matrix
from recommender.models.ease import ease_inputs, ease_weights
from recommender.models.neural import (HistorySoftmaxSettings, MASKED_LOGIT, TargetSampler, dense_layers, flat_history,
                                       full_softmax_loss, mlp, sampled_softmax_loss, variable)
from recommender.models.settings import Sizes
from recommender.models.tower import TowerModel, ndcg_validation
from recommender.models.training import History

__all__ = ["Softmax", "SoftmaxSettings"]

class SoftmaxSettings(HistorySoftmaxSettings):
    """Settings of :class:`Softmax`."""

    dim: int = Field(128, ge=1, description="dimension of psi(x) and of the item vectors")
    hidden: Sizes = Field((256,), description="ReLU layer sizes of the query tower")
    tied: bool = Field(False, description="input and output item embeddings are one table")
    dropout: float = Field(0.5, ge=0, lt=1, description="share of input movies dropped per step")
    rating_weighted: bool = Field(False, description="pool the input by rating, not equally")
    pooling: Literal["mean", "sqrtn"] = Field("mean", description="divide the pooled input by "
                                              "its count or by the count's square root")
    use_genres: bool = Field(True, description="genre profile in the query, genres in v_j")
    target_fraction: float = Field(0.2, gt=0, lt=1, description="share of a history held out "
                                   "as targets each epoch")
    max_targets: int = Field(32, ge=1, description="most targets per user and epoch")
    l2: float = Field(0.0, ge=0, description="L2 weight on every variable")
    batch_size: int = Field(64, ge=1, description="users per step")
    patience: int = Field(5, ge=1, description="epochs without a better validation NDCG@10 "
                          "before stopping")
    wide: bool = Field(True, description="add the EASE item-item path to the logits")
    wide_l2: float = Field(300.0, gt=0, description="L2 weight of the wide path's closed form")
    wide_gate: float = Field(100.0, gt=0, description="starting scale of the wide logits")
    wide_rating_weight: float = Field(0.5, ge=0, description="rating weight of the wide "
                                      "path's inputs (as ease-rated's)")


class _Towers(tf.Module):
    """Query tower ``psi(x)`` and item embeddings/biases; logits ``psi V^T + b (+ wide)``."""

    def __init__(self, n_items: int, genres: np.ndarray, s: SoftmaxSettings,
                 rng: np.random.Generator):
        super().__init__(name="softmax")
        self.settings = s
        self.genres = tf.constant(genres)
        self.item_out = variable(rng, (n_items, s.dim), 0.05, "item_out")
        if not s.tied:
            self.item_in = variable(rng, (n_items, s.dim), 0.05, "item_in")
        self.item_bias = tf.Variable(tf.zeros([n_items]), name="item_bias")
        self.genre_out = variable(rng, (genres.shape[1], s.dim), 0.05, "genre_out")
        self.layers = dense_layers(rng, [s.dim + genres.shape[1] + 1, *s.hidden, s.dim], "layer",
                                   init="he_normal")
        if s.wide:  # the wide path's gate, on a log scale
            self.log_gate = tf.Variable(np.float32(np.log(s.wide_gate)), name="log_gate")

    def gate(self) -> tf.Tensor:
        """The learned scale of the wide logits ``x_u W`` (0 without a wide path)."""
        return tf.exp(self.log_gate) if self.settings.wide else tf.constant(0.0)

    def query(self, batch: dict) -> tf.Tensor:
        """``psi(x)`` ``[B, d]`` from the flat history lists and the activity feature."""
        n = tf.shape(batch["activity"])[0]
        w = batch["weight"][:, None]
        item, seg = batch["item"], batch["segment"]
        power = {"mean": 1.0, "sqrtn": 0.5}[self.settings.pooling]
        total = tf.maximum(tf.math.unsorted_segment_sum(batch["weight"], seg, n)[:, None],
                           1e-6) ** power
        embedding = self.item_out if self.settings.tied else self.item_in
        pooled = tf.math.unsorted_segment_sum(w * tf.gather(embedding, item), seg, n)
        profile = tf.math.unsorted_segment_sum(w * tf.gather(self.genres, item), seg, n)
        return mlp(tf.concat([pooled / total, profile / total, batch["activity"]], axis=1),
                   self.layers)

    def items(self, index: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """Item vectors ``v_j`` (embedding + projected genres) and biases, all or ``index``."""
        if index is None:
            return self.item_out + self.genres @ self.genre_out, self.item_bias
        genres = tf.gather(self.genres, index) @ self.genre_out
        return tf.gather(self.item_out, index) + genres, tf.gather(self.item_bias, index)


class Softmax(TowerModel):
    """Softmax DNN over the watch history with negative sampling, and a wide EASE path."""

    name = "softmax"
    Settings = SoftmaxSettings
    validation_metric, maximise = "ndcg@10", True
    # The default wide path holds a dense item-item matrix (14 GB at 59,047 movies); the pure
    # tower (wide=False) is not measured at that scale yet.
    large_data = None

    def _prepare(self, data, context) -> None:
        if self.settings.use_genres and context.movies is not None:
            self.genres = genre_matrix(context.movies, data.items)[0].toarray()
        else:
            self.genres = np.zeros((data.n_items, 0), np.float32)
        log_n = np.log1p(np.diff(data.matrix("rating").indptr))
        self.activity = np.array([log_n.mean(), log_n.std() or 1.0], np.float32)

    def _train(self, part: sp.csr_matrix, held: sp.csr_matrix | None, epochs: int,
               on_epoch=None) -> tuple[_Towers, History]:
        s = self.settings
        wide = self._wide(part)
        history = self._weighted(part)
        towers = self._fresh()
        sampler = TargetSampler(history, s.loss, s.target_fraction, s.max_targets, s.dropout,
                                s.num_negatives, self.activity)

        def batch_fn(batch: dict, rng: np.random.Generator) -> dict:
            out, known = sampler.split(batch, rng)
            if wide is not None:  # x_u W on the whole non-target history (no dropout)
                x = known.multiply(wide[0][batch["user"]]).tocsr()
                out["wide"] = np.asarray(x @ wide[1], np.float32)
            return out

        def loss_fn(batch):
            psi = towers.query(batch)
            targets, weight = batch["targets"], batch["target_weight"]
            pos_vectors, pos_bias = towers.items(targets)
            pos = tf.einsum("bd,btd->bt", psi, pos_vectors) + pos_bias
            if s.wide:  # + gate * x_u W: the deep tower learns corrections to the linear model
                wide_logits = towers.gate() * batch["wide"]
                pos += tf.gather(wide_logits, targets, batch_dims=1)
            if s.loss == "full":
                vectors, bias = towers.items()
                logits = psi @ tf.transpose(vectors) + bias
                if s.wide:
                    logits += wide_logits
                known = tf.stack([batch["known_segment"], batch["known_item"]], axis=1)
                logits += tf.scatter_nd(known, MASKED_LOGIT * batch["known_weight"],
                                        tf.shape(logits))
                per_target = full_softmax_loss(logits, targets)
            elif s.loss == "positives-only":
                per_target = tf.nn.softplus(-pos)  # -log sigmoid(pos)
            else:
                vectors, bias = towers.items(batch["candidates"])
                neg = psi @ tf.transpose(vectors) + bias - batch["candidate_logq"]
                if s.wide:
                    neg += tf.gather(wide_logits, batch["candidates"], axis=1)
                per_target = sampled_softmax_loss(pos - batch["target_logq"], neg, batch["hits"])
            per_user = tf.reduce_sum(per_target * weight, 1) / tf.reduce_sum(weight, 1)
            reg = s.l2 * tf.add_n([tf.reduce_sum(v ** 2) for v in towers.trainable_variables])
            return per_user, reg

        validate = None
        if held is not None:
            validate = ndcg_validation(lambda u: self._logits(towers, history, wide, u),
                                       history, held)
        users = np.flatnonzero(np.diff(history.indptr) > 0).astype(np.int64)
        result = self._loop(towers, loss_fn, {"user": users}, epochs, validate=validate,
                            batch_fn=batch_fn, on_epoch=on_epoch)
        return towers, result

    def _finish(self, whole: sp.csr_matrix) -> None:
        self.wide = self._wide(whole)  # scoring reads the whole train history
        self.inputs = self._weighted(whole)
        self.meta["wide_gate"] = float(self.module.gate())

    def _build(self) -> _Towers:
        return _Towers(self.n_items, self.genres.astype(np.float32), self.settings,
                       np.random.default_rng(self.seed))

    def _wide(self, ratings: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray] | None:
        """The wide path's inputs ``x`` and ``W`` (EASE's closed form on ``x``), or None."""
        if not self.settings.wide:
            return None
        x = ease_inputs(ratings, self.settings.wide_rating_weight)
        return x, ease_weights(x, self.settings.wide_l2)

    def _weighted(self, ratings: sp.csr_matrix) -> sp.csr_matrix:
        """History pooling weights: the ratings, or ones."""
        out = ratings.copy()
        if not self.settings.rating_weighted:
            out.data[:] = 1.0
        return out

    def _logits(self, towers: _Towers, history: sp.csr_matrix,
                wide: tuple[sp.csr_matrix, np.ndarray] | None,
                user_index: np.ndarray) -> np.ndarray:
        """Catalogue logits for ``user_index`` from their whole ``history`` (no dropout)."""
        rows = history[user_index]
        mean, std = self.activity
        activity = ((np.log1p(np.diff(rows.indptr)) - mean) / std).astype(np.float32)[:, None]
        psi = towers.query({**flat_history(rows), "activity": activity})
        vectors, bias = towers.items()
        logits = (psi @ tf.transpose(vectors) + bias).numpy()
        if wide is not None:
            logits += float(towers.gate()) * np.asarray(wide[0][user_index] @ wide[1])
        return logits

    def item_vectors(self) -> np.ndarray:
        """The output item vectors ``v_j`` (genres projected in), ``(n_items, dim)``."""
        self._check_fitted()
        return self.module.items()[0].numpy()

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        return self._logits(self.module, self.inputs, self.wide, user_index)

    def _arrays(self) -> dict[str, np.ndarray]:
        x = self.inputs
        return {"genres": self.genres, "activity": self.activity, "inputs_data": x.data,
                "inputs_indices": x.indices, "inputs_indptr": x.indptr,
                **({"wide_x_data": self.wide[0].data} if self.wide is not None else {})}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.genres, self.activity = arrays["genres"], arrays["activity"]
        self.inputs = sp.csr_matrix(
            (arrays["inputs_data"], arrays["inputs_indices"], arrays["inputs_indptr"]),
            shape=(len(self.users), len(self.items)))
        self.wide = None
        if self.settings.wide:  # W is recomputed from x (deterministic): n_items^2 floats
            x = sp.csr_matrix((arrays["wide_x_data"], self.inputs.indices, self.inputs.indptr),
                              shape=self.inputs.shape)
            self.wide = x, ease_weights(x, self.settings.wide_l2)
