"""The simplest baselines every model must beat: global mean, regularised biases, popularity."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from recommender.data.preprocessing import Interactions
from recommender.models.base import Context, Recommender
from recommender.models.settings import Settings

__all__ = ["GlobalMean", "Biases", "BiasesSettings", "Popularity", "SameForEveryone",
           "fit_biases"]


class SameForEveryone(Recommender):
    """Base of the models that rank every user alike, by one score per movie.

    A subclass sets :attr:`item_scores` in ``_fit`` (and saves it), and may set
    :attr:`unknown_score`, the score of a movie outside train when folding in.
    """

    folds_in = True
    item_scores: np.ndarray
    unknown_score = 0.0

    def _score(self, user_index):
        return np.broadcast_to(self.item_scores, (len(user_index), self.n_items))

    def _shared_scores(self):
        return self.item_scores

    def _score_history(self, ratings, movie_ids, user_ids):
        """The same scores for a new user as for everyone."""
        scores = self._pick(self.item_scores, movie_ids, self.unknown_score)
        return np.repeat(scores[None], ratings.shape[0], 0)


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


def fit_biases(user_index: np.ndarray, item_index: np.ndarray, deviation: np.ndarray,
               n_users: int, n_items: int, reg_user: float, reg_item: float,
               epochs: int) -> tuple[np.ndarray, np.ndarray]:
    """Shrunk user and movie biases ``(b_u, b_i)`` of ratings' ``deviation`` from the mean,
    by regularised alternating least squares (Koren 2010, eq. 2-3): each sweep sets
    ``b_i = sum(dev - b_u) / (reg_item + n_i)`` then ``b_u = sum(dev - b_i) / (reg_user +
    n_u)``. Models that work on what the biases leave over share it."""
    n_u = np.bincount(user_index, minlength=n_users)
    n_i = np.bincount(item_index, minlength=n_items)
    bu, bi = np.zeros(n_users), np.zeros(n_items)
    for _ in range(epochs):
        bi = np.bincount(item_index, deviation - bu[user_index], n_items) / (reg_item + n_i)
        bu = np.bincount(user_index, deviation - bi[item_index], n_users) / (reg_user + n_u)
    return bu, bi


class Biases(SameForEveryone):
    """Global mean + user bias + movie bias, fitted by regularised alternating least squares.

    The estimator of Surprise's ``BaselineOnly`` (Koren 2010, eq. 2-3): each sweep sets
    ``b_i = sum(r - mu - b_u) / (reg_item + n_i)`` then ``b_u = sum(r - mu - b_i) /
    (reg_user + n_u)``. Unseen users or movies get a zero bias. Ranks movies by ``b_i``.
    """

    name = "baseline"
    Settings = BiasesSettings
    predicts_ratings = True

    def _fit(self, data: Interactions, context: Context) -> None:
        s = self.settings
        bu, bi = fit_biases(data.user_index, data.item_index,
                            data.rating.astype(np.float64) - self.global_mean,
                            data.n_users, data.n_items, s.reg_user, s.reg_item, s.epochs)
        self.user_bias, self.item_scores = bu.astype(np.float32), bi.astype(np.float32)

    @property
    def item_bias(self) -> np.ndarray:
        """The movie biases ``b_i`` (what it ranks by)."""
        return self.item_scores

    def _predict(self, user_index, item_index):
        bu = np.where(user_index >= 0, self.user_bias[user_index], 0.0)
        bi = np.where(item_index >= 0, self.item_bias[item_index], 0.0)
        return self.global_mean + bu + bi

    def _state(self):
        return {"user_bias": self.user_bias, "item_bias": self.item_bias}

    def _set_state(self, arrays):
        self.user_bias, self.item_scores = arrays["user_bias"], arrays["item_bias"]


class Popularity(SameForEveryone):
    """Scores a movie by its number of train ratings (ties: ascending movieId)."""

    name = "popularity"

    def _fit(self, data: Interactions, context: Context) -> None:
        self.item_scores = data.item_counts().astype(np.float32)

    def _state(self):
        return {"counts": self.item_scores}

    def _set_state(self, arrays):
        self.item_scores = arrays["counts"]
