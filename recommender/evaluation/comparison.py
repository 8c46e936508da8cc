"""Every registered model on one split, with intervals and paired tests against the baselines.

:func:`compare` trains each model through :func:`recommender.evaluation.fit_and_evaluate` (the
code path of ``recommender evaluate``) and adds what a single run cannot say: 95% bootstrap
intervals over users for every top-N metric and for RMSE, paired tests of each model against
the best baseline, precision and recall for K = 1..50, and RMSE by user-activity bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from recommender.evaluation.protocol import (Evaluation, fit_and_evaluate, relevance_matrix,
                                             settings_for)
from recommender.metrics import ranking_metrics
from recommender.models import MODELS, Recommender
from recommender.data.preprocessing import user_activity

__all__ = ["Comparison", "compare", "bootstrap_ci", "paired_p_value", "precision_recall_at_k",
           "rmse_by_activity", "BASELINES"]

BASELINES = ("global-mean", "baseline", "popularity", "ease")
TOP_N = ("precision", "recall", "ndcg", "map", "hr")
_BOOTSTRAP_CELLS = 2**22  # resampled values held at once (32 MB of float64)


@dataclass
class Comparison:
    """What :func:`compare` measured, as tables.

    Attributes:
        table: one row per model: ``rmse``, ``mae``, the top-N metrics at K, coverage,
            novelty, ``top1pct_share``, ``fit_seconds``, ``score_seconds``, ``users``; every
            top-N metric and RMSE with ``<metric>_low``/``<metric>_high`` (95% bootstrap
            interval); ``ndcg@K_p`` and ``rmse_p``: p-values of the paired tests against
            ``baselines["top_n"]`` and ``baselines["rating"]``.
        per_user: ``model``, ``userId`` and per-user precision, recall, NDCG, MAP, HR at K.
        curves: ``model``, ``k`` (1..50), mean ``precision`` and ``recall``.
        activity: ``model``, ``activity`` (train ratings of the user, bucketed), ``ratings``,
            ``rmse``; rating models only.
        baselines: the best baseline for top-N (by NDCG) and for ratings (by RMSE), or None.
        squared_errors: one column per rating model, the squared error of each test rating
            (in the test table's order), for paired tests between any two rating models.
    """

    table: pd.DataFrame
    per_user: pd.DataFrame
    curves: pd.DataFrame
    activity: pd.DataFrame
    baselines: dict[str, str | None]
    squared_errors: pd.DataFrame

    def records(self) -> list[dict]:
        """The table as a list of row dicts (what ``reports/metrics`` and the index keep)."""
        return self.table.to_dict(orient="records")


def bootstrap_ci(values, counts=None, n_resamples: int = 1000, level: float = 0.95,
                 seed: int = 0) -> np.ndarray:
    """Percentile bootstrap interval over users (rows), resampled with replacement.

    Without ``counts`` the statistic is the mean over users of each column; with ``counts``
    it is the pooled ratio ``sum(values) / sum(counts)`` of the resampled users (e.g. per-user
    sums of squared error and numbers of ratings give the MSE over their ratings).

    Args:
        values: ``(n_users,)`` or ``(n_users, n_metrics)`` per-user values.
        counts: optional ``(n_users,)`` denominators.
        n_resamples: bootstrap resamples.
        level: coverage of the interval.
        seed: seeds the resampling; equal seeds and user counts draw the same resamples, so
            intervals of different models rest on the same resampled users.

    Returns:
        ``(2,)`` or ``(2, n_metrics)``: the lower and upper bounds.
    """
    values = np.asarray(values, np.float64)
    flat = values.ndim == 1
    values = values.reshape(len(values), -1)
    counts = np.ones(len(values)) if counts is None else np.asarray(counts, np.float64)
    n, m = values.shape
    rng = np.random.default_rng(seed)
    resampled = np.empty((n_resamples, m))
    step = max(1, _BOOTSTRAP_CELLS // max(n * m, 1))
    for start in range(0, n_resamples, step):
        idx = rng.integers(0, n, (min(step, n_resamples - start), n))
        resampled[start:start + len(idx)] = (values[idx].sum(axis=1)
                                             / counts[idx].sum(axis=1)[:, None])
    alpha = (1.0 - level) / 2.0
    bounds = np.quantile(resampled, [alpha, 1.0 - alpha], axis=0)
    return bounds[:, 0] if flat else bounds


def paired_p_value(a, b, test: Literal["wilcoxon", "t"] = "wilcoxon") -> float:
    """Two-sided p-value that paired samples ``a`` and ``b`` differ.

    ``wilcoxon``: Wilcoxon signed-rank (``scipy.stats.wilcoxon``, zero differences dropped),
    for bounded, skewed per-user metrics such as NDCG. ``t``: paired t-test
    (``scipy.stats.ttest_rel``), for per-rating squared errors: it tests the mean difference,
    which is the difference in MSE that RMSE ranks by. Identical samples give 1.0.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    if np.all(a == b):
        return 1.0
    result = stats.wilcoxon(a, b) if test == "wilcoxon" else stats.ttest_rel(a, b)
    return float(result.pvalue)


def precision_recall_at_k(model: Recommender, test: pd.DataFrame, max_k: int = 50,
                          ranked: np.ndarray | None = None) -> pd.DataFrame:
    """Mean precision and recall at K = 1..``max_k`` from one top-``max_k`` list per user.

    Uses the protocol of :func:`recommender.evaluation.evaluate` (same candidates, relevant
    movies and evaluated users), so the row at K = 10 equals its precision@10 and recall@10.
    ``ranked``: those lists when already made (``evaluate(..., depth=max_k).recommended``).
    """
    users, relevant = relevance_matrix(model, test)
    if ranked is None:
        ranked = model.top_k(users, max_k)
    rows = []
    for k in range(1, max_k + 1):
        at_k = ranking_metrics(ranked, relevant, k)
        rows.append({"k": k, "precision": at_k["precision"].mean(),
                     "recall": at_k["recall"].mean()})
    return pd.DataFrame(rows)


def _squared_error(predictions: pd.DataFrame) -> pd.Series:
    """Per-rating squared error of a ``rating, prediction`` table."""
    return (predictions["rating"] - predictions["prediction"]) ** 2


def rmse_by_activity(predictions: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """RMSE per bucket of user activity (the user's number of train ratings; 0 = cold user).

    Args:
        predictions: ``userId``, ``rating``, ``prediction`` (and optionally ``model``).
        train: the ratings the models were fitted on.

    Returns:
        ``[model,] activity, ratings, rmse`` for every non-empty bucket.
    """
    bucket = user_activity(predictions["userId"], train)
    frame = predictions.assign(activity=bucket, squared=_squared_error(predictions))
    keys = ["model", "activity"] if "model" in frame else ["activity"]
    out = frame.groupby(keys, observed=True, sort=True)["squared"].agg(["size", "mean"])
    out = out.rename(columns={"size": "ratings"}).assign(rmse=lambda t: np.sqrt(t["mean"]))
    out = out.drop(columns="mean").reset_index()
    return out.assign(activity=out["activity"].cat.remove_unused_categories())


def _intervals(result: Evaluation, k: int, n_resamples: int, seed: int) -> dict[str, float]:
    """``<metric>_low``/``<metric>_high`` for the top-N metrics and RMSE of one evaluation."""
    out = {}
    bounds = bootstrap_ci(result.per_user[list(TOP_N)], n_resamples=n_resamples, seed=seed)
    for metric, low, high in zip(TOP_N, *bounds):
        out[f"{metric}@{k}_low"], out[f"{metric}@{k}_high"] = low, high
    if result.predictions is not None:
        per_user = _squared_error(result.predictions).groupby(result.predictions["userId"])
        sums = per_user.agg(["sum", "size"])
        mse = bootstrap_ci(sums["sum"], sums["size"], n_resamples=n_resamples, seed=seed)
        out["rmse_low"], out["rmse_high"] = np.sqrt(mse)
    return out


def _against_best_baseline(table: pd.DataFrame, samples: pd.DataFrame | dict[str, np.ndarray],
                           metric: str, largest: bool,
                           test: Literal["wilcoxon", "t"]) -> tuple[str | None, list[float]]:
    """The best baseline by ``metric`` and each model's paired p-value against it.

    ``samples`` maps model names to aligned per-user or per-rating values; models without
    samples, and the baseline itself, get NaN.
    """
    rows = table[table["model"].isin(BASELINES)]
    rows = rows.dropna(subset=[metric]) if metric in rows else rows.iloc[:0]
    if rows.empty:
        return None, [np.nan] * len(table)
    best = str(rows.loc[rows[metric].idxmax() if largest else rows[metric].idxmin(), "model"])
    return best, [paired_p_value(samples[m], samples[best], test)
                  if m in samples and m != best else np.nan for m in table["model"]]


def _column_order(columns, k: int) -> list[str]:
    """Readable column order: ratings, then top-N with intervals and p-value, then costs."""
    order = ["model", "rmse", "rmse_low", "rmse_high", "rmse_p", "mae"]
    for name in TOP_N:
        order += [f"{name}@{k}", f"{name}@{k}_low", f"{name}@{k}_high"]
        if name == "ndcg":
            order.append(f"ndcg@{k}_p")
    order += [f"coverage@{k}", "novelty", "top1pct_share", "fit_seconds", "score_seconds",
              "users"]
    return [c for c in order if c in columns] + [c for c in columns if c not in order]


def compare(names: list[str] | None, train: pd.DataFrame, test: pd.DataFrame,
            movies: pd.DataFrame | None = None, tags: pd.DataFrame | None = None,
            seed: int = 0, k: int = 10, params: dict[str, dict] | None = None,
            quick: bool = False, n_resamples: int = 1000, max_k: int = 50,
            cache_dir: str | None = None, large: bool = False) -> Comparison:
    """Train and evaluate models on one split, with intervals, paired tests and curves.

    Paired tests are against the best baseline of :data:`BASELINES` among the compared models:
    by NDCG@K, a Wilcoxon signed-rank test on per-user NDCG@K (``ndcg@K_p``); by RMSE among
    rating baselines, a paired t-test on per-rating squared error (``rmse_p``). The baseline's
    own p-value is left empty.

    Args:
        names: registered model names; None means every model in the registry.
        train: ratings to fit on.
        test: ratings to evaluate on.
        movies: movie table for content models.
        tags: tag table for content models.
        seed: model seed and bootstrap seed.
        k: list length of the top-N metrics.
        params: per-model hyperparameter overrides, ``{name: {key: value}}``.
        quick: few epochs (:data:`~recommender.evaluation.protocol.QUICK_SETTINGS`, for models that have those keys).
        n_resamples: bootstrap resamples for the 95% intervals.
        max_k: longest list of the precision/recall curves.
        cache_dir: reuse models saved there for the same data and settings (see
            :func:`recommender.evaluation.fit_and_evaluate`), and save new ones.
        large: a big release: every model with its ``large_data`` settings.

    Returns:
        A :class:`Comparison`.
    """
    names = list(MODELS) if names is None else list(names)
    if not names:
        raise ValueError("compare: no model to compare; pass names or None for every model")
    rows, per_user, curves, predictions = [], [], [], []
    for name in names:
        model, result = fit_and_evaluate(name, train, test, movies=movies, tags=tags,
                                         seed=seed, k=k, cache_dir=cache_dir, depth=max_k,
                                         **settings_for(name, params, quick, large))
        rows.append({**result.row(), "model": name, **_intervals(result, k, n_resamples, seed)})
        per_user.append(result.per_user.assign(model=name))
        curves.append(precision_recall_at_k(model, test, max_k, result.recommended)
                      .assign(model=name))
        if result.predictions is not None:
            predictions.append(result.predictions.assign(model=name))

    table = pd.DataFrame(rows)
    per_user_table = pd.concat(per_user, ignore_index=True)[["model", "userId", *TOP_N]]
    ndcg = per_user_table.pivot(index="userId", columns="model", values="ndcg")
    squared = {p["model"].iat[0]: _squared_error(p).to_numpy() for p in predictions}
    top_n, table[f"ndcg@{k}_p"] = _against_best_baseline(table, ndcg, f"ndcg@{k}", True,
                                                         "wilcoxon")
    rating, table["rmse_p"] = _against_best_baseline(table, squared, "rmse", False, "t")
    activity = (rmse_by_activity(pd.concat(predictions, ignore_index=True), train)
                if predictions else pd.DataFrame(columns=["model", "activity", "ratings", "rmse"]))
    return Comparison(table[_column_order(table.columns, k)], per_user_table,
                      pd.concat(curves, ignore_index=True)[["model", "k", "precision", "recall"]],
                      activity, {"top_n": top_n, "rating": rating},
                      pd.DataFrame(squared, index=test.index))
