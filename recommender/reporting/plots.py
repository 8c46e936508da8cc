"""The figures the notebooks and the index show, one function each, returning the Figure.

Functions take plain tables or arrays so they work for any dataset or model, and never save
anything themselves (notebooks call :func:`recommender.reporting.records.save_figure`).

Every figure follows the same rules, so that it reads at 100% zoom: a model has one colour in
every figure (:data:`MODEL_COLOURS`, :func:`model_colour`), legends sit outside the data,
text is 9 pt or larger, and nothing is cut (figures are saved with a tight bounding box).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator
import pandas as pd
import seaborn as sns

__all__ = ["MODEL_COLOURS", "model_colour", "model_palette", "rating_distribution",
           "popularity_long_tail", "user_activity", "genres_over_time", "sparsity_pattern",
           "training_curves", "error_by_bucket", "predicted_vs_actual", "embedding_2d",
           "calibration", "roc_curve", "metrics_with_ci", "comparison_overview", "metric_at_k",
           "accuracy_against_popularity", "rmse_by_activity", "weighted_chart", "genre_charts",
           "cold_start_items", "cold_start_users", "per_epoch", "similarity_heatmaps",
           "epoch_cost", "quality_by_negatives", "popularity_bias", "side_by_side",
           "similarity_by_label"]

sns.set_theme(style="whitegrid", context="notebook")
SMALL = 9  # the smallest text of any figure, in points

# One colour per registered model, the same in every figure; related models share a family
# (greys for the references, blues for EASE, greens for the factorisations, purples for the
# softmax models, warm colours for the content models). Chosen to stay apart on white.
MODEL_COLOURS = {
    "random": "#c8c8c8",
    "global-mean": "#a0a0a0",
    "baseline": "#000000",
    "time-biases": "#2f4f4f",
    "popularity": "#9a6324",
    "weighted-popularity": "#c8a600",
    "ease": "#4363d8",
    "ease-rated": "#42b4f4",
    "dlae": "#1e90c8",
    "regression": "#3cb44b",
    "regression-hybrid": "#808000",
    "classification": "#469990",
    "softmax": "#911eb4",
    "softmax-dnn": "#f032e6",
    "multitask": "#e6194b",
    "content": "#f58231",
    "content-ridge": "#e6a157",
    "feature-embedding": "#800000",
    "tag-text": "#000075",
    "bpmf": "#006400",
    "neighbourhood": "#00a86b",
    "autorec": "#0b6e8a",
    "recvae": "#b03060",
    "blend": "#404040",
}
# For names not above (a model added later, an analysis variant): picked by a hash of the
# name, so the name gets the same colour in every figure.
_SPARE_COLOURS = ("#bfef45", "#ff69b4", "#7b68ee", "#20b2aa", "#d2691e", "#708090", "#b8860b",
                  "#2e8b57", "#cd5c5c", "#6b8e23")


def model_colour(name: str) -> str:
    """The colour of model ``name`` in every figure (any other name: one of the spare
    colours, picked by a hash of the name)."""
    if name in MODEL_COLOURS:
        return MODEL_COLOURS[name]
    if name.lower() in MODEL_COLOURS:
        return MODEL_COLOURS[name.lower()]
    return _SPARE_COLOURS[zlib.crc32(name.encode()) % len(_SPARE_COLOURS)]


def model_palette(names: Iterable[str]) -> dict[str, str]:
    """``{name: colour}`` for one figure, distinct within it: a registered model's own
    colour; a label that starts with one (``"softmax-dnn, in-batch negatives"``) takes that
    model's colour when no other label of the figure has it, else a spare colour."""
    names = list(dict.fromkeys(names))
    palette = {n: model_colour(n) for n in names
               if n in MODEL_COLOURS or n.lower() in MODEL_COLOURS}
    for name in names:
        if name in palette:
            continue
        base = next((m for m in sorted(MODEL_COLOURS, key=len, reverse=True)
                     if name.lower().startswith((m + " ", m + ","))), None)
        colour = MODEL_COLOURS.get(base)
        if colour is None or colour in palette.values():
            start = zlib.crc32(name.encode())
            spare = [_SPARE_COLOURS[(start + i) % len(_SPARE_COLOURS)]
                     for i in range(len(_SPARE_COLOURS))]
            colour = next((c for c in spare if c not in palette.values()), spare[0])
        palette[name] = colour
    return palette


