"""Koren's global neighbourhood model with learned interpolation weights, integrated with a
factor term (Koren 2008, "Factorization meets the neighborhood", eq. 10 and 15).

``r_ui = mu + b_u + b_i + <p_u, q_i> + |R^k(i;u)|^-1/2 sum_{j in R^k(i;u)} ((r_uj - bbar_uj)
w_ij + c_ij)``

``S^k(i)`` are the ``neighbours`` movies most like ``i`` (the shrunk correlation of what the
fixed baseline ``bbar_uj = mu + bbar_u + bbar_j`` leaves of their ratings,
:func:`~recommender.models.baselines.fit_biases`), ``R^k(i;u)`` those of them ``u`` rated. The
weights ``w_ij`` are not similarities but interpolation weights learned with everything else
by minimising the squared error (Adam, through the shared loop, early-stopped on the RMSE of
a validation slice and refitted); ``c_ij`` is what having rated ``j`` says about ``i``. Only
``k`` weights per movie exist, so memory is ``O(movies k)``; a training batch looks its
ratings' neighbours up in the sorted train ratings (``O(batch k log nnz)``).

Answers: a pair's rating is the formula above (the same TensorFlow function as in training).
Ranking a batch of users scores every movie through sparse products of their residual and
rated rows with the ``k``-sparse weight matrices, never a dense movies x movies matrix. A new
user folds in with ``p_u = 0`` and ``b_u = bbar_u``, shrunk from their own ratings.
Settings and measurements: ``docs/models/neighbourhood.md``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import tensorflow as tf
from pydantic import Field

from recommender.data.preprocessing import Interactions
from recommender.models.base import Context
from recommender.models.baselines import BiasesSettings, fit_biases
from recommender.models.neural import variable
from recommender.models.tower import TowerModel, TowerSettings, ratings_table
from recommender.models.training import History

__all__ = ["Neighbourhood", "NeighbourhoodSettings"]

_SIMILARITY_BATCH = 1024  # movies whose similarity rows are computed at once
_PAIR_BATCH = 65_536  # pairs predicted at once
_BIASES = BiasesSettings()  # the fixed baseline's shrinkage: the `baseline` model's defaults


class NeighbourhoodSettings(TowerSettings):
    """Settings of :class:`Neighbourhood` (tuned on validation slices of train)."""

    neighbours: int = Field(100, ge=1, description="movies in each movie's neighbourhood S^k(i)")
    shrink: float = Field(100.0, ge=0, description="shrinkage of the neighbour-selecting "
                          "correlation, in common raters")
    dim: int = Field(0, ge=0, description="size of the factor term p_u . q_i (0: none)")
    l2: float = Field(1.0, ge=0, description="L2 penalty on w, c and the factors, per rating")
    l2_bias: float = Field(1.0, ge=0, description="L2 penalty on the learned biases, per rating")
    epochs: int = Field(40, ge=1, description="most epochs; early stopping picks the count")
    batch_size: int = Field(1024, ge=1, description="ratings per step")
    learning_rate: float = Field(3e-3, gt=0, description="Adam's step size")
    patience: int = Field(3, ge=1, description="epochs without a better validation RMSE "
                          "before stopping")


class _Residuals:
    """What the fixed baseline leaves of a set of ratings, and each movie's neighbours.

    ``matrix`` is users x movies ``r - bbar`` (rows sorted), ``neighbours`` ``(movies, k)``
    movie indices, best first.
    """

    def __init__(self, mu: float, base_user: np.ndarray, base_item: np.ndarray,
                 matrix: sp.csr_matrix, neighbours: np.ndarray):
        self.mu, self.base_user, self.base_item = mu, base_user, base_item
        self.matrix, self.neighbours = matrix, neighbours
        coo = matrix.tocoo()
        self.keys = coo.row.astype(np.int64) * matrix.shape[1] + coo.col  # ascending

    @classmethod
    def of(cls, user: np.ndarray, item: np.ndarray, rating: np.ndarray, shape: tuple[int, int],
           k: int, shrink: float) -> "_Residuals":
        """Fit the baseline on these ratings, keep the residuals, choose the neighbours."""
        mu = float(np.mean(rating))
        bu, bi = fit_biases(user, item, rating - mu, *shape, _BIASES.reg_user,
                            _BIASES.reg_item, _BIASES.epochs)
        matrix = sp.csr_matrix(((rating - mu - bu[user] - bi[item]).astype(np.float32),
                                (user, item)), shape=shape)
        matrix.sort_indices()
        return cls(mu, bu.astype(np.float32), bi.astype(np.float32), matrix,
                   neighbours(matrix, k, shrink))

    def lookup(self, user: np.ndarray, item: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(x, m)``, both ``(pairs, k)``: the residual ``r_uj - bbar_uj`` of each neighbour
        ``j`` of ``item`` that ``user`` rated (0 elsewhere), and 1 where they rated it."""
        wanted = user.astype(np.int64)[:, None] * self.matrix.shape[1] + self.neighbours[item]
        at = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
        found = self.keys[at] == wanted
        return (np.where(found, self.matrix.data[at], 0.0).astype(np.float32),
                found.astype(np.float32))


