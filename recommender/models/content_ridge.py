"""Content ridge: for each user, a ridge regression from what a movie is to how much they liked
it, so that a movie nobody has rated is scored from its features alone.

A movie's vector ``f_m`` is the block-weighted unit content vector of
:func:`recommender.data.preprocessing.weighted_content` (genres, release decade, title words,
tags and their count, an overview or plot text column when the movies table has one). User
``u``'s targets over the train movies are ``t_u = r_u^p`` (their ratings to the power
``rating_power``, 0 where unrated), and the ridge regression of ``t_u`` on the train movies'
features ``F`` gives the weights ``w_u = (F^T F + lambda I)^-1 F^T t_u``; a movie scores
``f_m . w_u``. One matrix ``A = (F^T F + lambda I)^-1`` (features x features) serves every
user, so a user is folded in from their ratings alone, and the score is the content profile
``F^T t_u`` compared with ``f_m`` through the metric ``A`` (which discounts features that
every movie shares and favours those that tell movies apart), not through the plain cosine.

Collaborative smoothing: a user's ratings say little about the movies they have not seen, so
the targets borrow from users like them. With ``V`` the top ``rank`` right singular vectors of
the binary train matrix, the smoothed row ``s_u = x_u V V^T`` (``x_u`` the binary history) is
added as ``t_u + smoothing (||t_u|| / ||s_u||) s_u``. Since ``V`` has orthonormal columns
``||s_u|| = ||x_u V||``, and the profile of ``s_u`` is ``(x_u V)(V^T F)``: smoothing costs a
rank-sized product per user, never a users x movies matrix. Its leading direction is how much
a movie is watched, so it also lends the regression a popularity prior.

Everything is closed form (one features x features inverse, one truncated SVD with a fixed
start), so a fit is deterministic. Settings and measurements: ``docs/models/content-ridge.md``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from recommender.core.errors import DataError
from recommender.data.preprocessing import IdEncoder, Interactions, content_features, \
    weighted_content
from recommender.models.base import Context, Recommender
from recommender.models.content import BLOCK_SETTINGS
from recommender.models.settings import Settings

__all__ = ["ContentRidge", "ContentRidgeSettings"]


class ContentRidgeSettings(Settings):
    """Settings of :class:`ContentRidge`."""

    ridge: float = Field(5.0, gt=0, description="L2 penalty lambda of the per-user regression "
                         "from content to ratings")
    rating_power: float = Field(2.0, ge=0, description="the targets are the ratings to this "
                                "power (0: watched or not)")
    smoothing: float = Field(0.5, ge=0, description="weight of the collaborative smoothing of "
                             "the targets, relative to the ratings (0: none)")
    rank: int = Field(32, ge=1, description="singular vectors of the train matrix the "
                      "smoothing keeps")
    genres: float = Field(1.0, ge=0, description="weight of the genre block")
    decade: float = Field(2.0, ge=0, description="weight of the release-decade block")
    title: float = Field(0.5, ge=0, description="weight of the title-word block")
    tags: float = Field(1.0, ge=0, description="weight of the tag TF-IDF block")
    tag_count: float = Field(1.0, ge=0, description="weight of the tag-count block")
    text: float = Field(1.0, ge=0, description="weight of the overview or plot text block")
    max_words: int = Field(5000, ge=1, description="words kept per text block")


class ContentRidge(Recommender):
    """Per-user ridge regression from movie content to smoothed ratings; scores cold movies."""

    name = "content-ridge"
    Settings = ContentRidgeSettings
    folds_in = True
    # Fitting inverts a features x features matrix and scoring multiplies every user's
    # profile by it: both grow with the square of the vocabulary, which 1,000 words per text
    # block keep near 2,000 features whatever the catalogue.
    large_data = {"max_words": 1000}

    def _fit(self, data: Interactions, context: Context) -> None:
        if context.movies is None:
            raise DataError(f"{self.name} needs the movies table (titles, genres): pass "
                            "movies= to fit, or --movies to recommender evaluate")
        s = self.settings
        movies = context.movies.drop_duplicates("movieId")
        self.catalogue = IdEncoder.fit(np.union1d(movies["movieId"], data.items.ids))
        features, names = content_features(movies, self.catalogue.ids, context.tags,
                                           max_words=s.max_words)
        self.features = weighted_content(features, names, {
            block: getattr(s, setting) for block, setting in BLOCK_SETTINGS.items()})
        train = self._train_features()
        gram = (train.T @ train).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += s.ridge
        self.metric = np.linalg.inv(gram).astype(np.float32)
        self.basis, self.basis_features = self._smoothing_basis(self.seen, train)
        self.ratings = data.matrix("rating")

    def _smoothing_basis(self, seen: sp.csr_matrix, train: sp.csr_matrix
                         ) -> tuple[np.ndarray, np.ndarray]:
        """``V`` (train movies x rank) of the binary train matrix and ``V^T F`` (rank x
        features); empty when there is no smoothing."""
        rank = min(self.settings.rank, min(seen.shape) - 1)
        if not self.settings.smoothing or rank < 1:
            return (np.zeros((seen.shape[1], 0), np.float32),
                    np.zeros((0, train.shape[1]), np.float32))
        from scipy.sparse.linalg import svds

        start = np.random.default_rng(self.seed).standard_normal(min(seen.shape))
        _, _, vt = svds(seen.astype(np.float64), k=rank, v0=start)
        basis = np.ascontiguousarray(vt.T, np.float32)
        return basis, np.asarray((train.T @ basis).T, np.float32)

    def _train_features(self) -> sp.csr_matrix:
        """``F``: the content rows of the train movies, in train-catalogue order."""
        return self.features[self.catalogue.encode(self.items.ids)]

    def _weights(self, ratings: sp.csr_matrix) -> np.ndarray:
        """``(users, features)`` regression weights ``w_u = A F^T t_u`` of the users given as
        rows of a users x train-movies ratings matrix."""
        targets = sp.csr_matrix(ratings, dtype=np.float32, copy=True)
        targets.data = np.power(np.abs(targets.data), self.settings.rating_power)
        profile = np.asarray((targets @ self._train_features()).todense(), np.float32)
        if self.basis.shape[1]:
            binary = (ratings != 0).astype(np.float32)
            latent = np.asarray(binary @ self.basis)
            length = np.sqrt(np.asarray(targets.multiply(targets).sum(axis=1)).ravel())
            scale = length / np.maximum(np.linalg.norm(latent, axis=1), 1e-12)
            profile += (self.settings.smoothing * scale)[:, None].astype(np.float32) * (
                latent @ self.basis_features)
        return profile @ self.metric

    def _scores(self, ratings: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        """``(users, len(rows))`` scores ``f_m . w_u`` of the catalogue movies at ``rows``."""
        return np.asarray(self.features[rows] @ self._weights(ratings).T).T

    def _score(self, user_index):
        return self._scores(self.ratings[user_index], self.catalogue.encode(self.items.ids))

    def _score_history(self, ratings, movie_ids, user_ids):
        """Scores over any movie with features (train or not); a movie missing from the
        movies table scores -inf."""
        rows = self.catalogue.encode(movie_ids, unknown="missing")
        scores = self._scores(ratings, np.maximum(rows, 0))
        scores[:, rows < 0] = -np.inf
        return scores

    def _state(self):
        f, r = self.features, self.ratings
        return {"catalogue": self.catalogue.ids, "metric": self.metric, "basis": self.basis,
                "basis_features": self.basis_features, "f_data": f.data,
                "f_indices": f.indices, "f_indptr": f.indptr, "f_shape": np.array(f.shape),
                "r_data": r.data, "r_indices": r.indices, "r_indptr": r.indptr}

    def _set_state(self, arrays):
        self.catalogue = IdEncoder(arrays["catalogue"])
        self.metric, self.basis = arrays["metric"], arrays["basis"]
        self.basis_features = arrays["basis_features"]
        self.features = sp.csr_matrix((arrays["f_data"], arrays["f_indices"],
                                       arrays["f_indptr"]), shape=tuple(arrays["f_shape"]))
        self.ratings = sp.csr_matrix((arrays["r_data"], arrays["r_indices"],
                                      arrays["r_indptr"]), shape=(len(self.users),
                                                                  self.n_items))
