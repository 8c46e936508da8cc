"""What the API answers, without the web: the catalogue, user histories, and the models.

A user is known by ratings: the dataset's, plus those given through the API (kept in the
:class:`~recommender.serve.store.RatingsStore`, which win over the dataset's for the same
movie). Lists come from the item-based model by fold-in (``model.score_history``), so a new
rating changes the next list at once, without retraining; predicted ratings come from the rating
model plus the user's shrunk mean residual on ratings it has not seen (for the ``baseline``
model that is exactly one ALS step of the user bias).
"""

from __future__ import annotations

import bisect
import itertools
import json
import re
import sys
import threading
import time
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import rapidfuzz
import scipy.sparse as sp

from recommender.data.releases import MovieLens
from recommender.core.errors import DataError
from recommender.models import Recommender, load_model, make_model, model_class
from recommender.serve.auth import Access, new_secret, secret_hash
from recommender.serve.store import REMOVED, RatingsStore, StoredRating

__all__ = ["ServeConfig", "Catalogue", "Service", "History", "ListCache", "NotFound", "Invalid",
           "load_models", "fold", "USER_SHRINK", "LIKED_FLOOR"]

USER_SHRINK = 15.0  # prior weight, in ratings, of a user offset of 0 (baseline's reg_user)
LIKED_FLOOR = 3.5  # a reason names a movie rated at least this and at least the user's mean
FUZZY_CUTOFF = 60.0  # the least similarity (0-100, rapidfuzz's ratio) of a close spelling
_DIGITS = re.compile(r"[0-9]{1,10}")
COUNTS_SECONDS = 10.0  # how old the user and rating counts of /health may be
_YEAR = re.compile(r"\s*\(\d{4}(?:[-–]\d{0,4})?\)\s*$")
_ARTICLE = re.compile(r"^(.*), (the|a|an|les|la|le|el|die|der|das|il)$", re.IGNORECASE)


@dataclass
class ServeConfig:
    """What ``recommender serve`` serves: a dataset, two models, a store.

    Attributes:
        dataset: a release name (looked up in ``data_dir``) or a MovieLens folder or zip.
        artifacts: a folder of saved models (``<folder>/<model>/model.json``); ``None`` looks
            in ``reports/artifacts`` and trains what is not there (or not for this dataset).
        list_model: ranks lists and similar movies; must fold in new users.
        rating_model: predicts ratings.
        database: a SQLite path or a ``postgresql://`` URL; ``None``:
            ``data/processed/serve-<dataset>.sqlite3``.
        list_cache_mb: memory for the recommendation lists kept per server process
            (:class:`ListCache`); 0 computes every list.
    """

    dataset: str = "ml-latest-small"
    data_dir: str | None = None
    artifacts: Path | None = None
    list_model: str = "ease-rated"  # fast to fit, the best u20 NDCG@10 of the fast models
    rating_model: str = "baseline"
    database: str | None = None
    list_cache_mb: float = 64.0
    progress: bool = True


class NotFound(LookupError):
    """An unknown user or movie (HTTP 404)."""


class Invalid(ValueError):
    """Input that is well-formed but cannot be served (HTTP 422)."""


