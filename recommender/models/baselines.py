"""The simplest baselines every model must beat: global mean, regularised biases, popularity."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from recommender.data.preprocessing import Interactions
from recommender.models.base import Context, Recommender
from recommender.models.settings import Settings

__all__ = ["GlobalMean", "Biases", "BiasesSettings", "Popularity"]


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

    def _shared_scores(self):
        return np.zeros(self.n_items, np.float32)


class BiasesSettings(Settings):
    """Settings of :class:`Biases`."""

    reg_user: float = Field(15.0, ge=0, description="shrinkage of a user bias, in ratings")
    reg_item: float = Field(10.0, ge=0, description="shrinkage of a movie bias, in ratings")
    epochs: int = Field(10, ge=1, description="alternating sweeps over both biases")


class Biases(Recommender):
    """Global mean + user bias + movie bias, fitted by regularised alternating least squares.

    The estimator of Surprise's ``BaselineOnly`` (Koren 2010, eq. 2-3): each sweep sets
    ``b_i = sum(r - mu - b_u) / (reg_item + n_i)`` then ``b_u = sum(r - mu - b_i) /
    (reg_user + n_u)``. Unseen users or movies get a zero bias. Ranks movies by ``b_i``.
    """

    name = "baseline"
    Settings = BiasesSettings
    predicts_ratings = True
    folds_in = True

    def _fit(self, data: Interactions, context: Context) -> None:
        u, i, r = data.user_index, data.item_index, data.rating.astype(np.float64)
        n_u = np.bincount(u, minlength=data.n_users)
        n_i = np.bincount(i, minlength=data.n_items)
        bu, bi = np.zeros(data.n_users), np.zeros(data.n_items)
        dev = r - self.global_mean
        s = self.settings
        for _ in range(s.epochs):
            bi = np.bincount(i, dev - bu[u], data.n_items) / (s.reg_item + n_i)
            bu = np.bincount(u, dev - bi[i], data.n_users) / (s.reg_user + n_u)
        self.user_bias, self.item_bias = bu.astype(np.float32), bi.astype(np.float32)

    def _predict(self, user_index, item_index):
        bu = np.where(user_index >= 0, self.user_bias[user_index], 0.0)
        bi = np.where(item_index >= 0, self.item_bias[item_index], 0.0)
        return self.global_mean + bu + bi

    def _score(self, user_index):
        return np.broadcast_to(self.item_bias, (len(user_index), self.n_items))

    def _shared_scores(self):
        return self.item_bias

    def _score_history(self, ratings, movie_ids, user_ids):
        """The same movie biases for everyone; a movie outside train has none (0)."""
        return np.repeat(self._pick(self.item_bias, movie_ids, 0.0)[None], ratings.shape[0], 0)

    def _state(self):
        return {"user_bias": self.user_bias, "item_bias": self.item_bias}

    def _set_state(self, arrays):
        self.user_bias, self.item_bias = arrays["user_bias"], arrays["item_bias"]


class Popularity(Recommender):
    """Scores a movie by its number of train ratings (ties: ascending movieId)."""

    name = "popularity"
    folds_in = True

    def _fit(self, data: Interactions, context: Context) -> None:
        self.counts = data.item_counts().astype(np.float32)

    def _score(self, user_index):
        return np.broadcast_to(self.counts, (len(user_index), self.n_items))

    def _shared_scores(self):
        return self.counts

    def _score_history(self, ratings, movie_ids, user_ids):
        """Train counts; a movie outside train has none (0)."""
        return np.repeat(self._pick(self.counts, movie_ids, 0.0)[None], ratings.shape[0], 0)

    def _state(self):
        return {"counts": self.counts}

    def _set_state(self, arrays):
        self.counts = arrays["counts"]
