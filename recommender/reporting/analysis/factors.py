"""Analyses of the factor models (Cinematch's regression model, notebooks 02 and 03): where the
rating errors are, the movie factors on a map, and the origin system's dense formulation
against the sparse one.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from recommender import metrics
from recommender.core.errors import UsageError
from recommender.data.preprocessing import ratings_matrix, user_activity
from recommender.models import Recommender, make_model

__all__ = ["error_buckets", "item_embedding_2d", "dense_vs_sparse"]


def _count_buckets(counts: pd.Series, n_buckets: int) -> pd.Series:
    """Quantile buckets of integer counts, labelled by the count range they hold (``"3-12"``)."""
    cut = pd.qcut(counts, n_buckets, duplicates="drop")
    names = {iv: f"{max(int(np.floor(iv.left)) + 1, 0)}-{int(np.floor(iv.right))}"
             for iv in cut.cat.categories}
    return cut.cat.rename_categories(names)


def error_buckets(predictions: pd.DataFrame, train: pd.DataFrame,
                  n_buckets: int = 5) -> pd.DataFrame:
    """Test predictions with their error and the activity/popularity bucket of each pair.

    Args:
        predictions: ``userId``, ``movieId``, ``rating``, ``prediction`` (as in
            ``Evaluation.predictions``).
        train: the ratings the model was fitted on; a user's activity and a movie's popularity
            are their numbers of train ratings (0 when unseen).
        n_buckets: quantile buckets of movie popularity (``pd.qcut``; fewer when counts tie).

    Returns:
        ``predictions`` plus ``error`` (prediction - rating), ``abs_error``, ``squared_error``,
        ``user_activity`` (the buckets of :func:`recommender.data.preprocessing.user_activity`)
        and ``movie_popularity`` (ordered categories labelled by count range).
    """
    movies = predictions["movieId"].map(train["movieId"].value_counts()).fillna(0)
    error = predictions["prediction"] - predictions["rating"]
    return predictions.assign(error=error, abs_error=error.abs(), squared_error=error ** 2,
                              user_activity=user_activity(predictions["userId"], train),
                              movie_popularity=_count_buckets(movies, n_buckets))


def item_embedding_2d(model: Recommender, movies: pd.DataFrame, n: int = 1500,
                      method: Literal["pca", "tsne"] = "pca", top_genres: int = 8,
                      seed: int = 0) -> pd.DataFrame:
    """The item vectors of the ``n`` most-rated train movies projected to 2-D, with first genre.

    Args:
        model: a fitted model with ``item_vectors()`` (``regression``, ``classification``,
            the softmax models, ``feature-embedding``).
        movies: the movies table (``movieId``, ``title``, ``genres`` as lists).
        n: how many of the most-rated movies to project.
        method: ``"pca"`` (fast, linear) or ``"tsne"`` (neighbourhoods, slower).
        top_genres: first genres kept as they are; the rest are labelled ``"other"``.
        seed: random state of the projection.

    Returns:
        ``movieId, title, genre, ratings, x, y``, one row per projected movie.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    counts = np.asarray(model.seen.sum(axis=0)).ravel()
    top = np.argsort(-counts, kind="stable")[:n]
    vectors = model.item_vectors()[top]
    if method == "tsne":
        points = TSNE(2, init="pca", random_state=seed, max_iter=500,
                      perplexity=min(30.0, (len(top) - 1) / 3)).fit_transform(vectors)
    elif method == "pca":
        points = PCA(2, random_state=seed).fit_transform(vectors)
    else:
        raise UsageError(f"method must be 'pca' or 'tsne', not {method!r}")
    ids = model.items.decode(top)
    info = movies.set_index("movieId").reindex(ids)
    first = info["genres"].map(lambda g: g[0] if isinstance(g, (list, tuple, np.ndarray))
                               and len(g) else "(no genres listed)")
    keep = first.value_counts().index[:top_genres]
    return pd.DataFrame({"movieId": ids, "title": info["title"].to_numpy(),
                         "genre": first.where(first.isin(keep), "other").to_numpy(),
                         "ratings": counts[top], "x": points[:, 0], "y": points[:, 1]})


def dense_vs_sparse(train: pd.DataFrame, test: pd.DataFrame, n_movies: int = 10_000,
                    n_users: int = 5_000, epochs: int = 20, seed: int = 0,
                    **settings: Any) -> tuple[pd.DataFrame, float]:
    """Fit ``regression`` on the capped ratings matrix by both data paths, full batch.

    The train ratings are restricted to Cinematch's matrix (the ``n_movies`` most-rated movies
    x the ``n_users`` most active users of train); the ``"dense"`` path trains on ``Y``/``R``,
    the ``"sparse"`` path on the same triples in one batch of all of them, with the same seed,
    no validation slice and no refit, so both optimise the same objective step for step.

    Args:
        train, test: ratings tables; test is restricted to the same users and movies.
        n_movies, n_users: the cap of the dense matrix.
        epochs: full-batch steps (one per epoch).
        seed: model seed.
        **settings: other ``regression`` settings (e.g. ``dim``, ``learning_rate``).

    Returns:
        One row per path (``data_path, fit_seconds, final_loss, rmse``) and the largest
        absolute difference between the two paths' test predictions.
    """
    capped = ratings_matrix(train, n_movies=n_movies, n_users=n_users)

    def keep(t: pd.DataFrame) -> pd.DataFrame:
        return t[t["movieId"].isin(capped.movie_ids) & t["userId"].isin(capped.user_ids)]

    train, test = keep(train), keep(test)
    rows, predictions = [], []
    for path in ("dense", "sparse"):
        model = make_model("regression", seed=seed, **{
            **settings, "data_path": path, "epochs": epochs, "validation": 0.0,
            "refit": False, "batch_size": len(train)})
        model.fit(train)
        pred = model.predict(test["userId"].to_numpy(), test["movieId"].to_numpy())
        predictions.append(pred)
        rows.append({"data_path": path, "fit_seconds": model.meta["fit_seconds"],
                     "final_loss": model.history[-1].rows[-1]["loss"],
                     "rmse": metrics.rmse(test["rating"], pred)})
    return pd.DataFrame(rows), float(np.max(np.abs(predictions[0] - predictions[1])))
