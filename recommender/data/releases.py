"""MovieLens releases: the registry of GroupLens releases and one loader for every layout.

Loading is separate from fetching (see :mod:`recommender.data.fetch`): :func:`load_movielens` reads a
folder or zip that is already on disk, detects which of the three GroupLens layouts it holds
(``ratings.csv``; ``::``-separated ``ratings.dat``; tab-separated ``u.data``) and returns one
normalised :class:`MovieLens` object whatever the source format.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recommender.core.config import data_dir, shown
from recommender.core.errors import DataError
from recommender.data.validation import normalise_ratings

__all__ = ["Release", "RELEASES", "MovieLens", "load_movielens", "Source"]

_YEAR = re.compile(r"\((\d{4})(?:[-–]\d{0,4})?\)\s*$")


@dataclass(frozen=True)
class Release:
    """One MovieLens release as published by GroupLens.

    ``md5`` is the checksum GroupLens publishes next to the zip (``<url>.md5``); ``None`` for
    ``ml-latest``/``ml-latest-small``, which GroupLens re-issues in place so no fixed checksum
    can be pinned (their download is then verified against the ``.md5`` file served beside it).
    """

    name: str
    url: str
    md5: str | None
    layout: str  # "csv", "dat" or "100k"
    description: str


_GROUPLENS = "https://files.grouplens.org/datasets/movielens"
RELEASES: dict[str, Release] = {
    r.name: r
    for r in (
        Release("ml-latest-small", f"{_GROUPLENS}/ml-latest-small.zip", None, "csv",
                "about 100k ratings, 600 users, 9k movies (re-issued in place)"),
        Release("ml-100k", f"{_GROUPLENS}/ml-100k.zip", "0e33842e24a9c977be4e0107933c0723", "100k",
                "100k ratings, 943 users, 1,682 movies, demographics (1998)"),
        Release("ml-1m", f"{_GROUPLENS}/ml-1m.zip", "c4d9eecfca2ab87c1945afe126590906", "dat",
                "1M ratings, 6,040 users, 3,706 movies, demographics (2003)"),
        Release("ml-10m", f"{_GROUPLENS}/ml-10m.zip", "ce571fd55effeba0271552578f2648bd", "dat",
                "10M ratings, 69,878 users, 10,677 movies, tags (2009)"),
        Release("ml-20m", f"{_GROUPLENS}/ml-20m.zip", "cd245b17a1ae2cc31bb14903e1204af3", "csv",
                "20M ratings, 138,493 users, 26,744 movies, tags, links (2015)"),
        Release("ml-25m", f"{_GROUPLENS}/ml-25m.zip", "6b51fb2759a8657d3bfcbfc42b592ada", "csv",
                "25M ratings, 162,541 users, 59,047 movies, tags, links (2019)"),
        Release("ml-32m", f"{_GROUPLENS}/ml-32m.zip", "d472be332d4daa821edc399621853b57", "csv",
                "32M ratings, 200,948 users, 87,585 movies, tags, links (2023)"),
        Release("ml-latest", f"{_GROUPLENS}/ml-latest.zip", None, "csv",
                "the full current release, re-issued in place"),
    )
}


@dataclass
class MovieLens:
    """One MovieLens release, normalised.

    Attributes:
        name: release name (``ml-1m``...) or the folder name for unknown folders.
        ratings: ``userId`` int32, ``movieId`` int32, ``rating`` float32, ``timestamp`` int64.
        movies: ``movieId``, ``title``, ``year`` (nullable Int64), ``genres`` (list of str).
        tags, links, users: present only where the release has them.
        truth: for synthetic data only, the planted model the ratings were drawn from
            (see :func:`recommender.synthetic.make_synthetic`).
    """

    name: str
    ratings: pd.DataFrame
    movies: pd.DataFrame
    tags: pd.DataFrame | None = None
    links: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    source: str = ""
    layout: str = field(default="csv")
    truth: dict | None = field(default=None, repr=False)

    def describe(self) -> dict:
        """Counts, rating scale and sparsity, as plain numbers for a table or JSON."""
        r = self.ratings
        users, movies = r["userId"].nunique(), r["movieId"].nunique()
        return {
            "dataset": self.name,
            "ratings": int(len(r)),
            "users": int(users),
            "movies_rated": int(movies),
            "movies_catalogue": int(len(self.movies)),
            "rating_min": float(r["rating"].min()) if len(r) else None,
            "rating_max": float(r["rating"].max()) if len(r) else None,
            "rating_step": _rating_step(r["rating"]),
            "sparsity": 1.0 - len(r) / (users * movies) if len(r) else None,
            "tags": int(len(self.tags)) if self.tags is not None else 0,
        }


def _rating_step(ratings: pd.Series) -> float | None:
    values = np.unique(ratings.to_numpy())
    return float(np.diff(values).min()) if len(values) > 1 else None


# ---------------------------------------------------------------------------------------------
# Loading a release


class Source:
    """A folder or a zip, addressed by file name whatever sub-folder the release sits in."""

    def __init__(self, path: Path):
        self.path = path
        if path.is_dir():
            self._zip = None
            self._names = {p.name: p for p in sorted(path.rglob("*")) if p.is_file()}
        elif zipfile.is_zipfile(path):
            self._zip = zipfile.ZipFile(path)
            self._names = {Path(n).name: n for n in self._zip.namelist() if not n.endswith("/")}
        else:
            raise DataError(f"{path}: not a folder or a zip file holding a MovieLens release")

    def has(self, name: str) -> bool:
        return name in self._names

    def open(self, name: str) -> io.BufferedIOBase:
        member = self._names[name]
        return self._zip.open(member) if self._zip else open(member, "rb")

    def label(self, name: str) -> str:
        return f"{self.path}:{self._names[name]}" if self._zip else str(self._names[name])


def _resolve(name_or_path: str | Path, root: str | Path | None) -> tuple[str, Path]:
    candidate = Path(name_or_path).expanduser()
    if candidate.exists():
        return candidate.name.removesuffix(".zip"), candidate
    name = str(name_or_path)
    base = data_dir(root)
    for path in (base / name, base / f"{name}.zip"):
        if path.exists():
            return name, path
    hint = (f"run `recommender data fetch {name}`" if name in RELEASES
            else f"known releases: {', '.join(RELEASES)}")
    raise DataError(f"{name}: no such folder or zip, and not found in {shown(base)} ({hint}; "
                    f"or point --data-dir / RECOMMENDER_DATA at the folder that holds it)")


def load_movielens(name_or_path: str | Path, data_root: str | Path | None = None) -> MovieLens:
    """Read a MovieLens release from a folder or zip, detecting its layout.

    Args:
        name_or_path: a release name from :data:`RELEASES` (looked up in the data folder) or
            a path to a folder or zip in any of the three GroupLens layouts.
        data_root: the data folder to look names up in (default: :func:`config.data_dir`).

    Returns:
        The normalised :class:`MovieLens` object.
    """
    name, path = _resolve(name_or_path, data_root)
    src = Source(path)
    if src.has("ratings.csv"):
        data = _load_csv_layout(src, name)
    elif src.has("ratings.dat"):
        data = _load_dat_layout(src, name)
    elif src.has("u.data"):
        data = _load_100k_layout(src, name)
    else:
        raise DataError(f"{path}: no ratings.csv, ratings.dat or u.data inside; "
                        "is this a MovieLens release?")
    data.source = str(path)
    return data



def _normalise_movies(movie_ids, titles, genres: list[list[str]]) -> pd.DataFrame:
    titles = pd.Series(titles, dtype=object).fillna("").astype(str).str.strip()
    year = titles.str.extract(_YEAR, expand=False)
    return pd.DataFrame({
        "movieId": np.asarray(movie_ids, dtype=np.int32),
        "title": titles.to_numpy(),
        "year": pd.array(pd.to_numeric(year, errors="coerce"), dtype="Int64"),
        "genres": genres,
    })


def _split_genres(values: pd.Series) -> list[list[str]]:
    return [[g for g in str(v).split("|") if g and g != "(no genres listed)"]
            for v in values.fillna("")]


def _load_csv_layout(src: Source, name: str) -> MovieLens:
    ratings = normalise_ratings(pd.read_csv(src.open("ratings.csv")),
                                 src.label("ratings.csv"))
    movies_raw = pd.read_csv(src.open("movies.csv"))
    movies = _normalise_movies(movies_raw["movieId"], movies_raw["title"],
                               _split_genres(movies_raw["genres"]))
    tags = links = None
    if src.has("tags.csv"):
        tags = pd.read_csv(src.open("tags.csv"), dtype={"tag": str})
        tags = tags.astype({"userId": np.int32, "movieId": np.int32, "timestamp": np.int64})
    if src.has("links.csv"):
        links = pd.read_csv(src.open("links.csv"), dtype={"imdbId": str})
        links["tmdbId"] = links["tmdbId"].astype("Int64")
    return MovieLens(name, ratings, movies, tags, links, None, layout="csv")


def _read_double_colon(src: Source, name: str, columns: list[str]) -> pd.DataFrame:
    """Read a ``::``-separated .dat file; the last column may itself contain colons."""
    text = src.open(name).read().decode("latin-1")
    rows = [line.split("::", len(columns) - 1) for line in text.splitlines() if line]
    return pd.DataFrame(rows, columns=columns)


def _load_dat_layout(src: Source, name: str) -> MovieLens:
    # Ratings are all numeric, so a fast C-engine read on ':' works (empty fields between colons).
    raw = pd.read_csv(src.open("ratings.dat"), sep=":", header=None, usecols=[0, 2, 4, 6],
                      names=["userId", "_a", "movieId", "_b", "rating", "_c", "timestamp"],
                      engine="c")
    ratings = normalise_ratings(raw, src.label("ratings.dat"))
    movies_raw = _read_double_colon(src, "movies.dat", ["movieId", "title", "genres"])
    movies = _normalise_movies(movies_raw["movieId"].astype(int), movies_raw["title"],
                               _split_genres(movies_raw["genres"]))
    tags = users = None
    if src.has("tags.dat"):
        tags = _read_double_colon(src, "tags.dat", ["userId", "movieId", "tag", "timestamp"])
        tags = tags.astype({"userId": np.int32, "movieId": np.int32, "timestamp": np.int64})
    if src.has("users.dat"):
        users = _read_double_colon(src, "users.dat",
                                   ["userId", "gender", "age", "occupation", "zip"])
        users = users.astype({"userId": np.int32, "age": np.int32, "occupation": np.int32})
    return MovieLens(name, ratings, movies, tags, None, users, layout="dat")


def _load_100k_layout(src: Source, name: str) -> MovieLens:
    raw = pd.read_csv(src.open("u.data"), sep="\t", header=None,
                      names=["userId", "movieId", "rating", "timestamp"])
    ratings = normalise_ratings(raw, src.label("u.data"))
    genre_names = None
    if src.has("u.genre"):
        genre_table = pd.read_csv(src.open("u.genre"), sep="|", header=None, encoding="latin-1")
        genre_names = genre_table.dropna().sort_values(1)[0].tolist()
    items = pd.read_csv(src.open("u.item"), sep="|", header=None, encoding="latin-1")
    flags = items.iloc[:, 5:].to_numpy(dtype=bool)
    genre_names = genre_names or [f"genre_{i}" for i in range(flags.shape[1])]
    genres = [[g for g, on in zip(genre_names, row) if on and g != "unknown"] for row in flags]
    movies = _normalise_movies(items[0], items[1], genres)
    users = None
    if src.has("u.user"):
        users = pd.read_csv(src.open("u.user"), sep="|", header=None,
                            names=["userId", "age", "gender", "occupation", "zip"])
        users["userId"] = users["userId"].astype(np.int32)
    return MovieLens(name, ratings, movies, None, None, users, layout="100k")
