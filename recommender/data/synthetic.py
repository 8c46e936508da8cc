"""Synthetic MovieLens: the shape of the real releases, with a planted model to recover.

Movie popularity and user activity follow power laws (a few blockbusters and heavy raters, a
long tail of both), each movie has one to three genres, and each rating is drawn from a known
low-rank model whose movie factors are built from genre factors. Tests use the planted truth
(``MovieLens.truth``) to check that a model learns it; benchmarks use the generator to reach
MovieLens-25M scale (25 million ratings in well under a minute) without a download.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pathlib import Path

from recommender.core.errors import DataError
from recommender.data.releases import MovieLens

__all__ = ["GENRES", "make_synthetic", "planted_clusters", "write_release", "LAYOUTS"]

# The three GroupLens layouts :func:`write_release` writes (what ``load_movielens`` reads).
LAYOUTS = ("csv", "dat", "100k")
_ROWS_PER_WRITE = 1 << 21  # rows formatted at a time, so text never holds a whole release

GENRES = ("Drama", "Comedy", "Thriller", "Action", "Romance", "Adventure", "Crime", "Sci-Fi",
          "Horror", "Fantasy", "Children", "Animation", "Mystery", "Documentary", "War",
          "Musical", "Western", "Film-Noir")  # MovieLens's genres, most frequent first
_FIRST, _LAST = 820_454_400, 1_696_118_400  # 1996-01-01 .. 2023-10-01, Unix seconds
_YEAR_SECONDS = 31_557_600
_CHUNK = 1 << 21  # pairs scored at a time, so that factor rows never all sit in memory


def make_synthetic(n_users: int = 1_000, n_movies: int = 2_000, n_ratings: int = 100_000,
                   rank: int = 8, n_genres: int = 18, noise: float = 0.5,
                   n_segments: int = 16, taste_selection: float = 1.5,
                   seed: int = 0) -> MovieLens:
    """Generate a MovieLens-shaped ratings set drawn from a planted low-rank model.

    The expected rating of user ``u`` for movie ``m`` is ``mu + b_u + b_m + p_u . q_m`` where
    ``q_m`` is mostly the mean of its genres' factors (so genres explain tastes) and ``mu``
    puts the mean observed rating at 3.55, as in MovieLens; the observed
    rating adds Gaussian noise and rounds to the half-star scale 0.5-5. Each user belongs to
    one of ``n_segments`` taste segments (user factors scatter around the segment's centroid),
    and picks movies without repetition in proportion to Zipf popularity times
    ``exp(taste_selection * centroid . q_m)``: what people watch follows their taste, so top-N
    models have a planted structure to find beyond popularity. Users rate at least
    ``min(20, n_ratings // n_users)`` movies with Pareto-distributed activity.

    Args:
        n_users: users (ids ``1..n_users``).
        n_movies: movies (ids ``1..n_movies``; popularity is shuffled over ids).
        n_ratings: ratings, exactly; at most half the users x movies matrix.
        rank: dimension of the planted user and movie factors.
        n_genres: genres (the MovieLens names first, then ``Genre 19``...).
        noise: standard deviation of the rating noise, in stars.
        n_segments: taste segments users are drawn from.
        taste_selection: how strongly taste (vs popularity alone) decides what users watch.
        seed: the one source of randomness; equal seeds give equal data.

    Returns:
        A :class:`MovieLens` named ``synthetic`` whose ``truth`` holds the planted model:
        ``global_mean``, ``user_bias``, ``movie_bias``, ``user_factors``, ``movie_factors``,
        ``genre_factors``, ``genre_matrix``, ``segment`` (arrays indexed by id - 1), ``genres``,
        ``noise`` and ``expected``, a function ``(user_ids, movie_ids) -> expected ratings``.
    """
    if min(n_users, n_movies, n_ratings, rank, n_genres) < 1 or noise < 0:
        raise DataError("make_synthetic: sizes, rank and n_genres must be >= 1, noise >= 0")
    cap = max(1, n_movies // 2)
    if n_ratings > n_users * cap:
        raise DataError(f"make_synthetic: {n_ratings:,} ratings do not fit {n_users:,} users "
                        f"rating at most {cap:,} of {n_movies:,} movies each")
    rng = np.random.default_rng(seed)

    popularity = 1.0 / (rng.permutation(n_movies) + 1.0)  # Zipf, exponent 1, shuffled over ids
    activity = rng.pareto(1.5, n_users) + 1.0
    counts = _allocate(n_ratings, activity, min(20, n_ratings // n_users), cap, rng)

    names = list(GENRES[:n_genres]) + [f"Genre {g + 1}" for g in range(len(GENRES), n_genres)]
    genre_matrix, genre_lists = _genres(n_movies, names, rng)
    genre_factors = rng.normal(0.0, 1.0, (n_genres, rank))
    per_genre = genre_matrix / np.sqrt(genre_matrix.sum(1, keepdims=True))
    movie_factors = (np.sqrt(0.8) * per_genre @ genre_factors
                     + rng.normal(0.0, np.sqrt(0.2), (n_movies, rank))).astype(np.float32)
    centroids = rng.normal(0.0, 1.0 / np.sqrt(rank), (n_segments, rank))
    segment = rng.integers(0, n_segments, n_users)
    user_factors = (0.5 * centroids[segment]
                    + rng.normal(0.0, 0.4 / np.sqrt(rank), (n_users, rank))).astype(np.float32)
    affinity = taste_selection * centroids @ movie_factors.T  # segments x movies
    p = popularity[None, :] * np.exp(affinity - affinity.max(axis=1, keepdims=True))
    # A little popularity-only mass keeps every movie reachable, so heavy raters can always
    # find enough distinct movies.
    p = 0.9 * p / p.sum(axis=1, keepdims=True) + 0.1 * popularity / popularity.sum()
    users, movies = _sample_pairs(counts, p, segment, rng)
    log_pop = np.log(popularity)
    movie_bias = (rng.normal(0.0, 0.4, n_movies)  # popular movies are rated a little higher
                  + 0.2 * (log_pop - log_pop.mean()) / log_pop.std()).astype(np.float32)
    user_bias = rng.normal(0.0, 0.35, n_users).astype(np.float32)
    mu = 0.0

    def expected(user_ids, movie_ids) -> np.ndarray:
        """Noiseless expected ratings for raw ``(userId, movieId)`` pairs (before rounding)."""
        u = np.asarray(user_ids, np.int64) - 1
        m = np.asarray(movie_ids, np.int64) - 1
        out = np.empty(len(u), np.float32)
        for s in range(0, len(u), _CHUNK):
            uu, mm = u[s:s + _CHUNK], m[s:s + _CHUNK]
            out[s:s + _CHUNK] = (mu + user_bias[uu] + movie_bias[mm]
                                 + np.einsum("ij,ij->i", user_factors[uu], movie_factors[mm]))
        return out

    rating = expected(users + 1, movies + 1)
    mu = 3.55 - float(rating.mean())  # MovieLens's mean rating over the pairs actually drawn
    rating += mu
    rating += rng.normal(0.0, noise, len(rating)).astype(np.float32)
    rating = np.clip(np.round(rating * 2.0) / 2.0, 0.5, 5.0).astype(np.float32)

    start = rng.integers(_FIRST, _LAST - 30 * 86_400, n_users)
    span = np.minimum(rng.exponential(_YEAR_SECONDS, n_users), _LAST - start)
    timestamp = start[users] + (rng.random(len(users)) * span[users]).astype(np.int64)
    ratings = pd.DataFrame({"userId": (users + 1).astype(np.int32),
                            "movieId": (movies + 1).astype(np.int32),
                            "rating": rating, "timestamp": timestamp.astype(np.int64)})

    year = np.clip(2023 - rng.exponential(15.0, n_movies).astype(np.int64), 1915, 2023)
    movie_ids = np.arange(1, n_movies + 1, dtype=np.int32)
    movies_table = pd.DataFrame({
        "movieId": movie_ids,
        "title": [f"Synthetic Movie {i} ({y})" for i, y in zip(movie_ids, year)],
        "year": pd.array(year, dtype="Int64"),
        "genres": genre_lists,
    })
    tagged = rng.choice(len(ratings), min(len(ratings) // 100, 5_000), replace=False)
    tags = pd.DataFrame({
        "userId": ratings["userId"].to_numpy()[tagged],
        "movieId": ratings["movieId"].to_numpy()[tagged],
        "tag": [genre_lists[m - 1][0].lower() for m in ratings["movieId"].to_numpy()[tagged]],
        "timestamp": ratings["timestamp"].to_numpy()[tagged],
    })
    truth = {"global_mean": mu, "user_bias": user_bias, "movie_bias": movie_bias,
             "user_factors": user_factors, "movie_factors": movie_factors,
             "genre_factors": genre_factors, "genre_matrix": genre_matrix, "segment": segment,
             "genres": names,
             "noise": noise, "expected": expected}
    return MovieLens("synthetic", ratings, movies_table, tags, None, None,
                     source=f"make_synthetic(seed={seed})", layout="synthetic", truth=truth)


def planted_clusters(n_clusters: int = 4, movies_per_cluster: int = 50, n_users: int = 400,
                     per_user: int = 20, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Taste groups that never mix: the cleanest stage on which to watch folding.

    Each movie belongs to one cluster (its only genre, ``Genre 0``...); each user watches
    ``per_user`` movies of one cluster (users take clusters in turn), drawn with Zipf
    popularity inside the cluster so that popularity alone ranks poorly. Every rating is 4.0.

    Returns:
        ``(ratings, movies)`` with MovieLens columns (``userId, movieId, rating``;
        ``movieId, genres``).
    """
    if per_user > movies_per_cluster:
        raise ValueError(f"per_user ({per_user}) cannot exceed movies_per_cluster "
                         f"({movies_per_cluster})")
    rng = np.random.default_rng(seed)
    zipf = 1.0 / np.arange(1, movies_per_cluster + 1)
    picks = np.stack([rng.choice(movies_per_cluster, per_user, replace=False,
                                 p=zipf / zipf.sum()) for _ in range(n_users)])
    cluster = np.arange(n_users) % n_clusters
    ratings = pd.DataFrame({"userId": np.repeat(np.arange(1, n_users + 1), per_user),
                            "movieId": (cluster[:, None] * movies_per_cluster + picks + 1).ravel(),
                            "rating": np.float32(4.0)})
    n_movies = n_clusters * movies_per_cluster
    movies = pd.DataFrame({"movieId": np.arange(1, n_movies + 1),
                           "genres": [[f"Genre {m // movies_per_cluster}"]
                                      for m in range(n_movies)]})
    return ratings, movies


def _allocate(total: int, weights: np.ndarray, low: int, cap: int,
              rng: np.random.Generator) -> np.ndarray:
    """Split ``total`` into per-user counts in ``[low, cap]``, proportional to ``weights``.

    Counts above ``cap`` are cut and their excess shared again among the users below it.
    """
    counts = np.full(len(weights), low, np.int64)
    extra = total - counts.sum()
    open_ = np.ones(len(weights), bool)
    while extra > 0:
        p = np.where(open_, weights, 0.0)
        counts += rng.multinomial(extra, p / p.sum())
        excess = np.maximum(counts - cap, 0)
        counts -= excess
        open_ &= counts < cap
        extra = int(excess.sum())
    return counts


def _sample_pairs(counts: np.ndarray, p: np.ndarray, segment: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """For each user ``u``, ``counts[u]`` distinct movies drawn in proportion to
    ``p[segment[u]]`` (one probability row per taste segment).

    Draws with replacement, deduplicates all (user, movie) pairs at once as one sorted int64
    key, and keeps each user's first ``counts[u]`` distinct movies in draw order (which is
    exactly weighted sampling without replacement). Users left short are drawn for again with
    a doubling oversampling factor; the few still short after that (heavy raters of a small,
    skewed catalogue) are drawn one by one with ``rng.choice(replace=False)``, so memory
    never grows with the skew.

    Returns:
        ``(user_index, movie_index)``, sorted by user then movie.
    """
    n_movies = p.shape[1]
    cdf = np.cumsum(p, axis=1)
    need = counts.copy()
    done: list[np.ndarray] = []
    partial = np.empty(0, np.int64)  # distinct pairs so far of users still short
    factor = 1.15
    while need.any():
        active = np.flatnonzero(need)
        if factor > 10:
            done.append(_draw_each(active, counts, p, segment, rng))
            break
        draws = np.ceil(need[active] * factor).astype(np.int64) + 2
        user = np.repeat(active.astype(np.int64), draws)
        movie = np.empty(len(user), np.int64)
        draw = rng.random(len(user))
        user_segment = segment[user]
        for seg in range(len(cdf)):
            rows = np.flatnonzero(user_segment == seg)
            movie[rows] = np.searchsorted(cdf[seg], draw[rows] * cdf[seg, -1], side="right")
        del draw, user_segment
        keys = np.concatenate([partial, user * n_movies + np.minimum(movie, n_movies - 1)])
        del user, movie
        unique, first = np.unique(keys, return_index=True)
        del keys
        order = np.argsort(unique // n_movies * len(first) + first)  # by user, then draw
        unique = unique[order]
        del first, order
        owner = unique // n_movies
        start = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=len(counts)))])
        keep = np.arange(len(unique)) - start[owner] < counts[owner]
        unique, owner = unique[keep], owner[keep]
        need = np.zeros_like(counts)  # users completed in earlier rounds stay at zero
        need[active] = (counts - np.bincount(owner, minlength=len(counts)))[active]
        complete = need[owner] == 0
        done.append(unique[complete])
        partial = unique[~complete]
        factor *= 2.0
    keys = np.sort(np.concatenate(done))
    return keys // n_movies, keys % n_movies


