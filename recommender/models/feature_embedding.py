"""The feature-embedding origin system: movie embeddings computed from movie attributes, users
as the movies they watched, and the probability that a user watches a movie.

A movie's embedding ``E_m = normalize(f(x_m))`` is an MLP over its content vector ``x_m``
(:func:`recommender.data.preprocessing.content_features`: genres, decade, title words, tag
TF-IDF, tag count, an overview column when the movies table has one); no movie id enters it,
so a movie nobody has rated yet is embedded like any other. A user's embedding ``U`` is the
normalised mean of the embeddings of the movies they watched, so a new user is served from
their ratings without retraining. Training has the origin system's two stages:

1. the encoder ``f``: every epoch each user's history is split at random into targets and
   inputs (:class:`~recommender.models.neural.TargetSampler`); a softmax over the catalogue of
   ``cos(mean of the inputs' E, E_target) / temperature`` pulls movies watched by the same
   users together;
2. with ``f`` frozen, the P(watched) network, a two tower form (a catalogue is one matrix
   product)::

       logit = s cos(U, E) + g(U) . h(E) + b(E) + w . x + b_m
               (+ a cos(p_u, v_m) + c prior(v_m))

   ``g``, ``h``, ``b`` small MLPs, ``s`` a learned scale starting at ``1 / temperature``,
   ``w . x`` a linear bias of the content vector and ``b_m`` the id bias of a train movie
   (starting at its centred log count; dropped for ``id_dropout`` of the movies each step,
   so that the content bias learns what makes a movie watched, as it must for cold movies).
   A movie without an id bias (cold, or dropped this step) gets instead the terms in
   brackets, on the raw content the 64-d embedding loses: ``v_m`` the block-weighted unit
   content vector (:func:`~recommender.data.preprocessing.weighted_content`), ``p_u`` the sum
   of those of the movies the user liked (``profile``), ``prior`` the content-only popularity
   prior (:func:`~recommender.data.preprocessing.popularity_prior`), ``a`` and ``c`` learned
   scalars starting at ``cosine_weight`` and ``prior_weight``. It is trained with binary
   cross-entropy on held-out watched movies against uniformly drawn others.

Two ways to recommend (``method``, or per call :meth:`FeatureEmbedding.score_history`):
``network``, ``sigmoid(logit)``; ``density``, the origin system's kernel density over the
cosines between a candidate ``c`` and each watched movie ``j``::

    score(c) = sum_j exp(-(1 - cos(E_c, E_j))^2 / (2 sigma^2))

(the origin system writes ``exp(-cos^2 / (s sigma^2))``, largest for orthogonal movies; a
normal density centred on the perfect match needs the distance ``1 - cos``, and ``s = 2``).
Early stopping of both stages watches cold movies: ``validation`` of the train movies held
out with all their ratings. Settings and measurements: ``docs/models/feature-embedding.md``.
"""

from __future__ import annotations

from typing import Callable, Literal, NamedTuple

import numpy as np
import scipy.sparse as sp
import tensorflow as tf
from pydantic import Field, field_validator

from recommender import metrics, topk
from recommender.core.errors import DataError
from recommender.data.preprocessing import (IdEncoder, Interactions, content_features,
                                            popularity_prior, weighted_content)
from recommender.models.base import Context
from recommender.models.neural import (MASKED_LOGIT, TargetSampler, dense_layers, flat_history,
                                       full_softmax_loss, mlp, mlp_numpy)
from recommender.models.settings import TowerSettings
from recommender.models.tower import TowerModel, validation_users
from recommender.models.training import History

__all__ = ["FeatureEmbedding", "FeatureEmbeddingSettings", "Method", "density",
           "density_scores"]

_CELLS = 2**23  # candidate x history-movie similarities formed at once by the density method

# How to score: the P(watched) network, the density method, or the cosine to the mean
# embedding (what stage 1 trains; scored by its validation).
Method = Literal["network", "density", "mean"]


