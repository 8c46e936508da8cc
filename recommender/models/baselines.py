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
    """Embarrassingly Shallow Autoencoder (Steck 2019), closed form.

    ``P = (X^T X + lambda I)^-1`` and ``B = I - P diagMat(1 / diag(P))``; a user's scores are
    ``x_u B``. With ``rating_weight = 0`` ``X`` is the binary matrix of the reference row;
    otherwise each rating enters as ``max(1 + rating_weight * (r - user mean), 0.05)``, so a
    movie the user loved pulls its neighbours up more than one they disliked. The item-item
    matrix is dense, so only the ``max_items`` most-rated movies are modelled (others score
    -inf): 20,000 movies take 1.6 GB in float32.
    """

    name = "ease"
    defaults = {"l2": 200.0, "rating_weight": 0.0, "max_items": 20_000}

    def _fit(self, data: Interactions, context: Context) -> None:
        counts = data.item_counts()
        order = np.lexsort((np.arange(data.n_items), -counts))
        self.kept = np.sort(order[: self.params["max_items"]])
        self.inputs = self._inputs(data)
        X = self.inputs[:, self.kept]
        gram = (X.T @ X).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.params["l2"]
        P = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
        B = P / (-np.diag(P))
        B[np.diag_indices_from(B)] = 0.0
        self.B = B.astype(np.float32)

    def _inputs(self, data: Interactions) -> sp.csr_matrix:
        """The users x items input matrix: binary, or rating-weighted around each user's mean."""
        weight = self.params["rating_weight"]
        if not weight:
            return data.matrix("binary")
        u, r = data.user_index, data.rating.astype(np.float64)
        user_mean = np.bincount(u, r, data.n_users) / np.maximum(data.user_counts(), 1)
        values = np.maximum(1.0 + weight * (r - user_mean[u]), 0.05).astype(np.float32)
        return sp.csr_matrix((values, (u, data.item_index)), shape=(data.n_users, data.n_items))

    def _score(self, user_index):
        part = np.asarray(self.inputs[user_index][:, self.kept] @ self.B)
        if len(self.kept) == self.n_items:
            return part
        scores = np.full((len(user_index), self.n_items), -np.inf, np.float32)
        scores[:, self.kept] = part
        return scores

    def _state(self):
        x = self.inputs
        return {"kept": self.kept, "B": self.B, "x_indptr": x.indptr, "x_indices": x.indices,
                "x_data": x.data}

    def _set_state(self, arrays):
        self.kept, self.B = arrays["kept"], arrays["B"]
        self.inputs = sp.csr_matrix((arrays["x_data"], arrays["x_indices"], arrays["x_indptr"]),
                                    shape=self.seen.shape)


class RatedEASE(EASE):
    """EASE on rating-weighted inputs (``rating_weight`` and ``l2`` tuned on a validation
    slice of the u20 train split: NDCG@10 0.2016 vs 0.1875 for binary EASE there)."""

    name = "ease-rated"
    defaults = {**EASE.defaults, "l2": 300.0, "rating_weight": 0.5}