def fold(text: str) -> str:
    """Text as search and matching compare it: case-folded, accents dropped ("Amélie" ->
    "amelie"), compatibility forms unified ("ﬁ" -> "fi")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _plain(title: str) -> str:
    """A title as people type it: no year, leading article restored, folded
    ("Matrix, The (1999)" -> "the matrix")."""
    bare = _YEAR.sub("", title).strip()
    article = _ARTICLE.match(bare)
    if article:
        bare = f"{article.group(2)} {article.group(1)}"
    return fold(bare)


def _names(title: str) -> tuple[str, ...]:
    """Every way a client may write a title: folded with its year, as people type it, and
    without its leading article ("matrix, the (1999)", "the matrix", "matrix")."""
    bare = _YEAR.sub("", title).strip()
    article = _ARTICLE.match(bare)
    plain = _plain(title)
    return (fold(title), plain) + ((fold(article.group(1)),) if article else ())


class Catalogue:
    """Movies by id, title search and matching, and popularity from the dataset's ratings."""

    def __init__(self, movies: pd.DataFrame, ratings: pd.DataFrame):
        movies = movies.sort_values("movieId").drop_duplicates("movieId")
        self.ids = movies["movieId"].to_numpy(np.int64)
        self.titles = movies["title"].astype(str).tolist()
        self.years = [None if pd.isna(y) else int(y) for y in movies["year"]]
        self.genres = [list(g) for g in movies["genres"]]
        self.genre_names = sorted({g for gs in self.genres for g in gs})
        self._count(ratings)
        self._index_titles()

    def _count(self, ratings: pd.DataFrame) -> None:
        """Each movie's number of ratings and mean rating, and the order by popularity."""
        index = np.searchsorted(self.ids, ratings["movieId"].to_numpy(np.int64))
        index = np.minimum(index, len(self.ids) - 1)
        known = self.ids[index] == ratings["movieId"].to_numpy(np.int64)
        self.counts = np.bincount(index[known], minlength=len(self.ids))
        sums = np.bincount(index[known], ratings["rating"].to_numpy(np.float64)[known],
                           minlength=len(self.ids))
        self.means = np.divide(sums, self.counts, out=np.zeros(len(self.ids)),
                               where=self.counts > 0)
        # Most rated first; ties by higher mean, then ascending id.
        self.by_popularity = np.lexsort((self.ids, -self.means, -self.counts))
        self.rank = np.empty(len(self.ids), np.int64)
        self.rank[self.by_popularity] = np.arange(len(self.ids))

    def _index_titles(self) -> None:
        """The indexes of :meth:`search` and :meth:`match`.

        Search: both forms of every title sorted (the titles a query starts are a range of
        it), and one text of them, a line per movie, most rated first (the titles that
        contain a query are found by ``str.find``, in C, from the most rated on). Match: every
        way of writing each title, to its movies, most rated first.
        """
        folded = [fold(t) for t in self.titles]
        plain = [_plain(t) for t in self.titles]
        names = sorted({(name, i) for i, pair in enumerate(zip(folded, plain)) for name in pair})
        self._names = [name for name, _ in names]
        self._name_rows = np.array([i for _, i in names], np.int64)
        lines = [f"{folded[i]}\t{plain[i]}" for i in self.by_popularity]
        self._text = "\n".join(lines)
        self._line_starts = list(itertools.accumulate((len(line) + 1 for line in lines[:-1]),
                                                      initial=0))
        self._by_plain: dict[str, list[int]] = {}
        for i in self.by_popularity:
            for name in _names(self.titles[i]):
                self._by_plain.setdefault(name, []).append(int(i))
        self._fuzzy_names = list(self._by_plain)  # most rated first: ties go to them

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, movie_id: int) -> int:
        """The row of ``movie_id``; :class:`NotFound` when the catalogue lacks it."""
        i = int(np.searchsorted(self.ids, movie_id))
        if i >= len(self.ids) or self.ids[i] != movie_id:
            raise NotFound(f"movie {movie_id} is not in the catalogue")
        return i

    def describe(self, i: int) -> dict:
        return {"movie_id": int(self.ids[i]), "title": self.titles[i], "year": self.years[i],
                "genres": self.genres[i]}

    def search(self, query: str, limit: int) -> list[int]:
        """Movies whose title contains ``query`` (case and accents folded, "The Matrix"
        finds "Matrix, The"): title prefixes first, then the most rated."""
        q = fold(query.strip())
        if not q:
            return [int(i) for i in self.by_popularity[:limit]]
        if "\t" in q or "\n" in q:  # no title holds them (and they separate the text)
            return []
        lo = bisect.bisect_left(self._names, q)
        hi = bisect.bisect_left(self._names, q + "\U0010ffff", lo)
        prefixed = np.unique(self._name_rows[lo:hi])
        hits = prefixed[np.argsort(self.rank[prefixed])][:limit].tolist()
        seen = set(prefixed.tolist())  # each line is one movie: no repeats beyond these
        at = self._text.find(q) if len(hits) < limit else -1
        while at >= 0:
            line = bisect.bisect_right(self._line_starts, at)  # the line after the hit's
            i = int(self.by_popularity[line - 1])
            if i not in seen:
                hits.append(i)
                if len(hits) == limit:
                    break
            if line == len(self._line_starts):
                break
            at = self._text.find(q, self._line_starts[line])
        return hits

    def match(self, text: str) -> tuple[int, str]:
        """The movie a client means by ``text``: :meth:`quick_match`, else the closest
        spelling (:meth:`closest`).

        Returns:
            ``(row, how)`` with ``how`` one of ``id``, ``exact``, ``folded``, ``search``,
            ``fuzzy``.
        """
        return self.quick_match(text) or self.closest(text)

    def quick_match(self, text: str) -> tuple[int, str] | None:
        """A movie id, the exact title, the title folded or without its year (the most rated
        of equals), or the first title :meth:`search` finds (so a prediction names the
        movie the search box offers first); ``None`` when none of these matches (then
        :meth:`closest`). Microseconds: sorted names and one ``str.find``."""
        text = text.strip()
        if not fold(text):
            raise NotFound("an empty title matches no movie")
        if _DIGITS.fullmatch(text):
            return self.index(int(text)), "id"
        if text in self.titles:
            return self.titles.index(text), "exact"
        for key in (fold(text), _plain(text)):
            if key in self._by_plain:
                return self._by_plain[key][0], "folded"
        found = self.search(text, 1)
        return (found[0], "search") if found else None

    def closest(self, text: str) -> tuple[int, str]:
        """The title closest to ``text`` (rapidfuzz's ratio, at least
        :data:`FUZZY_CUTOFF`), the most rated of equals; :class:`NotFound` if none is.
        About a millisecond of CPU on ml-latest-small, with the interpreter let go
        (``cdist``): call it in a thread."""
        scores = rapidfuzz.process.cdist([_plain(text.strip())], self._fuzzy_names,
                                         processor=None, scorer=rapidfuzz.fuzz.ratio,
                                         score_cutoff=FUZZY_CUTOFF, workers=1)[0]
        best = int(np.argmax(scores))  # the first of equals: the most rated
        if scores[best] >= FUZZY_CUTOFF:
            return self._by_plain[self._fuzzy_names[best]][0], "fuzzy"
        raise NotFound(f"no movie title matches {text.strip()!r}")

    def popular(self, genre: str | None, limit: int) -> list[int]:
        """The most rated movies, of one genre if given (case-insensitive)."""
        if genre is None:
            return [int(i) for i in self.by_popularity[:limit]]
        wanted = {g.casefold(): g for g in self.genre_names}.get(genre.strip().casefold())
        if wanted is None:
            raise NotFound(f"unknown genre {genre!r}; known: {', '.join(self.genre_names)}")
        out = [int(i) for i in self.by_popularity if wanted in self.genres[i]]
        return out[:limit]


