"""Every metric of the project, with the exact definitions of the benchmark protocol
(``docs/protocol.md``).

Rating metrics take ``(true, pred)``. Top-N metrics work on a ``(users, K)`` array of
recommended item indices and a users x items sparse matrix of relevant items, so they are
vectorised and return per-user values (for bootstrap intervals) as well as means. Choosing
the K best items is :mod:`recommender.topk`'s job; nothing here knows of models.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recommender.topk import ScoreFn, iter_batches

__all__ = [
    "RELEVANT_RATING",
    "rmse",
    "mae",
    "ranking_metrics",
    "roc_auc",
    "coverage",
    "classification_metrics",
    "factorized_top_k_accuracy",
    "novelty",
    "popular_share",
]

# A test movie is relevant (liked) when rated at least this: the benchmark protocol's
# definition, also the classifier's default "like" and the softmax's validation target.
RELEVANT_RATING = 4.0


def rmse(true, pred) -> float:
    """Root mean squared error over all pairs."""
    true, pred = np.asarray(true, np.float64), np.asarray(pred, np.float64)
    return float(np.sqrt(np.mean((true - pred) ** 2)))


def mae(true, pred) -> float:
    """Mean absolute error over all pairs."""
    true, pred = np.asarray(true, np.float64), np.asarray(pred, np.float64)
    return float(np.mean(np.abs(true - pred)))


def ranking_metrics(recommended: np.ndarray, relevant: sp.csr_matrix, k: int = 10) -> dict:
    """Per-user precision, recall, NDCG, MAP and HR at ``k``.

    Definitions (``docs/protocol.md``): precision = hits / k; recall = hits /
    |relevant|; NDCG with binary gains, discount 1/log2(rank + 1) and ideal DCG over
    min(k, |relevant|); MAP = sum of precision@rank at each hit rank / min(k, |relevant|);
    HR = 1 if any hit. Rows of ``recommended`` pair with rows of ``relevant``; users with no
    relevant item must be removed by the caller (they are undefined).

    Returns:
        ``{"precision": array, "recall": ..., "ndcg": ..., "map": ..., "hr": ...}``.
    """
    recommended = recommended[:, :k]
    n_users = recommended.shape[0]
    rows = np.repeat(np.arange(n_users), recommended.shape[1])
    cols = recommended.ravel()
    valid = cols >= 0
    hits = np.zeros(len(cols), bool)
    if valid.any():  # (scipy answers an empty fancy index with a matrix, not an array)
        hits[valid] = np.asarray(relevant[rows[valid], cols[valid]]).ravel() > 0
    hits = hits.reshape(recommended.shape)
    n_rel = np.diff(relevant.indptr).astype(np.float64)
    if (n_rel == 0).any():
        raise ValueError("ranking_metrics: every user needs at least one relevant item")
    ranks = np.arange(1, hits.shape[1] + 1)
    discount = 1.0 / np.log2(ranks + 1)
    n_hits = hits.sum(axis=1)
    ideal_len = np.minimum(k, n_rel).astype(int)
    ideal = np.cumsum(1.0 / np.log2(np.arange(1, k + 1) + 1))[ideal_len - 1]
    precision_at_rank = np.cumsum(hits, axis=1) / ranks
    return {
        "precision": n_hits / k,
        "recall": n_hits / n_rel,
        "ndcg": (hits * discount).sum(axis=1) / ideal,
        "map": (precision_at_rank * hits).sum(axis=1) / np.minimum(k, n_rel),
        "hr": (n_hits > 0).astype(np.float64),
    }


def roc_auc(scores: np.ndarray, relevant: np.ndarray,
            candidates: np.ndarray | None = None) -> np.ndarray:
    """Per-row ROC AUC: the chance that a relevant candidate outscores an irrelevant one.

    The Mann-Whitney form over average ranks, so a tie counts one half (a constant scorer gets
    0.5). Only ``candidates`` take part (a user's already revealed movies are neither
    positives nor negatives); ``-inf`` scores are ordinary lowest scores.

    Args:
        scores: ``(users, items)`` scores.
        relevant: ``(users, items)`` booleans, the positives.
        candidates: ``(users, items)`` booleans (default: every item).

    Returns:
        ``(users,)`` AUC; NaN for a row without a positive or without a negative candidate.
    """
    from scipy.stats import rankdata

    scores = np.asarray(scores, np.float64)
    candidates = np.ones(scores.shape, bool) if candidates is None else np.asarray(candidates,
                                                                                   bool)
    positive = np.asarray(relevant, bool) & candidates
    ranks = rankdata(np.where(candidates, scores, np.nan), axis=1, nan_policy="omit")
    n_pos = positive.sum(axis=1)
    n_neg = candidates.sum(axis=1) - n_pos
    rank_sum = np.where(positive, ranks, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def coverage(recommended: np.ndarray, n_items: int) -> float:
    """Distinct items recommended to the evaluated users / catalogue size."""
    items = recommended[recommended >= 0]
    return float(len(np.unique(items)) / n_items) if n_items else 0.0


def novelty(recommended: np.ndarray, item_counts: np.ndarray, n_users: int) -> float:
    """Mean self-information -log2(popularity) of recommended items, popularity = share of
    train users who rated the item. Higher means less obvious recommendations."""
    items = recommended[recommended >= 0]
    p = np.maximum(item_counts[items], 1) / max(n_users, 1)
    return float(np.mean(-np.log2(p))) if len(items) else 0.0


def popular_share(recommended: np.ndarray, item_counts: np.ndarray, top: float = 0.01) -> float:
    """Share of recommendation slots taken by the ``top`` most popular items (by train count)."""
    n_top = max(1, int(round(len(item_counts) * top)))
    order = np.lexsort((np.arange(len(item_counts)), -item_counts))
    is_top = np.zeros(len(item_counts), bool)
    is_top[order[:n_top]] = True
    items = recommended[recommended >= 0]
    return float(is_top[items].mean()) if len(items) else 0.0


def classification_metrics(true, prob, threshold: float = 0.5) -> dict:
    """Accuracy, precision, recall, F1 (at ``threshold``), ROC-AUC and log loss for P(like)."""
    from sklearn import metrics as skm

    true = np.asarray(true).astype(int)
    prob = np.clip(np.asarray(prob, np.float64), 1e-7, 1 - 1e-7)
    pred = (prob >= threshold).astype(int)
    both = len(np.unique(true)) == 2
    return {
        "accuracy": float(skm.accuracy_score(true, pred)),
        "precision": float(skm.precision_score(true, pred, zero_division=0)),
        "recall": float(skm.recall_score(true, pred, zero_division=0)),
        "f1": float(skm.f1_score(true, pred, zero_division=0)),
        "auc": float(skm.roc_auc_score(true, prob)) if both else float("nan"),
        "log_loss": float(skm.log_loss(true, prob, labels=[0, 1])),
        "positive_rate": float(true.mean()),
    }


def factorized_top_k_accuracy(score_fn: ScoreFn, users: np.ndarray, items: np.ndarray,
                              n_items: int, ks=(1, 5, 10, 50, 100),
                              batch_size: int | None = None) -> dict:
    """TensorFlow Recommenders' FactorizedTopK "top-K accuracy".

    The share of test pairs ``(user, item)`` whose item is among the user's top K over the
    whole catalogue; seen movies are *not* excluded (that is how TFRS computes it, and how the
    figures of the multitask origin system were made). A pair counts as in the top K when fewer than K items
    score strictly higher than it.
    """
    users = np.asarray(users, np.int64)
    items = np.asarray(items, np.int64)
    order = np.argsort(users, kind="stable")
    users, items = users[order], items[order]
    unique, start = np.unique(users, return_index=True)
    ranks = np.empty(len(users), np.int64)
    bounds = np.append(start, len(users))
    for sl in iter_batches(len(unique), n_items, batch_size):
        scores = np.asarray(score_fn(unique[sl]))
        for row, u in enumerate(range(sl.start, sl.stop)):
            a, b = bounds[u], bounds[u + 1]
            own = scores[row, items[a:b]]
            ranks[a:b] = (scores[row][None, :] > own[:, None]).sum(axis=1)
    return {f"top_{k}_accuracy": float(np.mean(ranks < k)) for k in ks}
