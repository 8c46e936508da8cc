"""The multitask two-tower recommender (origin 001, TensorFlow Recommenders): one model that
both predicts ratings and retrieves movies.

A user tower and a movie tower map ids (and, on the movie side, optional genre/year and title
features) to ``dim``-dimensional vectors ``u`` and ``v``. Two tasks share them:

- ranking: ``[u, v] -> Dense(256, relu) -> Dense(128, relu) -> Dense(1)`` read as the rating,
  on squared error (with ``biases``: plus the mean train rating and learned user and movie
  biases);
- retrieval: ``u . v / temperature`` trained with an in-batch softmax (the batch's other
  movies are the negatives, copies of the positive masked); ``logq`` subtracts ``log`` of each
  movie's share of the training pairs (Yi et al. 2019's sampling-bias correction).

The loss is ``rating_weight * MSE + retrieval_weight * cross-entropy`` per example
(``retrieval_sum``: the cross-entropy summed over the batch, as TFRS's ``Retrieval`` task
does) plus ``l2 / n`` times the squared norm of every table and kernel. A zero weight leaves
its task out, so its gradients are exactly zero (without ranking the head stays untrained).
Early stopping reads the validation slice (``monitor``: RMSE, NDCG@10, or RMSE - NDCG@10).

:meth:`MultiTask.predict` uses the ranking head. Scores are two-stage with ``rerank`` > 0:
the retrieval tower picks each user's ``rerank`` best unseen movies, and the head re-orders
them by predicted rating mixed with the retrieval score (``rerank_mix``); ``rerank=0`` is
retrieval alone. :meth:`MultiTask.with_ranking` gives the fitted model under other choices.
Settings and measurements: ``docs/models/multitask.md``.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import tensorflow as tf
from pydantic import Field, model_validator

from recommender import metrics, topk
from recommender.core.errors import DataError
from recommender.data.preprocessing import IdEncoder, Interactions, movie_features
from recommender.models.base import Context
from recommender.models.neural import dense_layers, in_batch_softmax_loss, mlp, variable
from recommender.models.settings import TowerSettings
from recommender.models.tower import TowerModel, ratings_table, validation_users
from recommender.models.training import History

__all__ = ["MultiTask", "MultiTaskSettings", "PRESETS"]

_PAIR_CELLS = 2**18  # (user, movie) pairs sent through the ranking head at once

# The origin system's setup (TensorFlow Recommenders): plain towers and head, Adagrad 0.1,
# 15 epochs of batch 1,000, both weights 1, no validation slice, no regularisation.
PRESETS: dict[str, dict[str, Any]] = {
    "seed": {"dim": 64, "features": "none", "biases": False, "rating_weight": 1.0,
             "retrieval_weight": 1.0, "retrieval_sum": True, "temperature": 1.0, "logq": False,
             "l2": 0.0, "optimizer": "adagrad", "learning_rate": 0.1, "epochs": 15,
             "batch_size": 1000, "validation": 0.0, "refit": False},
}


class MultiTaskSettings(TowerSettings):
    """Settings of :class:`MultiTask` (tuned on a validation slice of train)."""

    preset: Literal["none", "seed"] = Field("none", description="seed: the origin system's "
                                            "setup for every setting not given")
    dim: int = Field(64, ge=1, description="dimension of the user and movie vectors")
    features: Literal["none", "genres", "genres+title"] = Field(
        "genres", description="movie features projected into the movie tower (genres: genre "
        "multi-hot and year)")
    biases: bool = Field(True, description="add the mean rating and user and movie biases to "
                         "the ranking head")
    rating_weight: float = Field(1.0, ge=0, description="weight of the ranking task's MSE")
    retrieval_weight: float = Field(1.0, ge=0, description="weight of the retrieval task's "
                                    "cross-entropy")
    retrieval_sum: bool = Field(False, description="sum the cross-entropy over the batch "
                                "instead of averaging it (TFRS's weighting)")
    temperature: float = Field(0.1, gt=0, description="retrieval logits are divided by it")
    logq: bool = Field(True, description="subtract log of each movie's share of the pairs "
                       "from its retrieval logits")
    l2: float = Field(50.0, ge=0, description="L2 weight (divided by the number of ratings) "
                      "on every table and kernel")
    optimizer: Literal["adam", "adagrad", "sgd"] = Field("adam", description="the optimiser")
    learning_rate: float = Field(3e-3, gt=0, description="the optimiser's step size")
    epochs: int = Field(40, ge=1, description="most epochs; early stopping picks the count")
    batch_size: int = Field(1000, ge=1, description="ratings per step (and in-batch "
                            "negatives)")
    monitor: Literal["rmse", "ndcg", "both"] = Field(
        "both", description="what early stopping reads: validation RMSE, NDCG@10, or RMSE - "
        "NDCG@10")
    rerank: int = Field(50, ge=0, description="retrieval candidates the ranking head "
                        "re-orders (0: retrieval alone)")
    rerank_mix: float = Field(0.5, ge=0, le=1, description="weight of the retrieval score in "
                              "the re-ranking (0: predicted rating alone)")
    jit_compile: bool = Field(False, description="compile each training step with XLA")

    @model_validator(mode="before")
    @classmethod
    def _preset_defaults(cls, values: Any) -> Any:
        """A preset's values under the given ones (an unknown preset is refused by its type)."""
        preset = values.get("preset") if isinstance(values, dict) else None
        if isinstance(preset, str) and preset in PRESETS:
            return {**PRESETS[preset], **values}
        return values

    @model_validator(mode="after")
    def _some_task(self) -> "MultiTaskSettings":
        if not (self.rating_weight or self.retrieval_weight):
            raise ValueError("task weights rating_weight and retrieval_weight are not both 0")
        return self