class _Histories:
    """The dataset's ratings grouped by user (sorted arrays; no per-user objects)."""

    def __init__(self, ratings: pd.DataFrame):
        r = ratings.sort_values(["userId", "movieId"], kind="stable")
        users = r["userId"].to_numpy(np.int64)
        self.user_ids, starts = np.unique(users, return_index=True)
        self.indptr = np.append(starts, len(users))
        self.movies = r["movieId"].to_numpy(np.int64)
        self.ratings = r["rating"].to_numpy(np.float32)

    def __contains__(self, user_id: int) -> bool:
        i = np.searchsorted(self.user_ids, user_id)
        return bool(i < len(self.user_ids) and self.user_ids[i] == user_id)

    def get(self, user_id: int) -> tuple[np.ndarray, np.ndarray]:
        if user_id not in self:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        i = int(np.searchsorted(self.user_ids, user_id))
        lo, hi = self.indptr[i], self.indptr[i + 1]
        return self.movies[lo:hi], self.ratings[lo:hi]


class ListCache:
    """The recommendation lists served lately, as JSON bodies, the least recently used
    dropped once the bodies pass ``max_bytes``.

    An entry is keyed by ``(user, top_n)`` and remembers the user's API ratings it was
    computed from; it answers again only while the store holds exactly those ratings. The
    store is read at every request, so a rating written through any server process sharing
    it changes the next list at once; the dataset and the models do not change while serving.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, int], tuple[tuple, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int], state: tuple) -> bytes | None:
        """The body kept for ``key`` if it was computed from ``state``, else ``None``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != state:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: tuple[int, int], state: tuple, body: bytes) -> None:
        if len(body) > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            self._bytes += len(body) - (len(old[1]) if old else 0)
            self._entries[key] = (state, body)
            while self._bytes > self.max_bytes:
                self._bytes -= len(self._entries.popitem(last=False)[1][1])


