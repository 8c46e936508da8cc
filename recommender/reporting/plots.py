"""The figures the notebooks show, one function each, returning the matplotlib Figure.

Functions take plain tables or arrays so they work for any dataset or model, and never save
anything themselves (notebooks call :func:`recommender.reporting.records.save_figure`).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

__all__ = ["rating_distribution", "popularity_long_tail", "user_activity", "genres_over_time",
           "sparsity_pattern", "training_curves", "error_by_bucket", "predicted_vs_actual",
           "embedding_2d", "calibration", "roc_curve", "metrics_with_ci", "metric_at_k",
           "weighted_chart", "genre_charts", "cold_start_items", "cold_start_users",
           "per_epoch", "comparison_overview"]

sns.set_theme(style="whitegrid", context="notebook")


def rating_distribution(ratings: pd.DataFrame):
    """Bar chart of how often each rating value is given."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    counts = ratings["rating"].value_counts().sort_index()
    ax.bar(counts.index.astype(str), counts.to_numpy(), color="steelblue")
    ax.set(xlabel="rating", ylabel="ratings", title="Rating distribution")
    return fig


def popularity_long_tail(ratings: pd.DataFrame):
    """Ratings per movie by popularity rank (log scale) and the cumulative share they cover."""
    counts = np.sort(ratings["movieId"].value_counts().to_numpy())[::-1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.5))
    left.loglog(np.arange(1, len(counts) + 1), counts)
    left.set(xlabel="movie popularity rank", ylabel="ratings", title="Long tail of popularity")
    share = np.cumsum(counts) / counts.sum()
    right.plot(np.arange(1, len(counts) + 1) / len(counts), share)
    right.set(xlabel="share of movies (most popular first)", ylabel="share of ratings",
              title="Concentration of ratings")
    return fig


def user_activity(ratings: pd.DataFrame):
    """Histogram of ratings per user (log bins)."""
    per_user = ratings["userId"].value_counts().to_numpy()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bins = np.logspace(np.log10(max(per_user.min(), 1)), np.log10(per_user.max() + 1), 40)
    ax.hist(per_user, bins=bins, color="darkorange")
    ax.set(xscale="log", xlabel="ratings per user", ylabel="users", title="User activity")
    return fig


