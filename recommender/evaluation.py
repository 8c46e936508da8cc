"""The evaluation protocol of ``shared/benchmarks/README.md``, in one place.

Rating prediction: RMSE and MAE over every test pair (unknown users or movies fall back inside
the model). Top-N at K: candidates are the train movies minus the user's train movies; relevant
are the user's test movies rated >= 4.0 that occur in train; users with nothing relevant are
skipped. ``recommender evaluate``, the notebooks and the comparison all call :func:`evaluate`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender import metrics
from recommender.models import Recommender, load_model, make_model
from recommender.models.base import fingerprint
from recommender.models.factorization import Classification, classification_report

__all__ = ["Evaluation", "evaluate", "fit_and_evaluate", "relevance_matrix"]

RELEVANT_RATING = 4.0


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
             threshold: float = RELEVANT_RATING, progress: bool = False) -> Evaluation:
    """Evaluate a fitted model on a test ratings table with the benchmark protocol."""
    out: dict = {}
    predictions = None
    if model.predicts_ratings:
        pred = model.predict(test["userId"].to_numpy(), test["movieId"].to_numpy())
        predictions = test[["userId", "movieId", "rating"]].assign(prediction=pred)
        out["rmse"] = metrics.rmse(test["rating"], pred)
        out["mae"] = metrics.mae(test["rating"], pred)
    if isinstance(model, Classification):  # P(like) against like = rating >= its threshold
        out.update(classification_report(model, test))

    users, relevant = relevance_matrix(model, test, threshold)
    start = time.perf_counter()
    recommended = model.top_k(users, k, progress=progress)
    out["score_seconds"] = time.perf_counter() - start
    per_user = metrics.ranking_metrics(recommended, relevant, k)
    for name, values in per_user.items():
        out[f"{name}@{k}"] = float(np.mean(values)) if len(values) else float("nan")
    out[f"coverage@{k}"] = metrics.coverage(recommended, model.n_items)
    counts = np.asarray(model.seen.sum(axis=0)).ravel()
    out["novelty"] = metrics.novelty(recommended, counts, len(model.users))
    out["top1pct_share"] = metrics.popular_share(recommended, counts)
    out["users"] = int(len(users))
    table = pd.DataFrame({"userId": model.users.decode(users), **per_user})
    return Evaluation(model.name, out, table, recommended, predictions)


def _same(a: dict, b: dict) -> bool:
    """Equal once both went through JSON (tuples saved as lists)."""
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True,
                                                                      default=str)


def _cached(path: Path, fresh: Recommender, train: pd.DataFrame) -> Recommender | None:
    """The model saved at ``path`` if it was trained on ``train`` with ``fresh``'s settings."""
    if not (path / "model.json").is_file():
        return None
    saved = load_model(path)
    matches = (type(saved) is type(fresh) and saved.seed == fresh.seed
               and _same(saved.params, json.loads(json.dumps(fresh.params, default=str)))
               and saved.meta.get("train_fingerprint") == fingerprint(train))
    return saved if matches else None


def fit_and_evaluate(name: str, train: pd.DataFrame, test: pd.DataFrame,
                     movies: pd.DataFrame | None = None, tags: pd.DataFrame | None = None,
                     seed: int = 0, k: int = 10, cache_dir: str | Path | None = None,
                     **params) -> tuple[Recommender, Evaluation]:
    """Make the registered model ``name``, fit it on ``train`` (timed) and evaluate on ``test``.

    With ``cache_dir``, a model saved at ``cache_dir/name`` with the same settings, seed and
    training data is loaded instead of refitted (its recorded fit time is reported), and a
    freshly fitted model is saved there. Notebooks share trained models this way.
    """
    model = make_model(name, seed=seed, **params)
    path = Path(cache_dir) / name if cache_dir else None
    cached = _cached(path, model, train) if path else None
    if cached is not None:
        model = cached
    else:
        model.fit(train, movies=movies, tags=tags)
        if path:
            model.save(path)
    result = evaluate(model, test, k=k)
    result.metrics = {"fit_seconds": model.meta["fit_seconds"], **result.metrics}
    return model, result