def neighbours(residuals: sp.csr_matrix, k: int, shrink: float) -> np.ndarray:
    """The ``k`` movies most like each movie, ``(movies, min(k, movies - 1))``, best first.

    Likeness is ``n_ij / (n_ij + shrink) * <e_i, e_j> / (|e_i| |e_j|)``, ``e_i`` the column of
    baseline residuals, ``n_ij`` the users who rated both (Koren 2008's shrunk correlation,
    with the norms over every rater instead of the common ones); computed
    :data:`_SIMILARITY_BATCH` movies at a time, ties to the lower index.
    """
    n_items = residuals.shape[1]
    k = min(k, n_items - 1)
    columns = residuals.T.tocsr()
    rated = columns.copy()
    rated.data[:] = 1.0
    norm = np.sqrt(np.asarray(columns.multiply(columns).sum(1))).ravel()
    norm[norm == 0] = 1.0
    out = np.empty((n_items, k), np.int32)
    for lo in range(0, n_items, _SIMILARITY_BATCH):
        rows = np.arange(lo, min(lo + _SIMILARITY_BATCH, n_items))
        common = (rated[rows] @ rated.T).toarray()
        likeness = ((columns[rows] @ columns.T).toarray() / norm[rows, None] / norm[None]
                    * common / (common + shrink + 1e-9))
        likeness[np.arange(len(rows)), rows] = -np.inf  # never its own neighbour
        top = np.argpartition(-likeness, k - 1, axis=1)[:, :k]
        order = np.lexsort((top, -np.take_along_axis(likeness, top, 1)), axis=1)
        out[rows] = np.take_along_axis(top, order, 1)
    return out


class _Weights(tf.Module):
    """The learned parameters and the rating formula of the module docstring."""

    def __init__(self, n_users: int, n_items: int, k: int, dim: int, rng: np.random.Generator):
        super().__init__(name="neighbourhood")
        self.user_bias = tf.Variable(tf.zeros([n_users]), name="user_bias")
        self.item_bias = tf.Variable(tf.zeros([n_items]), name="item_bias")
        self.weights = tf.Variable(tf.zeros([n_items, k]), name="weights")
        self.offsets = tf.Variable(tf.zeros([n_items, k]), name="offsets")
        self.user_factors = variable(rng, (n_users, dim), 0.01, "user_factors")
        self.item_factors = variable(rng, (n_items, dim), 0.01, "item_factors")

    def rate(self, mu: float, batch: dict) -> tf.Tensor:
        """Predicted ratings of ``batch``'s pairs (``user``, ``item``, looked-up ``x``, ``m``)."""
        u, i, x, m = batch["user"], batch["item"], batch["x"], batch["m"]
        scale = tf.math.rsqrt(tf.maximum(tf.reduce_sum(m, 1), 1.0))
        neighbourhood = tf.reduce_sum(x * tf.gather(self.weights, i)
                                      + m * tf.gather(self.offsets, i), 1) * scale
        factors = tf.reduce_sum(tf.gather(self.user_factors, u)
                                * tf.gather(self.item_factors, i), 1)
        return (mu + tf.gather(self.user_bias, u) + tf.gather(self.item_bias, i) + factors
                + neighbourhood)

    def penalty(self, l2: float, l2_bias: float) -> tf.Tensor:
        squares = [tf.reduce_sum(v ** 2) for v in (self.weights, self.offsets,
                                                   self.user_factors, self.item_factors)]
        return l2 * tf.add_n(squares) + l2_bias * (tf.reduce_sum(self.user_bias ** 2)
                                                   + tf.reduce_sum(self.item_bias ** 2))