def genres_over_time(movies: pd.DataFrame, top: int = 8):
    """Share of each of the ``top`` genres among movies released per decade."""
    exploded = movies.dropna(subset=["year"]).explode("genres").dropna(subset=["genres"])
    exploded = exploded.assign(decade=(exploded["year"].astype(int) // 10) * 10)
    keep = exploded["genres"].value_counts().index[:top]
    table = (exploded[exploded["genres"].isin(keep)]
             .groupby(["decade", "genres"]).size().unstack(fill_value=0))
    share = table.div(table.sum(axis=1), axis=0)
    fig, ax = plt.subplots(figsize=(10, 4))
    share.plot.area(ax=ax, cmap="tab10", linewidth=0)
    ax.set(xlabel="release decade", ylabel="share of genre tags", title="Genres over time")
    ax.legend(loc="center left", bbox_to_anchor=(1, 0.5))
    return fig


def sparsity_pattern(mask: np.ndarray, max_side: int = 400):
    """The observed cells of a (movies x users) mask, downsampled to at most ``max_side``."""
    rows = np.linspace(0, mask.shape[0] - 1, min(max_side, mask.shape[0])).astype(int)
    cols = np.linspace(0, mask.shape[1] - 1, min(max_side, mask.shape[1])).astype(int)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(mask[np.ix_(rows, cols)], aspect="auto", cmap="Greys", interpolation="nearest")
    ax.set(xlabel="users (most active first, sampled)", ylabel="movies (most rated first, sampled)",
           title=f"Ratings matrix: {mask.mean():.2%} of cells observed")
    return fig


def training_curves(history: pd.DataFrame, val_label: str = "validation",
                    best_epoch: int | None = None):
    """Training loss and validation metric per epoch, the best epoch marked.

    Pass ``best_epoch`` from the training history: early stopping only counts improvements
    larger than its ``min_delta``, so it can differ from the lowest validation value.
    """
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(history["epoch"], history["loss"], label="training loss")
    ax.set(xlabel="epoch", ylabel="training loss")
    if "val" in history:
        twin = ax.twinx()
        twin.plot(history["epoch"], history["val"], color="crimson", label=val_label)
        best = best_epoch or history.loc[history["val"].idxmin(), "epoch"]
        twin.axvline(best, color="grey", ls="--", lw=1, label=f"best epoch {best}")
        twin.set_ylabel(val_label)
        fig.legend(loc="upper right")
    ax.set_title("Training curves")
    return fig


def error_by_bucket(frame: pd.DataFrame, bucket: str, error: str = "abs_error"):
    """Mean error per bucket (e.g. user activity or movie popularity), with counts."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    sns.barplot(data=frame, x=bucket, y=error, ax=ax, color="steelblue", errorbar=("ci", 95))
    ax.set(title=f"{error} by {bucket}")
    ax.tick_params(axis="x", rotation=30)
    return fig


def predicted_vs_actual(actual, predicted):
    """Distributions of actual and predicted ratings, and predictions per actual value."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.5))
    bins = np.arange(0.25, 5.5, 0.25)
    left.hist(actual, bins=bins, alpha=0.6, label="actual")
    left.hist(predicted, bins=bins, alpha=0.6, label="predicted")
    left.set(xlabel="rating", ylabel="pairs", title="Actual vs predicted distribution")
    left.legend()
    sns.boxplot(x=np.asarray(actual), y=np.asarray(predicted), ax=right, color="lightsteelblue",
                fliersize=1)
    right.set(xlabel="actual rating", ylabel="predicted rating", title="Predicted by actual")
    return fig


def embedding_2d(points: np.ndarray, labels, title: str = "Movie embeddings"):
    """A 2-D projection of embeddings coloured by a label (e.g. first genre)."""
    fig, ax = plt.subplots(figsize=(8, 6))
    frame = pd.DataFrame({"x": points[:, 0], "y": points[:, 1], "label": labels})
    sns.scatterplot(data=frame, x="x", y="y", hue="label", s=12, ax=ax, palette="tab10",
                    linewidth=0)
    ax.set(title=title, xlabel="", ylabel="")
    ax.legend(loc="center left", bbox_to_anchor=(1, 0.5), fontsize=8)
    return fig


def calibration(prob_true: np.ndarray, prob_pred: np.ndarray, label: str = "model"):
    """Reliability diagram: observed frequency of likes against predicted probability."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfectly calibrated")
    ax.plot(prob_pred, prob_true, marker="o", label=label)
    ax.set(xlabel="predicted P(like)", ylabel="observed share of likes", title="Calibration")
    ax.legend()
    return fig


def roc_curve(true, prob, label: str = "model"):
    """ROC curve of a probabilistic classifier, its AUC in the legend."""
    from sklearn.metrics import roc_auc_score
    from sklearn.metrics import roc_curve as _roc

    fpr, tpr, _ = _roc(np.asarray(true).astype(int), np.asarray(prob))
    auc = roc_auc_score(np.asarray(true).astype(int), np.asarray(prob))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="chance")
    ax.plot(fpr, tpr, label=f"{label} (AUC {auc:.3f})")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
    ax.legend(loc="lower right")
    return fig


def _bars_with_ci(ax, table: pd.DataFrame, metric: str, title: str) -> None:
    """Horizontal bars of ``metric`` per model with ``<metric>_low``/``_high`` error bars."""
    table = table.dropna(subset=[metric]).sort_values(metric)
    err = None
    if f"{metric}_low" in table:
        err = np.vstack([table[metric] - table[f"{metric}_low"],
                         table[f"{metric}_high"] - table[metric]])
    ax.barh(table["model"], table[metric], xerr=err, color="steelblue", capsize=3)
    ax.set(xlabel=metric, title=title)


def metrics_with_ci(table: pd.DataFrame, metric: str):
    """Horizontal bars of ``metric`` per model with ``<metric>_low``/``_high`` error bars."""
    rows = int(table[metric].notna().sum())
    fig, ax = plt.subplots(figsize=(7, 0.4 * rows + 1.2))
    _bars_with_ci(ax, table, metric, f"{metric} with 95% bootstrap interval")
    return fig


def comparison_overview(table: pd.DataFrame, k: int = 10):
    """The comparison at a glance: NDCG@K (every model) and RMSE (rating models), each with
    its 95% bootstrap interval; the picture that opens ``reports/index.html``."""
    panels = [(f"ndcg@{k}", f"NDCG@{k}: higher is better"), ("rmse", "RMSE: lower is better")]
    panels = [(m, t) for m, t in panels if m in table and table[m].notna().any()]
    rows = len(table)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 0.35 * rows + 1.4),
                             squeeze=False)
    for ax, (metric, title) in zip(axes[0], panels):
        _bars_with_ci(ax, table, metric, title)
    fig.tight_layout()
    return fig


def metric_at_k(curves: pd.DataFrame, metric: str):
    """``metric`` against K for each model (columns ``model``, ``k``, ``metric``)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    sns.lineplot(data=curves, x="k", y=metric, hue="model", ax=ax)
    ax.set(title=f"{metric} against K")
    return fig


def _chart_bars(ax, chart: pd.DataFrame, title: str) -> None:
    chart = chart.iloc[::-1]
    labels = (chart["title"].map(lambda t: t if len(t) <= 40 else f"{t[:38]}…")
              if "title" in chart else chart["movieId"].astype(str))
    ax.barh(labels, chart["weighted"], color="steelblue")
    low = chart["weighted"].min()
    ax.set_xlim(low - 0.3 * (chart["weighted"].max() - low + 0.1), None)
    for y, (wr, votes) in enumerate(zip(chart["weighted"], chart["votes"])):
        ax.text(wr, y, f" {votes:.0f} votes", va="center", fontsize=7)
    ax.set(title=title, xlabel="weighted rating")
    ax.tick_params(axis="y", labelsize=8)


def weighted_chart(chart: pd.DataFrame):
    """Horizontal bars of a weighted-rating chart (``demographic.weighted_chart``), best on
    top, each bar labelled with its vote count; ``m`` and ``C`` in the title."""
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(chart) + 1.2))
    _chart_bars(ax, chart, f"Top {len(chart)} by weighted rating "
                           f"(m = {chart.attrs['m']:.0f} votes, C = {chart.attrs['C']:.2f})")
    return fig


