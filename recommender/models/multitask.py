"""Seed 001: a multitask two-tower model that both predicts ratings and retrieves movies.

A user tower and a movie tower map ids (and, on the movie side, optional genre/year and
title features) to ``dim``-dimensional vectors ``u`` and ``v``. Two tasks share them:

- ranking: ``[u, v] -> Dense(256, relu) -> Dense(128, relu) -> Dense(1)`` read as the rating,
  trained on squared error (with ``biases``, the head's output is added to the mean train
  rating and learned user and movie biases; the seed's plain head starts from 0 and has none);
- retrieval: the dot product ``u . v / temperature`` trained with an in-batch softmax: each
  rating ``(user, movie)`` of a batch is a positive, the batch's other movies are the
  negatives (copies of the positive movie are masked); ``logq`` subtracts ``log`` of each
  movie's share of the training pairs from its logits (the sampling-bias correction of Yi et
  al. 2019).

The loss is ``rating_weight * MSE + retrieval_weight * softmax cross-entropy`` per example
(``retrieval_sum``: the cross-entropy is summed over the batch instead of averaged, as TFRS's
``Retrieval`` task does while its ``Ranking`` MSE is averaged: the seed's effective weighting),
plus ``l2 / n`` times the squared norm of every table and kernel; a zero weight does not
compute its task at all (so its gradients are exactly zero), and with ``rating_weight=0``
the ranking head and biases are left out of training (its predictions are then meaningless).
Training goes through :func:`recommender.training.fit_loop`, early-stopped on a per-user
validation slice of train (``monitor``: validation RMSE, ``-NDCG@10``, or ``both``: their
difference), then refitted on all of train for the best number of epochs.

Answers: :meth:`predict` uses the ranking head. :meth:`score` (what ``recommend`` and the
evaluation rank) is two-stage with ``rerank`` > 0: the retrieval tower picks each user's
``rerank`` best unseen movies by brute force over the catalogue (batched), and the ranking
head orders those candidates by predicted rating, mixed with the standardised retrieval score
(``rerank_mix``: 0 orders by rating alone, 1 keeps the retrieval order); ``rerank=0`` is
retrieval alone. ``preset="seed"`` gives the seed's exact settings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import tensorflow as tf

from recommender import metrics, topk
from recommender.core.errors import DataError, SettingError
from recommender.models.base import Context, Recommender
from recommender.models.softmax import MASKED_LOGIT
from recommender.data.preprocessing import IdEncoder, Interactions, movie_features
from recommender.data.splits import validation_split
from recommender.models.training import History, TrainConfig, fit_loop, set_seed, strategy

__all__ = ["MultiTask", "PRESETS", "in_batch_softmax_loss", "top_k_accuracy"]

_PAIR_CELLS = 2**18  # (user, movie) pairs sent through the ranking head at once

# The seed's setup (TensorFlow Recommenders, seed 001): plain towers and head, Adagrad 0.1,
# 15 epochs of batch 1,000, both weights 1, no validation slice, no regularisation.
PRESETS: dict[str, dict[str, Any]] = {
    "seed": {"dim": 64, "features": "none", "biases": False, "rating_weight": 1.0,
             "retrieval_weight": 1.0, "retrieval_sum": True, "temperature": 1.0, "logq": False,
             "l2": 0.0,
             "optimizer": "adagrad", "learning_rate": 0.1, "epochs": 15, "batch_size": 1000,
             "validation": 0.0, "refit": False},
}


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


def top_k_accuracy(model: Recommender, pairs: pd.DataFrame,
                   ks=(1, 5, 10, 50, 100)) -> dict[str, float]:
    """TFRS's FactorizedTopK accuracy on raw ``(userId, movieId)`` pairs: of the retrieval
    tower for a :class:`MultiTask`, of :meth:`~Recommender.score` for any other model.

    Over the whole train catalogue, seen movies included (as TFRS computes it); a pair whose
    user or movie is not in train counts as a miss.
    """
    score = getattr(model, "retrieval_scores", model.score)
    u = model.users.encode(pairs["userId"].to_numpy(), unknown="missing")
    i = model.items.encode(pairs["movieId"].to_numpy(), unknown="missing")
    known = (u >= 0) & (i >= 0)
    if not known.any():
        return {f"top_{k}_accuracy": 0.0 for k in ks}
    hits = metrics.factorized_top_k_accuracy(score, u[known], i[known], model.n_items, ks)
    return {name: value * known.mean() for name, value in hits.items()}


class _Towers(tf.Module):
    """Both towers, the ranking head and the biases (numpy-seeded, so reproducible)."""

    def __init__(self, n_users: int, n_items: int, dim: int, features: np.ndarray | None,
                 biases: bool, offset: float, seed: int):
        super().__init__(name="multitask")
        rng = np.random.default_rng(seed)

        def var(shape, std, name):
            return tf.Variable(rng.normal(0.0, std, shape).astype(np.float32), name=name)

        self.user_embedding = var((n_users, dim), 0.05, "user_embedding")
        self.item_embedding = var((n_items, dim), 0.05, "item_embedding")
        self.features = None if features is None else tf.constant(features, tf.float32)
        if features is not None:
            self.projection = var((features.shape[1], dim), 0.05, "projection")
        sizes = (2 * dim, 256, 128, 1)  # the seed's ranking head
        self.kernels = [var((a, b), np.sqrt(2.0 / (a + b)), f"kernel_{n}")
                        for n, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
        self.head_biases = [tf.Variable(tf.zeros([b]), name=f"head_bias_{n}")
                            for n, b in enumerate(sizes[1:])]
        self.offset = float(offset)
        if biases:
            self.user_bias = tf.Variable(tf.zeros([n_users]), name="user_bias")
            self.item_bias = tf.Variable(tf.zeros([n_items]), name="item_bias")
        self.biases = biases

    def users(self, index: tf.Tensor | None = None) -> tf.Tensor:
        """User vectors, all or ``index``."""
        return self.user_embedding if index is None else tf.gather(self.user_embedding, index)

    def items(self, index: tf.Tensor | None = None) -> tf.Tensor:
        """Movie vectors (id embedding + projected features), all or ``index``."""
        gather = (lambda t: t) if index is None else (lambda t: tf.gather(t, index))
        v = gather(self.item_embedding)
        if self.features is None:
            return v
        return v + gather(self.features) @ self.projection

    def rating(self, u: tf.Tensor, v: tf.Tensor, users: tf.Tensor,
               items: tf.Tensor) -> tf.Tensor:
        """The ranking head's rating for rows of user and movie vectors ``[B]``."""
        h = tf.concat([u, v], axis=1)
        for n, (kernel, bias) in enumerate(zip(self.kernels, self.head_biases)):
            h = h @ kernel + bias
            h = tf.nn.relu(h) if n < len(self.kernels) - 1 else h
        out = h[:, 0] + self.offset
        if self.biases:
            out += tf.gather(self.user_bias, users) + tf.gather(self.item_bias, items)
        return out

    def used(self, ranking: bool) -> list[tf.Variable]:
        """The variables the loss reaches: the ranking head and the biases only with ranking."""
        head = {id(v) for v in self.kernels + self.head_biases}
        if self.biases:
            head |= {id(self.user_bias), id(self.item_bias)}
        return [v for v in self.trainable_variables if ranking or id(v) not in head]



