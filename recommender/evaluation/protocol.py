"""The benchmark protocol (``docs/protocol.md``), in one place.

Rating prediction: RMSE and MAE over every test pair (unknown users or movies fall back inside
the model); a model that uses time (``uses_time``) is told each test rating's date. Top-N at
K: candidates are the train movies minus the user's train movies; relevant are the user's
test movies rated >= 4.0 that occur in train; users with nothing relevant are skipped.
``recommender evaluate``, the notebooks and the comparison all call :func:`evaluate`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender import metrics
from recommender.core.errors import RecommenderError, UsageError
from recommender.metrics import RELEVANT_RATING
from recommender.data import splits
from recommender.models import Recommender, load_model, make_model, model_class
from recommender.models.base import fingerprint, table_fingerprint

__all__ = ["Evaluation", "evaluate", "fit_and_evaluate", "relevance_matrix", "RELEVANT_RATING",
           "QUICK_SETTINGS", "quick_settings", "settings_for", "scales"]

# Quick mode: few epochs and no refit, for the models that have those settings (what the
# tests and ``quick`` notebook runs use).
QUICK_SETTINGS: dict[str, Any] = {"epochs": 2, "refit": False}


@dataclass
class Evaluation:
    """Aggregate metrics plus what is needed for intervals and plots."""

    model: str
    metrics: dict
    per_user: pd.DataFrame
    recommended: np.ndarray = field(repr=False)
    predictions: pd.DataFrame | None = field(default=None, repr=False)

    def row(self) -> dict:
        return {"model": self.model, **self.metrics}


def relevance_matrix(model: Recommender, test: pd.DataFrame,
                     threshold: float = RELEVANT_RATING) -> tuple[np.ndarray, sp.csr_matrix]:
    """Evaluated user indices and their users x items matrix of relevant test movies."""
    liked = test[test["rating"] >= threshold]
    u = model.users.encode(liked["userId"].to_numpy(), unknown="missing")
    i = model.items.encode(liked["movieId"].to_numpy(), unknown="missing")
    keep = (u >= 0) & (i >= 0)
    users = np.unique(u[keep])
    row = np.searchsorted(users, u[keep])
    relevant = sp.csr_matrix((np.ones(keep.sum(), np.float32), (row, i[keep])),
                             shape=(len(users), model.n_items))
    relevant.sum_duplicates()
    relevant.data[:] = 1.0
    return users, relevant


def evaluate(model: Recommender, test: pd.DataFrame, k: int = 10,
             threshold: float = RELEVANT_RATING, progress: bool = False,
             depth: int | None = None) -> Evaluation:
    """Evaluate a fitted model on a test ratings table with the benchmark protocol.

    ``depth`` (at least ``k``; default ``k``): how many movies the one top-K pass ranks per
    user; :attr:`Evaluation.recommended` keeps them all, so measures at longer lists (the
    comparison's precision and recall curves) need no second pass over the catalogue. The
    metrics are those of the first ``k``, which are the top-``k`` list itself."""
    for name, value in (("k (the list length)", k), ("depth", k if depth is None else depth)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise UsageError(f"{name} must be a whole number >= 1, not {value!r}")
    depth = k if depth is None else max(k, depth)
    out: dict = {}
    predictions = None
    if model.predicts_ratings:
        # the date of each test rating, for the models that read it (``uses_time``) only
        times = (test["timestamp"].to_numpy()
                 if model.uses_time and "timestamp" in test else None)
        pred = model.predict(test["userId"].to_numpy(), test["movieId"].to_numpy(), times)
        predictions = test[["userId", "movieId", "rating"]].assign(prediction=pred)
        out["rmse"] = metrics.rmse(test["rating"], pred)
        out["mae"] = metrics.mae(test["rating"], pred)
    out.update(model.extra_metrics(test))  # e.g. the classifier's accuracy, F1, ROC-AUC

    users, relevant = relevance_matrix(model, test, threshold)
    start = time.perf_counter()
    recommended = model.top_k(users, depth, progress=progress)
    out["score_seconds"] = time.perf_counter() - start
    listed = recommended[:, :k]
    per_user = metrics.ranking_metrics(listed, relevant, k)
    for name, values in per_user.items():
        out[f"{name}@{k}"] = float(np.mean(values)) if len(values) else float("nan")
    out[f"coverage@{k}"] = metrics.coverage(listed, model.n_items)
    counts = np.asarray(model.seen.sum(axis=0)).ravel()
    out["novelty"] = metrics.novelty(listed, counts, len(model.users))
    out["top1pct_share"] = metrics.popular_share(listed, counts)
    out["users"] = int(len(users))
    table = pd.DataFrame({"userId": model.users.decode(users), **per_user})
    return Evaluation(model.name, out, table, recommended, predictions)


def _cached(path: Path, fresh: Recommender, train: pd.DataFrame,
            context: dict[str, pd.DataFrame | None]) -> Recommender | None:
    """The model saved at ``path`` if it was trained with ``fresh``'s settings on ``train``
    and on the same side tables (those of ``context`` that its fit read)."""
    if not (path / "model.json").is_file():
        return None
    try:
        saved = load_model(path)
    except RecommenderError:  # saved by another version of the package: fit again
        return None
    read = saved.meta.get("context_fingerprint")
    matches = (type(saved) is type(fresh) and saved.seed == fresh.seed
               and saved.settings == fresh.settings
               and saved.meta.get("train_fingerprint") == fingerprint(train)
               and isinstance(read, dict)
               and all(table_fingerprint(context.get(key)) == value
                       for key, value in read.items()))
    return saved if matches else None


def fit_and_evaluate(name: str, train: pd.DataFrame, test: pd.DataFrame,
                     movies: pd.DataFrame | None = None, tags: pd.DataFrame | None = None,
                     seed: int = 0, k: int = 10, cache_dir: str | Path | None = None,
                     depth: int | None = None, **settings) -> tuple[Recommender, Evaluation]:
    """Make the registered model ``name``, fit it on ``train`` (timed) and evaluate on ``test``.

    The model sees only the tags it could know at training time (:func:`splits.known_tags`:
    a tag on a held-out rating would tell it which movies the user watched). With
    ``cache_dir``, a model saved at ``cache_dir/name`` with the same settings, seed, training
    data and side tables (the movies and tags its fit read) is loaded instead of refitted (its
    recorded fit time is reported), and a freshly fitted model is saved there. Notebooks share
    trained models this way. ``depth``: as in :func:`evaluate`.
    """
    tags = splits.known_tags(tags, train, test)
    model = make_model(name, seed=seed, **settings)
    path = Path(cache_dir) / name if cache_dir else None
    cached = _cached(path, model, train, {"movies": movies, "tags": tags}) if path else None
    if cached is not None:
        model = cached
    else:
        model.fit(train, movies=movies, tags=tags)
        if path:
            model.save(path)
    result = evaluate(model, test, k=k, depth=depth)
    result.metrics = {"fit_seconds": model.meta["fit_seconds"], **result.metrics}
    return model, result


def quick_settings(name: str, quick: bool = True, large: bool = False) -> dict[str, Any]:
    """What a run changes in model ``name``'s shipped settings: on a big release (``large``)
    its ``large_data`` settings, then the :data:`QUICK_SETTINGS` it has if ``quick``.
    Notebooks, comparisons and cold-start tables change settings this one way."""
    cls = model_class(name)
    known = cls.Settings.model_fields
    return {**((cls.large_data or {}) if large else {}),
            **{key: v for key, v in QUICK_SETTINGS.items() if quick and key in known}}


def settings_for(name: str, overrides: dict[str, dict] | None, quick: bool,
                 large: bool = False) -> dict:
    """Setting overrides for model ``name``: its run settings (:func:`quick_settings`), then
    ``overrides[name]``."""
    return {**quick_settings(name, quick, large), **(overrides or {}).get(name, {})}


def scales(name: str) -> bool:
    """Whether model ``name`` runs on a big release (its ``large_data`` is not None: those
    that are say why in their class and doc page)."""
    return model_class(name).large_data is not None
