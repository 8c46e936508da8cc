"""Analyses of the content models that serve cold movies and new users, each returning a
table for notebook 05.

- :func:`method_comparison`: the feature-embedding model's ways to recommend (its P(watched)
  network, the density method) side by side on the same cold movies;
- :func:`pair_similarity`: the tag-text model's cosine between user and movie texts for rated
  pairs, to compare liked with disliked pairs.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from recommender.data.preprocessing import Interactions
from recommender.evaluation.cold_start import item_cold_start
from recommender.models.feature_embedding import FeatureEmbedding, Method
from recommender.models.tag_text import TagText

__all__ = ["method_comparison", "pair_similarity"]

_SCORED_AT_ONCE = 1 << 24  # user-movie scores held at once by pair_similarity (64 MiB)


class _ByMethod:
    """One way of recommending of a fitted feature-embedding model, behind the ``fold_in``
    interface the cold-start protocols call."""

    def __init__(self, model: FeatureEmbedding, method: Method):
        self.model, self.name = model, method

    def fold_in(self, history: pd.DataFrame, movie_ids) -> np.ndarray:
        ratings = Interactions.from_ratings(history, items=self.model.items).matrix("rating")
        return self.model.score_history(ratings, movie_ids, method=self.name)


def method_comparison(model: FeatureEmbedding, train: pd.DataFrame, test: pd.DataFrame,
                      methods: Iterable[Method] = ("network", "density"),
                      k: int = 10) -> pd.DataFrame:
    """The item cold-start protocol (:func:`~recommender.evaluation.item_cold_start`) for each
    of the model's ways to recommend, on the same users and cold movies.

    Args:
        model: a :class:`FeatureEmbedding` fitted on ``train``.
        train: its training ratings.
        test: the held-out movies' ratings (``cold_start_split(by="movie")``).
        methods: ``network``, ``density`` or ``mean`` (the cosine to the mean embedding).
        k: list length.

    Returns:
        One row per method (index ``method``): ``ndcg@k, recall@k, precision@k, hr@k, auc,
        users, candidates, score_seconds``.
    """
    rows = [{"method": method, **item_cold_start(_ByMethod(model, method), train, test,
                                                 k).metrics}
            for method in methods]
    return pd.DataFrame(rows).set_index("method")


def pair_similarity(model: TagText, history: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Cosine similarity of user and movie texts for rated pairs, to plot liked vs disliked.

    Args:
        model: a fitted :class:`TagText`.
        history: the ratings users are known by (their texts are built from it; e.g. train).
        pairs: ``userId, movieId, rating`` to score (e.g. test); users absent from
            ``history`` have an empty text and are dropped.

    Returns:
        ``pairs`` (by user) with ``similarity`` and ``liked`` (rating >= the model's ``like``).
    """
    pairs = pairs[pairs["userId"].isin(history["userId"])].sort_values("userId", kind="stable")
    pair_users = pairs["userId"].to_numpy()
    users = np.unique(pair_users)
    # users in batches, so that a batch's scores (users x its movies) stay small
    step = max(1, _SCORED_AT_ONCE // max(pairs["movieId"].nunique(), 1))
    similarity = np.empty(len(pairs), np.float32)
    for start in range(0, len(users), step):
        batch = users[start:start + step]
        lo = np.searchsorted(pair_users, batch[0], side="left")
        hi = np.searchsorted(pair_users, batch[-1], side="right")
        movie_ids = pairs["movieId"].to_numpy()[lo:hi]
        movies = np.unique(movie_ids)
        scores = model.fold_in(history[history["userId"].isin(batch)], movies)
        similarity[lo:hi] = scores[np.searchsorted(batch, pair_users[lo:hi]),
                                   np.searchsorted(movies, movie_ids)]
    return pairs.assign(similarity=similarity,
                        liked=pairs["rating"].to_numpy() >= model.settings.like)
