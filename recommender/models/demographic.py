"""Demographic filtering (the recommender-systems overview, origin 004): every user gets the
best-rated movies, by the IMDB weighted rating so that a movie rated 5 by two people does not
top the chart.

``WR = v / (v + m) * R + m / (v + m) * C``: ``R`` is the movie's mean rating, ``v`` its
number of ratings, ``C`` the mean of all movies' mean ratings and ``m`` the ``quantile`` of
the vote counts (a movie with ``m`` votes is pulled halfway to ``C``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field

from recommender.core.errors import DataError, SettingError
from recommender.data.preprocessing import Interactions
from recommender.models.base import Context
from recommender.models.baselines import SameForEveryone
from recommender.models.settings import Settings

__all__ = ["WeightedPopularity", "WeightedPopularitySettings", "weighted_rating",
           "weighted_chart"]


def weighted_rating(votes, mean, m: float, c: float) -> np.ndarray:
    """IMDB's weighted rating ``v/(v+m)·R + m/(v+m)·C`` per movie (``C`` when ``v + m`` is 0).

    Args:
        votes: ratings per movie ``v``.
        mean: mean rating per movie ``R`` (any value where ``v`` is 0).
        m: the vote count that pulls a movie halfway to ``c``.
        c: the prior mean rating ``C``.
    """
    votes = np.asarray(votes, np.float64)
    mean = np.nan_to_num(np.asarray(mean, np.float64))
    total = votes + m
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (votes * mean + m * c) / total
    return np.where(total > 0, out, c)


def weighted_chart(ratings: pd.DataFrame, movies: pd.DataFrame | None = None,
                   quantile: float = 0.9, genre: str | None = None,
                   top: int | None = 10) -> pd.DataFrame:
    """The weighted-rating chart, overall or within one genre (``C`` and ``m`` recomputed
    over that genre's movies, as the origin system's per-genre charts do).

    Args:
        ratings: a ratings table.
        movies: movies table (titles; needed for ``genre``).
        quantile: ``m`` is this quantile of the movies' vote counts, in [0, 1].
        genre: restrict to movies listing this genre.
        top: rows kept (None: all), best first; movies with fewer than ``m`` votes are left
            out of a chart, as in the origin system.

    Returns:
        ``movieId, [title,] votes, mean, weighted`` with ``m`` and ``C`` in ``attrs``.
    """
    if not 0.0 <= quantile <= 1.0:
        raise SettingError(f"quantile must be in [0, 1], got {quantile!r}")
    stats = ratings.groupby("movieId")["rating"].agg(votes="size", mean="mean").reset_index()
    if genre is not None:
        if movies is None:
            raise DataError("a per-genre chart needs the movies table (genres)")
        listed = movies.loc[movies["genres"].map(lambda g: genre in g), "movieId"]
        stats = stats[stats["movieId"].isin(listed)]
        if stats.empty:
            raise DataError(f"no rated movie lists the genre {genre!r}")
    m = float(np.quantile(stats["votes"], quantile))
    c = float(stats["mean"].mean())
    stats = stats.assign(weighted=weighted_rating(stats["votes"], stats["mean"], m, c))
    chart = stats[stats["votes"] >= m].sort_values(["weighted", "movieId"],
                                                   ascending=[False, True])
    if movies is not None:
        chart = chart.merge(movies[["movieId", "title"]], on="movieId", how="left")
        chart = chart[["movieId", "title", "votes", "mean", "weighted"]]
    chart = chart.head(top) if top else chart
    chart = chart.reset_index(drop=True)
    chart.attrs.update(m=m, C=c, genre=genre or "all")
    return chart


class WeightedPopularitySettings(Settings):
    """Settings of :class:`WeightedPopularity`."""

    quantile: float = Field(0.9, ge=0, le=1, description="m, the vote count that pulls a movie "
                            "halfway to the mean, is this quantile of the movies' counts")


class WeightedPopularity(SameForEveryone):
    """IMDB's weighted rating over the train ratings: one chart, the same for everyone.

    Demographic filtering of the recommender-systems overview (origin 004). Movies outside
    train score ``C`` (no votes)."""

    name = "weighted-popularity"
    Settings = WeightedPopularitySettings

    def _fit(self, data: Interactions, context: Context) -> None:
        votes = data.item_counts()
        sums = np.bincount(data.item_index, data.rating.astype(np.float64), data.n_items)
        mean = sums / np.maximum(votes, 1)
        self.m = float(np.quantile(votes, self.settings.quantile))
        self.c = self.unknown_score = float(mean.mean())  # no votes: the prior mean C
        self.item_scores = weighted_rating(votes, mean, self.m, self.c).astype(np.float32)

    def _state(self):
        return {"weighted": self.item_scores, "m_c": np.array([self.m, self.c])}

    def _set_state(self, arrays):
        self.item_scores = arrays["weighted"]
        self.m, self.c = (float(x) for x in arrays["m_c"])
        self.unknown_score = self.c
