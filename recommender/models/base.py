"""The model interface every recommender of the project implements.

A model is fitted on a ratings table and then answers: the rating a user would give a movie
(:meth:`Recommender.predict`, rating models only), a score for every catalogue movie for a
batch of users (:meth:`Recommender.score`, ranked by :mod:`recommender.topk`), scores for
users known only by their ratings (:meth:`Recommender.score_history`, models that fold in),
which rated movie explains a recommendation (:meth:`Recommender.explain`), and its own
persistence through the one artifact format.

Subclasses set ``name`` and ``Settings`` (typed, see :mod:`recommender.models.settings`) and
fill the hooks ``_fit``, ``_score``, ``_predict`` (rating models), ``_score_history`` (models
that fold in), ``_state`` and ``_set_state``. Settings never change after a model is made; the
shipped defaults are the values tuned on validation slices of train (``docs/models/``).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.core.errors import UsageError
from recommender.data.preprocessing import Encoded, IdEncoder, Interactions
from recommender.models.artifacts import write_artifact
from recommender.models.settings import NoSettings
from recommender.models.settings import Settings as SettingsBase
from recommender.topk import top_k, top_k_product, top_k_shared

__all__ = ["Recommender", "Context", "fingerprint", "table_fingerprint"]


def fingerprint(ratings: pd.DataFrame) -> str:
    """A short content hash of a ratings table (ids and ratings), to match saved models to
    the data they were trained on."""
    digest = hashlib.sha1()
    for column in ("userId", "movieId", "rating"):
        digest.update(np.ascontiguousarray(ratings[column].to_numpy()).tobytes())
    return digest.hexdigest()[:16]


def table_fingerprint(table: pd.DataFrame | None) -> str:
    """A short content hash of any table (``"none"`` for no table): the movies and tags a
    model read, so a saved model is reused only with the same side information."""
    if table is None:
        return "none"
    digest = hashlib.sha1(",".join(map(str, table.columns)).encode())
    for column in table.columns:
        values = table[column]
        if values.dtype == object:  # lists (genres) and strings hash through their text
            values = values.astype(str)
        digest.update(pd.util.hash_pandas_object(values, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def _timestamps(times, n: int) -> np.ndarray:
    """``times`` as ``n`` int64 Unix seconds, 0 where the date is unknown (``None``: all)."""
    if times is None:
        return np.zeros(n, np.int64)
    values = np.asarray(times)
    if values.shape != (n,) or not (np.issubdtype(values.dtype, np.integer)
                                    or np.issubdtype(values.dtype, np.floating)):
        raise UsageError(f"times must be {n} numbers, one Unix timestamp per pair, not "
                         f"{values.dtype} of shape {values.shape}")
    if not np.isfinite(values).all() or (values < 0).any():
        raise UsageError("times must be Unix timestamps >= 0 (0: unknown)")
    return values.astype(np.int64)


class Context(dict):
    """Side information a model may use: ``movies`` and ``tags`` tables (both optional).

    It remembers which tables the model asked for (:attr:`read`, even when the answer was
    None), so that the fingerprints saved with the model cover exactly what the fit read.
    """

    def __init__(self, **tables: pd.DataFrame | None):
        super().__init__(**tables)
        self.read: set[str] = set()

    def __getitem__(self, key: str):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default=None):
        self.read.add(key)
        return super().get(key, default)

    @property
    def movies(self) -> pd.DataFrame | None:
        return self.get("movies")

    @property
    def tags(self) -> pd.DataFrame | None:
        return self.get("tags")

    def fingerprints(self) -> dict[str, str]:
        """:func:`table_fingerprint` of every table the model read."""
        return {key: table_fingerprint(dict.get(self, key)) for key in sorted(self.read)}


class Recommender(Encoded):
    """Base class: fit on ratings, predict ratings, score the catalogue, save and load."""

    name: ClassVar[str] = "base"
    predicts_ratings: ClassVar[bool] = False
    # whether predict reads the date of the rating it predicts (``times``): the evaluation
    # protocol passes the test ratings' timestamps to such models only
    uses_time: ClassVar[bool] = False
    folds_in: ClassVar[bool] = False  # whether score_history serves users outside train
    # False: a movie outside train scores -inf in score_history (the model cannot recommend
    # it), so the cold-movie protocol knows the model's answer without fitting it.
    scores_new_movies: ClassVar[bool] = True
    Settings: ClassVar[type[SettingsBase]] = NoSettings
    # Settings for MovieLens-25M-sized data (``benchmarks/scale.py`` runs every registered
    # model with them); ``None``: the model does not scale that far (docs/models/ says why).
    large_data: ClassVar[dict[str, Any] | None] = {}

    def __init__(self, seed: int = 0, **settings: Any):
        self.settings = self.Settings.of(self.name, settings)
        self.seed = int(seed)
        self.users: IdEncoder | None = None
        self.items: IdEncoder | None = None
        self.seen: sp.csr_matrix | None = None
        self.global_mean = 0.0
        self.rating_scale = (0.5, 5.0)
        self.meta: dict[str, Any] = {}

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, train: pd.DataFrame, movies: pd.DataFrame | None = None,
            tags: pd.DataFrame | None = None, **options: Any) -> "Recommender":
        """Fit on a ratings table (``userId, movieId, rating[, timestamp]``).

        ``options`` are fit-time arguments particular to a kind of model (the models of the
        shared training loop take ``on_epoch``, a callback after every epoch). Records
        ``fit_seconds``, the ``train_fingerprint`` and the ``context_fingerprint`` of the side
        tables the fit read in :attr:`meta` (saved with the artifact), so a saved model is
        reused only for the data it was trained on.
        """
        start = time.perf_counter()
        data = Interactions.from_ratings(train)
        self.users, self.items = data.users, data.items
        self.seen = data.matrix("binary")
        self.global_mean = float(np.mean(data.rating))
        self.rating_scale = (float(data.rating.min()), float(data.rating.max()))
        self.meta = {}
        context = Context(movies=movies, tags=tags)
        self._fit(data, context, **options)
        self.meta.update(fit_seconds=time.perf_counter() - start,
                         train_fingerprint=fingerprint(train),
                         context_fingerprint=context.fingerprints())
        return self

    def _fit(self, data: Interactions, context: Context) -> None:
        raise NotImplementedError

    # -- answering -------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if self.items is None:
            raise RuntimeError(f"{self.name}: call fit() or load() first")

    def predict(self, users, movies, times=None) -> np.ndarray:
        """Predicted ratings for raw ``(userId, movieId)`` pairs, clipped to the rating scale.

        Users or movies unseen in train fall back to what the model knows (biases, the global
        mean); they never raise. ``times`` are the Unix timestamps (seconds) of the ratings to
        predict, read only by models that use time (:attr:`uses_time`); ``None``, or a
        timestamp of 0 (what :func:`~recommender.data.read_ratings` writes for a file without
        dates), stands for the user's last train date, which is what the server asks about.
        """
        self._check_fitted()
        if not self.predicts_ratings:
            raise TypeError(f"{self.name} ranks movies but does not predict ratings")
        u = self.users.encode(np.asarray(users), unknown="missing")
        i = self.items.encode(np.asarray(movies), unknown="missing")
        if self.uses_time:
            raw = self._predict(u, i, _timestamps(times, len(u)))
        else:
            raw = self._predict(u, i)
        return np.clip(raw, *self.rating_scale).astype(np.float32)

    def _predict(self, user_index: np.ndarray, item_index: np.ndarray,
                 times: np.ndarray | None = None) -> np.ndarray:
        """Ratings for index pairs (``-1``: unseen in train); models that use time also get
        ``times``, int64 Unix seconds with 0 for "the user's last train date"."""
        raise NotImplementedError

    def extra_metrics(self, test: pd.DataFrame) -> dict[str, float]:
        """Metrics particular to this kind of model that evaluation adds (none here; the
        classifier adds accuracy, F1, ROC-AUC...)."""
        return {}

    def score(self, user_index: np.ndarray) -> np.ndarray:
        """Scores ``(len(user_index), n_items)`` over the train catalogue; higher is better."""
        self._check_fitted()
        return self._score(np.asarray(user_index, np.int64))

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        """Scores for a batch of users; may return a new array (top-K may overwrite it) or
        a read-only view, never a writeable array the model keeps."""
        raise NotImplementedError

    def _shared_scores(self) -> np.ndarray | None:
        """The ``(n_items,)`` scores when they are the same for every user, else ``None``.

        Models that rank every user alike (popularity, biases) return them, so that
        :meth:`top_k` ranks all users from one sort of the catalogue.
        """
        return None

    def _score_factors(self, user_index: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``(user_rows, item_table)`` when the scores of the users ``user_index`` are the
        product ``user_rows @ item_table`` (float32; ``(len(user_index), d)`` and ``(d,
        n_items)``; a score's order, not its value, is what must hold), else ``None``.

        Models that score so (factor models, and models that score a user vector against
        movie vectors) return them, so that :meth:`top_k` scores and selects batches on every
        core (:func:`recommender.topk.top_k_product`), with no per-batch call into the model.
        """
        return None

    def top_k(self, user_index: np.ndarray, k: int = 10, exclude_seen: bool = True,
              progress: bool = False) -> np.ndarray:
        """The ``k`` best train-catalogue items for each user index, best first.

        Movies the user rated in train are left out when ``exclude_seen``; ties go to the
        lower index (ascending movieId); ``-1`` pads lists shorter than ``k``. Batched over
        users (:func:`recommender.topk.top_k`), as one product per batch for factor models
        (:meth:`_score_factors`), or one sort of the catalogue for models whose scores are the
        same for everyone (:meth:`_shared_scores`).
        """
        self._check_fitted()
        user_index = np.asarray(user_index, np.int64)
        exclude = self.seen if exclude_seen else None
        shared = self._shared_scores()
        if shared is not None:
            return top_k_shared(shared, user_index, k, exclude)
        factors = self._score_factors(user_index)
        if factors is not None:
            return top_k_product(*factors, user_index, k, exclude, progress=progress)
        return top_k(self.score, user_index, k, self.n_items, exclude, progress=progress)

    def fold_in(self, history: pd.DataFrame, movie_ids=None) -> np.ndarray:
        """Scores for users known only by their ratings, without refitting.

        This is how a brand-new user (or a train user with new ratings) is served, and how
        the cold-start protocols score held-out users and movies.

        Args:
            history: ``userId, movieId, rating`` of the users to score; the userIds need not
                occur in train; rated movies the model does not know are ignored.
            movie_ids: raw movie ids to score (default: the train catalogue). A movie the
                model cannot score (not in train, and no content features) gets ``-inf``.

        Returns:
            ``(n_users, len(movie_ids))`` float32 scores, rows in ascending ``userId`` order.

        Raises:
            NotImplementedError: the model can only score its training users.
        """
        self._check_fitted()
        users, rows = np.unique(history["userId"].to_numpy(), return_inverse=True)
        cols = self.items.encode(history["movieId"].to_numpy(), unknown="missing")
        keep = cols >= 0
        ratings = sp.csr_matrix(
            (history["rating"].to_numpy(np.float32)[keep], (rows[keep], cols[keep])),
            shape=(len(users), self.n_items), dtype=np.float32)
        return self.score_history(ratings, movie_ids, user_ids=users)

    def score_history(self, ratings: sp.csr_matrix, movie_ids=None,
                      user_ids: np.ndarray | None = None) -> np.ndarray:
        """Scores for users given as rows of a users x train-movies ratings matrix.

        The hook under :meth:`fold_in` for callers that hold the matrix already (the server
        keeps each user's row).

        Args:
            ratings: ``(n_users, n_items)`` ratings, columns in the order of :attr:`items`.
            movie_ids: raw movie ids to score (default: the train catalogue).
            user_ids: the raw id of each row, for models that also read what those users did
                outside the ratings (``tag-text``: the tags they gave); ``None``: unknown.

        Returns:
            ``(n_users, len(movie_ids))`` float32 scores, a new array.

        Raises:
            NotImplementedError: the model can only score its training users.
        """
        self._check_fitted()
        if not self.folds_in:
            raise NotImplementedError(f"{self.name} cannot score users outside its training "
                                      "data")
        candidates = self.items.ids if movie_ids is None else np.asarray(movie_ids)
        if user_ids is None:
            user_ids = np.full(ratings.shape[0], -1, np.int64)
        scores = self._score_history(sp.csr_matrix(ratings, dtype=np.float32), candidates,
                                     np.asarray(user_ids))
        return np.array(scores, np.float32)  # a copy: callers may write into it

    def _score_history(self, ratings: sp.csr_matrix, movie_ids: np.ndarray,
                       user_ids: np.ndarray) -> np.ndarray:
        """Scores over raw ``movie_ids`` for the users of the ``ratings`` rows (see
        :meth:`score_history`); models that fold in implement it."""
        raise NotImplementedError

    def explain(self, ratings: sp.csr_matrix, columns: np.ndarray) -> np.ndarray:
        """For each train-catalogue column of ``columns``, the rated column of the one-user
        ``ratings`` row that contributed most to its score, or ``-1`` where no rated movie
        did (and for models whose scores do not decompose so)."""
        return np.full(len(columns), -1, np.int64)

    def _pick(self, scores: np.ndarray, movie_ids: np.ndarray, unknown: float = -np.inf
              ) -> np.ndarray:
        """Columns of train-catalogue ``scores`` for raw ``movie_ids``; ``unknown`` for movies
        not in train."""
        if movie_ids is self.items.ids:  # the train catalogue itself: nothing to map
            return np.asarray(scores, np.float32)
        index = self.items.encode(movie_ids, unknown="missing")
        out = np.take(np.asarray(scores, np.float32), np.maximum(index, 0), axis=-1)
        out[..., index < 0] = unknown
        return out

    def recommend(self, user_id, k: int = 10, exclude_seen: bool = True,
                  movies: pd.DataFrame | None = None) -> pd.DataFrame:
        """Top ``k`` movies for one raw user id, as a table (with titles if ``movies`` given)."""
        self._check_fitted()
        u = self.users.encode([user_id], unknown="missing")
        if u[0] < 0:
            raise KeyError(f"userId {user_id} was not in the training data")
        ranked = self.top_k(u, k, exclude_seen)[0]
        ranked = ranked[ranked >= 0]
        out = pd.DataFrame({"rank": np.arange(1, len(ranked) + 1),
                            "movieId": self.items.decode(ranked),
                            "score": self.score(u)[0, ranked]})
        if movies is not None:
            out = out.merge(movies[["movieId", "title", "genres"]], on="movieId", how="left")
        return out

    # -- persistence -----------------------------------------------------------------------

    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Rebuild the fitted model from its arrays (and :attr:`settings`)."""

    def save(self, path: str | Path) -> Path:
        """Write the fitted model as an artifact folder (see :mod:`recommender.models.artifacts`)."""
        return write_artifact(path, self.name, *self.contents())

    def contents(self) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, Any]]:
        """``(settings, arrays, meta)`` of the fitted model: what :meth:`save` writes and
        :meth:`from_artifact` reads back (a model made of other models keeps them so)."""
        self._check_fitted()
        seen = self.seen.tocsr()
        arrays = {"_users": self.users.ids, "_items": self.items.ids,
                  "_seen_indptr": seen.indptr, "_seen_indices": seen.indices}
        arrays.update(self._state())
        meta = {**self.meta, "seed": self.seed, "global_mean": self.global_mean,
                "rating_scale": list(self.rating_scale)}
        return self.settings.as_dict(), arrays, meta

    @classmethod
    def from_artifact(cls, settings: dict, arrays: dict[str, np.ndarray],
                      meta: dict) -> "Recommender":
        """The fitted model an artifact holds (see :meth:`save`)."""
        model = cls(seed=meta.get("seed", 0), **settings)
        model.users, model.items = IdEncoder(arrays["_users"]), IdEncoder(arrays["_items"])
        model.seen = sp.csr_matrix(
            (np.ones(len(arrays["_seen_indices"]), np.float32), arrays["_seen_indices"],
             arrays["_seen_indptr"]), shape=(len(model.users), len(model.items)))
        model.global_mean = float(meta["global_mean"])
        model.rating_scale = tuple(meta["rating_scale"])
        model.meta = {k: v for k, v in meta.items()
                      if k not in ("seed", "global_mean", "rating_scale")}
        model._set_state({k: v for k, v in arrays.items() if not k.startswith("_")})
        return model


    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings.model_dump().items())
        return f"{type(self).__name__}(seed={self.seed}, {args})"
