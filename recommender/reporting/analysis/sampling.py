"""Analyses of the softmax models (the recommender-systems overview, origin 004), each
returning a DataFrame for notebook 04.

- :func:`negatives_curve`: quality, popularity bias (share of slots taken by the top 1% most
  rated movies) and speed as the number of sampled negatives grows;
- :func:`epoch_seconds`: seconds per epoch of full vs sampled softmax as the catalogue grows
  (synthetic catalogues up to 60,000 movies);
- :func:`folding`, :func:`folding_comparison`, :func:`genre_similarity`: how much item
  embeddings of unrelated genre clusters "fold" onto each other, for positives-only vs
  negative-sampled training;
- :func:`side_by_side`: any registered models (or one model under several settings) fitted
  and evaluated on the same split, e.g. MF vs softmax variants vs EASE, popularity bias
  included.

The softmax analyses take the registered ``model`` to study: ``softmax`` (wide & deep) or
``softmax-dnn`` (the origin system's model alone, a Mult-DAE). They concern the softmax layer, so they
turn a model's wide (EASE) path off unless told otherwise: the wide path costs ``items^2``
memory and has no item embeddings to fold.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from recommender.evaluation.protocol import Evaluation, fit_and_evaluate
from recommender.models import Recommender, make_model, model_class
from recommender.data.synthetic import make_synthetic

__all__ = ["negatives_curve", "epoch_seconds", "folding",
           "folding_comparison", "genre_similarity", "side_by_side"]

_COLUMNS = ("ndcg@10", "recall@10", "coverage@10", "top1pct_share", "fit_seconds")


def _softmax_layer(model: str, settings: dict, **overrides) -> dict:
    """``settings`` with the wide path off (and ``overrides``) where ``model`` has them."""
    known = model_class(model).Settings.model_fields
    chosen = {k: v for k, v in {"wide": False, **overrides}.items() if k in known}
    return {**chosen, **settings}


def _row(model: Recommender, result: Evaluation) -> dict:
    """The metrics a comparison table shows for one fitted softmax model."""
    return {**{k: result.metrics[k] for k in _COLUMNS},
            "epoch_seconds": model.meta["epoch_seconds"],
            "best_epoch": model.meta["best_epoch"],
            "val_ndcg@10": model.meta["validation"]}


def negatives_curve(train: pd.DataFrame, test: pd.DataFrame, movies: pd.DataFrame | None = None,
                    num_negatives: Iterable[int] = (16, 64, 256, 1024, 4096),
                    loss: str = "sampled-popularity", seed: int = 0,
                    model: str = "softmax", **settings) -> pd.DataFrame:
    """Quality and cost of a sampled loss as the number of negatives per batch grows.

    Args:
        train, test: ratings tables.
        movies: movies table with ``genres`` (optional).
        num_negatives: negatives shared by each batch, one run per value.
        loss: ``sampled-uniform`` or ``sampled-popularity``.
        seed: model seed.
        model: the registered softmax model (``softmax`` or ``softmax-dnn``).
        **settings: other settings of that model.

    Returns:
        One row per value: ``num_negatives``, NDCG/recall/coverage@10, ``top1pct_share``,
        ``fit_seconds``, ``epoch_seconds``, ``best_epoch`` and ``val_ndcg@10`` (the
        early-stopping slice of train).
    """
    rows = []
    for n in num_negatives:
        fitted, result = fit_and_evaluate(model, train, test, movies=movies, seed=seed,
                                          **_softmax_layer(model, settings), loss=loss,
                                          num_negatives=int(n))
        rows.append({"num_negatives": int(n), **_row(fitted, result)})
    return pd.DataFrame(rows)


def epoch_seconds(catalogue_sizes: Iterable[int] = (1_000, 5_000, 20_000, 60_000),
                  losses: Iterable[str] = ("full", "sampled-popularity"),
                  n_users: int = 2_000, ratings_per_user: int = 50, epochs: int = 4,
                  seed: int = 0, model: str = "softmax", **settings) -> pd.DataFrame:
    """Seconds per training epoch as the catalogue grows, on synthetic MovieLens data.

    The number of users and ratings is fixed, so only the catalogue (the softmax width) grows:
    the full softmax costs O(catalogue) per example, a sampled one O(num_negatives).

    Args:
        catalogue_sizes: movies in each synthetic catalogue.
        losses: loss names to time.
        n_users, ratings_per_user: size of every synthetic data set.
        epochs: epochs per fit (the median epoch after the first, which compiles, is
            reported).
        seed: data and model seed.
        model: the registered softmax model (its wide path off).
        **settings: other settings of that model.

    Returns:
        One row per (catalogue, loss): ``movies``, ``loss``, ``epoch_seconds``.
    """
    rows = []
    for size in catalogue_sizes:
        data = make_synthetic(n_users=n_users, n_movies=int(size),
                              n_ratings=n_users * ratings_per_user, seed=seed)
        for loss in losses:
            fitted = make_model(model, seed=seed, **_softmax_layer(
                model, {"epochs": epochs, "patience": epochs, "refit": False, **settings,
                        "loss": loss}))
            fitted.fit(data.ratings, movies=data.movies)
            rows.append({"movies": int(size), "loss": loss,
                         "epoch_seconds": fitted.meta["epoch_seconds"]})
    return pd.DataFrame(rows)


def folding(model: Recommender, movies: pd.DataFrame) -> dict:
    """Mean cosine similarity of item vectors within and between genre clusters.

    A movie's cluster is its first listed genre. Folding shows as a high ``between``
    similarity: unrelated movies pushed into the same region of the embedding space, which
    a model trained on positives only has no reason to avoid. Computed exactly from the
    cluster sums of unit vectors (O(movies x d)), without forming the pairwise matrix.

    Args:
        model: a fitted softmax model (``softmax`` or ``softmax-dnn``).
        movies: movies table with a ``genres`` list column.

    Returns:
        ``{"within": ..., "between": ..., "gap": within - between}``.
    """
    unit, label = _unit_items(model, movies)
    keep = (label != "").to_numpy()
    codes, names = pd.factorize(label[keep])
    sums = np.zeros((len(names), unit.shape[1]))
    np.add.at(sums, codes, unit[keep])
    sizes = np.bincount(codes, minlength=len(names)).astype(np.float64)
    gram = sums @ sums.T  # sum of pairwise cosines between (and within) clusters
    within_pairs = sizes * (sizes - 1)
    within = (np.trace(gram) - sizes.sum()) / within_pairs.sum()
    between_pairs = sizes.sum() ** 2 - (sizes ** 2).sum()
    between = (gram.sum() - np.trace(gram)) / between_pairs
    return {"within": float(within), "between": float(between), "gap": float(within - between)}


def folding_comparison(train: pd.DataFrame, test: pd.DataFrame, movies: pd.DataFrame,
                       losses: Iterable[str] = ("positives-only", "sampled-uniform",
                                                "sampled-popularity", "full"),
                       seed: int = 0, model: str = "softmax",
                       **settings) -> tuple[pd.DataFrame, dict[str, Recommender]]:
    """Folding and quality of models trained with and without negatives.

    Genre features are left out of the item vectors (``use_genres=False`` unless overridden),
    so any genre separation is learned from the interactions alone; the wide path is off
    (``wide=False`` unless overridden) so the softmax layer alone ranks.

    Args:
        train, test: ratings tables (:func:`recommender.data.synthetic.planted_clusters` shows the
            effect most cleanly).
        movies: movies table with ``genres``.
        losses: loss names to compare.
        seed: model seed.
        model: the registered softmax model.
        **settings: other settings of that model.

    Returns:
        One row per loss (``loss``, ``within``, ``between``, ``gap`` and the columns of
        :func:`negatives_curve`), and the fitted models by loss (for
        :func:`genre_similarity`).
    """
    settings = _softmax_layer(model, settings, use_genres=False)
    rows, models = [], {}
    for loss in losses:
        fitted, result = fit_and_evaluate(model, train, test, movies=movies, seed=seed,
                                          loss=loss, **settings)
        models[loss] = fitted
        rows.append({"loss": loss, **folding(fitted, movies), **_row(fitted, result)})
    return pd.DataFrame(rows), models


def _unit_items(model: Recommender, movies: pd.DataFrame) -> tuple[np.ndarray, pd.Series]:
    """Unit-norm item vectors and each movie's cluster (first listed genre, '' if none)."""
    vectors = model.item_vectors().astype(np.float64)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    first = movies.set_index("movieId")["genres"].reindex(model.items.ids)
    return unit, pd.Series([g[0] if isinstance(g, list) and g else "" for g in first])