def _draw_each(users: np.ndarray, counts: np.ndarray, p: np.ndarray, segment: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """Pair keys of ``counts[u]`` distinct movies for each of ``users``, drawn exactly."""
    n_movies = p.shape[1]
    return np.concatenate([
        u * n_movies + rng.choice(n_movies, counts[u], replace=False, p=p[segment[u]])
        for u in users.tolist()]).astype(np.int64)


def _genres(n_movies: int, names: list[str],
            rng: np.random.Generator) -> tuple[np.ndarray, list[list[str]]]:
    """One to three distinct genres per movie, frequent genres more likely (Gumbel top-k)."""
    n_genres = len(names)
    weight = np.log(1.0 / np.arange(1, n_genres + 1) ** 0.7)
    top = np.argsort(-(weight + rng.gumbel(size=(n_movies, n_genres))), axis=1)[:, :3]
    k = rng.integers(1, min(3, n_genres) + 1, n_movies)
    matrix = np.zeros((n_movies, n_genres), np.float64)
    for j in range(min(3, n_genres)):
        rows = np.flatnonzero(k > j)
        matrix[rows, top[rows, j]] = 1.0
    lists = [[names[g] for g in row[:n]] for row, n in zip(top.tolist(), k.tolist())]
    return matrix, lists


def write_release(data: MovieLens, folder: str | Path, layout: str = "csv") -> Path:
    """Write ``data`` as a MovieLens release folder in one of the GroupLens layouts, so that
    what reads a downloaded release (``load_movielens``, ``recommender run``) reads it.

    - ``csv`` (ml-20m, ml-25m, ml-latest): ``ratings.csv``, ``movies.csv`` (genres joined
      by ``|``), ``tags.csv`` when there are tags;
    - ``dat`` (ml-1m, ml-10m): ``::``-separated ``ratings.dat``, ``movies.dat`` and
      ``tags.dat`` when there are tags (ml-1m has none);
    - ``100k``: tab-separated ``u.data``, ``|``-separated ``u.item`` (a flag per genre) and
      ``u.genre``; never tags, as ml-100k.

    Text is written a few million rows at a time (ml-25m's 25 million ratings in about a
    minute). Returns the folder.
    """
    if layout not in LAYOUTS:
        raise DataError(f"write_release: unknown layout {layout!r}; use {', '.join(LAYOUTS)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    r, movies, tags = data.ratings, data.movies, data.tags
    genres = [g if isinstance(g, list) else [] for g in movies["genres"]]
    if layout == "100k":
        names = sorted({g for gs in genres for g in gs})
        _write_rows(folder / "u.data", r[["userId", "movieId", "rating", "timestamp"]], "\t")
        flags = pd.DataFrame([[int(g in gs) for g in names] for gs in genres])
        items = pd.concat([movies[["movieId", "title"]].reset_index(drop=True),
                           pd.DataFrame({"date": "", "video": "", "url": ""}, index=flags.index),
                           flags], axis=1)
        _write_rows(folder / "u.item", items, "|", encoding="latin-1")
        (folder / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(names)))
        return folder
    joined = pd.DataFrame({"movieId": movies["movieId"].to_numpy(),
                           "title": movies["title"].to_numpy(),
                           "genres": ["|".join(g) or "(no genres listed)" for g in genres]})
    if layout == "csv":
        _write_rows(folder / "ratings.csv", r[["userId", "movieId", "rating", "timestamp"]],
                    ",", header=True)
        _write_rows(folder / "movies.csv", joined, ",", header=True)
        if tags is not None and len(tags):
            _write_rows(folder / "tags.csv", tags[["userId", "movieId", "tag", "timestamp"]],
                        ",", header=True)
        return folder
    _write_rows(folder / "ratings.dat", r[["userId", "movieId", "rating", "timestamp"]], "::")
    _write_rows(folder / "movies.dat", joined, "::", encoding="latin-1")
    if tags is not None and len(tags):
        _write_rows(folder / "tags.dat", tags[["userId", "movieId", "tag", "timestamp"]], "::")
    return folder


def _write_rows(path: Path, table: pd.DataFrame, sep: str, header: bool = False,
                encoding: str = "utf-8") -> None:
    """``table`` as text lines, ``sep`` between fields (pandas writes one-character
    separators only, so ``::`` joins the fields here), a chunk of rows at a time."""
    with open(path, "w", encoding=encoding, errors="replace", newline="\n") as handle:
        if header:
            handle.write(sep.join(map(str, table.columns)) + "\n")
        for lo in range(0, len(table), _ROWS_PER_WRITE):
            part = table.iloc[lo: lo + _ROWS_PER_WRITE]
            if len(sep) == 1 and sep != "|":
                part.to_csv(handle, sep=sep, header=False, index=False, lineterminator="\n")
                continue
            text = part.astype(str).agg(sep.join, axis=1)
            handle.write("\n".join(text) + "\n")
