"""Analyses of the multitask two-tower model (origin 001, notebook 06): the origin system's
per-epoch table, the retrieval tower on its own, and the ways the fitted model can rank.
"""

from __future__ import annotations

import pandas as pd

from recommender import metrics
from recommender.evaluation import evaluate, top_k_accuracy
from recommender.models import Recommender

__all__ = ["fit_traced", "retrieval_alone", "ranking_modes"]


def fit_traced(model: Recommender, train: pd.DataFrame, test: pd.DataFrame,
               movies: pd.DataFrame | None = None, ks=(1, 5, 10, 50, 100)) -> pd.DataFrame:
    """Fit a multitask ``model``, measuring ``test`` after every epoch as TFRS's ``fit`` does.

    After each epoch: ``rmse`` of the ranking head and ``top_{k}_accuracy`` of the retrieval
    tower (:func:`~recommender.evaluation.top_k_accuracy`). The measurements only observe:
    they never select weights or epochs, so ``test`` may be the test set.

    Returns:
        One row per epoch of every training run: ``epoch``, ``rmse``, ``top_{k}_accuracy``.
    """
    rows = []

    def measure(epoch: int) -> None:
        pred = model.predict(test["userId"], test["movieId"])
        rows.append({"epoch": len(rows) + 1, "rmse": metrics.rmse(test["rating"], pred),
                     **top_k_accuracy(model.with_ranking(rerank=0), test, ks)})

    model.fit(train, movies=movies, on_epoch=measure)
    return pd.DataFrame(rows)


def retrieval_alone(model: Recommender, test: pd.DataFrame, k: int = 10) -> dict[str, float]:
    """A fitted multitask model judged with its retrieval tower alone: ``rmse`` of the ranking
    head, the benchmark's ``ndcg@k`` and TFRS's ``top_100_accuracy`` of the retrieval scores,
    and its ``fit_seconds``."""
    retrieval = model.with_ranking(rerank=0)
    out = evaluate(retrieval, test, k=k).metrics
    return {"rmse": out["rmse"], f"ndcg@{k}": out[f"ndcg@{k}"],
            "top_100_accuracy": top_k_accuracy(retrieval, test, ks=(100,))["top_100_accuracy"],
            "fit_seconds": model.meta["fit_seconds"]}


def ranking_modes(model: Recommender, test: pd.DataFrame, modes: dict[str, dict],
                  k: int = 10) -> pd.DataFrame:
    """One fitted multitask model evaluated under several ranking choices.

    Args:
        model: the fitted model.
        test: the test ratings.
        modes: ``label -> with_ranking arguments`` (``{}``: the model's own settings;
            ``{"rerank": 0}``: the retrieval tower alone; ``{"rerank_mix": 0.0}``: re-ranked
            by predicted rating alone).
        k: list length.

    Returns:
        One row per label: ``rmse``, precision, recall, NDCG and coverage at ``k``, novelty.
    """
    columns = ["rmse", f"precision@{k}", f"recall@{k}", f"ndcg@{k}", f"coverage@{k}",
               "novelty"]
    rows = {}
    for label, choice in modes.items():
        out = evaluate(model.with_ranking(**choice), test, k=k).metrics
        rows[label] = {key: out[key] for key in columns}
    return pd.DataFrame(rows).T