def _legend_outside(ax, title: str | None = None, handles=None, labels=None) -> None:
    """The axes' legend to the right of the data, never over it."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  frameon=False, title=title, fontsize=SMALL + 1, title_fontsize=SMALL + 2)


def rating_distribution(ratings: pd.DataFrame):
    """Bar chart of how often each rating value is given."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    counts = ratings["rating"].value_counts().sort_index()
    ax.bar(counts.index.astype(str), counts.to_numpy(), color="steelblue")
    ax.set(xlabel="rating (stars)", ylabel="ratings", title="How often each rating is given")
    return fig


def popularity_long_tail(ratings: pd.DataFrame):
    """Ratings per movie by popularity rank (log scale) and the cumulative share they cover."""
    counts = np.sort(ratings["movieId"].value_counts().to_numpy())[::-1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    left.loglog(np.arange(1, len(counts) + 1), counts)
    left.set(xlabel="movie popularity rank", ylabel="ratings", title="Long tail of popularity")
    share = np.cumsum(counts) / counts.sum()
    right.plot(np.arange(1, len(counts) + 1) / len(counts), share)
    right.set(xlabel="share of movies (most popular first)", ylabel="share of ratings",
              title="Concentration of ratings")
    fig.tight_layout()
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
    fig, ax = plt.subplots(figsize=(9, 4))
    share.plot.area(ax=ax, cmap="tab10", linewidth=0)
    ax.set(xlabel="release decade", ylabel="share of genre labels", title="Genres over time",
           xlim=(share.index.min(), share.index.max()), ylim=(0, 1))
    _legend_outside(ax, "genre")
    return fig


def sparsity_pattern(mask: np.ndarray, max_side: int = 400):
    """The observed cells of a (movies x users) mask, downsampled to at most ``max_side``."""
    rows = np.linspace(0, mask.shape[0] - 1, min(max_side, mask.shape[0])).astype(int)
    cols = np.linspace(0, mask.shape[1] - 1, min(max_side, mask.shape[1])).astype(int)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(mask[np.ix_(rows, cols)], aspect="auto", cmap="Greys", interpolation="nearest")
    ax.grid(False)
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
    lines = ax.plot(history["epoch"], history["loss"], color="steelblue", label="training loss")
    ax.set(xlabel="epoch", ylabel="training loss", title="Training curves")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if "val" in history:
        twin = ax.twinx()
        twin.grid(False)  # one grid, the loss axis's
        lines += twin.plot(history["epoch"], history["val"], color="crimson", label=val_label)
        best = best_epoch or history.loc[history["val"].idxmin(), "epoch"]
        lines.append(twin.axvline(best, color="grey", ls="--", lw=1, label=f"best epoch {best}"))
        twin.set_ylabel(val_label)
    ax.legend(lines, [line.get_label() for line in lines], loc="upper center",
              bbox_to_anchor=(0.5, -0.2), ncol=len(lines), frameon=False)
    return fig


_BUCKET_LABELS = {"user_activity": "train ratings of the user",
                  "movie_popularity": "train ratings of the movie"}
_ERROR_LABELS = {"abs_error": "mean absolute error", "squared_error": "mean squared error",
                 "error": "mean error (predicted - actual)"}


def error_by_bucket(frame: pd.DataFrame, bucket: str, error: str = "abs_error"):
    """Mean error per bucket (e.g. user activity or movie popularity) with its 95% interval;
    buckets without a test pair are left out."""
    frame = frame.assign(**{bucket: frame[bucket].cat.remove_unused_categories()})
    fig, ax = plt.subplots(figsize=(8, 3.5))
    sns.barplot(data=frame, x=bucket, y=error, ax=ax, color="steelblue", errorbar=("ci", 95))
    what, by = _ERROR_LABELS.get(error, error), _BUCKET_LABELS.get(bucket, bucket)
    ax.set(title=_capital(f"{what} by {by}"), xlabel=by, ylabel=what)
    return fig


def predicted_vs_actual(actual, predicted):
    """Distributions of actual and predicted ratings, and predictions per actual value."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    bins = np.arange(0.25, 5.5, 0.25)
    left.hist(actual, bins=bins, alpha=0.6, label="actual")
    left.hist(predicted, bins=bins, alpha=0.6, label="predicted")
    left.set(xlabel="rating", ylabel="test ratings", title="Actual and predicted ratings")
    left.legend(loc="upper left")
    sns.boxplot(x=np.asarray(actual), y=np.asarray(predicted), ax=right, color="lightsteelblue",
                fliersize=1)
    right.set(xlabel="actual rating", ylabel="predicted rating", title="Predicted by actual")
    fig.tight_layout()
    return fig


def embedding_2d(points: np.ndarray, labels, title: str = "Movie embeddings"):
    """A 2-D projection of embeddings coloured by a label (e.g. first genre)."""
    fig, ax = plt.subplots(figsize=(8, 6))
    frame = pd.DataFrame({"x": points[:, 0], "y": points[:, 1], "label": labels})
    sns.scatterplot(data=frame, x="x", y="y", hue="label", s=12, ax=ax, palette="tab10",
                    linewidth=0)
    ax.set(title=title, xlabel="", ylabel="")
    ax.tick_params(labelbottom=False, labelleft=False)  # projected axes have no unit
    _legend_outside(ax, "first genre")
    return fig


def calibration(prob_true: np.ndarray, prob_pred: np.ndarray, label: str = "model"):
    """Reliability diagram: observed frequency of likes against predicted probability."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfectly calibrated")
    ax.plot(prob_pred, prob_true, marker="o", color=model_colour(label), label=label)
    ax.set(xlabel="predicted P(like)", ylabel="observed share of likes", title="Calibration")
    ax.legend(loc="upper left")
    return fig


