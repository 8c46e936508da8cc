"""The baselines every model must beat: global mean, regularised biases, popularity, EASE."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from recommender.models.base import Context, Recommender
from recommender.preprocessing import Interactions


class GlobalMean(Recommender):
    """Predicts the mean train rating for every pair; ranks every movie equally."""

    name = "global-mean"
    predicts_ratings = True

    def _fit(self, data: Interactions, context: Context) -> None:
        pass

    def _predict(self, user_index, item_index):
        return np.full(len(user_index), self.global_mean, np.float32)

    def _score(self, user_index):
        return np.zeros((len(user_index), self.n_items), np.float32)


class Biases(Recommender):
    """Global mean + user bias + movie bias, fitted by regularised alternating least squares.

    The estimator of Surprise's ``BaselineOnly`` (Koren 2010, eq. 2-3): each sweep sets
    ``b_i = sum(r - mu - b_u) / (reg_item + n_i)`` then ``b_u = sum(r - mu - b_i) /
    (reg_user + n_u)``. Unseen users or movies get a zero bias. Ranks movies by ``b_i``.
    """

    name = "baseline"
    predicts_ratings = True
    defaults = {"reg_user": 15.0, "reg_item": 10.0, "epochs": 10}

    def _fit(self, data: Interactions, context: Context) -> None:
        u, i, r = data.user_index, data.item_index, data.rating.astype(np.float64)
        n_u = np.bincount(u, minlength=data.n_users)
        n_i = np.bincount(i, minlength=data.n_items)
        bu, bi = np.zeros(data.n_users), np.zeros(data.n_items)
        dev = r - self.global_mean
        for _ in range(self.params["epochs"]):
            bi = np.bincount(i, dev - bu[u], data.n_items) / (self.params["reg_item"] + n_i)
            bu = np.bincount(u, dev - bi[i], data.n_users) / (self.params["reg_user"] + n_u)
        self.user_bias, self.item_bias = bu.astype(np.float32), bi.astype(np.float32)

    def _predict(self, user_index, item_index):
        bu = np.where(user_index >= 0, self.user_bias[user_index], 0.0)
        bi = np.where(item_index >= 0, self.item_bias[item_index], 0.0)
        return self.global_mean + bu + bi

    def _score(self, user_index):
        return np.broadcast_to(self.item_bias, (len(user_index), self.n_items))

    def _state(self):
        return {"user_bias": self.user_bias, "item_bias": self.item_bias}

    def _set_state(self, arrays):
        self.user_bias, self.item_bias = arrays["user_bias"], arrays["item_bias"]


class Popularity(Recommender):
    """Scores a movie by its number of train ratings (ties: ascending movieId)."""

    name = "popularity"

    def _fit(self, data: Interactions, context: Context) -> None:
        self.counts = data.item_counts().astype(np.float32)

    def _score(self, user_index):
        return np.broadcast_to(self.counts, (len(user_index), self.n_items))

    def _state(self):
        return {"counts": self.counts}

    def _set_state(self, arrays):
        self.counts = arrays["counts"]


class EASE(Recommender):
    """Embarrassingly Shallow Autoencoder (Steck 2019), closed form, on the binary matrix.

    ``P = (X^T X + lambda I)^-1`` and ``B = I - P diagMat(1 / diag(P))``; a user's scores are
    ``x_u B``. The item-item matrix is dense, so for large catalogues only the ``max_items``
    most-rated movies are modelled (others score -inf): 20,000 movies take 1.6 GB in float32.
    ``l2`` was tuned on a validation slice carved from the u20 train split.
    """

    name = "ease"
    defaults = {"l2": 200.0, "max_items": 20_000}

    def _fit(self, data: Interactions, context: Context) -> None:
        counts = data.item_counts()
        order = np.lexsort((np.arange(data.n_items), -counts))
        self.kept = np.sort(order[: self.params["max_items"]])
        X = data.matrix("binary")[:, self.kept]
        gram = (X.T @ X).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.params["l2"]
        P = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
        B = P / (-np.diag(P))
        B[np.diag_indices_from(B)] = 0.0
        self.B = B.astype(np.float32)

    def _score(self, user_index):
        X = self.seen[user_index][:, self.kept]
        part = np.asarray(X @ self.B)
        if len(self.kept) == self.n_items:
            return part
        scores = np.full((len(user_index), self.n_items), -np.inf, np.float32)
        scores[:, self.kept] = part
        return scores

    def _state(self):
        return {"kept": self.kept, "B": self.B}

    def _set_state(self, arrays):
        self.kept, self.B = arrays["kept"], arrays["B"]