class Neighbourhood(TowerModel):
    """Koren's neighbourhood model with learned interpolation weights; predicts ratings, folds in."""

    name = "neighbourhood"
    Settings = NeighbourhoodSettings
    predicts_ratings = True
    folds_in = True
    scores_new_movies = False  # a movie outside train has no neighbours
    validation_metric = "rmse"
    large_data = None  # not measured at MovieLens-25M scale (docs/models/neighbourhood.md)

    def _whole(self, data: Interactions) -> pd.DataFrame:
        return ratings_table(data)

    def _build(self) -> _Weights:
        s = self.settings
        return _Weights(len(self.users), self.n_items, min(s.neighbours, self.n_items - 1),
                        s.dim, np.random.default_rng(self.seed))

    def _train(self, part: pd.DataFrame, held: pd.DataFrame | None, epochs: int,
               on_epoch=None) -> tuple[_Weights, History]:
        s = self.settings
        user, item = part["userId"].to_numpy(np.int32), part["movieId"].to_numpy(np.int32)
        rating = part["rating"].to_numpy(np.float32)
        residuals = _Residuals.of(user, item, rating, (len(self.users), self.n_items),
                                  s.neighbours, s.shrink)
        self.residuals = residuals
        weights = self._fresh()
        weights.user_bias.assign(residuals.base_user)
        weights.item_bias.assign(residuals.base_item)
        scale = 1.0 / len(rating)

        def looked_up(batch: dict, rng: np.random.Generator) -> dict:
            x, m = residuals.lookup(batch["user"], batch["item"])
            return {**batch, "x": x, "m": m}

        def loss_fn(batch):
            error = batch["rating"] - weights.rate(residuals.mu, batch)
            return error ** 2, scale * weights.penalty(s.l2, s.l2_bias)

        validate = None
        if held is not None:
            truth = held["rating"].to_numpy(np.float64)

            def validate() -> float:
                guess = self._pairs(weights, residuals, held["userId"].to_numpy(np.int32),
                                    held["movieId"].to_numpy(np.int32))
                return float(np.sqrt(np.mean((np.clip(guess, *self.rating_scale) - truth) ** 2)))

        examples = {"user": user, "item": item, "rating": rating}
        history = self._loop(weights, loss_fn, examples, epochs, validate=validate,
                             batch_fn=looked_up, on_epoch=on_epoch)
        return weights, history

    @staticmethod
    def _pairs(weights: _Weights, residuals: _Residuals, user: np.ndarray,
               item: np.ndarray) -> np.ndarray:
        """The formula for known ``(user, item)`` index pairs, :data:`_PAIR_BATCH` at a time."""
        out = np.empty(len(user), np.float32)
        for lo in range(0, len(user), _PAIR_BATCH):
            u, i = user[lo: lo + _PAIR_BATCH], item[lo: lo + _PAIR_BATCH]
            x, m = residuals.lookup(u, i)
            out[lo: lo + len(u)] = weights.rate(residuals.mu, {"user": u, "item": i, "x": x,
                                                                "m": m}).numpy()
        return out

    # -- answers ---------------------------------------------------------------------------

    def _finish(self, whole: pd.DataFrame) -> None:
        self._tables()

    def _tables(self) -> None:
        """The ``k``-sparse movies x movies matrices of ``w``, ``c`` and the neighbourhoods,
        and the biases and factors as numpy arrays, for ranking and folding in."""
        module, nbr = self.module, self.residuals.neighbours
        n, k = nbr.shape
        indptr = np.arange(0, n * k + 1, k)

        def sparse(values: np.ndarray) -> sp.csr_matrix:
            return sp.csr_matrix((values.ravel(), nbr.ravel(), indptr), shape=(n, n)).T.tocsr()

        self.weight_matrix = sparse(module.weights.numpy())  # (j, i): w_ij
        self.offset_matrix = sparse(module.offsets.numpy())
        self.pattern = sparse(np.ones((n, k), np.float32))
        self.user_bias, self.item_bias = module.user_bias.numpy(), module.item_bias.numpy()
        self.user_factors = module.user_factors.numpy()
        self.item_factors = module.item_factors.numpy()

    def _rows(self, residual: sp.csr_matrix, user_bias: np.ndarray,
              user_factors: np.ndarray) -> np.ndarray:
        """Every movie's predicted rating for users given by their residual rows."""
        rated = residual.copy()
        rated.data[:] = 1.0
        scale = 1.0 / np.sqrt(np.maximum((rated @ self.pattern).toarray(), 1.0))
        neighbourhood = (residual @ self.weight_matrix + rated @ self.offset_matrix).toarray()
        return (self.residuals.mu + user_bias[:, None] + self.item_bias[None]
                + user_factors @ self.item_factors.T + neighbourhood * scale).astype(np.float32)

    def _predict(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        known_u, known_i = user_index >= 0, item_index >= 0
        both = known_u & known_i
        out = (self.residuals.mu + np.where(known_u, self.user_bias[np.maximum(user_index, 0)], 0)
               + np.where(known_i, self.item_bias[np.maximum(item_index, 0)], 0))
        out[both] = self._pairs(self.module, self.residuals, user_index[both].astype(np.int32),
                                item_index[both].astype(np.int32))
        return out

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        return self._rows(self.residuals.matrix[user_index], self.user_bias[user_index],
                          self.user_factors[user_index])

    def _score_history(self, ratings: sp.csr_matrix, movie_ids: np.ndarray,
                       user_ids: np.ndarray) -> np.ndarray:
        """A new user's ``bbar_u`` is shrunk from their ratings as the baseline's is, and
        stands for ``b_u`` too; their factor ``p_u`` is 0."""
        r = self.residuals
        deviation = ratings.copy().astype(np.float64)
        deviation.data -= r.mu + r.base_item[deviation.indices]
        counts = np.diff(deviation.indptr)
        base_user = np.asarray(deviation.sum(1)).ravel() / (_BIASES.reg_user + counts)
        residual = deviation.copy()
        residual.data -= np.repeat(base_user, counts)
        scores = self._rows(residual.astype(np.float32), base_user.astype(np.float32),
                            np.zeros((ratings.shape[0], self.settings.dim), np.float32))
        return self._pick(scores, movie_ids)

    # -- persistence -----------------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        r = self.residuals
        return {"mu": np.array([r.mu]), "base_user": r.base_user, "base_item": r.base_item,
                "residual_data": r.matrix.data, "residual_indices": r.matrix.indices,
                "residual_indptr": r.matrix.indptr, "neighbours": r.neighbours}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        matrix = sp.csr_matrix((arrays["residual_data"], arrays["residual_indices"],
                                arrays["residual_indptr"]), shape=(len(self.users), self.n_items))
        self.residuals = _Residuals(float(arrays["mu"][0]), arrays["base_user"],
                                    arrays["base_item"], matrix, arrays["neighbours"])

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(arrays)
        self._tables()
