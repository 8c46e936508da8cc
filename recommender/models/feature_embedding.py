"""Seed 000: movie embeddings computed from movie attributes, users as the movies they watched.

A movie's embedding ``E_m = normalize(f(x_m))`` is a network over its content vector ``x_m``
(:func:`recommender.preprocessing.content_features`: genres, decade, title words, tag TF-IDF,
tag count, an overview column when the movies table has one); no movie id enters it, so a
movie nobody has rated yet is embedded like any other. A user's embedding is the normalised
mean of the embeddings of the movies they watched, so a new user is served from their
ratings without retraining. Training follows the seed's two stages, both through
:func:`recommender.training.fit_loop`:

1. the encoder ``f``: each user's history is split at random into targets and inputs every
   epoch (as in :mod:`recommender.models.softmax`); a softmax over the catalogue of
   ``cos(mean of the inputs' E, E_target) / temperature`` pulls movies watched by the same
   users together;
2. with ``f`` frozen, the "P(watched)" network over (user embedding ``U``, movie embedding
   ``E``): ``logit = s cos(U, E) + g(U) . h(E) + b(E) + w . x + b_m`` with ``g``, ``h``,
   ``b`` small MLPs (a two-tower form, so scoring a catalogue is one matrix product), ``s``
   a learned scale starting at ``1 / temperature`` (so the network starts from what stage 1
   learned), ``w . x`` a linear bias of the content vector and ``b_m`` an id bias of a train
   movie (starting at its centred log count; a cold movie has none; each step drops the id
   biases of ``id_dropout`` of the movies, so that the content bias must learn what makes
   a movie watched, as it must for cold movies). A movie without an id bias (cold, or
   dropped this step) gets instead the raw-content ("wide") terms LightFM's sum of feature
   embeddings carries and the 64-d embedding loses: ``a cos(p_u, v_m) + c prior(v_m)``,
   ``v_m`` the block-weighted unit content vector
   (:func:`recommender.preprocessing.weighted_content`), ``p_u`` the sum of those of the
   movies the user rated >= 4 (``profile="liked"``, as ``content`` builds it; ``"watched"``:
   every movie they rated), ``prior`` the content-only popularity prior
   (:func:`recommender.preprocessing.popularity_prior`), ``a`` and ``c`` learned scalars
   starting at ``cosine_weight`` and ``prior_weight`` (in validation fits both moved by less
   than 0.1 in the few epochs early stopping keeps: the starting values are what counts).
   Movies with an id leave them out: for new users ranking warm movies they cost NDCG@10
   on validation. It is trained with binary cross-entropy on held-out watched movies
   against uniformly drawn unwatched ones, so it learns how much a movie is watched at all,
   as well as by whom.

Two ways to recommend (``method``):

- ``"network"``: ``sigmoid(logit)`` of stage 2, P(watched);
- ``"density"``: the seed's density method, a Gaussian kernel density over the cosine
  similarities between a candidate ``c`` and each movie ``j`` the user watched::

      score(c) = sum_j exp(-(1 - cos(E_c, E_j))^2 / (2 sigma^2))

  The seed writes ``sum_j exp(-cos(E_c, E_j)^2 / (s sigma^2))``; read literally it is
  largest for *orthogonal* movies (cos = 0) and decreases as similarity grows, the opposite
  of "the movies most similar to the ones watched". A normal density over each similarity
  must be centred on the perfect match, so the distance in the exponent is ``1 - cos`` (the
  cosine distance), and ``s = 2`` makes it the normal kernel with bandwidth ``sigma``.

Early stopping watches a cold-movie validation split carved from train inside ``fit``
(``validation`` of the train movies held out with all their ratings, ranked for the users
who rated them >= 4). The defaults were chosen on validation splits carved from the train
parts of the issue-11 cold-start splits (test never seen; see :class:`FeatureEmbedding`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender import metrics, topk
from recommender.core.errors import DataError, SettingError
from recommender.models.base import Context, Recommender
from recommender.models.softmax import MASKED_LOGIT, NegativeSampler, flat_history
from recommender.data.preprocessing import (IdEncoder, Interactions, content_features,
                                      popularity_prior, weighted_content)

__all__ = ["FeatureEmbedding", "density", "density_scores", "method_comparison"]

_CELLS = 2**23  # candidate x history-movie similarities formed at once by the density method


def density(similarity: np.ndarray, sigma: float) -> np.ndarray:
    """The normal kernel of the density method: ``exp(-(1 - cos)^2 / (2 sigma^2))``.

    Args:
        similarity: cosine similarities, any shape.
        sigma: kernel bandwidth, in cosine units.

    Returns:
        Kernel values in (0, 1], 1 at a perfect match (see the module docstring for why the
        seed's literal formula is not used).
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


def _mlp(x: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """A ReLU MLP in numpy (no activation after the last layer)."""
    for n, (kernel, bias) in enumerate(layers):
        x = x @ kernel + bias
        x = np.maximum(x, 0.0) if n < len(layers) - 1 else x
    return x


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


class FeatureEmbedding(Recommender):
    """Seed 000: content-based movie embeddings, users as their watched movies, P(watched).

    See the module docstring for the model, the two stages and the density formula.
    Needs the movies table (tags and an overview column optional). Movies in the movies
    table at fit time are scored from their content even with no rating in train (cold
    movies); other movies outside train score ``-inf``. There is no refit: the validation
    movies' ratings stay out of training, and those movies are then scored with the id bias
    they would have started from (their centred log count) and the trained networks.

    Defaults were picked on validation splits carved from the train parts of the issue-11
    cold-start splits (20% of the train movies, or users with 5 ratings revealed, seed 7;
    the test parts never seen). ``method="network"`` is the default: cold movies, AUC
    0.782 / NDCG@10 0.126 against 0.770 / 0.098 for ``density``; new users with 5 ratings,
    NDCG@10 0.353 against 0.210 (popularity 0.333). ``id_dropout`` 0.5 beat 0 (0.774 /
    0.098; 0.350) and 0.8 (0.778 / 0.098; 0.353). ``sigma`` 0.5 beat 0.1, 0.2 and 0.3 for
    the density method, dropout 0.5 beat 0.3; temperature 0.05 / 0.2, 32 or 128 dimensions,
    batches of 16, l2 1e-5 / 1e-4 and a 10x lower learning rate were no clearer winners
    (cold-movie AUC 0.79-0.82 and NDCG@10 0.11-0.17 on a split with every tag known).

    The wide content terms were chosen on validation splits carved from the train part of
    the cold-movie split: 20% of its movies held out (``cold_start_split(train, "movie", 0.2,
    seed)``, seeds 0, 1 and 2), and for new users 20% of the users of the user cold-start
    train with 5 ratings revealed (seed 0); tags as ``known_tags`` allows; the test movies
    never seen. Cold-movie NDCG@10 per split, then mean NDCG@10 / AUC, and new-user NDCG@10,
    each a mean over model seeds 42, 0, 1 (the seed alone moves a split's NDCG@10 by 0.01-0.02):

    ==========================================  =====================  ===============  =====
    setting                                     NDCG@10, split 0/1/2   mean NDCG / AUC  new 5
    ==========================================  =====================  ===============  =====
    profile watched, cosine 2, prior 0.5 (old)  0.056 / 0.126 / 0.109  0.097 / 0.791    0.332
    profile liked, prior 0.5                    0.058 / 0.131 / 0.109  0.099 / 0.793    0.339
    profile liked, prior 1 (default)            0.057 / 0.156 / 0.115  0.109 / 0.795    0.326
    profile liked, prior 1.5                    0.056 / 0.163 / 0.110  0.110 / 0.796    0.308
    watched, plus 2 x max cosine to one movie   0.058 / 0.120 / 0.107  0.095 / 0.794
    ``content`` (reference)                     0.052 / 0.153 / 0.093  0.099 / 0.773
    popularity (reference)                                                              0.330
    ==========================================  =====================  ===============  =====

    The liked profile beat the watched one on every split (it does for ``content`` too); a
    larger prior weight lifted cold movies on splits 1 and 2, and prior 1.5 tied prior 1 there
    but lost new users 0.02 NDCG@10 (they get no wide terms: the loss goes through training), so
    1 is the default. The largest content cosine to a single watched movie (item-item evidence a
    profile averages away), as a third wide term, did not help. Blends computed after training
    on the scores of the liked / prior 0.5 build (logit + 0.5 to 1 x prior: mean NDCG@10
    0.108-0.110; per-user z-scores or ranks of the logit plus 0.25-1 x those of ``content``:
    0.105-0.111, AUC 0.796-0.799) came within noise of what a prior weight of 1 reaches in
    training, so the model keeps one score. New-user NDCG@10 moves by 0.03-0.05 between model
    seeds; read that column as "level with popularity". Earlier sweeps, split seed 0, watched
    profile: no wide terms 0.046 / 0.763, new users 0.343; cosine 5, prior 0.5: 0.054 / 0.779,
    new users 0.326; the same terms on every movie, not only those without an id, cost new users
    NDCG@10 (0.297 against 0.304, one seed).
    """

    name = "feature-embedding"
    # Every step embeds the whole catalogue (and the encoder's softmax spans it), whatever
    # the batch: at 162,541 users batches of 64 were 2,540 steps per stage epoch; 1,024
    # leaves 159 (about as many as a 20-epoch fit on u20 takes in all).
    large_data = {"batch_size": 1024}
    defaults: dict[str, Any] = {
        "method": "network", "dim": 64, "hidden": 128, "temperature": 0.1, "sigma": 0.5,
        "head_hidden": 64, "head_dim": 32, "target_fraction": 0.2, "max_targets": 32,
        "dropout": 0.5, "num_negatives": 512, "l2": 1e-6, "l2_id": 1e-4, "id_dropout": 0.5,
        "cosine_weight": 2.0, "prior_weight": 1.0, "profile": "liked", "epochs": 20,
        "head_epochs": 20, "batch_size": 64, "learning_rate": 3e-3, "patience": 3,
        "validation": 0.1, "max_words": 5000, "progress": False,
    }

    def __init__(self, seed: int = 0, **params: Any):
        super().__init__(seed, **params)
        if self.params["profile"] not in ("liked", "watched"):
            raise SettingError(f"{self.name}: profile must be 'liked' or 'watched', "
                                 f"not {self.params['profile']!r}")
        if self.params["method"] not in ("network", "density"):
            raise SettingError(f"{self.name}: method must be 'network' or 'density', "
                             f"not {self.params['method']!r}")

    # -- fitting ---------------------------------------------------------------------------

    def _fit(self, data: Interactions, context: Context) -> None:
        if context.movies is None:
            raise DataError(f"{self.name}: needs the movies table: fit(train, movies=...), "
                             "or --movies on the command line (tags are optional)")
        p = self.params
        tags = context.tags
        self.catalogue = IdEncoder.fit(np.concatenate([data.items.ids,
                                                       context.movies["movieId"].to_numpy()]))
        content, names = content_features(context.movies, self.catalogue.ids, tags,
                                          p["max_words"])
        self.features = weighted_content(content, names)
        rows = self.rows = self.catalogue.encode(data.items.ids)
        fit_history, val_items, val_users, relevant = self._cold_validation(data)
        encoder, result = self._train_encoder(content, rows, fit_history, val_items, val_users,
                                              relevant)
        self.vectors = encoder.embed(content)
        self.watched = self.vectors[rows]
        head_result, val = self._train_head(content, data.item_counts(), fit_history,
                                            val_items, val_users, relevant)
        if val_items is not None:
            val["density"] = self._validation_ndcg(fit_history, val_items, val_users, relevant,
                                                   "density")
        self.meta.update(validation_ndcg=val, encoder_epochs=result.best_epoch,
                         head_epochs=head_result.best_epoch, features=int(content.shape[1]))

    def _cold_validation(self, data: Interactions):
        """Train movies held out with all their ratings, as cold movies to validate on.

        Returns the history left to train on, the held-out movie indices, the users with a
        held-out movie rated >= 4 and their relevance rows over the held-out movies.
        """
        ratings = data.matrix("rating")
        fraction = self.params["validation"]
        if not fraction:
            return ratings, None, None, None
        rng = np.random.default_rng(self.seed)
        held = np.sort(rng.choice(data.n_items, max(1, round(fraction * data.n_items)),
                                  replace=False))
        keep = np.ones(data.n_items, np.float32)
        keep[held] = 0.0
        fit = (ratings @ sp.diags(keep)).tocsr()
        fit.eliminate_zeros()
        liked = (ratings[:, held] >= metrics.RELEVANT_RATING).astype(np.float32).tocsr()
        liked.eliminate_zeros()
        users = np.flatnonzero(np.diff(liked.indptr) > 0)
        return fit, held, users, liked[users]

    def _loop(self, module, loss_fn, validate, history: sp.csr_matrix,
              held: np.ndarray | None, loss: str, epochs: int, label: str):
        """One stage through the shared loop, over the users with two movies or more (one to
        hold out, one to keep), early-stopping on the cold-movie validation when there is one."""
        from recommender.models.training import TrainConfig, fit_loop

        p = self.params
        config = TrainConfig(epochs=epochs, batch_size=p["batch_size"],
                             learning_rate=p["learning_rate"], patience=p["patience"],
                             seed=self.seed, progress=p["progress"],
                             jit_compile=False)  # padded histories change shape from batch
        # to batch, and XLA recompiled for each new one (a fit took 87 s with it, 26 s without)
        users = np.flatnonzero(np.diff(history.indptr) > 1).astype(np.int64)
        return fit_loop(module, loss_fn, {"user": users}, config,
                        validate=validate if held is not None else None,
                        batch_fn=self._sampler(history, loss, held),
                        description=f"{self.name} {label}")

    def _sampler(self, history: sp.csr_matrix, loss: str, held: np.ndarray | None):
        """Targets held out of each user's inputs every epoch; negatives never held-out movies;
        for the network, which id biases this step drops (``id_dropout``) and the content
        cosines of the targets and candidates to the profile of the inputs (a fixed input,
        computed here in scipy on the rows needed, not in the graph over the catalogue)."""
        p = self.params
        sampler = NegativeSampler(history, {**p, "loss": loss}, np.array([0.0, 1.0], np.float32))
        if loss == "full":
            return sampler
        q = np.ones(history.shape[1])
        if held is not None:
            q[held] = 1e-12  # never drawn (and no log(0) in the sampler's logQ)
        sampler.q = q / q.sum()

        features = self.features[self.rows]

        def batch_fn(batch: dict, rng: np.random.Generator) -> dict:
            out = sampler(batch, rng)
            keep = rng.random(history.shape[1]) >= p["id_dropout"]
            n, t = out["targets"].shape
            inputs = sp.csr_matrix((out["weight"], (out["segment"], out["item"])),
                                   shape=(n, history.shape[1]))
            profiles = _content_profiles(inputs, features, p["profile"] == "liked")
            on_target = features[out["targets"].ravel()].multiply(profiles[np.repeat(
                np.arange(n), t)])
            return {**out, "id_keep": keep.astype(np.float32),
                    "target_cosine": np.asarray(on_target.sum(1), np.float32).reshape(n, t),
                    "candidate_cosine": (profiles @ features[out["candidates"]].T)
                    .toarray().astype(np.float32)}

        return batch_fn

    def _train_encoder(self, content: sp.csr_matrix, rows: np.ndarray, history: sp.csr_matrix,
                       held: np.ndarray | None, val_users, relevant):
        import tensorflow as tf

        from recommender.models.training import strategy

        p = self.params
        with strategy().scope():
            encoder = _encoder(content.shape[1], p, np.random.default_rng(self.seed))
        flat = {k: tf.constant(v) for k, v in flat_history(content[rows]).items()}
        n_items = len(rows)
        mask = np.zeros(n_items, np.float32)
        if held is not None:
            mask[held] = MASKED_LOGIT  # held-out movies are no candidates, as cold movies are not
        mask = tf.constant(mask)
        temperature = p["temperature"]

        def loss_fn(batch):
            vectors = encoder(flat, n_items)
            query = _pool(vectors, batch)
            logits = query @ tf.transpose(vectors) / temperature + mask
            known = tf.stack([batch["known_segment"], batch["known_item"]], axis=1)
            logits += tf.scatter_nd(known, MASKED_LOGIT * batch["known_weight"], tf.shape(logits))
            per_target = -tf.gather(tf.nn.log_softmax(logits), batch["targets"], batch_dims=1)
            weight = batch["target_weight"]
            per_user = tf.reduce_sum(per_target * weight, 1) / tf.reduce_sum(weight, 1)
            return per_user, p["l2"] * encoder.penalty()

        def validate() -> float:
            self.vectors = encoder.embed(content)
            self.watched = self.vectors[rows]
            return -self._validation_ndcg(history, held, val_users, relevant, "mean")

        result = self._loop(encoder, loss_fn, validate, history, held, "full", p["epochs"],
                            "encoder")
        return encoder, result

    def _train_head(self, content: sp.csr_matrix, train_counts: np.ndarray,
                    history: sp.csr_matrix, held: np.ndarray | None, val_users, relevant):
        """Stage 2 on ``history``; returns the loop's result and the network's validation
        NDCG. Scoring then gives the validation movies the id bias they would have started
        from (their train ratings are known, only kept out of training)."""
        import tensorflow as tf

        from recommender.models.training import strategy

        p = self.params
        counts = np.diff(history.tocsc().indptr)
        catalogue_counts = np.zeros(len(self.catalogue))
        catalogue_counts[self.rows] = counts
        prior = popularity_prior(self.features, catalogue_counts, self.rows[counts > 0])
        with strategy().scope():
            head = _head(content.shape[1], _log_popularity(counts), p,
                         np.random.default_rng(self.seed + 1))
        watched = tf.constant(self.watched)
        flat = {k: tf.constant(v) for k, v in flat_history(content[self.rows]).items()}
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
            return per_user, (p["l2"] * head.penalty()
                              + p["l2_id"] * tf.reduce_sum(tf.square(head.item_bias)))

        def validate() -> float:
            self._head_outputs(head, content, prior, counts)
            return -self._validation_ndcg(history, held, val_users, relevant, "network")

        result = self._loop(head, loss_fn, validate, history, held, "sampled-uniform",
                            p["head_epochs"], "P(watched)")
        val = {"network": -validate()} if held is not None else {}
        untrained = (counts == 0) & (train_counts > 0)
        self._head_outputs(head, content, prior, train_counts,
                           np.where(untrained, _log_popularity(train_counts), 0.0))
        return result, val

    def _head_outputs(self, head, content: sp.csr_matrix, prior: np.ndarray,
                      counts: np.ndarray, untrained_bias: np.ndarray | float = 0.0) -> None:
        """The P(watched) network as numpy arrays, for scoring: train movies with ``counts``
        > 0 have an id bias (the trained one plus ``untrained_bias``), the others the content
        prior and the content cosine instead."""
        has_id = np.zeros(len(self.catalogue), bool)
        has_id[self.rows] = counts > 0
        gate = 1.0 - has_id
        self.user_layers, self.movie_out = head.outputs(content, self.vectors, self.rows,
                                                        gate * prior, untrained_bias)
        self.content_weight = (float(head.cosine_scale.numpy()) * gate).astype(np.float32)

    def _validation_ndcg(self, history: sp.csr_matrix, held: np.ndarray, users: np.ndarray,
                         relevant: sp.csr_matrix, method: str) -> float:
        """Mean NDCG@10 of the held-out (cold) movies ranked for the validation users."""
        scores = self._scores(history[users], self.rows[held], method)
        recommended = topk.top_k(lambda batch: scores[batch], np.arange(len(users)), 10,
                                    len(held))
        return float(np.mean(metrics.ranking_metrics(recommended, relevant)["ndcg"]))

    # -- answering -------------------------------------------------------------------------

    def user_vectors(self, history: sp.csr_matrix) -> np.ndarray:
        """Unit user embeddings: the normalised mean embedding of each row's watched movies
        (columns are train movies; zero for a user who watched none)."""
        binary = history.tocsr(copy=True)
        binary.data[:] = 1.0
        return _unit(np.asarray(binary @ self.watched))

    def _scores(self, history: sp.csr_matrix, rows: np.ndarray,
                method: str | None = None) -> np.ndarray:
        """Scores of the catalogue movies ``rows`` for users given as history rows."""
        method = method or self.params["method"]
        candidates = self.vectors[rows]
        if method == "density":
            return density_scores(history, self.watched, candidates, self.params["sigma"])
        users = self.user_vectors(history)
        if method == "mean":  # cosine to the mean: what the encoder is trained for
            return (users @ candidates.T).astype(np.float32)
        movie = self.movie_out[rows]
        layers, scale = self.user_layers
        logits = np.hstack([_mlp(users, layers), scale * users]) @ movie[:, :-1].T + movie[:, -1]
        weight = self.content_weight[rows]
        if weight.any():  # only movies without an id bias (cold ones) have the content terms
            logits += weight * self.content_cosine(history, rows)
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)

    def content_cosine(self, history: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        """``(users, len(rows))`` cosine of each user's content profile (the sum of the weighted
        content vectors of the movies they rated >= 4, or of every movie they watched:
        ``profile``; ``history`` holds ratings) with the catalogue movies ``rows``."""
        profiles = _content_profiles(history, self.features[self.rows],
                                     self.params["profile"] == "liked")
        return np.asarray(self.features[rows] @ profiles.T.toarray()).T

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        return self._scores(self.seen[user_index], self.rows)

    def _fold_in(self, ratings: sp.csr_matrix, movie_ids: np.ndarray) -> np.ndarray:
        rows = self.catalogue.encode(movie_ids, unknown="missing")
        scores = self._scores(ratings, np.maximum(rows, 0))
        scores[:, rows < 0] = -np.inf
        return scores

    def scores_by_method(self, history: pd.DataFrame, movie_ids, method: str) -> np.ndarray:
        """:meth:`fold_in` with the given ``method`` (``network``, ``density`` or ``mean``)."""
        previous, self.params = self.params, {**self.params, "method": method}
        try:
            return self.fold_in(history, movie_ids)
        finally:
            self.params = previous

    def item_vectors(self) -> np.ndarray:
        """Unit embeddings of the train movies, ``(n_items, dim)`` (for 2-D projections)."""
        self._check_fitted()
        return self.watched

    # -- persistence -----------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# TensorFlow parts (imported lazily)


def _pool(vectors, batch):
    """Unit mean of the input movies' embeddings per user of the batch (``flat_history``)."""
    import tensorflow as tf

    n = tf.shape(batch["targets"])[0]
    w = batch["weight"][:, None]
    pooled = tf.math.unsorted_segment_sum(w * tf.gather(vectors, batch["item"]),
                                          batch["segment"], n)
    return tf.math.l2_normalize(pooled, axis=1)


def _dense(rng: np.random.Generator, sizes: list[int], name: str):
    """Glorot-normal kernels and zero biases of an MLP with the given layer sizes."""
    import tensorflow as tf

    return [(tf.Variable(rng.normal(0.0, np.sqrt(2.0 / (a + b)), (a, b)).astype(np.float32),
                         name=f"{name}{n}_kernel"),
             tf.Variable(tf.zeros([b]), name=f"{name}{n}_bias"))
            for n, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]


def _apply(x, layers):
    import tensorflow as tf

    for n, (kernel, bias) in enumerate(layers):
        x = x @ kernel + bias
        x = tf.nn.relu(x) if n < len(layers) - 1 else x
    return x


def _encoder(n_features: int, params: dict, rng: np.random.Generator):
    """The movie encoder: a bag of content features through an MLP to a unit vector."""
    import tensorflow as tf

    class Encoder(tf.Module):
        def __init__(self):
            super().__init__(name="encoder")
            sizes = [n_features, params["hidden"], params["dim"]]
            self.layers = _dense(rng, sizes, "encoder")

        def __call__(self, flat: dict, n: int):
            (kernel, bias), rest = self.layers[0], self.layers[1:]
            x = tf.math.unsorted_segment_sum(flat["weight"][:, None]
                                             * tf.gather(kernel, flat["item"]),
                                             flat["segment"], n) + bias
            x = _apply(tf.nn.relu(x), rest)
            return tf.math.l2_normalize(x, axis=1)

        def embed(self, content: sp.csr_matrix) -> np.ndarray:
            layers = [(k.numpy(), b.numpy()) for k, b in self.layers]
            return _unit(_mlp_sparse(content, layers)).astype(np.float32)

        def penalty(self):
            return tf.add_n([tf.reduce_sum(tf.square(k)) for k, _ in self.layers])

    return Encoder()


def _mlp_sparse(content: sp.csr_matrix, layers) -> np.ndarray:
    """:func:`_mlp` whose first layer takes a sparse input."""
    (kernel, bias), rest = layers[0], layers[1:]
    x = np.maximum(np.asarray(content @ kernel) + bias, 0.0)
    return _mlp(x, rest)


def _log_popularity(counts: np.ndarray) -> np.ndarray:
    """Centred log of the movies' rating ``counts`` (0 for movies nobody rated), the starting
    point of the id biases."""
    log = np.log(np.maximum(counts, 1.0))
    return np.where(counts > 0, log - log[counts > 0].mean(), 0.0).astype(np.float32)


def _head(n_features: int, id_bias: np.ndarray, params: dict, rng: np.random.Generator):
    """The P(watched) network: ``g(U) . h(E, x)[:-1] + h(E, x)[-1]``.

    The movie's bias ``h(E, x)[-1]`` also adds a linear term of its content vector ``x``
    (one weight per feature, as LightFM's feature biases): how much a movie is watched at
    all, as far as its content tells, need not be squeezed into the co-watching embedding.
    Train movies also get a learned id bias (starting from their centred log count, L2
    ``l2_id`` towards 0); a cold movie has none and is scored from its content alone.
    """
    import tensorflow as tf

    class Head(tf.Module):
        def __init__(self):
            super().__init__(name="head")
            d, hidden, k = params["dim"], params["head_hidden"], params["head_dim"]
            self.user_layers = _dense(rng, [d, hidden, k], "user")
            self.content = _dense(rng, [n_features, 1], "content")
            self.item_bias = tf.Variable(id_bias, name="item_bias")
            self.movie_layers = _dense(rng, [d, hidden, k + 1], "movie")
            self.log_scale = tf.Variable(np.float32(-np.log(params["temperature"])),
                                         name="log_scale")
            self.cosine_scale = tf.Variable(np.float32(params["cosine_weight"]),
                                            name="cosine_scale")
            self.prior_scale = tf.Variable(np.float32(params["prior_weight"]),
                                           name="prior_scale")

        def user(self, x):
            return tf.concat([_apply(x, self.user_layers), tf.exp(self.log_scale) * x], 1)

        def movie(self, vectors, flat: dict, n: int, id_keep, prior):
            (kernel, bias), = self.content
            x = tf.math.unsorted_segment_sum(flat["weight"][:, None]
                                             * tf.gather(kernel, flat["item"]),
                                             flat["segment"], n) + bias
            out = _apply(vectors, self.movie_layers)
            bias = out[:, -1:] + x + (id_keep * self.item_bias + self.prior_scale * prior)[:, None]
            return tf.concat([out[:, :-1], vectors, bias], axis=1)

        def penalty(self):
            return tf.add_n([tf.reduce_sum(tf.square(k)) for k, _ in
                             self.user_layers + self.content + self.movie_layers])

        def outputs(self, content: sp.csr_matrix, vectors: np.ndarray, rows: np.ndarray,
                    prior: np.ndarray, untrained_bias: np.ndarray | float = 0.0):
            """The user side as numpy layers and scale, and ``h`` of every movie of
            ``content``/``vectors``."""
            numpy = [[(k.numpy(), b.numpy()) for k, b in side]
                     for side in (self.user_layers, self.content, self.movie_layers)]
            (kernel, bias), = numpy[1]
            out = _mlp(vectors, numpy[2])
            out[:, -1] += (np.asarray(content @ kernel).ravel() + bias
                           + self.prior_scale.numpy() * prior)
            out[rows, -1] += self.item_bias.numpy() + untrained_bias  # cold movies have none
            movie = np.hstack([out[:, :-1], vectors, out[:, -1:]]).astype(np.float32)
            return (numpy[0], np.exp(self.log_scale.numpy())), movie

    return Head()


def method_comparison(model: FeatureEmbedding, history: pd.DataFrame, test: pd.DataFrame,
                      movie_ids=None, k: int = 10) -> pd.DataFrame:
    """Density method against the network on the same users: per-user NDCG@k.

    Args:
        model: a fitted :class:`FeatureEmbedding`.
        history: the ratings the users are known by (e.g. train).
        test: held-out ratings; relevant = rated >= 4.
        movie_ids: candidate movies (default: the test movies); a user's history movies are
            excluded from their candidates.
        k: list length.

    Returns:
        One row per user with a relevant candidate: ``userId``, ``network``, ``density``.
    """
    candidates = np.unique(test["movieId"] if movie_ids is None else movie_ids)
    users = np.unique(test.loc[test["rating"] >= metrics.RELEVANT_RATING, "userId"])
    known = history[history["userId"].isin(users)]
    users = np.unique(known["userId"])
    cand = IdEncoder(candidates)
    user_enc = IdEncoder(users)
    liked = test[(test["rating"] >= metrics.RELEVANT_RATING) & test["userId"].isin(users)
                 & test["movieId"].isin(candidates)]
    relevant = sp.csr_matrix((np.ones(len(liked), np.float32),
                              (user_enc.encode(liked["userId"]), cand.encode(liked["movieId"]))),
                             shape=(len(users), len(candidates)))
    seen_cols = cand.encode(known["movieId"].to_numpy(), unknown="missing")
    inside = seen_cols >= 0
    exclude = sp.csr_matrix((np.ones(inside.sum(), np.float32),
                             (user_enc.encode(known["userId"].to_numpy()[inside]),
                              seen_cols[inside])), shape=relevant.shape)
    has = np.diff(relevant.tocsr().indptr) > 0
    out = pd.DataFrame({"userId": users[has]})
    for method in ("network", "density"):
        scores = model.scores_by_method(known, candidates, method)[has]
        top = topk.top_k(lambda b: scores[b], np.arange(has.sum()), k, len(candidates),
                            exclude=exclude.tocsr()[has])
        out[method] = metrics.ranking_metrics(top, relevant.tocsr()[has], k)["ndcg"]
    return out
