"""Content-based filtering (the recommender-systems overview, origin 004): movies described by
what they are, not by who watched them.

A movie's vector is :func:`recommender.data.preprocessing.content_features` (genres, release
decade, title words, tags and their count, and an overview or plot text column when the movies
table has one; each block L2-normalised) with each block weighted by a parameter, then
L2-normalised, so a dot product is the cosine similarity of two movies.

A user's score for a movie aggregates its similarities to the movies the user rated well:
the sum of cosines to the movies rated >= 4 (``weighting="liked"``), to every rated movie
(``"rated"``), or weighted by the rating minus the user's mean (``"centred"``: disliked movies
push similar ones down). Cosine is linear in the unit vectors, so this is the cosine to one
profile vector (the weighted sum, L2-normalised), and scoring is a sparse product, never an
items x items matrix. Added to it, ``prior`` times a content-only popularity prior: a ridge
regression from the features to log(1 + train ratings), standardised, so that a new movie
whose features look like those of much-watched movies ranks higher (what LightFM's feature
biases do).

Every movie of the movies table keeps its vector, not only train movies: a new movie is
scored from its features the moment it is in the table (:meth:`Content.fold_in`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field

from recommender.core.errors import DataError
from recommender.data.preprocessing import (BLOCK_WEIGHTS, IdEncoder, Interactions,
                                            content_features, popularity_prior,
                                            weighted_content)
from recommender.metrics import RELEVANT_RATING
from recommender.models.base import Context, Recommender
from recommender.models.settings import Settings

__all__ = ["Content", "ContentSettings"]

_DENSE_FEATURES = 256  # most features for which a dense product scores faster than sparse

# The setting that weighs each block of ``content_features``, by feature-name prefix.
BLOCK_SETTINGS = {"genre": "genres", "decade": "decade", "title": "title", "tag": "tags",
                  "tag_count": "tag_count", "overview": "text", "plot": "text"}


def _block(block: str, what: str) -> float:
    return Field(BLOCK_WEIGHTS[block], ge=0, description=f"weight of the {what} block")


class ContentSettings(Settings):
    """Settings of :class:`Content`."""

    genres: float = _block("genre", "genre")
    decade: float = _block("decade", "release-decade")
    title: float = _block("title", "title-word")
    tags: float = _block("tag", "tag TF-IDF")
    tag_count: float = _block("tag_count", "tag-count")
    text: float = _block("overview", "overview or plot text")
    max_features: int = Field(5000, ge=1, description="words kept per text block")
    weighting: Literal["liked", "rated", "centred"] = Field(
        "liked", description="which rated movies make the profile: those rated >= 4, all, or "
        "all weighted by rating minus the user's mean")
    prior: float = Field(0.2, ge=0, description="weight of the content-only popularity prior")


class Content(Recommender):
    """Item-item cosine over genre, decade, title-word, tag and text features."""

    name = "content"
    Settings = ContentSettings
    folds_in = True

    def _fit(self, data: Interactions, context: Context) -> None:
        if context.movies is None:
            raise DataError(f"{self.name} needs the movies table (titles, genres): pass "
                            "movies= to fit, or --movies to recommender evaluate")
        movies = context.movies.drop_duplicates("movieId")
        self.catalogue = IdEncoder.fit(np.union1d(movies["movieId"], data.items.ids))
        self.features = self.movie_vectors(movies, self.catalogue, context.tags)
        table = movies.set_index("movieId").reindex(self.catalogue.ids)
        self.titles = table["title"].fillna("").astype(str).to_numpy()
        self.prior = self._popularity_prior(data)
        self.profiles = self._profiles(data.matrix("rating"))

    def _popularity_prior(self, data: Interactions) -> np.ndarray:
        """:func:`preprocessing.popularity_prior` of every catalogue movie (zeros when
        ``prior`` is 0)."""
        if not self.settings.prior:
            return np.zeros(len(self.catalogue), np.float32)
        counts = np.zeros(len(self.catalogue))
        train_rows = self.catalogue.encode(self.items.ids)
        counts[train_rows] = data.item_counts()
        return popularity_prior(self.features, counts, train_rows)

    def movie_vectors(self, movies: pd.DataFrame, catalogue: IdEncoder,
                      tags: pd.DataFrame | None) -> sp.csr_matrix:
        """Unit-length rows of :func:`~recommender.data.preprocessing.content_features` for ``catalogue``, each
        block weighted by its setting (movies absent from ``movies`` get an empty row)."""
        features, names = content_features(movies, catalogue.ids, tags,
                                           max_words=self.settings.max_features)
        return weighted_content(features, names, {block: getattr(self.settings, name)
                                                  for block, name in BLOCK_SETTINGS.items()})

    def _weights(self, ratings: sp.csr_matrix) -> sp.csr_matrix:
        """Per-rating weights of the user profile."""
        out = sp.csr_matrix(ratings, dtype=np.float32, copy=True)
        counts = np.diff(out.indptr)
        if self.settings.weighting == "liked":
            out.data = (out.data >= RELEVANT_RATING).astype(np.float32)
        elif self.settings.weighting == "rated":
            out.data[:] = 1.0
        else:
            means = np.asarray(out.sum(axis=1)).ravel() / np.maximum(counts, 1)
            out.data = out.data - np.repeat(means, counts).astype(np.float32)
            out.data[out.data == 0] = 1e-3  # a user who rates everything alike still likes it
        return out

    def _profiles(self, ratings: sp.csr_matrix) -> sp.csr_matrix:
        """Unit users x features profile vectors from a users x train-movies ratings matrix
        (a user with nothing liked gets a zero profile: the prior alone ranks)."""
        from sklearn.preprocessing import normalize

        train_rows = self.catalogue.encode(self.items.ids)
        return sp.csr_matrix(normalize(self._weights(ratings) @ self.features[train_rows]))

    def _similarity(self, profiles: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        """``(users, len(rows))`` scores: cosine of each profile with the movies at ``rows``
        (sparse features times dense profiles: the fast order) plus the weighted prior."""
        cosine = np.asarray(self.features[rows] @ profiles.toarray().T).T
        return cosine + self.settings.prior * self.prior[rows]

    def _score(self, user_index):
        return self._similarity(self.profiles[user_index],
                                self.catalogue.encode(self.items.ids))

    def _score_factors(self, user_index: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``[profile, 1]`` against ``[features; prior weight x prior]`` as dense tables, one
        product, when there are at most ``_DENSE_FEATURES`` features (genres, decades and a
        few words); with more, the sparse product of :meth:`_score` costs less."""
        if self.features.shape[1] > _DENSE_FEATURES:
            return None
        rows = self.catalogue.encode(self.items.ids)
        users = sp.hstack([self.profiles[user_index],
                           np.ones((len(user_index), 1), np.float32)]).toarray()
        items = np.vstack([self.features[rows].T.toarray(),
                           self.settings.prior * self.prior[rows][None]])
        return users.astype(np.float32), np.ascontiguousarray(items, np.float32)

    def _score_history(self, ratings, movie_ids, user_ids):
        """Profile from the given ratings, scored over any movie with features (train or
        not); a movie missing from the movies table scores -inf."""
        rows = self.catalogue.encode(movie_ids, unknown="missing")
        scores = self._similarity(self._profiles(ratings), np.maximum(rows, 0))
        scores[:, rows < 0] = -np.inf
        return scores

    def more_like_this(self, movie: int | str, k: int = 10) -> pd.DataFrame:
        """The ``k`` movies most similar to ``movie`` (any movie of the movies table).

        Args:
            movie: a movieId, or a title: the exact title (case ignored) or a piece of
                exactly one title, e.g. ``"toy story (1995)"``.
            k: movies returned.

        Returns:
            ``movieId, title, similarity``, most similar first (the movie itself left out).
        """
        self._check_fitted()
        row = self._row(movie)
        similarity = (self.features @ self.features[row].T).toarray().ravel()
        similarity[row] = -np.inf
        best = np.lexsort((self.catalogue.ids, -similarity))[:k]
        return pd.DataFrame({"movieId": self.catalogue.ids[best], "title": self.titles[best],
                             "similarity": similarity[best]})

    def _row(self, movie: int | str) -> int:
        """Catalogue row of a movieId or title; KeyError naming the candidates otherwise."""
        if not isinstance(movie, str):
            row = self.catalogue.encode([movie], unknown="missing")[0]
            if row < 0:
                raise KeyError(f"movieId {movie} is not in the movies table the model was "
                               "fitted with")
            return int(row)
        titles = pd.Series(self.titles).str.lower()
        exact = np.flatnonzero(titles == movie.lower())
        found = exact if len(exact) else np.flatnonzero(
            titles.str.contains(movie.lower(), regex=False))
        if len(found) != 1:
            shown = "; ".join(self.titles[found[:5]]) or "none"
            raise KeyError(f"{len(found)} titles match {movie!r} ({shown}); give the full "
                           "title or the movieId")
        return int(found[0])

    def _state(self):
        f = self.features
        return {"catalogue": self.catalogue.ids, "titles": self.titles.astype(str),
                "f_data": f.data, "f_indices": f.indices, "f_indptr": f.indptr,
                "f_shape": np.array(f.shape), "prior": self.prior, "p_data": self.profiles.data,
                "p_indices": self.profiles.indices, "p_indptr": self.profiles.indptr}

    def _set_state(self, arrays):
        self.catalogue = IdEncoder(arrays["catalogue"])
        self.titles, self.prior = arrays["titles"], arrays["prior"]
        shape = tuple(arrays["f_shape"])
        self.features = sp.csr_matrix((arrays["f_data"], arrays["f_indices"],
                                       arrays["f_indptr"]), shape=shape)
        self.profiles = sp.csr_matrix((arrays["p_data"], arrays["p_indices"],
                                       arrays["p_indptr"]), shape=(len(self.users), shape[1]))