class FeatureEmbeddingSettings(TowerSettings):
    """Settings of :class:`FeatureEmbedding`."""

    method: Literal["network", "density"] = Field("network", description="how to recommend: "
                                                  "the P(watched) network or the density method")
    dim: int = Field(64, ge=1, description="dimension of the movie and user embeddings")
    hidden: int = Field(128, ge=1, description="hidden layer size of the movie encoder")
    temperature: float = Field(0.1, gt=0, description="temperature of the encoder's softmax "
                               "over cosines")
    sigma: float = Field(0.5, gt=0, description="bandwidth of the density method's kernel, "
                         "in cosine units")
    head_hidden: int = Field(64, ge=1, description="hidden layer size of the P(watched) "
                             "network's towers")
    head_dim: int = Field(32, ge=1, description="output size of the P(watched) towers")
    target_fraction: float = Field(0.2, gt=0, lt=1, description="share of a history held out "
                                   "as targets each epoch")
    max_targets: int = Field(32, ge=1, description="most targets per user and epoch")
    dropout: float = Field(0.5, ge=0, lt=1, description="share of input movies dropped per step")
    num_negatives: int = Field(512, ge=1, description="unwatched movies drawn per batch for "
                               "the P(watched) network")
    l2: float = Field(1e-6, ge=0, description="L2 weight on the kernels")
    l2_id: float = Field(1e-4, ge=0, description="L2 weight on the id biases")
    id_dropout: float = Field(0.5, ge=0, le=1, description="share of the id biases dropped per "
                              "step of the P(watched) network")
    cosine_weight: float = Field(2.0, description="starting weight of the content cosine of "
                                 "movies without an id bias")
    prior_weight: float = Field(1.0, description="starting weight of the content popularity "
                                "prior of movies without an id bias")
    profile: Literal["liked", "watched"] = Field("liked", description="a user's content profile: "
                                                 "the movies rated >= 4, or every rated movie")
    epochs: int = Field(20, ge=1, description="most epochs of the encoder (stage 1)")
    head_epochs: int = Field(20, ge=1, description="most epochs of the P(watched) network "
                             "(stage 2)")
    batch_size: int = Field(64, ge=1, description="users per step")
    learning_rate: float = Field(3e-3, gt=0, description="Adam's step size")
    validation: float = Field(0.1, ge=0, lt=1, description="share of the train movies held out "
                              "with their ratings, as cold movies to early-stop on")
    refit: bool = Field(False, description="always false: the validation movies are scored "
                        "with the id bias they would start from")
    max_words: int = Field(5000, ge=1, description="words kept per text block of the content")

    @field_validator("refit")
    @classmethod
    def _no_refit(cls, refit: bool) -> bool:
        if refit:
            raise ValueError("this model has no refit")
        return refit


def density(similarity: np.ndarray, sigma: float) -> np.ndarray:
    """The normal kernel of the density method: ``exp(-(1 - cos)^2 / (2 sigma^2))``.

    Args:
        similarity: cosine similarities, any shape.
        sigma: kernel bandwidth, in cosine units.

    Returns:
        Kernel values in (0, 1], 1 at a perfect match (see the module docstring for why the
        origin system's literal formula is not used).
    """
    return np.exp(-np.square(1.0 - similarity) / (2.0 * sigma ** 2))