def roc_curve(true, prob, label: str = "model"):
    """ROC curve of a probabilistic classifier, its AUC in the legend."""
    from sklearn.metrics import roc_auc_score
    from sklearn.metrics import roc_curve as _roc

    fpr, tpr, _ = _roc(np.asarray(true).astype(int), np.asarray(prob))
    auc = roc_auc_score(np.asarray(true).astype(int), np.asarray(prob))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="chance")
    ax.plot(fpr, tpr, color=model_colour(label), label=f"{label} (AUC {auc:.3f})")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
    ax.legend(loc="lower right")
    return fig


_METRIC_NAMES = {"rmse": "RMSE", "mae": "MAE", "ndcg": "NDCG", "recall": "recall",
                 "precision": "precision", "map": "MAP", "hr": "hit rate", "auc": "AUC"}


def _metric_name(metric: str) -> str:
    """``ndcg@10`` as a reader writes it: ``NDCG@10``."""
    name, at, k = metric.partition("@")
    return _METRIC_NAMES.get(name, name) + at + k


def _intervals(ax, table: pd.DataFrame, metric: str, title: str, lower_is_better: bool) -> None:
    """Each model's ``metric`` as a dot with its ``_low``/``_high`` interval as a line, best on
    top, in the model's colour; the axis spans the values, so close models stay apart."""
    # the first row is drawn at the bottom: sort so that the best comes last, on top
    table = table.dropna(subset=[metric]).sort_values(metric, ascending=not lower_is_better)
    y = np.arange(len(table))
    palette = model_palette(table["model"])
    colours = [palette[m] for m in table["model"]]
    if f"{metric}_low" in table:
        low, high = table[f"{metric}_low"].to_numpy(), table[f"{metric}_high"].to_numpy()
        ax.hlines(y, low, high, colors=colours, lw=2.5)
    ax.scatter(table[metric], y, c=colours, s=40, zorder=3)
    ax.set_yticks(y, table["model"])
    ax.set_ylim(-0.7, len(table) - 0.3)
    ax.set(xlabel=_metric_name(metric), title=title)
    ax.grid(axis="y", visible=False)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def metrics_with_ci(table: pd.DataFrame, metric: str):
    """Each model's ``metric`` with its 95% bootstrap interval (``<metric>_low``/``_high``)."""
    rows = int(table[metric].notna().sum())
    lower = metric in ("rmse", "mae")
    fig, ax = plt.subplots(figsize=(7, 0.32 * rows + 1.3))
    better = "lower" if lower else "higher"
    _intervals(ax, table, metric, _capital(f"{_metric_name(metric)} with its 95% bootstrap "
                                           f"interval ({better} is better)"), lower)
    return fig


