"""Retrieval measured as TensorFlow Recommenders measures it: top-K accuracy over the whole
catalogue, for comparison with figures made with TFRS (the multitask origin system's)."""

from __future__ import annotations

import pandas as pd

from recommender import metrics
from recommender.models import Recommender

__all__ = ["top_k_accuracy"]


def top_k_accuracy(model: Recommender, pairs: pd.DataFrame,
                   ks=(1, 5, 10, 50, 100)) -> dict[str, float]:
    """TFRS's FactorizedTopK accuracy of :meth:`~Recommender.score` on raw ``(userId,
    movieId)`` pairs: the share of pairs whose movie is among the user's top K.

    Over the whole train catalogue, seen movies included (as TFRS computes it); a pair whose
    user or movie is not in train counts as a miss. For a multitask model's retrieval tower
    alone, pass ``model.with_ranking(rerank=0)``.

    Returns:
        ``top_{k}_accuracy`` for each ``k`` of ``ks``.
    """
    u = model.users.encode(pairs["userId"].to_numpy(), unknown="missing")
    i = model.items.encode(pairs["movieId"].to_numpy(), unknown="missing")
    known = (u >= 0) & (i >= 0)
    if not known.any():
        return {f"top_{k}_accuracy": 0.0 for k in ks}
    hits = metrics.factorized_top_k_accuracy(model.score, u[known], i[known], model.n_items, ks)
    return {name: value * known.mean() for name, value in hits.items()}