def genre_charts(charts: dict[str, pd.DataFrame], columns: int = 2):
    """One weighted-rating chart per genre, in a grid."""
    rows = -(-len(charts) // columns)
    top = max(len(c) for c in charts.values())
    fig, axes = plt.subplots(rows, columns, figsize=(7 * columns, (0.3 * top + 1) * rows),
                             squeeze=False)
    for ax, (genre, chart) in zip(axes.ravel(), charts.items()):
        _chart_bars(ax, chart, f"{genre} (m = {chart.attrs['m']:.0f}, "
                               f"C = {chart.attrs['C']:.2f})")
    for ax in axes.ravel()[len(charts):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def cold_start_items(table: pd.DataFrame, reference: pd.DataFrame | None = None):
    """NDCG@10 and AUC of every model on cold movies (rows of ``protocol == "items"``), with
    ``reference`` rows (model, auc, ndcg@10) drawn as dashed lines."""
    rows = table[table["protocol"] == "items"].sort_values("auc")
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.35 * len(rows) + 1.8), sharey=True)
    for ax, metric in zip(axes, ["ndcg@10", "auc"]):
        ax.barh(rows["model"], rows[metric], color="steelblue")
        if reference is not None:
            for (_, ref), colour in zip(reference.dropna(subset=[metric]).iterrows(),
                                        sns.color_palette("Set2")):
                ax.axvline(ref[metric], ls="--", color=colour, label=ref["model"])
            ax.legend(fontsize=7, loc="lower right")
        ax.set(xlabel=metric, title=f"Cold movies: {metric}")
    if (rows["auc"] > 0).all():
        axes[1].set_xlim(0.4, 1.0)
    fig.tight_layout()
    return fig


def cold_start_users(table: pd.DataFrame):
    """NDCG@10 and AUC of every model for new users against the number of revealed ratings
    (rows of ``protocol == "users"``)."""
    rows = table[table["protocol"] == "users"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, metric in zip(axes, ["ndcg@10", "auc"]):
        sns.lineplot(data=rows, x="revealed", y=metric, hue="model", marker="o", ax=ax,
                     legend=ax is axes[1])
        ax.set(xlabel="ratings revealed per new user", title=f"New users: {metric}")
        ax.set_xticks(sorted(rows["revealed"].unique()))
    axes[1].legend(loc="center left", bbox_to_anchor=(1, 0.5), fontsize=8)
    fig.tight_layout()
    return fig


def per_epoch(trace: pd.DataFrame, metrics: list[str]):
    """One panel per metric against the epoch, a line per ``run`` (columns ``run``, ``epoch``
    and the metrics)."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        sns.lineplot(data=trace, x="epoch", y=metric, hue="run", marker="o", ax=ax)
        ax.set(title=f"{metric} per epoch")
    fig.tight_layout()
    return fig