def genre_similarity(model: Recommender, movies: pd.DataFrame, top: int = 8) -> pd.DataFrame:
    """Mean cosine similarity of item vectors between (and within) genre clusters.

    Clusters are first listed genres, the ``top`` largest kept. The diagonal is the mean over
    distinct pairs of one cluster; a folded model shows high off-diagonal values.

    Args:
        model: a fitted softmax model.
        movies: movies table with a ``genres`` list column.
        top: how many clusters (largest first).

    Returns:
        Square DataFrame indexed and columned by cluster name.
    """
    unit, label = _unit_items(model, movies)
    names = [n for n in label.value_counts().index if n][:top]
    sums = np.stack([unit[(label == n).to_numpy()].sum(axis=0) for n in names])
    sizes = np.array([(label == n).sum() for n in names], np.float64)
    gram = sums @ sums.T
    pairs = np.outer(sizes, sizes)
    np.fill_diagonal(gram, np.diag(gram) - sizes)  # drop each movie's self-similarity
    np.fill_diagonal(pairs, sizes * (sizes - 1))
    return pd.DataFrame(gram / np.maximum(pairs, 1), index=names, columns=names)


def side_by_side(train: pd.DataFrame, test: pd.DataFrame, specs: dict[str, tuple[str, dict]],
                 movies: pd.DataFrame | None = None, seed: int = 0,
                 columns: Iterable[str] = ("precision@10", "recall@10", "ndcg@10", "map@10",
                                           "hr@10", "coverage@10", "top1pct_share",
                                           "fit_seconds"),
                 cache_dir: str | None = None) -> pd.DataFrame:
    """Fit and evaluate several models on the same split with the benchmark protocol.

    Args:
        train, test: ratings tables.
        specs: ``label -> (registered model name, settings)``; a label may reuse a model name
            under other settings (e.g. softmax with uniform vs popularity negatives).
        movies: movies table (side features for the models that use them).
        seed: model seed.
        columns: metrics to keep (``top1pct_share``: share of recommendation slots taken by
            the 1% most rated movies, the popularity-bias measure).
        cache_dir: models under their shipped settings (``{}``) are reused from it and saved
            to it (:func:`recommender.evaluation.fit_and_evaluate`); variants are fitted
            afresh, since they would take the model's one place there.

    Returns:
        One row per label: ``model`` and ``columns``.
    """
    rows = []
    for label, (name, settings) in specs.items():
        _, result = fit_and_evaluate(name, train, test, movies=movies, seed=seed,
                                     cache_dir=None if settings else cache_dir, **settings)
        rows.append({"model": label, **{c: result.metrics.get(c) for c in columns}})
    return pd.DataFrame(rows)