@dataclass
class History:
    """One user's ratings: the dataset's overlaid with the API's (``from_api`` marks those)."""

    user_id: int
    movies: np.ndarray
    ratings: np.ndarray
    from_api: np.ndarray


def load_models(names: list[str], data: MovieLens, artifacts: Path | None, strict: bool,
                progress: bool = True) -> dict[str, tuple[Recommender, str]]:
    """Each model from ``artifacts/<name>`` when saved there for this catalogue, else fitted
    on the dataset's ratings, with a progress bar.

    Args:
        strict: the artifacts folder was asked for by name: a model saved there for another
            dataset is an error rather than a reason to train.

    Returns:
        ``{name: (model, where it came from)}``.
    """
    from recommender.core.progress import progress_bar

    catalogue = data.movies["movieId"].to_numpy()
    out: dict[str, tuple[Recommender, str]] = {}
    bar = progress_bar(list(dict.fromkeys(names)), enabled=progress, desc="models",
                       unit="model", file=sys.stderr)
    for name in bar:
        path = artifacts / name if artifacts else None
        model = None
        if path is not None and (path / "model.json").is_file():
            bar.set_postfix_str(f"loading {name}")
            saved = load_model(path)
            foreign = np.setdiff1d(saved.items.ids, catalogue)
            if saved.name != name or len(foreign):
                if strict:
                    raise DataError(f"{path}: this {saved.name} artifact knows {len(foreign)} "
                                     f"movies that {data.name} lacks; it was trained on "
                                     f"another dataset")
            else:
                model, source = saved, f"loaded from {path.name} artifact"
        if model is None:
            bar.set_postfix_str(f"fitting {name}")
            model = make_model(name).fit(data.ratings, movies=data.movies, tags=data.tags)
            source = f"fitted on {data.name} at start-up"
        out[name] = (model, source)
    return out


def _check_roles(lists: type[Recommender], ratings: type[Recommender]) -> None:
    """Lists need a model that folds in new users; predictions need a rating model."""
    if not lists.folds_in:
        raise Invalid(f"{lists.name} cannot score users outside its training data; lists need "
                      f"a model that folds in (ease-rated, ease, popularity, baseline)")
    if not ratings.predicts_ratings:
        raise Invalid(f"{ratings.name} does not predict ratings; choose a rating model "
                      f"(baseline, regression, ...)")