def density_scores(history: sp.csr_matrix, watched: np.ndarray, candidates: np.ndarray,
                   sigma: float) -> np.ndarray:
    """Density-method scores ``sum_j K(cos(E_c, E_j))`` over each user's watched movies.

    Args:
        history: users x movies, non-zero where a user watched a movie (values ignored).
        watched: ``(n_movies, d)`` unit embeddings of the movies ``history``'s columns index.
        candidates: ``(n_candidates, d)`` unit embeddings of the movies to score.
        sigma: kernel bandwidth.

    Returns:
        ``(n_users, n_candidates)`` float32 scores (0 for a user who watched nothing).
    """
    binary = history.tocsr(copy=True)
    binary.data[:] = 1.0
    cols = np.unique(binary.indices)
    out = np.zeros((binary.shape[0], len(candidates)), np.float32)
    if not len(cols):
        return out
    x = binary[:, cols]
    step = max(1, _CELLS // len(cols))
    for lo in range(0, len(candidates), step):
        kernel = density(candidates[lo: lo + step] @ watched[cols].T, sigma)
        out[:, lo: lo + step] = np.asarray(x @ kernel.T.astype(np.float32))
    return out


class _ColdMovies(NamedTuple):
    """The validation holdout: train movies held out with all their ratings."""

    items: np.ndarray  # their indices among the train movies
    users: np.ndarray  # users who rated one of them >= 4
    relevant: sp.csr_matrix  # those users x the held-out movies, 1 where rated >= 4


class FeatureEmbedding(TowerModel):
    """Content-based movie embeddings, users as their watched movies, P(watched) or density.

    Needs the movies table (tags and an overview column optional). Movies of the movies table
    at fit time are scored from their content even with no rating in train (cold movies);
    other movies outside train score ``-inf``. One training run covers both stages; there is
    no refit: the validation movies' ratings stay out of training, and those movies are then
    scored with the id bias they would have started from. The run's :class:`History` and the
    base's ``best_epoch`` are stage 2's; ``meta["encoder_epochs"]`` is stage 1's best epoch,
    ``meta["validation_density"]`` the density method's validation NDCG@10.
    """

    name = "feature-embedding"
    Settings = FeatureEmbeddingSettings
    folds_in = True
    validation_metric, maximise = "ndcg@10", True
    # Every step embeds the whole catalogue (and the encoder's softmax spans it), whatever
    # the batch: at 162,541 users batches of 64 were 2,540 steps per stage epoch; 1,024
    # leaves 159 (about as many as a 20-epoch fit on u20 takes in all); 2 + 2 epochs of a
    # fresh 30% of the users each: 104 s at 25M on 2 cores (docs/models/feature-embedding.md).
    large_data = {"batch_size": 1024, "epochs": 2, "head_epochs": 2, "epoch_fraction": 0.3}

    # -- fitting ---------------------------------------------------------------------------

    def _prepare(self, data: Interactions, context: Context) -> None:
        if context.movies is None:
            raise DataError(f"{self.name}: needs the movies table: fit(train, movies=...), "
                            "or --movies on the command line (tags are optional)")
        tags = context.tags
        self.catalogue = IdEncoder.fit(np.concatenate([data.items.ids,
                                                       context.movies["movieId"].to_numpy()]))
        self.content, names = content_features(context.movies, self.catalogue.ids, tags,
                                               self.settings.max_words)
        self.features = weighted_content(self.content, names)
        self.rows = self.catalogue.encode(data.items.ids)
        self.train_counts = data.item_counts()
        self.meta["features"] = int(self.content.shape[1])

    def _holdout(self, whole: sp.csr_matrix) -> tuple[sp.csr_matrix, _ColdMovies | None]:
        """``validation`` of the train movies held out with all their ratings (cold movies to
        validate on), and the ratings left to train on."""
        fraction = self.settings.validation
        if not fraction:
            return whole, None
        n_items = whole.shape[1]
        rng = np.random.default_rng(self.seed)
        held = np.sort(rng.choice(n_items, max(1, round(fraction * n_items)), replace=False))
        keep = np.ones(n_items, np.float32)
        keep[held] = 0.0
        part = (whole @ sp.diags(keep)).tocsr()
        part.eliminate_zeros()
        liked = (whole[:, held] >= metrics.RELEVANT_RATING).astype(np.float32).tocsr()
        liked.eliminate_zeros()
        users = validation_users(np.flatnonzero(np.diff(liked.indptr) > 0), self.seed)
        return part, _ColdMovies(held, users, liked[users])

    def _train(self, part: sp.csr_matrix, held: _ColdMovies | None, epochs: int,
               on_epoch: Callable[[int], None] | None = None) -> tuple[tf.Module, History]:
        """Stage 1 for at most ``epochs``, then stage 2 for at most ``head_epochs``, each
        early-stopped on ``held``; ``on_epoch`` is called after every epoch of both."""
        counts = np.diff(part.tocsc().indptr)
        networks = self._fresh()
        networks.head.item_bias.assign(_log_popularity(counts))
        flat = {k: tf.constant(v) for k, v in flat_history(self.content[self.rows]).items()}
        encoder = self._train_encoder(networks.encoder, flat, part, held, epochs, on_epoch)
        self.vectors = networks.encoder.embed(self.content)
        self.watched = self.vectors[self.rows]
        # Stage 2 draws its targets by the order of each row's entries, and has always drawn
        # them from rows sorted by column (stage 1 from the rows as the holdout left them).
        part.sort_indices()
        result = self._train_head(networks.head, flat, part, counts, held, on_epoch)
        self.meta["encoder_epochs"] = encoder.best_epoch
        if held is not None:
            self.meta["validation_density"] = self._cold_ndcg(part, held, "density")
        return networks, result

    def _build(self) -> _Networks:
        return _Networks(self.content.shape[1], len(self.rows), self.settings, self.seed)

    def _stage(self, module: tf.Module, loss_fn: Callable, history: sp.csr_matrix,
               validate: Callable[[], float] | None, batch_fn: Callable, epochs: int,
               label: str, on_epoch: Callable[[int], None] | None) -> History:
        """One stage through the shared loop, over the users with two movies or more (one to
        hold out, one to keep)."""
        users = np.flatnonzero(np.diff(history.indptr) > 1).astype(np.int64)
        # padded histories change shape from batch to batch, and XLA recompiled for each new
        # one (a fit took 87 s with it, 26 s without)
        return self._loop(module, loss_fn, {"user": users}, epochs, validate=validate,
                          batch_fn=batch_fn, label=f"{self.name} {label}", on_epoch=on_epoch,
                          jit_compile=False)

    def _sampler(self, history: sp.csr_matrix, loss: str,
                 q: np.ndarray | None = None) -> TargetSampler:
        s = self.settings
        return TargetSampler(history, loss, s.target_fraction, s.max_targets, s.dropout,
                             s.num_negatives, q=q)

    def _train_encoder(self, encoder: _Encoder, flat: dict, history: sp.csr_matrix,
                       held: _ColdMovies | None, epochs: int, on_epoch) -> History:
        """Stage 1: the softmax over the catalogue of the cosines to the inputs' mean
        (``flat``: the train movies' content as :func:`flat_history` tensors)."""
        s = self.settings
        n_items = len(self.rows)
        mask = np.zeros(n_items, np.float32)
        if held is not None:  # held-out movies are no candidates, as cold movies are not
            mask[held.items] = MASKED_LOGIT
        mask = tf.constant(mask)

        def loss_fn(batch):
            vectors = encoder(flat, n_items)
            query = _pool(vectors, batch)
            logits = query @ tf.transpose(vectors) / s.temperature + mask
            known = tf.stack([batch["known_segment"], batch["known_item"]], axis=1)
            logits += tf.scatter_nd(known, MASKED_LOGIT * batch["known_weight"], tf.shape(logits))
            per_target = full_softmax_loss(logits, batch["targets"])
            weight = batch["target_weight"]
            per_user = tf.reduce_sum(per_target * weight, 1) / tf.reduce_sum(weight, 1)
            return per_user, s.l2 * encoder.penalty()

        def validate() -> float:
            self.vectors = encoder.embed(self.content)
            self.watched = self.vectors[self.rows]
            return self._cold_ndcg(history, held, "mean")

        return self._stage(encoder, loss_fn, history, validate if held is not None else None,
                           self._sampler(history, "full"), epochs, "encoder", on_epoch)

    def _train_head(self, head: _Head, flat: dict, history: sp.csr_matrix, counts: np.ndarray,
                    held: _ColdMovies | None, on_epoch) -> History:
        """Stage 2 on ``history`` (``counts`` ratings per train movie), then the network as
        numpy arrays for scoring: the validation movies get the id bias they would have
        started from (their train ratings are known, only kept out of training)."""
        s = self.settings
        catalogue_counts = np.zeros(len(self.catalogue))
        catalogue_counts[self.rows] = counts
        prior = popularity_prior(self.features, catalogue_counts, self.rows[counts > 0])
        watched = tf.constant(self.watched)
        train_prior = tf.constant(prior[self.rows])

        def loss_fn(batch):
            user = head.user(_pool(watched, batch))
            id_keep = batch["id_keep"]
            gate = 1.0 - id_keep  # the content terms stand in for a dropped id bias
            movies = head.movie(watched, flat, len(self.rows), id_keep, gate * train_prior)
            cosine = head.cosine_scale * gate
            target = tf.gather(movies, batch["targets"])
            pos = (tf.einsum("bk,btk->bt", user, target[..., :-1]) + target[..., -1]
                   + tf.gather(cosine, batch["targets"]) * batch["target_cosine"])
            movie = tf.gather(movies, batch["candidates"])
            neg = (user @ tf.transpose(movie[:, :-1]) + movie[:, -1]
                   + tf.gather(cosine, batch["candidates"]) * batch["candidate_cosine"])
            hits = tf.cast(tf.logical_not(batch["hits"]), tf.float32)
            weight = batch["target_weight"]
            per_user = (tf.reduce_sum(tf.nn.softplus(-pos) * weight, 1)
                        / tf.reduce_sum(weight, 1)
                        + tf.reduce_sum(tf.nn.softplus(neg) * hits, 1)
                        / tf.maximum(tf.reduce_sum(hits, 1), 1.0))
            return per_user, (s.l2 * head.penalty()
                              + s.l2_id * tf.reduce_sum(tf.square(head.item_bias)))

        def validate() -> float:
            self._head_outputs(head, prior, counts)
            return self._cold_ndcg(history, held, "network")

        result = self._stage(head, loss_fn, history, validate if held is not None else None,
                             self._head_batches(history, held), s.head_epochs, "P(watched)",
                             on_epoch)
        untrained = (counts == 0) & (self.train_counts > 0)
        self._head_outputs(head, prior, self.train_counts,
                           np.where(untrained, _log_popularity(self.train_counts), 0.0))
        return result

    def _head_batches(self, history: sp.csr_matrix, held: _ColdMovies | None) -> Callable:
        """Targets held out of each user's inputs every epoch; negatives never held-out movies;
        which id biases this step drops (``id_dropout``) and the content cosines of the
        targets and candidates to the profile of the inputs (a fixed input, computed here in
        scipy on the rows needed, not in the graph over the catalogue)."""
        s = self.settings
        q = np.ones(history.shape[1])
        if held is not None:
            q[held.items] = 1e-12  # never drawn (and no log(0) in the sampler's logQ)
        sampler = self._sampler(history, "sampled-uniform", q / q.sum())
        features = self.features[self.rows]

        def batch_fn(batch: dict, rng: np.random.Generator) -> dict:
            out = sampler(batch, rng)
            keep = rng.random(history.shape[1]) >= s.id_dropout
            n, t = out["targets"].shape
            inputs = sp.csr_matrix((out["weight"], (out["segment"], out["item"])),
                                   shape=(n, history.shape[1]))
            profiles = _content_profiles(inputs, features, s.profile == "liked")
            on_target = features[out["targets"].ravel()].multiply(profiles[np.repeat(
                np.arange(n), t)])
            return {**out, "id_keep": keep.astype(np.float32),
                    "target_cosine": np.asarray(on_target.sum(1), np.float32).reshape(n, t),
                    "candidate_cosine": (profiles @ features[out["candidates"]].T)
                    .toarray().astype(np.float32)}

        return batch_fn

    def _head_outputs(self, head: _Head, prior: np.ndarray, counts: np.ndarray,
                      untrained_bias: np.ndarray | float = 0.0) -> None:
        """The P(watched) network as numpy arrays, for scoring: train movies with ``counts``
        > 0 have an id bias (the trained one plus ``untrained_bias``), the others the content
        prior and the content cosine instead."""
        has_id = np.zeros(len(self.catalogue), bool)
        has_id[self.rows] = counts > 0
        gate = 1.0 - has_id
        self.user_layers, self.movie_out = head.outputs(self.content, self.vectors, self.rows,
                                                        gate * prior, untrained_bias)
        self.content_weight = (float(head.cosine_scale.numpy()) * gate).astype(np.float32)

    def _cold_ndcg(self, history: sp.csr_matrix, held: _ColdMovies, method: Method) -> float:
        """Mean NDCG@10 of the held-out (cold) movies ranked for the validation users."""
        scores = self._scores(history[held.users], self.rows[held.items], method)
        recommended = topk.top_k(lambda batch: scores[batch], np.arange(len(held.users)), 10,
                                 len(held.items))
        return float(np.mean(metrics.ranking_metrics(recommended, held.relevant)["ndcg"]))

    # -- answering -------------------------------------------------------------------------

    def user_vectors(self, history: sp.csr_matrix) -> np.ndarray:
        """Unit user embeddings: the normalised mean embedding of each row's watched movies
        (columns are train movies; zero for a user who watched none)."""
        binary = history.tocsr(copy=True)
        binary.data[:] = 1.0
        return _unit(np.asarray(binary @ self.watched))

    def item_vectors(self) -> np.ndarray:
        """Unit embeddings of the train movies, ``(n_items, dim)`` (for 2-D projections)."""
        self._check_fitted()
        return self.watched

    def content_cosine(self, history: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        """``(users, len(rows))`` cosine of each user's content profile (the sum of the weighted
        content vectors of the movies they rated >= 4, or of every movie they watched:
        ``profile``; ``history`` holds ratings) with the catalogue movies ``rows``."""
        profiles = _content_profiles(history, self.features[self.rows],
                                     self.settings.profile == "liked")
        return np.asarray(self.features[rows] @ profiles.T.toarray()).T

    def _scores(self, history: sp.csr_matrix, rows: np.ndarray, method: Method) -> np.ndarray:
        """Scores of the catalogue movies ``rows`` for users given as history rows."""
        candidates = self.vectors[rows]
        if method == "density":
            return density_scores(history, self.watched, candidates, self.settings.sigma)
        users = self.user_vectors(history)
        if method == "mean":
            return (users @ candidates.T).astype(np.float32)
        movie = self.movie_out[rows]
        layers, scale = self.user_layers
        logits = (np.hstack([mlp_numpy(users, layers), scale * users]) @ movie[:, :-1].T
                  + movie[:, -1])
        weight = self.content_weight[rows]
        if weight.any():  # only movies without an id bias (cold ones) have the content terms
            logits += weight * self.content_cosine(history, rows)
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        return self._scores(self.seen[user_index], self.rows, self.settings.method)

    def _score_factors(self, user_index: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The network's logits over the train movies as one product, ``[g(U), s U, 1]``
        against ``[h(E); b]`` (the score is their sigmoid, which keeps the order; train movies
        all have an id bias, so no content term), or ``None`` for the density method."""
        if self.settings.method != "network" or self.content_weight[self.rows].any():
            return None
        users = self.user_vectors(self.seen[user_index])
        layers, scale = self.user_layers
        rows = np.hstack([mlp_numpy(users, layers), scale * users,
                          np.ones((len(users), 1))]).astype(np.float32)
        return rows, np.ascontiguousarray(self.movie_out[self.rows].T, np.float32)

    def score_history(self, ratings: sp.csr_matrix, movie_ids=None,
                      user_ids: np.ndarray | None = None,
                      method: Method | None = None) -> np.ndarray:
        """:meth:`Recommender.score_history` by ``method`` (``network``, ``density``, or
        ``mean``: the cosine to the mean embedding, what stage 1 trains); ``None``: the
        ``method`` setting. Any movie of the movies table given at fit time can be scored."""
        if method is None:
            return super().score_history(ratings, movie_ids, user_ids)
        self._check_fitted()
        candidates = self.items.ids if movie_ids is None else np.asarray(movie_ids)
        return self._catalogue_scores(sp.csr_matrix(ratings, dtype=np.float32), candidates,
                                      method)

    def _score_history(self, ratings, movie_ids, user_ids):
        return self._catalogue_scores(ratings, movie_ids, self.settings.method)

    def _catalogue_scores(self, ratings: sp.csr_matrix, movie_ids: np.ndarray,
                          method: Method) -> np.ndarray:
        """Scores of raw ``movie_ids`` by ``method``; ``-inf`` for movies outside the catalogue."""
        rows = self.catalogue.encode(movie_ids, unknown="missing")
        scores = self._scores(ratings, np.maximum(rows, 0), method)
        scores[:, rows < 0] = -np.inf
        return scores

    # -- persistence: the scoring state is numpy arrays, no variables ---------------------

    def _state(self) -> dict[str, np.ndarray]:
        f = self.features
        arrays = {"catalogue": self.catalogue.ids, "vectors": self.vectors,
                  "movie_out": self.movie_out, "content_weight": self.content_weight,
                  "f_data": f.data, "f_indices": f.indices, "f_indptr": f.indptr,
                  "f_shape": np.array(f.shape)}
        layers, arrays["user_scale"] = self.user_layers
        for n, (kernel, bias) in enumerate(layers):
            arrays.update({f"user{n}_kernel": kernel, f"user{n}_bias": bias})
        return arrays

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.catalogue = IdEncoder(arrays["catalogue"])
        self.vectors, self.movie_out = arrays["vectors"], arrays["movie_out"]
        self.content_weight = arrays["content_weight"]
        self.features = sp.csr_matrix((arrays["f_data"], arrays["f_indices"], arrays["f_indptr"]),
                                      shape=tuple(arrays["f_shape"]))
        self.rows = self.catalogue.encode(self.items.ids)
        self.watched = self.vectors[self.rows]
        layers = [(arrays[f"user{n}_kernel"], arrays[f"user{n}_bias"])
                  for n in range(sum(k.startswith("user") and k.endswith("_kernel")
                                     for k in arrays))]
        self.user_layers = layers, float(arrays["user_scale"])


def _content_profiles(history: sp.csr_matrix, features: sp.csr_matrix,
                      liked: bool) -> sp.csr_matrix:
    """Unit content profiles: the sum of the content ``features`` of each row's movies, those
    rated >= 4 when ``liked``, else every non-zero of ``history`` (a row with none stays zero;
    the zeros of padded training batches never count)."""
    from sklearn.preprocessing import normalize

    kept = sp.csr_matrix(history, dtype=np.float32, copy=True)
    kept.data = (kept.data >= metrics.RELEVANT_RATING if liked else kept.data != 0
                 ).astype(np.float32)
    kept.eliminate_zeros()
    return normalize(kept @ features)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _log_popularity(counts: np.ndarray) -> np.ndarray:
    """Centred log of the movies' rating ``counts`` (0 for movies nobody rated), the starting
    point of the id biases."""
    log = np.log(np.maximum(counts, 1.0))
    return np.where(counts > 0, log - log[counts > 0].mean(), 0.0).astype(np.float32)


def _pool(vectors: tf.Tensor, batch: dict) -> tf.Tensor:
    """Unit mean of the input movies' embeddings per user of the batch (``flat_history``)."""
    n = tf.shape(batch["targets"])[0]
    w = batch["weight"][:, None]
    pooled = tf.math.unsorted_segment_sum(w * tf.gather(vectors, batch["item"]),
                                          batch["segment"], n)
    return tf.math.l2_normalize(pooled, axis=1)


def _segment_layer(flat: dict, layer, n: int) -> tf.Tensor:
    """A dense layer on sparse rows given as :func:`flat_history` lists: a weighted gather of
    kernel rows summed per row, plus the bias."""
    kernel, bias = layer
    return tf.math.unsorted_segment_sum(flat["weight"][:, None] * tf.gather(kernel, flat["item"]),
                                        flat["segment"], n) + bias


class _Encoder(tf.Module):
    """The movie encoder ``f``: a bag of content features through an MLP to a unit vector."""

    def __init__(self, n_features: int, s: FeatureEmbeddingSettings, rng: np.random.Generator):
        super().__init__(name="encoder")
        self.layers = dense_layers(rng, [n_features, s.hidden, s.dim], "encoder")

    def __call__(self, flat: dict, n: int) -> tf.Tensor:
        x = _segment_layer(flat, self.layers[0], n)
        return tf.math.l2_normalize(mlp(tf.nn.relu(x), self.layers[1:]), axis=1)

    def embed(self, content: sp.csr_matrix) -> np.ndarray:
        """Unit embeddings of the rows of ``content``, in numpy."""
        (kernel, bias), *rest = [(k.numpy(), b.numpy()) for k, b in self.layers]
        x = np.maximum(np.asarray(content @ kernel) + bias, 0.0)
        return _unit(mlp_numpy(x, rest)).astype(np.float32)

    def penalty(self) -> tf.Tensor:
        return tf.add_n([tf.reduce_sum(tf.square(k)) for k, _ in self.layers])


class _Head(tf.Module):
    """The P(watched) network: ``g(U) . h(E, x)[:-1] + h(E, x)[-1]``.

    The movie's bias ``h(E, x)[-1]`` also adds a linear term of its content vector ``x`` (one
    weight per feature, as LightFM's feature biases): how much a movie is watched at all, as
    far as its content tells, need not be squeezed into the co-watching embedding. Train
    movies also get a learned id bias (``item_bias``, L2 ``l2_id`` towards 0); a cold movie
    has none and is scored from its content alone.
    """

    def __init__(self, n_features: int, n_items: int, s: FeatureEmbeddingSettings,
                 rng: np.random.Generator):
        super().__init__(name="head")
        self.user_layers = dense_layers(rng, [s.dim, s.head_hidden, s.head_dim], "user")
        self.content = dense_layers(rng, [n_features, 1], "content")
        self.item_bias = tf.Variable(tf.zeros([n_items]), name="item_bias")
        self.movie_layers = dense_layers(rng, [s.dim, s.head_hidden, s.head_dim + 1], "movie")
        self.log_scale = tf.Variable(np.float32(-np.log(s.temperature)), name="log_scale")
        self.cosine_scale = tf.Variable(np.float32(s.cosine_weight), name="cosine_scale")
        self.prior_scale = tf.Variable(np.float32(s.prior_weight), name="prior_scale")

    def user(self, x: tf.Tensor) -> tf.Tensor:
        return tf.concat([mlp(x, self.user_layers), tf.exp(self.log_scale) * x], 1)

    def movie(self, vectors: tf.Tensor, flat: dict, n: int, id_keep: tf.Tensor,
              prior: tf.Tensor) -> tf.Tensor:
        x = _segment_layer(flat, self.content[0], n)
        out = mlp(vectors, self.movie_layers)
        bias = out[:, -1:] + x + (id_keep * self.item_bias + self.prior_scale * prior)[:, None]
        return tf.concat([out[:, :-1], vectors, bias], axis=1)

    def penalty(self) -> tf.Tensor:
        return tf.add_n([tf.reduce_sum(tf.square(k)) for k, _ in
                         self.user_layers + self.content + self.movie_layers])

    def outputs(self, content: sp.csr_matrix, vectors: np.ndarray, rows: np.ndarray,
                prior: np.ndarray, untrained_bias: np.ndarray | float = 0.0):
        """The user side as numpy layers and scale, and ``h`` of every movie of
        ``content``/``vectors`` (``rows``: the train movies, which have an id bias)."""
        user, (content_layer,), movie = [[(k.numpy(), b.numpy()) for k, b in side] for side in
                                         (self.user_layers, self.content, self.movie_layers)]
        kernel, bias = content_layer
        out = mlp_numpy(vectors, movie)
        out[:, -1] += (np.asarray(content @ kernel).ravel() + bias
                       + self.prior_scale.numpy() * prior)
        out[rows, -1] += self.item_bias.numpy() + untrained_bias  # cold movies have none
        movie_out = np.hstack([out[:, :-1], vectors, out[:, -1:]]).astype(np.float32)
        return (user, np.exp(self.log_scale.numpy())), movie_out


class _Networks(tf.Module):
    """Both stages' variables: the encoder (drawn from the model's seed) and the P(watched)
    network (from the seed + 1)."""

    def __init__(self, n_features: int, n_items: int, s: FeatureEmbeddingSettings, seed: int):
        super().__init__(name="feature_embedding")
        self.encoder = _Encoder(n_features, s, np.random.default_rng(seed))
        self.head = _Head(n_features, n_items, s, np.random.default_rng(seed + 1))