class _Trained(tf.Module):
    """The variables a training run updates (a task switched off leaves its own alone)."""

    def __init__(self, variables: list[tf.Variable]):
        super().__init__(name="trained")
        self.trained = variables


class MultiTask(Recommender):
    """Multitask ranking + retrieval two-tower model (seed 001); see the module docstring.

    ``preset="seed"`` overrides the defaults with the seed's settings (:data:`PRESETS`);
    parameters given explicitly win over the preset.

    Defaults were picked on a 10% per-user validation slice of the u20 train split (seed 0,
    test never seen; ``refit=False``; NDCG@10 of the retrieval tower alone unless noted; on
    this slice popularity reaches 0.078 and EASE 0.150):

    =========================================  ========  =======
    setting                                    val RMSE  NDCG@10
    =========================================  ========  =======
    temperature 0.1, l2 1, no logQ             0.8707    0.032
    + logQ                                     0.8730    0.107
    + logQ, l2 10                              0.8625    0.125
    + logQ, l2 50                              0.8562    0.141
    + logQ, l2 80                              0.8586    0.124
    + logQ, l2 150                             0.8619    0.094
    + logQ, l2 400                             0.8783    0.064
    l2 50, temperature 0.05                    0.8565    0.131
    l2 50, temperature 0.2                     0.8581    0.105
    l2 50, dim 128                             0.8525    0.142
    l2 50, genre + year features (defaults)    0.8380    0.145
    l2 50, genre + year + title words          0.8416    0.144
    =========================================  ========  =======

    Without logQ the in-batch softmax ranks below popularity: popular movies are the
    batches' most frequent negatives, so it learns a popularity-debiased score. Two-stage,
    on a slice nested in the first (the model early-stopped inside it): retrieval alone 0.137;
    ``rerank`` 20 / 50 / 100 / 200 at ``rerank_mix`` 0.5: 0.145 / 0.144 / 0.142 / 0.141; at
    mix 0 (predicted rating alone) 0.129 / 0.097 / 0.083 / 0.066. Re-ranking by the rating
    alone hurts: a high predicted rating says how a movie would be rated, not whether it
    will be watched; mixed with the retrieval score it helps. ``jit_compile`` is off: at this
    size XLA's compilation (about 10 s a fit) costs more than it saves.
    """

    name = "multitask"
    # At 25M-sized tables (a sample keeping every user and movie) the defaults ran about
    # 190 s per million ratings on the loaded machine; batch 2,048 with XLA 28.4 s (4,096:
    # 28.7 s). u20 validation slice, refit off: RMSE / NDCG@10 0.8369 / 0.1527 against the
    # defaults' 0.8340 / 0.1542 (batch 4,096: 0.8378 / 0.1416).
    large_data = {"batch_size": 2048, "jit_compile": True}
    predicts_ratings = True
    defaults: dict[str, Any] = {
        "preset": "", "dim": 64, "features": "genres", "biases": True, "rating_weight": 1.0,
        "retrieval_weight": 1.0, "retrieval_sum": False, "temperature": 0.1, "logq": True,
        "l2": 50.0,
        "optimizer": "adam", "learning_rate": 3e-3, "epochs": 40, "batch_size": 1000,
        "patience": 3, "validation": 0.1, "refit": True, "monitor": "both", "rerank": 50,
        "rerank_mix": 0.5, "jit_compile": False, "progress": False,
    }

    def __init__(self, seed: int = 0, **params: Any):
        preset = params.get("preset", "")
        if preset and preset not in PRESETS:
            raise SettingError(f"multitask: unknown preset {preset!r}; choose from "
                             f"{', '.join(PRESETS)}")
        super().__init__(seed, **{**PRESETS.get(preset, {}), **params})
        p = self.params
        if p["features"] not in ("none", "genres", "genres+title"):
            raise SettingError("multitask: features must be 'none', 'genres' or 'genres+title', "
                             f"not {p['features']!r}")
        if p["monitor"] not in ("rmse", "ndcg", "both"):
            raise SettingError(f"multitask: monitor must be 'rmse', 'ndcg' or 'both', "
                             f"not {p['monitor']!r}")
        if p["rating_weight"] < 0 or p["retrieval_weight"] < 0 or not (
                p["rating_weight"] or p["retrieval_weight"]):
            raise SettingError("multitask: task weights must be >= 0 and not both 0")
        self.history: list[History] = []
        self.trace: list[dict] = []
        self._watch: pd.DataFrame | None = None

    # -- fitting ---------------------------------------------------------------------------

    def fit_traced(self, train: pd.DataFrame, watch: pd.DataFrame,
                   movies: pd.DataFrame | None = None) -> "MultiTask":
        """Fit, measuring RMSE and top-K accuracy on ``watch`` after every epoch.

        This is how the seed's per-epoch table was made (TFRS evaluates a held-out set each
        epoch). The measurements are only recorded in :attr:`trace`; they never select
        weights or epochs, so ``watch`` may be a test set.
        """
        self._watch = watch
        try:
            return self.fit(train, movies=movies)
        finally:
            self._watch = None

    def _fit(self, data: Interactions, context: Context) -> None:
        p = self.params
        table = pd.DataFrame({"userId": data.user_index, "movieId": data.item_index,
                              "rating": data.rating})
        fit, held = (validation_split(table, p["validation"], self.seed) if p["validation"]
                     else (table, None))
        self.features = self._features(data, context)
        self.trace = []
        self.history = [self._train(data.n_users, fit, held, p["epochs"])]
        first = self.history[0]
        if p["refit"] and held is not None:
            self.history.append(self._train(data.n_users, table, None, first.best_epoch))
        self.meta = {"best_epoch": first.best_epoch, "val": first.best_value,
                     "epochs_run": len(first.rows), "refit": len(self.history) > 1,
                     "throughput": self.history[-1].throughput}

    def _features(self, data: Interactions, context: Context) -> np.ndarray | None:
        """Genre multi-hot and standardised year, plus title TF-IDF, aligned with the items."""
        kind = self.params["features"]
        if kind == "none":
            return None
        if context.movies is None:
            raise DataError(f"multitask: features={kind!r} needs the movies table: "
                             "fit(train, movies=...), or --movies on the command line")
        parts = [movie_features(context.movies, data.items)]
        if kind == "genres+title":
            parts.append(_title_tfidf(context.movies, data.items))
        return sp.hstack(parts, format="csr").toarray().astype(np.float32)

    def _train(self, n_users: int, fit: pd.DataFrame, held: pd.DataFrame | None,
               epochs: int) -> History:
        """Fresh towers trained on ``fit`` (encoded indices), early-stopped on ``held``."""
        p = self.params
        set_seed(self.seed)
        users = fit["userId"].to_numpy(np.int32)
        items = fit["movieId"].to_numpy(np.int32)
        ratings = fit["rating"].to_numpy(np.float32)
        n_items = len(self.items)
        with strategy().scope():
            self.towers = towers = _Towers(n_users, n_items, p["dim"], self.features,
                                           p["biases"], float(ratings.mean()) if p["biases"]
                                           else 0.0, self.seed)
        share = np.bincount(items, minlength=n_items) / len(items)
        logq = tf.constant(np.log(np.maximum(share, 1e-12)), tf.float32) if p["logq"] else None
        l2 = p["l2"] / len(ratings)
        trained = towers.used(p["rating_weight"] > 0)
        penalised = [v for v in trained if "head_bias" not in v.name]

        def loss_fn(batch: dict) -> tuple[tf.Tensor, tf.Tensor]:
            penalty = tf.add_n([tf.reduce_sum(tf.square(v)) for v in penalised])
            return self._losses(towers, batch, logq), l2 * penalty if l2 else 0.0

        config = TrainConfig(epochs=epochs, batch_size=p["batch_size"],
                             learning_rate=p["learning_rate"], patience=p["patience"],
                             optimizer=p["optimizer"], seed=self.seed, progress=p["progress"],
                             jit_compile=p["jit_compile"])
        data = {"user": users, "item": items, "rating": ratings}
        return fit_loop(_Trained(trained), loss_fn, data, config,
                        validate=self._validator(fit, held), description=self.name)

    def _losses(self, towers: _Towers, batch: dict, logq: tf.Tensor | None) -> tf.Tensor:
        """``rating_weight * squared error + retrieval_weight * in-batch softmax``, ``[B]``.

        A task whose weight is zero is not computed, so none of its gradients flow.
        """
        p = self.params
        u, v = towers.users(batch["user"]), towers.items(batch["item"])
        total = tf.zeros_like(batch["rating"])
        if p["rating_weight"]:
            error = towers.rating(u, v, batch["user"], batch["item"]) - batch["rating"]
            total += p["rating_weight"] * tf.square(error)
        if p["retrieval_weight"]:
            batch_logq = None if logq is None else tf.gather(logq, batch["item"])
            scale = p["batch_size"] if p["retrieval_sum"] else 1.0
            total += p["retrieval_weight"] * scale * in_batch_softmax_loss(
                u, v, batch["item"], p["temperature"], batch_logq)
        return total

    def _validator(self, fit: pd.DataFrame, held: pd.DataFrame | None):
        """The per-epoch callback: measures ``held`` (what early stopping reads) and the
        watched table (recorded in :attr:`trace` only); None when there is nothing to do."""
        if held is None and self._watch is None:
            return None
        seen = sp.csr_matrix((np.ones(len(fit), np.float32), (fit["userId"], fit["movieId"])),
                             shape=(len(self.users), len(self.items)))
        watch = self._watch

        def validate() -> float:
            row = {"epoch": len(self.trace) + 1}
            if watch is not None:
                pred = self.predict(watch["userId"], watch["movieId"])
                row.update(rmse=metrics.rmse(watch["rating"], pred),
                           **top_k_accuracy(self, watch))
            if held is None:
                self.trace.append(row)
                return -row["epoch"]  # nothing to select on: keep the last epoch
            row.update(self._held_out_metrics(held, seen))
            self.trace.append(row)
            return {"rmse": row["val_rmse"], "ndcg": -row["val_ndcg"],
                    "both": row["val_rmse"] - row["val_ndcg"]}[self.params["monitor"]]

        return validate

    def _held_out_metrics(self, held: pd.DataFrame, seen: sp.csr_matrix) -> dict[str, float]:
        """Validation RMSE and NDCG@10 (seen-excluded, relevance = rating >= 4) of ``held``."""
        u, i = held["userId"].to_numpy(), held["movieId"].to_numpy()
        out = {"val_rmse": metrics.rmse(held["rating"], self._predict(u, i))}
        liked = held[held["rating"] >= metrics.RELEVANT_RATING]
        if liked.empty:  # nothing to rank for: the slice can only judge ratings
            return {**out, "val_ndcg": 0.0}
        users, rows = np.unique(liked["userId"].to_numpy(), return_inverse=True)
        relevant = sp.csr_matrix((np.ones(len(liked)), (rows, liked["movieId"])),
                                 shape=(len(users), len(self.items)))
        recommended = topk.top_k(lambda b: self._two_stage(b, seen), users, 10,
                                    len(self.items), exclude=seen)
        out["val_ndcg"] = float(np.mean(metrics.ranking_metrics(recommended, relevant)["ndcg"]))
        return out

    # -- answering -------------------------------------------------------------------------

    def retrieval_scores(self, user_index: np.ndarray) -> np.ndarray:
        """Dot products of the users' vectors with every movie's, ``(users, n_items)``."""
        u = self.towers.users(np.asarray(user_index))
        return tf.matmul(u, self.towers.items(), transpose_b=True).numpy()

    def _predict(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        """Ranking-head ratings; unseen users or movies fall back to the mean + known bias."""
        t = self.towers
        known = (user_index >= 0) & (item_index >= 0)
        u, i = np.maximum(user_index, 0), np.maximum(item_index, 0)
        out = np.full(len(u), t.offset, np.float32)
        if t.biases:
            out += np.where(user_index >= 0, t.user_bias.numpy()[u], 0.0)
            out += np.where(item_index >= 0, t.item_bias.numpy()[i], 0.0)
        rows = np.flatnonzero(known)
        for chunk in np.array_split(rows, max(1, -(-len(rows) // _PAIR_CELLS))):
            out[chunk] = t.rating(t.users(u[chunk]), t.items(i[chunk]), u[chunk],
                                  i[chunk]).numpy()
        return out

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        return self._two_stage(user_index, self.seen)

    def _two_stage(self, user_index: np.ndarray, seen: sp.csr_matrix) -> np.ndarray:
        """Retrieval scores, with each user's ``rerank`` best unseen movies lifted above all
        others and ordered by the ranking head (mixed with retrieval by ``rerank_mix``)."""
        scores = self.retrieval_scores(user_index)
        n = min(self.params["rerank"], self.n_items)
        if n == 0:
            return scores
        masked = scores.copy()
        sub = seen[user_index].tocoo()
        masked[sub.row, sub.col] = -np.inf
        candidates = np.argpartition(-masked, n - 1, axis=1)[:, :n]
        rows = np.repeat(np.arange(len(user_index)), n)
        rating = self._predict(np.asarray(user_index)[rows], candidates.ravel()).reshape(-1, n)
        retrieval = np.take_along_axis(scores, candidates, axis=1)
        mix = self.params["rerank_mix"]
        combined = (1 - mix) * _standardise(rating) + mix * _standardise(retrieval)
        lift = scores.max(axis=1, keepdims=True) - combined.min(axis=1, keepdims=True) + 1.0
        np.put_along_axis(scores, candidates, combined + lift, axis=1)
        return scores

    # -- persistence -----------------------------------------------------------------------

    def _state(self) -> dict[str, np.ndarray]:
        arrays = {v.name.split(":")[0]: v.numpy() for v in self.towers.trainable_variables}
        arrays["offset"] = np.float32(self.towers.offset)
        if self.features is not None:
            arrays["features"] = self.features
        return arrays

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.features = arrays.get("features")
        with strategy().scope():
            self.towers = _Towers(len(self.users), len(self.items), self.params["dim"],
                                  self.features, self.params["biases"], float(arrays["offset"]),
                                  self.seed)
        for variable in self.towers.trainable_variables:
            variable.assign(arrays[variable.name.split(":")[0]])


def _standardise(x: np.ndarray) -> np.ndarray:
    """Rows to zero mean and unit standard deviation (constant rows to zeros)."""
    std = x.std(axis=1, keepdims=True)
    return (x - x.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)


def _title_tfidf(movies: pd.DataFrame, items: IdEncoder, max_features: int = 1000
                 ) -> sp.csr_matrix:
    """TF-IDF of the words of each movie's title (year stripped), rows aligned with ``items``."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    titles = (movies.set_index("movieId")["title"].reindex(items.ids).fillna("")
              .str.replace(r"\(\d{4}\)\s*$", "", regex=True))
    vectorizer = TfidfVectorizer(max_features=max_features, min_df=2, stop_words="english")
    try:
        return sp.csr_matrix(vectorizer.fit_transform(titles.to_numpy()), dtype=np.float32)
    except ValueError:  # no word occurs twice: no title features
        return sp.csr_matrix((len(items), 0), dtype=np.float32)