class Service:
    """Answers every question of the API from memory (models, catalogue) and the store."""

    def __init__(self, data: MovieLens, list_model: Recommender, rating_model: Recommender,
                 store: RatingsStore, sources: dict[str, str] | None = None,
                 list_cache_mb: float = 64.0):
        _check_roles(type(list_model), type(rating_model))
        self.dataset = data.name
        self.catalogue = Catalogue(data.movies, data.ratings)
        self.histories = _Histories(data.ratings)
        self.list_model, self.rating_model = list_model, rating_model
        self.store = store
        self.sources = sources or {}
        self.n_ratings = len(data.ratings)
        # The catalogue row of each train column of the list model, and whether the
        # catalogue can describe it at all.
        self._row_of_col = np.minimum(np.searchsorted(self.catalogue.ids, list_model.items.ids),
                                      len(self.catalogue) - 1)
        self._undescribable = np.flatnonzero(self.catalogue.ids[self._row_of_col]
                                             != list_model.items.ids)
        self._popularity = self.catalogue.counts[self._row_of_col].astype(np.float32)
        self.lists = ListCache(int(list_cache_mb * 2**20))
        self._counts_lock = threading.Lock()
        self._counted: tuple[float, dict[str, int]] = (-np.inf, {})

    @classmethod
    def from_config(cls, config: ServeConfig) -> "Service":
        """Load the dataset, load or fit the two models, open the store."""
        from recommender.core.config import PROCESSED_DIR, REPORTS_DIR
        from recommender.data.releases import load_movielens

        _check_roles(model_class(config.list_model), model_class(config.rating_model))
        data = load_movielens(config.dataset, config.data_dir)
        artifacts = config.artifacts or REPORTS_DIR / "artifacts"
        models = load_models([config.list_model, config.rating_model], data, artifacts,
                             strict=config.artifacts is not None, progress=config.progress)
        database = config.database or PROCESSED_DIR / f"serve-{data.name}.sqlite3"
        store = RatingsStore(database, first_user_id=int(data.ratings["userId"].max()))
        return cls(data, models[config.list_model][0], models[config.rating_model][0], store,
                   sources={name: source for name, (_, source) in models.items()},
                   list_cache_mb=config.list_cache_mb)

    # -- users -----------------------------------------------------------------------------

    def is_dataset_user(self, user_id: int) -> bool:
        return user_id in self.histories

    def check_access(self, access: Access, user_id: int, token: str | None, write: bool
                     ) -> None:
        """:meth:`Access.check` for ``user_id``, reading the store only when it must."""
        access.check(user_id, token, write, self.is_dataset_user(user_id),
                     self.store.secret_hash)

    def stored(self, user_id: int) -> list[StoredRating]:
        """The user's API ratings, read from the store (blocking: call it off the event
        loop); :class:`NotFound` for a user neither in the dataset nor in the store."""
        stored = self.store.ratings(user_id)
        if not stored and user_id not in self.histories and not self.store.has_user(user_id):
            raise NotFound(f"user {user_id} does not exist")
        return stored

    def stored_of(self, user_ids: list[int]) -> dict[int, list[StoredRating] | NotFound]:
        """:meth:`stored` of many users in one round trip to the store (blocking), a
        :class:`NotFound` in place of the ratings of a user who does not exist."""
        found, created = self.store.ratings_of(user_ids)
        return {u: stored if stored or u in created or u in self.histories
                else NotFound(f"user {u} does not exist") for u, stored in found.items()}

    def history(self, user_id: int, stored: list[StoredRating] | None = None) -> History:
        """The user's ratings, the API's (``stored``, read from the store when not given)
        winning over the dataset's, removed ones left out; :class:`NotFound` for an
        unknown user."""
        if stored is None:
            stored = self.stored(user_id)
        movies, ratings = self.histories.get(user_id)
        if not stored:
            return History(user_id, movies, ratings, np.zeros(len(movies), bool))
        api = {r.movie_id: r.rating for r in stored if r.rating != REMOVED}
        keep = ~np.isin(movies, [r.movie_id for r in stored])
        movies = np.concatenate([movies[keep], np.fromiter(api, np.int64, len(api))])
        ratings = np.concatenate([ratings[keep], np.fromiter(api.values(), np.float32,
                                                             len(api))])
        from_api = np.concatenate([np.zeros(keep.sum(), bool), np.ones(len(api), bool)])
        order = np.argsort(movies, kind="stable")
        return History(user_id, movies[order], ratings[order], from_api[order])

    def user_ratings(self, user_id: int, stored: list[StoredRating] | None = None) -> dict:
        """The body of ``GET /users/{user_id}/ratings``: every rating of the user, with titles
        and whether it came from the dataset or the API (``stored``: the user's API ratings,
        read from the store when not given)."""
        history = self.history(user_id, stored)
        c = self.catalogue
        rows = np.minimum(np.searchsorted(c.ids, history.movies), len(c) - 1)
        ratings = [{"movie_id": int(m), "title": c.titles[i] if c.ids[i] == m else "",
                    "rating": float(r), "source": "api" if api else "dataset"}
                   for m, i, r, api in zip(history.movies, rows, history.ratings,
                                           history.from_api)]
        return {"user_id": user_id, "count": len(ratings), "ratings": ratings}

    def create_user(self, name: str | None, ratings: dict[int, float]) -> tuple[int, str]:
        """A new user with its first ratings, in one transaction; returns the id and the
        user's secret (the store keeps only its hash)."""
        self._check_movies(ratings)
        secret = new_secret()
        return self.store.create_user(name, secret_hash(secret), ratings), secret

    def rate(self, user_id: int, ratings: dict[int, float]) -> None:
        """Add or change ratings of an existing user (one transaction)."""
        self.stored(user_id)
        self._check_movies(ratings)
        self.store.put_ratings(user_id, ratings)

    def unrate(self, user_id: int, movie_id: int) -> None:
        """Remove the user's rating of ``movie_id``: the API's is deleted, the dataset's
        hidden (:data:`~recommender.serve.store.REMOVED`); :class:`NotFound` when the user
        has not rated it."""
        history = self.history(user_id)
        if movie_id not in history.movies:
            raise NotFound(f"user {user_id} has not rated movie {movie_id}")
        dataset_movies, _ = self.histories.get(user_id)
        if movie_id in dataset_movies:
            self.store.put_ratings(user_id, {movie_id: REMOVED})
        else:
            self.store.delete_ratings(user_id, [movie_id])

    def delete_user(self, user_id: int) -> None:
        """Forget a user created through the API, with their ratings."""
        if self.is_dataset_user(user_id):
            raise Invalid(f"user {user_id} comes with the dataset and cannot be deleted")
        if not self.store.delete_user(user_id):
            raise NotFound(f"user {user_id} does not exist")

    def _check_movies(self, ratings: dict[int, float]) -> None:
        for movie_id in ratings:
            self.catalogue.index(movie_id)

    # -- answers ---------------------------------------------------------------------------

    def predicted(self, history: History, movie_ids: np.ndarray) -> np.ndarray:
        """Ratings the user would give ``movie_ids``: the rating model's, shifted by the
        user's mean residual on the ratings it did not train on, shrunk towards 0 by
        :data:`USER_SHRINK` ratings."""
        model, uid = self.rating_model, history.user_id
        movie_ids = np.asarray(movie_ids, np.int64)
        row = model.users.encode([uid], unknown="missing")[0]
        unseen = np.ones(len(history.movies), bool)
        if row >= 0:
            seen = model.seen.indices[model.seen.indptr[row]:model.seen.indptr[row + 1]]
            unseen = ~np.isin(model.items.encode(history.movies, unknown="missing"), seen)
        offset = 0.0
        if unseen.any():
            rated = history.movies[unseen]
            residual = history.ratings[unseen] - model.predict(np.full(len(rated), uid), rated)
            offset = float(residual.sum()) / (USER_SHRINK + len(rated))
        base = model.predict(np.full(len(movie_ids), uid), movie_ids)
        return np.clip(base + offset, *model.rating_scale)

    def _ranked(self, scores: np.ndarray, exclude: np.ndarray, n: int) -> np.ndarray:
        """Train-catalogue columns of the ``n`` best finite scores outside ``exclude``
        (ties: ascending movie id), without sorting the whole catalogue. Overwrites the
        scores of excluded movies, and of movies the catalogue cannot describe, with -inf."""
        scores[self._undescribable] = -np.inf
        scores[exclude[exclude >= 0]] = -np.inf
        n = min(n, len(scores))
        kth = np.partition(scores, len(scores) - n)[len(scores) - n]
        candidates = np.flatnonzero(scores >= kth)  # ascending columns = ascending ids
        order = candidates[np.argsort(-scores[candidates], kind="stable")[:n]]
        return order[np.isfinite(scores[order])]

    def _encoded(self, history: History) -> sp.csr_matrix:
        """The history as a 1 x train-movies ratings row of the list model (movies it does
        not know dropped)."""
        cols = self.list_model.items.encode(history.movies, unknown="missing")
        known = cols >= 0
        return sp.csr_matrix((history.ratings[known], cols[known], [0, int(known.sum())]),
                             shape=(1, self.list_model.n_items))

    def top(self, history: History, n: int) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
        """The item-based part of a recommendation: the user's ratings row over the list
        model's train movies, the model's scores for it, and the ``n`` best unrated columns.
        A user the model knows nothing about gets the most rated movies (``row.nnz == 0``)."""
        row = self._encoded(history)
        if row.nnz == 0:
            scores = self._popularity.copy()
        else:  # score_history, not fold_in: the row is already encoded (a DataFrame would
            # cost a third of a request); its answer is a new array, which _ranked may write
            scores = self.list_model.score_history(row, user_ids=[history.user_id])[0]
        return row, scores, self._ranked(scores, row.indices, n)

    def recommend(self, user_id: int, n: int, stored: list[StoredRating] | None = None
                  ) -> list[dict]:
        """The user's top ``n`` unrated movies with predicted ratings and a reason
        (``stored``: the user's API ratings when already read)."""
        history = self.history(user_id, stored)
        row, scores, top = self.top(history, n)
        predicted = self.predicted(history, self.list_model.items.decode(top)).tolist()
        return [{**self.catalogue.describe(self._row_of_col[col]), "score": float(scores[col]),
                 "predicted_rating": round(rating, 2), "reason": reason,
                 "because_movie_id": because_id}
                for col, rating, (reason, because_id) in zip(
                    top.tolist(), predicted, self._reasons(history, row, top))]

    def _reasons(self, history: History, row: sp.csr_matrix, top: np.ndarray
                 ) -> list[tuple[str, int | None]]:
        """Why each column of ``top`` is on the list, and the movie id behind it: the liked
        movie (rated at least the user's mean and :data:`LIKED_FLOOR`) that contributed
        most to its score (:meth:`Recommender.explain` over the liked movies only) with the
        user's stars, else the ranking itself."""
        model = self.list_model
        default = "among the most rated movies" if row.nnz == 0 else f"ranked by {model.name}"
        liked = row.copy()
        if row.nnz:
            liked.data[(row.data < row.data.mean()) | (row.data < LIKED_FLOOR)] = 0
            liked.eliminate_zeros()
        because = model.explain(liked, top) if liked.nnz else np.full(len(top), -1, np.int64)
        because_ids = model.items.ids[np.maximum(because, 0)]
        rated_as = np.zeros(len(top), np.float32)
        rated_as[because >= 0] = history.ratings[np.searchsorted(history.movies,
                                                                 because_ids[because >= 0])]
        titles = self.catalogue.titles
        return [(f"because you rated {titles[self._row_of_col[source]]} {stars:g}/5", because_id)
                if source >= 0 else (default, None)
                for source, because_id, stars in zip(because.tolist(), because_ids.tolist(),
                                                     rated_as.tolist())]

    def recommendations(self, user_id: int, n: int, stored: list[StoredRating] | None = None
                        ) -> tuple[bytes, bool]:
        """The JSON body of ``GET /recommend/{user_id}?top_n=n`` (the shape of the multitask
        two-tower origin system's answer, plus the items of :meth:`recommend`), and whether
        :attr:`lists` had it.

        The user's API ratings (``stored``, read from the store when not given) are read for
        every request, so the cache never answers with a list that a newer rating changed.
        """
        if stored is None:
            stored = self.stored(user_id)
        state = tuple((r.movie_id, r.rating) for r in stored)
        body = self.lists.get((user_id, n), state)
        if body is not None:
            return body, True
        items = self.recommend(user_id, n, stored)
        body = json.dumps({"user": user_id, "top_n": n, "model": self.list_model.name,
                           "recommendations": [item["title"] for item in items],
                           "items": items},
                          ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        self.lists.put((user_id, n), state, body)
        return body, False

    def similar(self, movie_id: int, n: int, exclude: History | None = None) -> list[dict]:
        """Movies the list model ranks first for someone who rated only ``movie_id`` (5/5):
        for EASE, the movie's row of the item-item matrix; without the movies ``exclude``
        (a user's history) rated."""
        self.catalogue.index(movie_id)
        model = self.list_model
        col = model.items.encode([movie_id], unknown="missing")
        if col[0] < 0:
            raise NotFound(f"movie {movie_id} has no ratings in {model.name}'s training data, "
                           f"so no similar movies")
        row = self._encoded(History(0, np.array([movie_id]), np.array([5.0], np.float32),
                                    np.zeros(1, bool)))
        scores = self.list_model.score_history(row, user_ids=[0])[0]
        rated = row.indices if exclude is None else np.union1d(
            row.indices, model.items.encode(exclude.movies, unknown="missing"))
        top = self._ranked(scores, rated, n)
        return [{**self.catalogue.describe(self.catalogue.index(int(m))),
                 "score": float(scores[c])}
                for c, m in zip(top, model.items.decode(top))]

    def popular(self, genre: str | None, n: int) -> list[dict]:
        c = self.catalogue
        return [{**c.describe(i), "ratings": int(c.counts[i]),
                 "mean_rating": round(float(c.means[i]), 3)} for i in c.popular(genre, n)]

    def predict(self, user_id: int, movie: str | tuple[int, str],
                stored: list[StoredRating] | None = None) -> dict:
        """The body of ``GET /predict/{user_id}/{movie}``: ``movie`` as a client wrote it, or
        as :meth:`Catalogue.match` found it (``(row, how)``); ``stored`` as for
        :meth:`history`."""
        row, how = self.catalogue.match(movie) if isinstance(movie, str) else movie
        history = self.history(user_id, stored)
        movie_id = int(self.catalogue.ids[row])
        rated = np.flatnonzero(history.movies == movie_id)
        return {"user": user_id, "movie": self.catalogue.titles[row], "movie_id": movie_id,
                "matched_by": how,
                "predicted_rating": round(float(self.predicted(history, [movie_id])[0]), 2),
                "your_rating": float(history.ratings[rated[0]]) if len(rated) else None,
                "model": self.rating_model.name}

    def counts(self) -> dict[str, int]:
        """The store's counts, read at most every :data:`COUNTS_SECONDS` (two table scans:
        no client can make the server run them at will)."""
        with self._counts_lock:
            if time.monotonic() - self._counted[0] > COUNTS_SECONDS:
                self._counted = (time.monotonic(), self.store.counts())
            return self._counted[1]

    def health(self) -> dict:
        """The body of ``GET /health`` (blocking: may read the store's counts)."""
        from importlib.metadata import version

        from recommender.models.artifacts import FORMAT_VERSION

        def model_info(model: Recommender) -> dict:
            return {"name": model.name, "source": self.sources.get(model.name, ""),
                    "fit_seconds": round(float(model.meta.get("fit_seconds", 0.0)), 3),
                    "movies": model.n_items, "users": len(model.users)}

        store = self.counts()
        return {"status": "ok", "model_loaded": True, "dataset": self.dataset,
                "total_movies": len(self.catalogue),
                "total_users": len(self.histories.user_ids) + store["users"],
                "total_ratings": self.n_ratings + store["ratings"],
                "models": {"list": model_info(self.list_model),
                           "rating": model_info(self.rating_model)},
                "store": {"backend": self.store.dialect, **store},
                "genres": self.catalogue.genre_names,
                "dataset_user_ids": [int(self.histories.user_ids.min()),
                                     int(self.histories.user_ids.max())]
                if len(self.histories.user_ids) else None,
                "versions": {"recommender": version("recommender"),
                             "artifact_format": FORMAT_VERSION,
                             "fastapi": version("fastapi"), "numpy": np.__version__}}
