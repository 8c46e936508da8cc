"""Train/test splits of a ratings table: random, per user, temporal, leave-last-n, cold start.

Every split returns ``(train, test)`` DataFrames that are disjoint and together hold every
input row (original row order kept, index reset). Random splits take an explicit ``seed``:
equal seeds give equal splits. Counts are rounded half up (``round(0.2 * n)`` in the
benchmark protocol has no ties).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from recommender.core.errors import DataError
from recommender.data.releases import Source
from recommender.data.validation import RATING_COLUMNS, read_ratings, validate_ratings

__all__ = [
    "random_split",
    "per_user_split",
    "validation_split",
    "temporal_split",
    "leave_last_n",
    "cold_start_split",
    "reveal_ratings",
    "known_tags",
    "from_files",
    "ml100k_fold",
    "ML100K_FOLDS",
]

Split = tuple[pd.DataFrame, pd.DataFrame]
ML100K_FOLDS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")


def _check(ratings: pd.DataFrame, fraction: float | None = None, name: str = "test_fraction",
           columns: tuple[str, ...] = ("userId", "movieId")) -> None:
    if fraction is not None and not 0.0 < fraction < 1.0:
        raise DataError(f"{name} must be strictly between 0 and 1, got {fraction!r}")
    missing = [c for c in columns if c not in ratings.columns]
    if missing:
        raise DataError(f"cannot split: the ratings table has no column {', '.join(missing)}")
    if len(ratings) < 2:
        raise DataError(f"cannot split {len(ratings)} rating(s): need at least 2")


def _round(x) -> np.ndarray:
    return np.floor(np.asarray(x, np.float64) + 0.5).astype(np.int64)


def _split(ratings: pd.DataFrame, test: np.ndarray) -> Split:
    return (ratings[~test].reset_index(drop=True), ratings[test].reset_index(drop=True))


def _rank_within(groups: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Position of each row within its group when rows are taken in ``order``."""
    sorted_groups = groups[order]
    start = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    sizes = np.diff(np.r_[start, len(order)])
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order)) - np.repeat(start, sizes)
    return rank