def comparison_overview(table: pd.DataFrame, k: int = 10):
    """The comparison at a glance: NDCG@K (every model) and RMSE (rating models), each with
    its 95% bootstrap interval; the picture that opens ``reports/index.html``."""
    panels = [(f"ndcg@{k}", f"NDCG@{k}: higher is better", False),
              ("rmse", "RMSE: lower is better", True)]
    panels = [p for p in panels if p[0] in table and table[p[0]].notna().any()]
    rows = max(int(table[p[0]].notna().sum()) for p in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 0.3 * rows + 1.5),
                             squeeze=False)
    for ax, (metric, title, lower) in zip(axes[0], panels):
        _intervals(ax, table, metric, title, lower)
    fig.tight_layout()
    return fig


def metric_at_k(curves: pd.DataFrame, metric: str, order_at: int = 10):
    """``metric`` against K for each model (columns ``model``, ``k``, ``metric``); the legend
    lists the models in the order of their value at K = ``order_at``, top first."""
    at = curves[curves["k"] == order_at].set_index("model")[metric]
    order = list(at.sort_values(ascending=False).index) or list(dict.fromkeys(curves["model"]))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    palette = model_palette(order)
    for name in order:
        rows = curves[curves["model"] == name]
        ax.plot(rows["k"], rows[metric], color=palette[name], label=name, lw=1.8)
    ax.set(xlabel="K (list length)", ylabel=metric, title=f"{_capital(metric)}@K",
           xlim=(curves["k"].min(), curves["k"].max()))
    _legend_outside(ax, f"model (by {metric}@{order_at})")
    return fig