class _Towers(tf.Module):
    """Both towers, the ranking head and the biases (numpy-seeded, so reproducible)."""

    def __init__(self, n_users: int, n_items: int, s: MultiTaskSettings,
                 features: np.ndarray | None, offset: float, rng: np.random.Generator):
        super().__init__(name="multitask")
        self.user_embedding = variable(rng, (n_users, s.dim), 0.05, "user_embedding")
        self.item_embedding = variable(rng, (n_items, s.dim), 0.05, "item_embedding")
        self.features = None if features is None else tf.constant(features, tf.float32)
        if features is not None:
            self.projection = variable(rng, (features.shape[1], s.dim), 0.05, "projection")
        self.head = dense_layers(rng, [2 * s.dim, 256, 128, 1], "head")  # the origin's head
        self.offset = float(offset)
        self.biases = s.biases
        if s.biases:
            self.user_bias = tf.Variable(tf.zeros([n_users]), name="user_bias")
            self.item_bias = tf.Variable(tf.zeros([n_items]), name="item_bias")

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
        out = mlp(tf.concat([u, v], axis=1), self.head)[:, 0] + self.offset
        if self.biases:
            out += tf.gather(self.user_bias, users) + tf.gather(self.item_bias, items)
        return out

    def trained(self, ranking: bool) -> tuple[list[tf.Variable], list[tf.Variable]]:
        """The variables the loss reaches (the head and the biases only with ranking), and
        those of them the L2 term covers (all but the head's biases)."""
        head = {id(v) for layer in self.head for v in layer}
        if self.biases:
            head |= {id(self.user_bias), id(self.item_bias)}
        trained = [v for v in self.trainable_variables if ranking or id(v) not in head]
        head_biases = {id(bias) for _, bias in self.head}
        return trained, [v for v in trained if id(v) not in head_biases]


class _Trained(tf.Module):
    """The variables a training run updates (a task switched off leaves its own alone)."""

    def __init__(self, variables: list[tf.Variable]):
        super().__init__(name="trained")
        self.trained = variables