def random_split(ratings: pd.DataFrame, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """Hold out ``round(test_fraction * n)`` ratings drawn uniformly at random.

    Args:
        ratings: a ratings table.
        test_fraction: share of ratings in test, in (0, 1).
        seed: random seed.

    Returns:
        ``(train, test)``; each gets at least one rating.
    """
    _check(ratings, test_fraction)
    n_test = int(np.clip(_round(test_fraction * len(ratings)), 1, len(ratings) - 1))
    test = np.zeros(len(ratings), bool)
    test[np.random.default_rng(seed).permutation(len(ratings))[:n_test]] = True
    return _split(ratings, test)


def per_user_split(ratings: pd.DataFrame, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """For each user, ``round(test_fraction * n)`` of their ratings (at least one) into test.

    The protocol of the ml-latest-small-u20 benchmark (``test_fraction=0.2``). A user's test
    ratings are drawn uniformly at random; a user with a single rating keeps it in train.

    Args:
        ratings: a ratings table.
        test_fraction: share of each user's ratings in test, in (0, 1).
        seed: random seed.

    Returns:
        ``(train, test)``.
    """
    _check(ratings, test_fraction)
    users = ratings["userId"].to_numpy()
    _, inverse, n = np.unique(users, return_inverse=True, return_counts=True)
    n_test = np.minimum(np.maximum(_round(test_fraction * n), 1), n - 1)
    random = np.random.default_rng(seed).random(len(users))
    rank = _rank_within(inverse, np.lexsort((random, inverse)))
    return _split(ratings, rank < n_test[inverse])


def validation_split(train: pd.DataFrame, fraction: float = 0.1, seed: int = 0) -> Split:
    """A per-user validation slice carved from ``train``, for tuning and early stopping.

    Same rule as :func:`per_user_split`, so validation mirrors how test was made and the
    test set is never looked at while tuning.

    Args:
        train: the training ratings.
        fraction: share of each user's train ratings held out, in (0, 1).
        seed: random seed.

    Returns:
        ``(fit, validation)``.
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"fraction must be strictly between 0 and 1, got {fraction!r}")
    return per_user_split(train, fraction, seed)


def temporal_split(ratings: pd.DataFrame, test_fraction: float = 0.2) -> Split:
    """The latest ``round(test_fraction * n)`` ratings overall into test (one global time cut).

    Rows sharing the cut timestamp are ordered by userId then movieId, so the split is
    deterministic and of exact size.

    Args:
        ratings: a ratings table with ``timestamp``.
        test_fraction: share of ratings in test, in (0, 1).

    Returns:
        ``(train, test)``: every train rating is no later than every test rating.
    """
    _check(ratings, test_fraction, columns=("userId", "movieId", "timestamp"))
    n_test = int(np.clip(_round(test_fraction * len(ratings)), 1, len(ratings) - 1))
    order = np.lexsort((ratings["movieId"].to_numpy(), ratings["userId"].to_numpy(),
                        ratings["timestamp"].to_numpy()))
    test = np.zeros(len(ratings), bool)
    test[order[len(order) - n_test:]] = True
    return _split(ratings, test)


def leave_last_n(ratings: pd.DataFrame, n: int = 1) -> Split:
    """Each user's latest ``n`` ratings into test (ties in time broken by higher movieId).

    A user with ``n`` or fewer ratings gives only ``count - 1`` to test, so every user keeps
    at least one train rating.

    Args:
        ratings: a ratings table with ``timestamp``.
        n: ratings per user held out, >= 1.

    Returns:
        ``(train, test)``.
    """
    if n < 1:
        raise DataError(f"n must be >= 1, got {n!r}")
    _check(ratings, columns=("userId", "movieId", "timestamp"))
    users = ratings["userId"].to_numpy()
    _, inverse, counts = np.unique(users, return_inverse=True, return_counts=True)
    latest_first = np.lexsort((-ratings["movieId"].to_numpy().astype(np.int64),
                               -ratings["timestamp"].to_numpy().astype(np.int64), inverse))
    rank = _rank_within(inverse, latest_first)
    return _split(ratings, rank < np.minimum(n, counts - 1)[inverse])


def cold_start_split(ratings: pd.DataFrame, by: Literal["user", "movie"] = "user",
                     test_fraction: float = 0.2, seed: int = 0) -> Split:
    """Hold out whole users (or movies): none of their ratings is in train.

    The held-out ids are ``np.random.default_rng(seed).choice(sorted ids, round(test_fraction
    * n), replace=False)``, so ``by="movie", test_fraction=0.2, seed=42`` is the item
    cold-start draw of the LightFM-protocol reference (1,813 of ml-latest-small's 9,066 rated
    movies). For user cold start, pass the held-out users' ratings to :func:`reveal_ratings`.

    Args:
        ratings: a ratings table.
        by: ``"user"`` or ``"movie"``.
        test_fraction: share of users (movies) held out, in (0, 1); at least one.
        seed: random seed.

    Returns:
        ``(train, test)`` with no user (movie) in both.
    """
    if by not in ("user", "movie"):
        raise DataError(f"by must be 'user' or 'movie', got {by!r}")
    _check(ratings, test_fraction)
    ids = ratings[f"{by}Id"].to_numpy()
    unique = np.unique(ids)
    if len(unique) < 2:
        raise DataError(f"cannot hold out {by}s: the ratings have only one {by}")
    n_test = int(np.clip(_round(test_fraction * len(unique)), 1, len(unique) - 1))
    held = np.random.default_rng(seed).choice(unique, n_test, replace=False)
    return _split(ratings, np.isin(ids, held))


def reveal_ratings(test: pd.DataFrame, k: int,
                   order: Literal["random", "earliest"] = "random", seed: int = 0) -> Split:
    """Per held-out user, ``k`` ratings revealed (the new user's history), the rest hidden.

    ``order="random"`` reveals ``k`` ratings drawn with ``seed``; the draw is one random
    order per user, so with the same seed the ``k = 1`` ratings are among the ``k = 5`` ones.
    ``order="earliest"`` reveals the user's first ``k`` ratings in time (ties by movieId), as
    a sign-up page would collect them. A user with ``k`` or fewer ratings reveals all but one.

    Args:
        test: the held-out users' ratings (``test`` of ``cold_start_split(by="user")``).
        k: ratings revealed per user, >= 1.
        order: ``"random"`` or ``"earliest"`` (needs ``timestamp``).
        seed: random seed (``order="random"``).

    Returns:
        ``(revealed, hidden)``.
    """
    if k < 1:
        raise DataError(f"k must be >= 1, got {k!r}")
    if order not in ("random", "earliest"):
        raise DataError(f"order must be 'random' or 'earliest', got {order!r}")
    _check(test, columns=("userId", "movieId", "timestamp") if order == "earliest"
           else ("userId", "movieId"))
    _, inverse, counts = np.unique(test["userId"].to_numpy(), return_inverse=True,
                                   return_counts=True)
    if order == "random":
        key = (np.random.default_rng(seed).random(len(test)),)
    else:
        key = (test["movieId"].to_numpy(), test["timestamp"].to_numpy())
    rank = _rank_within(inverse, np.lexsort((*key, inverse)))
    hidden, revealed = _split(test, rank < np.minimum(k, counts - 1)[inverse])
    return revealed, hidden


def known_tags(tags: pd.DataFrame | None, train: pd.DataFrame,
               test: pd.DataFrame) -> pd.DataFrame | None:
    """The tags a model trained on ``train`` may see: those of users who occur in train,
    minus tags on a (user, movie) pair of ``test`` (such a tag tells that the user saw the
    movie whose rating is being predicted).

    Args:
        tags: a tags table (``userId, movieId, tag``) or None.
        train: the training ratings.
        test: the held-out ratings.

    Returns:
        The usable tags (None when ``tags`` is None).
    """
    if tags is None:
        return None
    held = pd.MultiIndex.from_arrays([test["userId"], test["movieId"]])
    pairs = pd.MultiIndex.from_arrays([tags["userId"], tags["movieId"]])
    keep = tags["userId"].isin(train["userId"].unique()) & ~pairs.isin(held)
    return tags[keep.to_numpy()].reset_index(drop=True)


def from_files(train_path: str | Path, test_path: str | Path, sep: str = ",") -> Split:
    """A fixed split from two ratings CSV files, validated by :func:`data.read_ratings`.

    Args:
        train_path: train CSV (``userId,movieId,rating[,timestamp]`` with a header).
        test_path: test CSV, same schema.
        sep: field separator.

    Returns:
        ``(train, test)`` with normalised dtypes.
    """
    return read_ratings(train_path, sep=sep), read_ratings(test_path, sep=sep)


def ml100k_fold(path: str | Path, fold: str) -> Split:
    """One of ml-100k's published splits: ``u1``-``u5`` (5-fold) or ``ua``/``ub``.

    Args:
        path: the ml-100k folder or zip.
        fold: ``u1``...``u5``, ``ua`` or ``ub`` (``<fold>.base`` is train, ``<fold>.test``
            test; tab-separated, no header).

    Returns:
        ``(train, test)`` with normalised dtypes.
    """
    if fold not in ML100K_FOLDS:
        raise DataError(f"unknown ml-100k fold {fold!r}; known folds: {', '.join(ML100K_FOLDS)}")
    source = Source(Path(path).expanduser())
    return _read_headerless(source, f"{fold}.base"), _read_headerless(source, f"{fold}.test")


def _read_headerless(source: Source, name: str) -> pd.DataFrame:
    if not source.has(name):
        raise DataError(f"{source.path}: no {name} inside; is this the ml-100k release?")
    df = pd.read_csv(source.open(name), sep="\t", header=None, names=list(RATING_COLUMNS),
                     dtype=str, keep_default_na=False, na_values=[""])
    return validate_ratings(df, source.label(name), rating_scale=(1.0, 5.0),
                            line_of=lambda row: row + 1)  # no header line