def accuracy_against_popularity(table: pd.DataFrame, k: int = 10):
    """NDCG@K against the share of slots taken by the 1% most popular movies, one dot per
    model in its colour, sized by novelty."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    novelty = table["novelty"].fillna(table["novelty"].min())
    span = max(float(novelty.max() - novelty.min()), 1e-9)
    sizes = 40 + 260 * (novelty - novelty.min()) / span
    palette = model_palette(table["model"])
    for (_, row), size in zip(table.iterrows(), sizes):
        ax.scatter(row["top1pct_share"], row[f"ndcg@{k}"], s=size,
                   color=palette[row["model"]], label=row["model"], edgecolor="white",
                   linewidth=0.5, zorder=3)
    ax.set(xlabel="share of recommendations from the 1% most popular movies",
           ylabel=f"NDCG@{k}", title="Accuracy against popularity bias (dot size: novelty)")
    handles, labels = ax.get_legend_handles_labels()
    order = np.argsort(-table[f"ndcg@{k}"].to_numpy())
    for handle in handles:
        handle.set_sizes([50])
    _legend_outside(ax, f"model (by NDCG@{k})", [handles[i] for i in order],
                    [labels[i] for i in order])
    return fig


def rmse_by_activity(activity: pd.DataFrame):
    """RMSE per bucket of user activity (columns ``model``, ``activity``, ``rmse``), a line
    of dots per model, so that the axis can span the values without misleading bars."""
    fig, ax = plt.subplots(figsize=(8.5, 3.8))
    names = list(dict.fromkeys(activity["model"]))
    sns.pointplot(data=activity, x="activity", y="rmse", hue="model", hue_order=names,
                  palette=model_palette(names), dodge=0.3, markersize=6, linewidth=1.5, ax=ax)
    ax.set(xlabel="train ratings of the user", ylabel="RMSE", title="RMSE by user activity")
    _legend_outside(ax, "model")
    return fig


def _short_title(title: str, width: int = 36) -> str:
    """A movie title shortened to about ``width`` characters, keeping its year."""
    if len(title) <= width:
        return title
    name, year = (title[:-7], title[-7:]) if title.endswith(")") and title[-5:-1].isdigit() \
        else (title, "")
    return f"{name[:width - len(year) - 1].rstrip()}…{year}"


def _chart_bars(ax, chart: pd.DataFrame, title: str) -> None:
    chart = chart.iloc[::-1]
    labels = (chart["title"].map(_short_title) if "title" in chart
              else chart["movieId"].astype(str))
    ax.barh(labels, chart["weighted"], color=model_colour("weighted-popularity"))
    low, high = chart["weighted"].min(), chart["weighted"].max()
    ax.set_xlim(low - 0.45 * (high - low + 0.1), high + 0.05 * (high - low + 0.1))
    for y, (wr, votes) in enumerate(zip(chart["weighted"], chart["votes"])):  # inside the bar
        ax.text(wr, y, f"{votes:.0f} votes ", va="center", ha="right", fontsize=SMALL)
    ax.set(title=title, xlabel="weighted rating")
    ax.tick_params(axis="y", labelsize=SMALL + 1)
    ax.grid(axis="y", visible=False)


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
    fig, axes = plt.subplots(rows, columns, figsize=(5.8 * columns, (0.32 * top + 1.2) * rows),
                             squeeze=False)
    for ax, (genre, chart) in zip(axes.ravel(), charts.items()):
        _chart_bars(ax, chart, f"{genre} (m = {chart.attrs['m']:.0f}, "
                               f"C = {chart.attrs['C']:.2f})")
    for ax in axes.ravel()[len(charts):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


_REFERENCE_STYLES = ("--", ":", "-.", (0, (6, 2, 1, 2, 1, 2)), (0, (1, 4)))


def cold_start_items(table: pd.DataFrame, reference: pd.DataFrame | None = None):
    """NDCG@10 and AUC of every model on cold movies (rows of ``protocol == "items"``), with
    ``reference`` rows (model, auc, ndcg@10) drawn as grey lines, named in a legend below."""
    rows = table[table["protocol"] == "items"].sort_values("auc")
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.35 * len(rows) + 2.2), sharey=True)
    palette = model_palette(rows["model"])
    colours = [palette[m] for m in rows["model"]]
    handles = {}
    styles = {} if reference is None else dict(zip(reference["model"], _REFERENCE_STYLES))
    for ax, metric in zip(axes, ["ndcg@10", "auc"]):
        ax.barh(rows["model"], rows[metric], color=colours)
        if reference is not None:
            for _, ref in reference.dropna(subset=[metric]).iterrows():
                handles[ref["model"]] = ax.axvline(ref[metric], ls=styles[ref["model"]],
                                                   color="dimgrey", label=ref["model"])
        ax.set(xlabel=_metric_name(metric), title=f"Cold movies: {_metric_name(metric)}")
        ax.grid(axis="y", visible=False)
    if (rows["auc"] > 0).all():
        axes[1].set_xlim(0.4, 1.0)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=len(handles),
                   frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.08 if handles else 0, 1, 1))
    return fig


def cold_start_users(table: pd.DataFrame):
    """NDCG@10 and AUC of every model for new users against the number of revealed ratings
    (rows of ``protocol == "users"``)."""
    rows = table[table["protocol"] == "users"]
    last = rows[rows["revealed"] == rows["revealed"].max()].sort_values("ndcg@10", ascending=False)
    names = list(last["model"])
    names += [m for m in dict.fromkeys(rows["model"]) if m not in names]
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4))
    for ax, metric in zip(axes, ["ndcg@10", "auc"]):
        sns.lineplot(data=rows, x="revealed", y=metric, hue="model", hue_order=names,
                     palette=model_palette(names), marker="o", ax=ax, legend=ax is axes[1])
        name = _metric_name(metric)
        ax.set(xlabel="ratings revealed per new user", ylabel=name, title=f"New users: {name}")
        ax.set_xticks(sorted(rows["revealed"].unique()))
    _legend_outside(axes[1], "model")
    fig.tight_layout()
    return fig


def per_epoch(trace: pd.DataFrame, metrics: list[str]):
    """One panel per metric against the epoch, a line per ``run`` (columns ``run``, ``epoch``
    and the metrics)."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        sns.lineplot(data=trace, x="epoch", y=metric, hue="run", marker="o", ax=ax,
                     legend=ax is axes[0][-1])
        name = _metric_name(metric).replace("top_100_accuracy", "top-100 accuracy")
        ax.set(title=_capital(f"{name} per epoch"), ylabel=name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _legend_outside(axes[0][-1], "run")
    fig.tight_layout()
    return fig


def similarity_heatmaps(panels: dict[str, pd.DataFrame], columns: int = 2,
                        title: str = "Mean cosine similarity of movie vectors between clusters"):
    """One annotated heatmap per ``{panel title: square similarity table}``, on one scale."""
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.7 * columns, 4.8 * rows), squeeze=False)
    for ax, (name, sim) in zip(axes.ravel(), panels.items()):
        sns.heatmap(sim, ax=ax, vmin=-0.2, vmax=1.0, cmap="viridis", annot=True, fmt=".2f",
                    annot_kws={"size": SMALL + 1})
        ax.set(title=name, xlabel="", ylabel="")
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def epoch_cost(cost: pd.DataFrame):
    """Seconds per training epoch against catalogue size, a line per loss (columns
    ``movies``, ``loss``, ``epoch_seconds``)."""
    fig, ax = plt.subplots(figsize=(7.5, 4))
    sns.lineplot(data=cost, x="movies", y="epoch_seconds", hue="loss", marker="o", ax=ax)
    ax.set(xscale="log", yscale="log", xlabel="movies in the catalogue",
           ylabel="seconds per epoch", title="Training cost as the catalogue grows")
    _legend_outside(ax, "loss")
    return fig


