"""I-AutoRec (Sedhain, Menon, Sanner and Xie 2015, "AutoRec: autoencoders meet collaborative
filtering"): an autoencoder over each movie's vector of user ratings.

A movie ``i`` is the vector ``r_i`` of the ratings every user gave it (0 where unrated). The
network reconstructs it through one hidden layer::

    h_i = g(V^T r_i + c)          V: users x hidden,  g: the activation (sigmoid in the paper)
    r^_ui = W_u . h_i + d_u       W: users x hidden,  d: one output bias per user

and is trained on the observed entries only, with an L2 penalty on the two kernels::

    min  sum_i sum_{u rated i} (r_ui - r^_ui)^2 + l2 / 2 (|V|^2 + |W|^2)

With ``baseline`` the network learns what the ``baseline`` model's biases leave over (``r_ui -
mu - b_u - b_i`` in and out, the biases added back to a prediction), which is also what a
user or movie unseen in train gets. ``dropout`` drops observed ratings from the input (the
loss still covers them), a denoising autoencoder. Both layers touch only the observed
entries of a batch (a gather over the users who rated each movie), so a step costs
O(ratings in the batch x hidden), not O(movies x users), and no dense users x movies matrix
is made. A prediction is one product: ``[W_u, d_u + mu + b_u, 1] . [h_i; 1; b_i]``, which is
how ``top_k`` scores a batch of users. Settings and measurements: ``docs/models/autorec.md``.
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np
import scipy.sparse as sp
import tensorflow as tf
from pydantic import Field

from recommender import metrics
from recommender.models.baselines import BiasesSettings, fit_biases
from recommender.models.neural import dense_layers, flat_history
from recommender.models.settings import TowerSettings
from recommender.models.tower import TowerModel
from recommender.models.training import History

__all__ = ["AutoRec", "AutoRecSettings", "MovieBatches"]

_BIASES = BiasesSettings()  # the baseline's shrinkage: the `baseline` model's defaults
_PAIRS = 2**16  # pairs predicted at once (each copies two hidden vectors)
_ACTIVATIONS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "sigmoid": tf.sigmoid, "tanh": tf.tanh, "elu": tf.nn.elu, "relu": tf.nn.relu,
    "identity": tf.identity}


class AutoRecSettings(TowerSettings):
    """Settings of :class:`AutoRec` (tuned on validation slices of train)."""

    hidden: int = Field(200, ge=1, description="size of the hidden layer h_i")
    activation: Literal["sigmoid", "tanh", "elu", "relu", "identity"] = Field(
        "sigmoid", description="the hidden layer's activation g")
    l2: float = Field(30.0, ge=0, description="L2 weight on the two kernels (the paper's "
                      "lambda: the penalty is l2 / 2 times their squared norm)")
    dropout: float = Field(0.25, ge=0, lt=1, description="share of a movie's observed ratings "
                           "dropped from its input per step (the loss keeps them)")
    baseline: bool = Field(True, description="learn what the user and movie biases leave "
                           "over (false: raw ratings, as the paper)")
    batch_size: int = Field(256, ge=1, description="movies per step")
    epochs: int = Field(200, ge=1, description="most epochs; early stopping picks the count")
    learning_rate: float = Field(3e-4, gt=0, description="Adam's step size")
    patience: int = Field(10, ge=1, description="epochs without a lower validation RMSE "
                          "before stopping")


class _Network(tf.Module):
    """The encoder ``(V, c)`` and decoder ``(W^T, d)`` of I-AutoRec."""

    def __init__(self, n_users: int, hidden: int, activation: str, rng: np.random.Generator):
        super().__init__(name="autorec")
        (self.encoder, self.encoder_bias), (self.decoder, self.decoder_bias) = dense_layers(
            rng, [n_users, hidden, n_users], "layer", init="glorot_uniform")
        self.activation = _ACTIVATIONS[activation]

    def outputs(self, batch: dict) -> tf.Tensor:
        """``r^_ui`` at every observed entry of a batch of movies (flat lists: the user, the
        movie's row in the batch, the input value)."""
        n = tf.shape(batch["n_movies"])[0]
        users, rows = batch["user"], batch["segment"]
        into = tf.math.unsorted_segment_sum(batch["input"][:, None]
                                            * tf.gather(self.encoder, users), rows, n)
        hidden = self.activation(into + self.encoder_bias)
        out = tf.transpose(tf.gather(self.decoder, users, axis=1))
        return tf.reduce_sum(tf.gather(hidden, rows) * out, axis=1) + tf.gather(
            self.decoder_bias, users)

    def hidden(self, movies: sp.csr_matrix) -> np.ndarray:
        """``h_i`` of the movies given as rows of a movies x users matrix, ``(n, hidden)``."""
        into = movies @ self.encoder.numpy() + self.encoder_bias.numpy()
        return self.activation(tf.constant(into, tf.float32)).numpy()

    def penalty(self) -> tf.Tensor:
        """``|V|^2 + |W|^2``."""
        return tf.reduce_sum(self.encoder ** 2) + tf.reduce_sum(self.decoder ** 2)


class MovieBatches:
    """A batch of movie rows as flat lists of their observed entries, with input dropout."""

    def __init__(self, movies: sp.csr_matrix, dropout: float):
        self.movies, self.dropout = movies, dropout

    def __call__(self, batch: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
        rows = self.movies[batch["movie"]]
        flat = flat_history(rows)  # padded past rows.nnz with zeros
        observed = (np.arange(len(flat["item"])) < rows.nnz).astype(np.float32)
        keep = observed
        if self.dropout:  # inverted dropout: the kept inputs scaled by 1 / (1 - p)
            keep = observed * (rng.random(len(observed)) >= self.dropout) / (1 - self.dropout)
        return {"user": flat["item"], "segment": flat["segment"], "target": flat["weight"],
                "input": flat["weight"] * keep, "observed": observed,
                "n_movies": np.zeros(rows.shape[0], np.float32)}


class AutoRec(TowerModel):
    """I-AutoRec: an autoencoder over each movie's ratings, trained on observed entries."""

    name = "autorec"
    Settings = AutoRecSettings
    predicts_ratings = True
    validation_metric = "rmse"
    large_data = None  # not measured at MovieLens-25M scale (docs/models/autorec.md)

    def __init__(self, seed: int = 0, **settings):
        super().__init__(seed, **settings)
        self.offset = 0.0  # mu: the mean rating the biases were fitted around
        self.user_bias = self.item_bias = np.zeros(0, np.float32)
        self.movie_hidden: np.ndarray | None = None

    # -- training --------------------------------------------------------------------------

    def _build(self) -> _Network:
        s = self.settings
        return _Network(self.n_users, s.hidden, s.activation, np.random.default_rng(self.seed))

    def _targets(self, ratings: sp.csr_matrix) -> sp.csr_matrix:
        """The movies x users matrix the network reconstructs from these ratings; with
        ``baseline`` the biases are fitted on them first (and kept for predictions)."""
        coo = ratings.tocoo()
        self.offset = 0.0
        self.user_bias = np.zeros(self.n_users, np.float32)
        self.item_bias = np.zeros(self.n_items, np.float32)
        if self.settings.baseline:
            self.offset = float(np.mean(coo.data))
            bu, bi = fit_biases(coo.row, coo.col, coo.data.astype(np.float64) - self.offset,
                                self.n_users, self.n_items, _BIASES.reg_user, _BIASES.reg_item,
                                _BIASES.epochs)
            self.user_bias, self.item_bias = bu.astype(np.float32), bi.astype(np.float32)
        return self._movies(ratings)

    def _train(self, part: sp.csr_matrix, held: sp.csr_matrix | None, epochs: int,
               on_epoch=None) -> tuple[_Network, History]:
        s = self.settings
        movies = self._targets(part)
        network = self._fresh()
        rated = np.flatnonzero(np.diff(movies.indptr) > 0).astype(np.int64)

        def loss_fn(batch):
            error = batch["observed"] * (network.outputs(batch) - batch["target"]) ** 2
            per_movie = tf.math.unsorted_segment_sum(error, batch["segment"],
                                                     tf.shape(batch["n_movies"])[0])
            return per_movie, s.l2 / 2 * network.penalty() / len(rated)

        validate = None
        if held is not None:
            pairs = held.tocoo()
            validate = lambda: metrics.rmse(pairs.data, np.clip(  # noqa: E731
                self._output(network.hidden(movies), pairs.row, pairs.col), *self.rating_scale))
        history = self._loop(network, loss_fn, {"movie": rated}, epochs, validate=validate,
                             batch_fn=MovieBatches(movies, s.dropout), on_epoch=on_epoch)
        return network, history

    def _finish(self, whole: sp.csr_matrix) -> None:
        self.movie_hidden = self.module.hidden(self._movies(whole))

    def _movies(self, ratings: sp.csr_matrix) -> sp.csr_matrix:
        """The users x movies ``ratings`` as the network's movies x users input: less the
        biases fitted last (:meth:`_targets`) with ``baseline``."""
        coo = ratings.tocoo()
        value = coo.data - self._base(coo.row, coo.col)
        return sp.csr_matrix((value.astype(np.float32), (coo.col, coo.row)),
                             shape=(self.n_items, self.n_users))

    # -- answers ---------------------------------------------------------------------------

    def _base(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        """``mu + b_u + b_i``, a bias 0 for an index of -1 (an unseen user or movie); all 0
        without ``baseline``."""
        bu = np.where(user_index >= 0, self.user_bias[np.maximum(user_index, 0)], 0.0)
        bi = np.where(item_index >= 0, self.item_bias[np.maximum(item_index, 0)], 0.0)
        return (self.offset + bu + bi).astype(np.float32)

    def _output(self, hidden: np.ndarray, user_index: np.ndarray,
                item_index: np.ndarray) -> np.ndarray:
        """Predictions for index pairs from the movies' hidden vectors; a user or movie
        unseen in train (-1) gets the biases (the global mean without ``baseline``)."""
        known = (user_index >= 0) & (item_index >= 0)
        u, i = np.maximum(user_index, 0), np.maximum(item_index, 0)
        decoder = self.module.decoder.numpy().T  # (users, hidden)
        net = self.module.decoder_bias.numpy()[u]
        for lo in range(0, len(u), _PAIRS):
            pick = slice(lo, lo + _PAIRS)
            net[pick] += np.einsum("nk,nk->n", hidden[i[pick]], decoder[u[pick]])
        fallback = 0.0 if self.settings.baseline else self.global_mean
        return self._base(user_index, item_index) + np.where(known, net, fallback)

    def _predict(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        return self._output(self.movie_hidden, user_index, item_index)

    def _score_factors(self, user_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``[W_u, d_u + mu + b_u, 1]`` and ``[h_i; 1; b_i]``: predicted ratings as one
        product (``mu`` and the biases are 0 without ``baseline``)."""
        users = np.hstack([self.module.decoder.numpy()[:, user_index].T,
                           (self.module.decoder_bias.numpy()[user_index] + self.offset
                            + self.user_bias[user_index])[:, None],
                           np.ones((len(user_index), 1), np.float32)])
        items = np.vstack([self.movie_hidden.T, np.ones((1, self.n_items), np.float32),
                           self.item_bias[None]])
        return users.astype(np.float32), np.ascontiguousarray(items, np.float32)

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        users, items = self._score_factors(user_index)
        return users @ items

    # -- persistence -----------------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"offset": np.float32(self.offset), "user_bias": self.user_bias,
                "item_bias": self.item_bias, "movie_hidden": self.movie_hidden}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.offset = float(arrays["offset"])
        self.user_bias, self.item_bias = arrays["user_bias"], arrays["item_bias"]
        self.movie_hidden = arrays["movie_hidden"]