class MultiTask(TowerModel):
    """Multitask ranking + retrieval two-tower model (TensorFlow Recommenders' design)."""

    name = "multitask"
    Settings = MultiTaskSettings
    predicts_ratings = True
    # Batch 2,048 with XLA: about 7x faster per rating at 25M-sized tables for a validation
    # RMSE / NDCG@10 within 0.003 / 0.002 of the defaults'; two epochs of a fresh 20% of the
    # ratings each: 260 s at 25M on 2 cores (docs/models/multitask.md).
    large_data = {"batch_size": 2048, "jit_compile": True, "epochs": 2, "epoch_fraction": 0.2,
                  "refit": False}

    def __init__(self, seed: int = 0, **settings: Any):
        super().__init__(seed, **settings)
        self.trace: list[dict] = []  # validation RMSE and NDCG@10 after each epoch
        self.features: np.ndarray | None = None
        self.offset = 0.0

    @property
    def validation_metric(self) -> str:
        """What early stopping reads, as ``monitor`` says."""
        return {"rmse": "rmse", "ndcg": "ndcg@10", "both": "rmse - ndcg@10"}[
            self.settings.monitor]

    @property
    def maximise(self) -> bool:
        """Whether a higher validation value is better (NDCG alone)."""
        return self.settings.monitor == "ndcg"

    def with_ranking(self, rerank: int | None = None,
                     rerank_mix: float | None = None) -> "MultiTask":
        """This fitted model scoring another way, e.g. ``with_ranking(rerank=0)`` for the
        retrieval tower alone: a copy that shares the trained variables and differs only in
        the ranking settings given (this model is left as it is).

        Args:
            rerank: retrieval candidates the ranking head re-orders (0: retrieval alone).
            rerank_mix: weight of the retrieval score in the re-ranking.
        """
        changes = {key: value for key, value in {"rerank": rerank,
                                                 "rerank_mix": rerank_mix}.items()
                   if value is not None}
        other = copy.copy(self)
        other.settings = self.settings.replace(self.name, **changes)
        other.meta = dict(self.meta)
        return other

    # -- training --------------------------------------------------------------------------

    def _prepare(self, data: Interactions, context: Context) -> None:
        """Movie features: genre multi-hot and standardised year, plus title TF-IDF."""
        self.trace = []
        kind = self.settings.features
        self.features = None
        if kind == "none":
            return
        if context.movies is None:
            raise DataError(f"multitask: features={kind!r} needs the movies table: "
                            "fit(train, movies=...), or --movies on the command line")
        parts = [movie_features(context.movies, data.items)]
        if kind == "genres+title":
            parts.append(_title_tfidf(context.movies, data.items))
        self.features = sp.hstack(parts, format="csr").toarray().astype(np.float32)

    def _build(self) -> _Towers:
        return _Towers(self.n_users, self.n_items, self.settings, self.features,
                       self.offset, np.random.default_rng(self.seed))

    def _whole(self, data: Interactions) -> pd.DataFrame:
        return ratings_table(data)

    def _train(self, part: pd.DataFrame, held: pd.DataFrame | None, epochs: int,
               on_epoch=None) -> tuple[_Towers, History]:
        """Fresh towers trained on ``part`` (encoded indices), early-stopped on ``held``."""
        s = self.settings
        users = part["userId"].to_numpy(np.int32)
        items = part["movieId"].to_numpy(np.int32)
        ratings = part["rating"].to_numpy(np.float32)
        self.offset = float(ratings.mean()) if s.biases else 0.0
        towers = self._fresh()
        share = np.bincount(items, minlength=self.n_items) / len(items)
        logq = tf.constant(np.log(np.maximum(share, 1e-12)), tf.float32) if s.logq else None
        l2 = s.l2 / len(ratings)
        trained, penalised = towers.trained(s.rating_weight > 0)

        def loss_fn(batch: dict) -> tuple[tf.Tensor, tf.Tensor]:
            penalty = tf.add_n([tf.reduce_sum(tf.square(v)) for v in penalised])
            return self._losses(towers, batch, logq), l2 * penalty if l2 else 0.0

        data = {"user": users, "item": items, "rating": ratings}
        history = self._loop(_Trained(trained), loss_fn, data, epochs,
                             validate=self._validator(part, held), on_epoch=on_epoch,
                             optimizer=s.optimizer, jit_compile=s.jit_compile)
        return towers, history

    def _losses(self, towers: _Towers, batch: dict, logq: tf.Tensor | None) -> tf.Tensor:
        """``rating_weight * squared error + retrieval_weight * in-batch softmax``, ``[B]``.

        A task whose weight is zero is not computed, so none of its gradients flow.
        """
        s = self.settings
        u, v = towers.users(batch["user"]), towers.items(batch["item"])
        total = tf.zeros_like(batch["rating"])
        if s.rating_weight:
            error = towers.rating(u, v, batch["user"], batch["item"]) - batch["rating"]
            total += s.rating_weight * tf.square(error)
        if s.retrieval_weight:
            batch_logq = None if logq is None else tf.gather(logq, batch["item"])
            scale = s.batch_size if s.retrieval_sum else 1.0
            total += s.retrieval_weight * scale * in_batch_softmax_loss(
                u, v, batch["item"], s.temperature, batch_logq)
        return total

    def _validator(self, part: pd.DataFrame, held: pd.DataFrame | None):
        """The per-epoch validation callback (None without a validation slice): records
        RMSE and NDCG@10 of ``held`` in :attr:`trace` and returns what ``monitor`` names."""
        if held is None:
            return None
        seen = sp.csr_matrix((np.ones(len(part), np.float32), (part["userId"], part["movieId"])),
                             shape=(self.n_users, self.n_items))

        def validate() -> float:
            row = {"epoch": len(self.trace) + 1, **self._held_out_metrics(held, seen)}
            self.trace.append(row)
            return {"rmse": row["val_rmse"], "ndcg": row["val_ndcg"],
                    "both": row["val_rmse"] - row["val_ndcg"]}[self.settings.monitor]

        return validate

    def _held_out_metrics(self, held: pd.DataFrame, seen: sp.csr_matrix) -> dict[str, float]:
        """Validation RMSE and NDCG@10 (seen-excluded, relevance = rating >= 4) of ``held``."""
        u, i = held["userId"].to_numpy(), held["movieId"].to_numpy()
        out = {"val_rmse": metrics.rmse(held["rating"], self._predict(u, i))}
        liked = held[held["rating"] >= metrics.RELEVANT_RATING]
        if liked.empty:  # nothing to rank for: the slice can only judge ratings
            return {**out, "val_ndcg": 0.0}
        users = validation_users(np.unique(liked["userId"].to_numpy()), self.seed)
        liked = liked[np.isin(liked["userId"].to_numpy(), users)]
        rows = np.searchsorted(users, liked["userId"].to_numpy())
        relevant = sp.csr_matrix((np.ones(len(liked)), (rows, liked["movieId"])),
                                 shape=(len(users), self.n_items))
        recommended = topk.top_k(lambda b: self._two_stage(b, seen), users, 10, self.n_items,
                                 exclude=seen)
        out["val_ndcg"] = float(np.mean(metrics.ranking_metrics(recommended, relevant)["ndcg"]))
        return out

    # -- answers ---------------------------------------------------------------------------

    def retrieval_scores(self, user_index: np.ndarray) -> np.ndarray:
        """Dot products of the users' vectors with every movie's, ``(users, n_items)``."""
        u = self.module.users(np.asarray(user_index))
        return tf.matmul(u, self.module.items(), transpose_b=True).numpy()

    def _predict(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        """Ranking-head ratings; unseen users or movies fall back to the mean + known bias."""
        t = self.module
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

    def _score_factors(self, user_index: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The retrieval tower's product ``u . v`` (``rerank=0`` only: two-stage scores are
        not a product; :meth:`top_k` takes their candidates from it)."""
        if self.settings.rerank:
            return None
        return self._retrieval_tables(user_index)

    def _retrieval_tables(self, user_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        items = self.module.items().numpy()
        return (self.module.users(np.asarray(user_index)).numpy(),
                np.ascontiguousarray(items.T))

    def top_k(self, user_index: np.ndarray, k: int = 10, exclude_seen: bool = True,
              progress: bool = False) -> np.ndarray:
        """:meth:`Recommender.top_k`; two-stage lists no longer than ``rerank`` take their
        candidates from the retrieval tower's product on every core
        (:func:`recommender.topk.top_k_product`), then the ranking head orders them, as
        :meth:`score` does, without scoring the catalogue through the head's path."""
        n = min(self.settings.rerank, self.n_items)
        if not (exclude_seen and 0 < k <= n):
            return super().top_k(user_index, k, exclude_seen, progress)
        self._check_fitted()
        user_index = np.asarray(user_index, np.int64)
        rows, items = self._retrieval_tables(user_index)
        candidates = topk.top_k_product(rows, items, user_index, n, self.seen,
                                        progress=progress)
        out = np.full((len(user_index), k), -1, np.int64)
        full = (candidates >= 0).all(axis=1)  # users with fewer unseen movies: score path
        if (~full).any():
            out[~full] = super().top_k(user_index[~full], k, exclude_seen, progress)
        picked, rows = candidates[full], rows[full]
        for lo in range(0, len(picked), _PAIR_CELLS // n):
            chunk, vectors = picked[lo: lo + _PAIR_CELLS // n], rows[lo: lo + _PAIR_CELLS // n]
            users = np.repeat(user_index[full][lo: lo + len(chunk)], n)
            rating = self._predict(users, chunk.ravel()).reshape(-1, n)
            retrieval = np.einsum("ud,und->un", vectors, items.T[chunk])
            mix = self.settings.rerank_mix
            combined = (1 - mix) * _standardise(rating) + mix * _standardise(retrieval)
            order = np.lexsort((chunk, -combined), axis=1)[:, :k]
            out[np.flatnonzero(full)[lo: lo + len(chunk)]] = np.take_along_axis(chunk, order,
                                                                               axis=1)
        return out

    def _two_stage(self, user_index: np.ndarray, seen: sp.csr_matrix) -> np.ndarray:
        """Retrieval scores, with each user's ``rerank`` best unseen movies lifted above all
        others and ordered by the ranking head (mixed with retrieval by ``rerank_mix``)."""
        scores = self.retrieval_scores(user_index)
        n = min(self.settings.rerank, self.n_items)
        if n == 0:
            return scores
        masked = scores.copy()
        sub = seen[user_index].tocoo()
        masked[sub.row, sub.col] = -np.inf
        candidates = np.argpartition(-masked, n - 1, axis=1)[:, :n]
        rows = np.repeat(np.arange(len(user_index)), n)
        rating = self._predict(np.asarray(user_index)[rows], candidates.ravel()).reshape(-1, n)
        retrieval = np.take_along_axis(scores, candidates, axis=1)
        mix = self.settings.rerank_mix
        combined = (1 - mix) * _standardise(rating) + mix * _standardise(retrieval)
        lift = scores.max(axis=1, keepdims=True) - combined.min(axis=1, keepdims=True) + 1.0
        np.put_along_axis(scores, candidates, combined + lift, axis=1)
        return scores

    # -- persistence -----------------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"offset": np.float32(self.offset)}
        if self.features is not None:
            arrays["features"] = self.features
        return arrays

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.offset, self.features = float(arrays["offset"]), arrays.get("features")


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
