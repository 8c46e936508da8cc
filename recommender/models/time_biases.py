"""Time-aware biases: the baseline predictors of timeSVD++ (Koren 2009, "Collaborative
filtering with temporal dynamics", eq. 6-10), without the factor term.

``r_ui(t) = mu + b_u + alpha_u dev_u(t) + b_{u,day(t)} + b_i + b_{i,bin(t)}``

``t`` is the date of the rating in days, ``dev_u(t) = sign(t - t_u) |t - t_u|^beta`` the
user's drift away from ``t_u``, the mean date of their train ratings; ``b_{u,day}`` is the
user's bias on one calendar day (UTC) they rated on (a mood, a rating session; 0 on a day
without train ratings); ``bin(t)`` one of ``bins`` equal spans of the train period, so a
movie's bias can move over the years. Every term is shrunk to 0 by its own L2 penalty; the
objective is least squares, convex, and each term given the others is a closed-form ridge
solution per user, day, movie or (movie, bin), so ``sweeps`` rounds of alternating least
squares (the estimator of :func:`~recommender.models.baselines.fit_biases`, with more blocks)
fit it, ``O(ratings)`` time and memory per sweep.

Answers: a pair's rating at its date (the evaluation protocol passes the test ratings'
timestamps, see ``docs/protocol.md``); without a date, at the user's last train date.
Ranking scores are the predicted ratings at the user's last train date, so a user's movies are
ordered by ``b_i + b_{i,bin}`` of that date (one product of a one-hot bin row with the
``(bins, movies)`` table). A new user folds in at the latest train date. Settings and
measurements: ``docs/models/time-biases.md``.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from recommender.data.preprocessing import Interactions
from recommender.models.base import Context, Recommender
from recommender.models.settings import Settings

__all__ = ["TimeBiases", "TimeBiasesSettings"]

DAY = 86_400  # seconds


class TimeBiasesSettings(Settings):
    """Settings of :class:`TimeBiases` (tuned on validation slices of train)."""

    bins: int = Field(10, ge=1, description="equal spans of the train period, each with its "
                      "own movie biases b_{i,bin}")
    beta: float = Field(0.2, gt=0, le=1, description="exponent of the drift dev_u(t)")
    reg_user: float = Field(5.0, ge=0, description="shrinkage of b_u, in ratings")
    reg_item: float = Field(3.0, ge=0, description="shrinkage of b_i, in ratings")
    reg_drift: float = Field(3.0, ge=0, description="shrinkage of the drift slope alpha_u")
    reg_day: float = Field(5.0, ge=0, description="shrinkage of a day's b_{u,day}, in ratings")
    reg_bin: float = Field(50.0, ge=0, description="shrinkage of b_{i,bin}, in ratings")
    sweeps: int = Field(20, ge=1, description="rounds of alternating least squares")


class _Terms:
    """The bias terms as arrays and the rating formula over them."""

    def __init__(self, arrays: dict[str, np.ndarray], beta: float):
        self.user_bias, self.drift = arrays["user_bias"], arrays["drift"]
        self.mean_day, self.last_time = arrays["mean_day"], arrays["last_time"]
        self.item_bias, self.bin_bias = arrays["item_bias"], arrays["bin_bias"]
        self.day_keys, self.day_bias = arrays["day_keys"], arrays["day_bias"]
        self.first_time, self.last_train_time = (int(v) for v in arrays["period"])
        self.beta = beta

    def arrays(self) -> dict[str, np.ndarray]:
        return {"user_bias": self.user_bias, "drift": self.drift, "mean_day": self.mean_day,
                "last_time": self.last_time, "item_bias": self.item_bias,
                "bin_bias": self.bin_bias, "day_keys": self.day_keys, "day_bias": self.day_bias,
                "period": np.array([self.first_time, self.last_train_time], np.int64)}

    def bin_of(self, times: np.ndarray) -> np.ndarray:
        """The bin of each Unix time; times outside the train period go to the nearest end."""
        bins = self.bin_bias.shape[1]
        span = max(self.last_train_time - self.first_time, 1)
        share = (np.asarray(times, np.float64) - self.first_time) / span
        return np.clip((share * bins).astype(np.int64), 0, bins - 1)

    def deviation(self, user: np.ndarray, times: np.ndarray) -> np.ndarray:
        """``dev_u(t)`` for known users ``user`` at Unix ``times``."""
        gap = np.asarray(times, np.float64) / DAY - self.mean_day[user]
        return np.sign(gap) * np.abs(gap) ** self.beta

    def day_key(self, user: np.ndarray, times: np.ndarray) -> np.ndarray:
        """One int64 per (user, UTC day), ordered by user then day."""
        days = (np.asarray(times, np.int64) - self.first_time) // DAY
        span = (self.last_train_time - self.first_time) // DAY + 1
        inside = (days >= 0) & (days < span)
        return np.where(inside, user.astype(np.int64) * span + days, -1)

    def day_terms(self, user: np.ndarray, times: np.ndarray) -> np.ndarray:
        """``b_{u,day}`` of each pair, 0 for a day without train ratings."""
        keys = self.day_key(user, times)
        if not len(self.day_keys):
            return np.zeros(len(keys))
        at = np.minimum(np.searchsorted(self.day_keys, keys), len(self.day_keys) - 1)
        return np.where((keys >= 0) & (self.day_keys[at] == keys), self.day_bias[at], 0.0)

    def rate(self, mu: float, user: np.ndarray, item: np.ndarray, times: np.ndarray
             ) -> np.ndarray:
        """The formula for index pairs (``-1``: unseen in train, its terms 0) at Unix times
        (0: the user's last train date, or the latest train date for an unseen user)."""
        known_u, known_i = user >= 0, item >= 0
        u, i = np.maximum(user, 0), np.maximum(item, 0)
        times = np.where(times > 0, times,
                         np.where(known_u, self.last_time[u], self.last_train_time))
        user_terms = (self.user_bias[u] + self.drift[u] * self.deviation(u, times)
                      + self.day_terms(u, times))
        item_terms = self.item_bias[i] + self.bin_bias[i, self.bin_of(times)]
        return mu + np.where(known_u, user_terms, 0.0) + np.where(known_i, item_terms, 0.0)


def _fit_terms(data: Interactions, mu: float, s: TimeBiasesSettings) -> _Terms:
    """The terms of the module docstring by ``s.sweeps`` rounds of alternating least squares:
    each round solves for ``b_i``, ``b_{i,bin}``, ``b_u``, ``alpha_u`` and ``b_{u,day}`` in
    turn, each a ridge regression in closed form given the others."""
    user, item, times = data.user_index, data.item_index, data.timestamp.astype(np.int64)
    n_users, n_items = data.n_users, data.n_items
    first, last = (int(times.min()), int(times.max())) if len(times) else (0, 0)
    last_time = np.zeros(n_users, np.int64)
    np.maximum.at(last_time, user, times)
    counts = np.maximum(np.bincount(user, minlength=n_users), 1)
    terms = _Terms({"user_bias": np.zeros(n_users), "drift": np.zeros(n_users),
                    "mean_day": np.bincount(user, times / DAY, n_users) / counts,
                    "last_time": last_time, "item_bias": np.zeros(n_items),
                    "bin_bias": np.zeros((n_items, s.bins)), "day_keys": np.zeros(0, np.int64),
                    "day_bias": np.zeros(0), "period": np.array([first, last])}, s.beta)
    day_keys, day = np.unique(terms.day_key(user, times), return_inverse=True)
    item_bin = item.astype(np.int64) * s.bins + terms.bin_of(times)
    deviation = terms.deviation(user, times)
    bu, alpha, bi = terms.user_bias, terms.drift, terms.item_bias
    bd, bb = np.zeros(len(day_keys)), np.zeros(n_items * s.bins)
    residual = data.rating.astype(np.float64) - mu  # r - mu - (every term), kept up to date

    def ridge(group: np.ndarray, size: int, old: np.ndarray, weight: np.ndarray | float,
              reg: float) -> np.ndarray:
        """The ridge solution of one block (``r ~ value[group] * weight``) given the rest;
        updates ``residual`` in place and returns the new values."""
        free = residual + old[group] * weight
        new = (np.bincount(group, free * weight, size)
               / (reg + np.bincount(group, np.broadcast_to(weight * weight, free.shape), size)))
        residual[:] = free - new[group] * weight
        return new

    for _ in range(s.sweeps):
        bi = ridge(item, n_items, bi, 1.0, s.reg_item)
        bb = ridge(item_bin, n_items * s.bins, bb, 1.0, s.reg_bin)
        bu = ridge(user, n_users, bu, 1.0, s.reg_user)
        alpha = ridge(user, n_users, alpha, deviation, s.reg_drift)
        bd = ridge(day, len(day_keys), bd, 1.0, s.reg_day)
    as32 = {"user_bias": bu, "drift": alpha, "item_bias": bi,
            "bin_bias": bb.reshape(n_items, s.bins), "day_bias": bd}
    return _Terms({**terms.arrays(), **{k: v.astype(np.float32) for k, v in as32.items()},
                   "day_keys": day_keys}, s.beta)


class TimeBiases(Recommender):
    """Biases that move in time: user drift, day-specific user bias, movie bias by time bin."""

    name = "time-biases"
    Settings = TimeBiasesSettings
    predicts_ratings = True
    uses_time = True
    folds_in = True

    def _fit(self, data: Interactions, context: Context) -> None:
        self.terms = _fit_terms(data, self.global_mean, self.settings)

    def _predict(self, user_index, item_index, times):
        return self.terms.rate(self.global_mean, user_index, item_index, times)

    def _item_table(self) -> np.ndarray:
        """``(bins, movies)``: ``b_i + b_{i,bin}`` for every bin."""
        return (self.terms.item_bias[None] + self.terms.bin_bias.T).astype(np.float32)

    def _score_factors(self, user_index):
        """A one-hot row of the bin of each user's last train date, plus their own terms at
        that date (the same for every movie) against ``[b_i + b_{i,bin}; 1]``."""
        t = self.terms
        last = t.last_time[user_index]
        rows = np.zeros((len(user_index), t.bin_bias.shape[1] + 1), np.float32)
        rows[np.arange(len(user_index)), t.bin_of(last)] = 1.0
        rows[:, -1] = (self.global_mean + t.user_bias[user_index]
                       + t.drift[user_index] * t.deviation(user_index, last)
                       + t.day_terms(user_index, last))
        table = np.vstack([self._item_table(), np.ones((1, self.n_items), np.float32)])
        return rows, table

    def _score(self, user_index):
        rows, table = self._score_factors(user_index)
        return rows @ table

    def _score_history(self, ratings, movie_ids, user_ids):
        """Every new user alike: the movie terms at the latest train date."""
        latest = self._item_table()[self.terms.bin_of(np.array([self.terms.last_train_time]))]
        return np.repeat(self._pick(latest[0], movie_ids, 0.0)[None], ratings.shape[0], 0)

    def _state(self):
        return self.terms.arrays()

    def _set_state(self, arrays):
        self.terms = _Terms(arrays, self.settings.beta)