def quality_by_negatives(negatives: pd.DataFrame, metric: str = "ndcg@10"):
    """Test ``metric`` against the number of sampled negatives per batch."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(negatives["num_negatives"], negatives[metric], marker="o",
            color=model_colour("softmax-dnn"))
    ax.set(xscale="log", xlabel="negatives per batch", ylabel=f"test {_metric_name(metric)}",
           title="Quality against the number of sampled negatives")
    return fig


def popularity_bias(table: pd.DataFrame):
    """The share of recommendation slots taken by the 1% most popular movies, one bar per row
    (columns ``model``, ``top1pct_share``)."""
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(table) + 1.3))
    palette = model_palette(table["model"])
    ax.barh(table["model"][::-1], table["top1pct_share"][::-1],
            color=[palette[m] for m in table["model"][::-1]])
    ax.set(xlabel="share of recommendations from the 1% most popular movies", xlim=(0, 1),
           title="Popularity bias")
    ax.grid(axis="y", visible=False)
    return fig


def side_by_side(table: pd.DataFrame, metrics: list[str], title: str):
    """Grouped bars: one group per metric, one bar per row of ``table`` (column ``model``)."""
    long = table.melt(id_vars="model", value_vars=metrics, var_name="metric")
    long["metric"] = long["metric"].map(_metric_name)
    names = list(dict.fromkeys(table["model"]))
    fig, ax = plt.subplots(figsize=(8.5, 4))
    sns.barplot(data=long, x="metric", y="value", hue="model", hue_order=names,
                palette=model_palette(names), ax=ax)
    ax.set(xlabel="", ylabel="", title=title)
    _legend_outside(ax, "model")
    return fig


def similarity_by_label(pairs: pd.DataFrame, label: str = "liked",
                        title: str = "Cosine similarity of test pairs"):
    """Density histograms of ``similarity`` for each value of ``label``."""
    fig, ax = plt.subplots(figsize=(7.5, 4))
    sns.histplot(data=pairs, x="similarity", hue=label, stat="density", common_norm=False,
                 bins=40, ax=ax)
    ax.set(title=title, xlabel="cosine similarity")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig
