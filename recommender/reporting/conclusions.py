""""What this shows": the closing sentences of every notebook, written from its numbers.

Each notebook records its metrics (``reports/metrics/<notebook>.json``) and ends by showing
:func:`what_this_shows`, which reads that file back and passes it to the notebook's function
here. So the prose is computed from the run it closes: a rerun with other data, another seed
or another model cannot contradict it, and a test checks every page against its metrics.

Every function takes the recorded metrics dict (missing values are ``None``) and returns
Markdown: one bullet per finding, each sentence carrying its numbers and a verdict chosen by
them (which model is ahead, whether a gap is beyond chance, whether a trend rises or falls).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path

from recommender.core.config import REPORTS_DIR
from recommender.reporting.guide import ORIGIN_001_REPORTED

__all__ = ["Markdown", "CONCLUSIONS", "conclusions_for", "what_this_shows", "SIGNIFICANCE"]

SIGNIFICANCE = 0.05  # a paired test's p-value below this counts as a real difference


class Markdown(str):
    """Text that Jupyter (and the exported page) renders as Markdown."""

    def _repr_markdown_(self) -> str:
        return str(self)


def _ok(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _f(value, digits: int = 3) -> str:
    """A number in a sentence: ``digits`` decimals, whole numbers with thousands separators."""
    if not _ok(value):
        return "–"
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.{digits}f}"


def _pct(value, digits: int = 0) -> str:
    return f"{100 * value:.{digits}f}%" if _ok(value) else "–"


def _p(value) -> str:
    """A p-value in a sentence: two significant digits, scientific below 0.001."""
    if not _ok(value):
        return "no p-value"
    if value == 0:
        return "p < 1e-300"
    return f"p = {value:.1e}" if value < 0.001 else f"p = {value:.2g}"


def _bullets(lines: Iterable[str | None]) -> Markdown:
    return Markdown("\n".join(f"- {line}" for line in lines if line))


def _rows(rows: list[dict] | None, **where) -> list[dict]:
    return [r for r in rows or [] if all(r.get(k) == v for k, v in where.items())]


def _metric(key: str) -> str:
    return {"ndcg@10": "NDCG@10", "auc": "AUC", "rmse": "RMSE"}.get(key, key)


def _best(rows: list[dict], key: str, largest: bool = True) -> dict | None:
    rated = [r for r in rows if _ok(r.get(key))]
    return (max if largest else min)(rated, key=lambda r: r[key]) if rated else None


def _change(value: float, reference: float, what: str, lower_is_better: bool = False,
            tolerance: float = 0.03) -> str:
    """"improves <what>", "costs <what>" or "leaves <what> unchanged" (a relative change
    within ``tolerance``, a few per cent, counts as none: one fit moves that much)."""
    if abs(value - reference) <= tolerance * abs(reference):
        return f"leaves {what} unchanged"
    better = value < reference if lower_is_better else value > reference
    return f"{'improves' if better else 'costs'} {what}"


def _standing(value: float, reference: float, tolerance: float = 0.01) -> str:
    """"ahead of", "level with" or "behind" a reference (higher is better)."""
    if abs(value - reference) <= tolerance * abs(reference):
        return "level with"
    return "ahead of" if value > reference else "behind"


# -- 01 ----------------------------------------------------------------------------------------

def ratings_matrix(m: dict) -> Markdown:
    """Notebook 01: the data, its long tail, and the split."""
    lines = [f"The data: {_f(m.get('ratings'))} ratings by {_f(m.get('users'))} users on "
             f"{_f(m.get('movies_rated'))} movies; {_pct(m.get('sparsity'), 1)} of the users x "
             "movies cells are empty, so every model trains on a sparse matrix."]
    top1, single = m.get("top1pct_rating_share"), m.get("single_rating_share")
    if _ok(top1):
        concentrated = top1 >= 0.05  # five times what an even spread would give the top 1%
        lines.append(
            f"Ratings are {'concentrated' if concentrated else 'spread evenly'}: the most-rated "
            f"1% of movies hold {_pct(top1, 1)} of all ratings and {_pct(single, 1)} of movies "
            "have a single rating. "
            + ("Recommending the most popular movies is therefore a strong baseline, and the "
               "comparison reports coverage and the top-1% share beside accuracy."
               if concentrated else "Popularity alone should be a weak baseline here."))
    mean, liked = m.get("mean_rating"), m.get("liked_share")
    if _ok(mean):
        middle = (m["rating_min"] + m["rating_max"]) / 2 if _ok(m.get("rating_min")) else 2.75
        lines.append(f"Ratings lean {'positive' if mean > middle else 'negative'}: the mean "
                     f"is {_f(mean, 2)} stars on a {_f(m.get('rating_min'), 1)}-"
                     f"{_f(m.get('rating_max'), 1)} scale, and {_pct(liked)} of ratings are "
                     "4 or more (a like, for the classification and top-N metrics).")
    test, cold = m.get("test_ratings"), m.get("test_ratings_with_cold_movie")
    lines.append(
        f"The split: {_f(m.get('train_ratings'))} train and {_f(test)} test ratings "
        f"({m.get('split', 'split')}), {_pct(m.get('test_share_per_user_mean'), 1)} of each "
        f"user's ratings on average; {_f(cold)} test ratings "
        f"({_pct(cold / test if _ok(cold) and _ok(test) and test else None, 1)}) are of "
        "movies absent from train, which no collaborative model can score; top-N metrics "
        f"average over the {_f(m.get('users_evaluated_top_n'))} users with a liked test "
        "movie.")
    return _bullets(lines)


# -- 02 ----------------------------------------------------------------------------------------

def regression_model(m: dict) -> Markdown:
    """Notebook 02: the rating model against the baselines, where it errs, the dense check."""
    rmse, baselines = m.get("rmse"), m.get("baselines") or {}
    lines = []
    base = (baselines.get("baseline") or {}).get("rmse")
    mean = (baselines.get("global-mean") or {}).get("rmse")
    if _ok(rmse) and _ok(base):
        gain = base - rmse
        lines.append(
            f"The factorisation predicts ratings with RMSE {_f(rmse, 4)} (MAE "
            f"{_f(m.get('mae'), 4)}): "
            + (f"{_f(gain, 4)} stars better than the bias baseline ({_f(base, 4)})"
               + (f" and {_f(mean - rmse, 4)} better than the global mean ({_f(mean, 4)})"
                  if _ok(mean) else "")
               + ", so the user and movie factors carry information the biases do not."
               if gain > 0 else
               f"no better than the bias baseline ({_f(base, 4)}): on this data the factors "
               "add nothing to the biases."))
    if _ok(m.get("val_rmse")) and _ok(rmse):
        lines.append(f"Early stopping kept epoch {_f(m.get('best_epoch'))} of "
                     f"{_f(m.get('epochs_run'))}; validation RMSE {_f(m['val_rmse'], 4)} "
                     f"against test {_f(rmse, 4)}, so the validation slice "
                     + ("predicts the test error well."
                        if abs(m["val_rmse"] - rmse) < 0.03 else
                        "is an imperfect guide to the test error."))
    buckets = [r for r in (m.get("error_by_bucket") or {}).get("user_activity", [])
               if r.get("ratings")]
    worst, best = _best(buckets, "rmse"), _best(buckets, "rmse", largest=False)
    if worst and best and worst is not best:
        lines.append(f"Errors depend on how much the model knows of a user: RMSE "
                     f"{_f(worst['rmse'], 3)} for users with {worst['user_activity']} train "
                     f"ratings against {_f(best['rmse'], 3)} for {best['user_activity']}.")
    base_ndcg = (baselines.get("baseline") or {}).get("ndcg@10")
    if _ok(m.get("ndcg@10")):
        lines.append(f"As a top-N ranker it reaches NDCG@10 {_f(m['ndcg@10'])}"
                     + (f" (bias baseline {_f(base_ndcg)})" if _ok(base_ndcg) else "")
                     + ": a predicted rating says how much a user would like a movie, not "
                       "whether they will watch it; notebook 07 puts it beside the rankers.")
    dense = m.get("dense_check") or {}
    difference = dense.get("max_prediction_difference")
    if _ok(difference):
        lines.append("The origin system's dense Y/R formulation and the sparse minibatches "
                     + ("give the same model: their test predictions differ by at most "
                        f"{difference:.1e} stars (float rounding)."
                        if difference < 1e-3 else
                        f"differ by up to {difference:.1e} stars: they are not the same "
                        "objective here."))
    return _bullets(lines)


# -- 03 ----------------------------------------------------------------------------------------

def classification_model(m: dict) -> Markdown:
    """Notebook 03: like / not like against always-like, the AUC, calibration, ranking."""
    lines = []
    accuracy, like_share = m.get("accuracy"), m.get("test_like_share")
    if _ok(accuracy) and _ok(like_share):
        majority = max(like_share, 1 - like_share)
        lines.append(f"P(like) classifies {_pct(accuracy, 1)} of test ratings correctly, "
                     + (f"{100 * (accuracy - majority):.1f} points above always predicting the "
                        f"majority class ({_pct(majority, 1)})."
                        if accuracy > majority else
                        f"no better than always predicting the majority class "
                        f"({_pct(majority, 1)})."))
    auc = m.get("auc")
    if _ok(auc):
        lines.append(f"ROC-AUC {_f(auc)}: a random liked pair scores above a random disliked "
                     f"one {_pct(auc)} of the time (chance: 50%); precision "
                     f"{_f(m.get('precision'))}, recall {_f(m.get('recall'))}, F1 "
                     f"{_f(m.get('f1'))}, log loss {_f(m.get('log_loss'))}.")
    curve = [r for r in m.get("calibration") or []
             if _ok(r.get("observed")) and _ok(r.get("predicted"))]
    if len(curve) >= 2:
        low, high = curve[0], curve[-1]
        gap = max(abs(r["observed"] - r["predicted"]) for r in curve)
        under = high["observed"] > high["predicted"] and low["observed"] < low["predicted"]
        over = high["observed"] < high["predicted"] and low["observed"] > low["predicted"]
        shape = ("under-confident (the real share of likes is more extreme than predicted)"
                 if under else "over-confident (predictions more extreme than the real share)"
                 if over else "off in no consistent direction")
        lines.append(f"Calibration: predicted and observed shares of likes differ by up to "
                     f"{100 * gap:.1f} points across the bins; P(like) is "
                     + ("close to calibrated." if gap < 0.05 else f"{shape}.")
                     + " Ranking does not depend on it.")
    popularity = (m.get("popularity_top_n") or {}).get("ndcg@10")
    if _ok(m.get("ndcg@10")) and _ok(popularity):
        ahead = m["ndcg@10"] > popularity
        lines.append(f"Ranked by P(like), the top-10 lists reach NDCG@10 {_f(m['ndcg@10'])} "
                     + (f"against popularity's {_f(popularity)}: "
                        + ("P(like) is a better ranker than popularity here."
                           if ahead else "whether a user will like a movie is not whether they "
                                         "will watch it, which popularity predicts better.")))
    return _bullets(lines)


# -- 04 ----------------------------------------------------------------------------------------

def _model(rows: list[dict], start: str) -> dict | None:
    return next((r for r in rows if str(r.get("model", "")).startswith(start)), None)


def softmax_negative_sampling(m: dict) -> Markdown:
    """Notebook 04: the default softmax DNN, folding, sampling cost and quality, popularity."""
    lines = []
    versus = m.get("versus") or []
    ease, mf = _model(versus, "EASE"), _model(versus, "MF")
    if _ok(m.get("ndcg@10")) and ease and _ok(ease.get("ndcg@10")):
        lines.append(
            f"The default softmax DNN (full softmax, early stopping at epoch "
            f"{_f(m.get('best_epoch'))}) reaches NDCG@10 {_f(m['ndcg@10'])}, "
            + (f"{_standing(m['ndcg@10'], ease['ndcg@10'])} EASE ({_f(ease['ndcg@10'])})")
            + (f" and far ahead of matrix factorisation ({_f(mf.get('ndcg@10'))})" if mf else "")
            + f", with coverage {_f(m.get('coverage@10'))} against EASE's "
              f"{_f(ease.get('coverage@10'))}; it costs {_f(m.get('fit_seconds'), 0)} s to "
              f"fit against EASE's {_f(ease.get('fit_seconds'), 1)} s.")
    folding = m.get("folding") or []
    for data in dict.fromkeys(r.get("data") for r in folding):
        positives = _rows(folding, data=data, loss="positives-only")
        full = _rows(folding, data=data, loss="full")
        if positives and full:
            p, f = positives[0], full[0]
            verdict = ("the movies fold onto each other, and negatives are what keeps unrelated "
                       "movies apart" if p["gap"] < 0.5 * f["gap"] else
                       "some folding, milder than the gap with negatives" if p["gap"] < f["gap"]
                       else "so training on positives only does not fold these clusters")
            lines.append(
                f"Folding, on the {data}: without negatives the gap between the similarity of "
                f"same-cluster and of different-cluster movies is {_f(p['gap'])}, against "
                f"{_f(f['gap'])} with the full softmax; {verdict} (NDCG@10 "
                f"{_f(p.get('ndcg@10'))} against {_f(f.get('ndcg@10'))}).")
    cost = m.get("cost") or []
    widest = max((r["movies"] for r in cost if _ok(r.get("movies"))), default=None)
    if widest:
        full = _rows(cost, movies=widest, loss="full")
        sampled = [r for r in _rows(cost, movies=widest) if r.get("loss") != "full"]
        if full and sampled and _ok(full[0].get("epoch_seconds")):
            ratio = sampled[0]["epoch_seconds"] / full[0]["epoch_seconds"]
            lines.append(f"Cost: with {_f(widest)} movies (and this notebook's few users) an "
                         f"epoch took {_f(full[0]['epoch_seconds'])} s with the full softmax and "
                         f"{_f(sampled[0]['epoch_seconds'])} s sampled ({ratio:.2f}x): "
                         + ("sampling saves time at this size."
                            if ratio < 0.8 else "fixed costs dominate such short epochs, and "
                                                "sampling saves nothing here."))
    negatives = sorted((r for r in m.get("negatives") or [] if _ok(r.get("ndcg@10"))),
                       key=lambda r: r["num_negatives"])
    full_budget = _rows(folding, data="real split (first genre)", loss="full")
    if len(negatives) >= 2:
        first, last = negatives[0], negatives[-1]
        rises = last["ndcg@10"] > first["ndcg@10"]
        text = (f"More sampled negatives {'help' if rises else 'do not help'}: NDCG@10 "
                f"{_f(first['ndcg@10'])} with {_f(first['num_negatives'])} and "
                f"{_f(last['ndcg@10'])} with {_f(last['num_negatives'])} per batch")
        if full_budget and _ok(full_budget[0].get("ndcg@10")):
            trails = max(r["ndcg@10"] for r in negatives) < full_budget[0]["ndcg@10"]
            text += (f", {'every one below' if trails else 'at best level with'} the full "
                     f"softmax at the same budget ({_f(full_budget[0]['ndcg@10'])}): on a "
                     "catalogue this small the full softmax is the better choice" if trails
                     else f", reaching the full softmax at the same budget "
                          f"({_f(full_budget[0]['ndcg@10'])})")
        lines.append(text + ".")
    bias = m.get("popularity_bias") or []
    uniform, logq = _model(bias, "softmax-dnn, uniform"), _model(bias, "softmax-dnn, popularity")
    default = _model(bias, "softmax-dnn default")
    if uniform and logq and _ok(uniform.get("top1pct_share")):
        reduced = logq["top1pct_share"] < uniform["top1pct_share"]
        lines.append(
            f"Popularity bias: at the fixed short budget, popularity negatives with logQ "
            f"correction {'reduced' if reduced else 'did not reduce'} the share of slots taken "
            f"by the top 1% ({_pct(logq['top1pct_share'], 1)} against "
            f"{_pct(uniform['top1pct_share'], 1)} with uniform negatives)"
            + (f"; the converged default model gives them {_pct(default['top1pct_share'], 1)}"
               if default and _ok(default.get("top1pct_share")) else "")
            + (f", matrix factorisation {_pct(mf['top1pct_share'], 1)} (at NDCG@10 "
               f"{_f(mf.get('ndcg@10'))})" if mf and _ok(mf.get("top1pct_share")) else "")
            + ".")
    return _bullets(lines)


# -- 05 ----------------------------------------------------------------------------------------

def content_and_cold_start(m: dict) -> Markdown:
    """Notebook 05: the charts, the warm rows of the content models, cold movies, new users."""
    lines = []
    warm = {r["model"]: r for r in m.get("warm") or []}
    chart = m.get("weighted_chart") or {}
    popularity, weighted = warm.get("popularity"), warm.get("weighted-popularity")
    if popularity and weighted:
        ahead = weighted["ndcg@10"] > popularity["ndcg@10"]
        lines.append(
            f"The weighted-rating chart (m = {_f(chart.get('m'), 0)} votes, C = "
            f"{_f(chart.get('C'), 2)}) ranks {'above' if ahead else 'below'} plain popularity "
            f"as a recommender (NDCG@10 {_f(weighted['ndcg@10'])} against "
            f"{_f(popularity['ndcg@10'])}): "
            + ("rewarding well-rated movies pays." if ahead else
               "what people watch next follows how often a movie is watched more than how "
               "well it is rated."))
    content_rows = [warm[n] for n in ("content", "feature-embedding", "tag-text") if n in warm]
    if content_rows and popularity:
        above = [r["model"] for r in content_rows if r["ndcg@10"] > popularity["ndcg@10"]]
        ease = warm.get("ease")
        lines.append(
            "On the warm split (every movie has ratings) "
            + ", ".join(f"{r['model']} reaches NDCG@10 {_f(r['ndcg@10'])}" for r in content_rows)
            + f", against {_f(popularity['ndcg@10'])} for popularity"
            + (f" and {_f(ease['ndcg@10'])} for EASE" if ease else "") + ": "
            + (f"{', '.join(above)} beat{'s' if len(above) == 1 else ''} popularity, "
               if above else "none beats popularity, ")
            + "and content models earn their place on movies nobody has rated.")
    cold = m.get("cold_start") or []
    items = [r for r in cold if r.get("protocol") == "items"]
    random_items = next((r for r in items if r["model"] == "random"), None)
    top_ndcg, top_auc = _best(items, "ndcg@10"), _best(items, "auc")
    if top_ndcg and top_auc:
        text = (f"Cold movies ({_f(top_ndcg.get('users'))} users, "
                f"{_f(top_ndcg.get('candidates'))} movies nobody rated in train): "
                f"{top_ndcg['model']} ranks best by NDCG@10 ({_f(top_ndcg['ndcg@10'])}) and "
                f"{top_auc['model']} by AUC ({_f(top_auc['auc'])})"
                + (f", against {_f(random_items['ndcg@10'])} and {_f(random_items['auc'])} for "
                   "random order" if random_items else "") + ".")
        if top_ndcg is not top_auc and _ok(top_ndcg.get("auc")) and top_ndcg["auc"] < 0.6:
            text += (f" {top_ndcg['model']}'s AUC is near chance ({_f(top_ndcg['auc'])}): it "
                     "puts a few cold movies at the top and orders the rest no better than "
                     f"random, where {top_auc['model']} orders the whole list.")
        passed = {}  # (reference, metric, value) -> models above it (with an AUC above chance)
        for reference in m.get("reference") or []:
            name = reference["model"].replace(" (reference)", "")
            for metric in ("ndcg@10", "auc"):
                if _ok(reference.get(metric)) and "random" not in name:
                    passed[name, metric, reference[metric]] = [
                        r["model"] for r in items if _ok(r.get(metric))
                        and r[metric] > reference[metric] and r.get("auc", 0) >= 0.6]
        if passed:
            shown = "; ".join(f"{name} {_metric(metric)} {_f(value)}"
                              for name, metric, value in passed)
            groups = {tuple(models) for models in passed.values()}
            if len(groups) == 1:
                (models,) = groups
                text += (f" Against the references measured on the same draw ({shown}): "
                         + (f"{', '.join(models)} pass{'es' if len(models) == 1 else ''} every "
                            "one of them." if models else "no model here passes them."))
            else:
                text += " Against the references measured on the same draw: " + "; ".join(
                    f"{name} {_metric(metric)} {_f(value)} is passed by "
                    f"{', '.join(models) or 'no model'}"
                    for (name, metric, value), models in passed.items()) + "."
        lines.append(text)
    users = [r for r in cold if r.get("protocol") == "users" and _ok(r.get("revealed"))]
    counts = sorted({r["revealed"] for r in users})
    for revealed in dict.fromkeys(counts[:1] + counts[-1:]):
        at = [r for r in users if r["revealed"] == revealed]
        best, pop = _best(at, "ndcg@10"), next((r for r in at if r["model"] == "popularity"), None)
        if best and pop:
            if best is pop:
                verdict = "popularity is the best model"
            else:
                verdict = (f"{best['model']} beats popularity ({_f(best['ndcg@10'])} against "
                           f"{_f(pop['ndcg@10'])}; AUC {_f(best.get('auc'))} against "
                           f"{_f(pop.get('auc'))})")
            lines.append(f"New users with {_f(revealed)} revealed rating"
                         f"{'' if revealed == 1 else 's'}: {verdict}.")
    methods = {r.get("method"): r for r in m.get("feature_embedding_methods") or []}
    if "network" in methods and "density" in methods:
        net, dens = methods["network"], methods["density"]
        verdict = "beats" if net["ndcg@10"] > dens["ndcg@10"] else "trails"
        lines.append(f"Feature-embedding's two ways to recommend, on cold movies: the "
                     f"P(watched) network (NDCG@10 {_f(net['ndcg@10'])}, AUC "
                     f"{_f(net['auc'])}) {verdict} the density method "
                     f"({_f(dens['ndcg@10'])}, {_f(dens['auc'])}).")
    return _bullets(lines)


# -- 06 ----------------------------------------------------------------------------------------

def multitask_two_tower(m: dict) -> Markdown:
    """Notebook 06: the origin system's per-epoch table, the task trade-off, two stages."""
    lines = []
    preset = m.get("origin_preset") or {}
    trace = preset.get("per_epoch_benchmark") or []
    if len(trace) >= 2:
        first, last = trace[0], trace[-1]
        reported = ORIGIN_001_REPORTED[max(ORIGIN_001_REPORTED)]
        falls = last["top_100_accuracy"] < first["top_100_accuracy"]
        lines.append(
            f"The origin system's exact setup on the benchmark split: top-100 accuracy "
            f"{'falls' if falls else 'rises'} from {_pct(first['top_100_accuracy'], 1)} after "
            f"epoch 1 to {_pct(last['top_100_accuracy'], 1)} after epoch {_f(last['epoch'])}, "
            f"and RMSE ends at {_f(last['rmse'], 4)}; the write-up reported "
            f"{_pct(reported[1], 2)} and {_f(reported[0], 4)} on its own data, which this "
            "split does not reproduce.")
    ablation = {r.get("weights"): r for r in m.get("ablation") or []}
    alone_rating, alone_retrieval = ablation.get("(1.0, 0.0)"), ablation.get("(0.0, 1.0)")
    joint = ablation.get("(1.0, 1.0)")
    if alone_rating and alone_retrieval and joint:
        rmse_change = _change(joint["rmse"], alone_rating["rmse"], "rating accuracy",
                              lower_is_better=True)
        ndcg_change = _change(joint["ndcg@10"], alone_retrieval["ndcg@10"], "retrieval")
        rmse = f"RMSE {_f(joint['rmse'], 4)} against {_f(alone_rating['rmse'], 4)} for ranking alone"
        ndcg = (f"NDCG@10 {_f(joint['ndcg@10'], 4)} against {_f(alone_retrieval['ndcg@10'], 4)} "
                "for retrieval alone")
        lines.append(
            f"With those settings, training both tasks together "
            + (f"changes neither rating accuracy ({rmse}) nor retrieval ({ndcg}), beyond what "
               "one fit moves." if rmse_change.endswith("unchanged")
               and ndcg_change.endswith("unchanged") else
               f"{rmse_change} ({rmse}) and {ndcg_change} ({ndcg})."))
    stages = {r.get("mode", ""): r for r in m.get("stages") or []}
    two = next((r for k, r in stages.items() if k.startswith("two-stage")), None)
    alone = next((r for k, r in stages.items() if k.startswith("retrieval")), None)
    by_rating = next((r for k, r in stages.items() if k.startswith("re-ranked")), None)
    if _ok(m.get("rmse")):
        lines.append(
            f"The shipped model predicts ratings with RMSE {_f(m['rmse'], 4)} and ranks with "
            f"NDCG@10 {_f(m.get('ndcg@10'))}"
            + (f"; two-stage ranking {'beats' if two['ndcg@10'] > alone['ndcg@10'] else 'trails'}"
               f" the retrieval tower alone ({_f(two['ndcg@10'])} against "
               f"{_f(alone['ndcg@10'])})" if two and alone else "")
            + (f", and re-ranking by predicted rating alone gives {_f(by_rating['ndcg@10'])}: "
               + ("a high predicted rating is not what gets watched."
                  if by_rating["ndcg@10"] < two["ndcg@10"] else
                  "the predicted rating alone ranks as well.")
               if by_rating and two else "."))
    return _bullets(lines)


# -- 07 ----------------------------------------------------------------------------------------

def _interval(row: dict, key: str, digits: int = 3) -> str:
    low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
    return f" [{_f(low, digits)}, {_f(high, digits)}]" if _ok(low) and _ok(high) else ""


def model_comparison(m: dict) -> Markdown:
    """Notebook 07: the verdict, which model for which job, with intervals, paired tests and
    the spread over seeds."""
    table = m.get("table") or []
    k = m.get("k", 10)
    ndcg = f"ndcg@{k}"
    lines = []
    best = _best(table, ndcg)
    versus = m.get("versus_best") or {}
    baselines = m.get("baselines") or {}
    if best:
        tied = [r for r in table if r is not best and _ok(versus.get(r["model"]))
                and versus[r["model"]] >= SIGNIFICANCE]
        ranked = sorted((r for r in table if r is not best and _ok(r.get(ndcg))),
                        key=lambda r: -r[ndcg])
        second = ranked[0] if ranked else None
        text = (f"**Top-N lists (what a user will watch next): {best['model']}**, NDCG@{k} "
                f"{_f(best[ndcg], 4)}{_interval(best, ndcg)}.")
        if second:
            p = versus.get(second["model"])
            text += (f" The runner-up, {second['model']} ({_f(second[ndcg], 4)}"
                     f"{_interval(second, ndcg)}), is "
                     + (f"behind by a real margin (paired Wilcoxon test, {_p(p)})."
                        if _ok(p) and p < SIGNIFICANCE else
                        f"not distinguishable from it (paired Wilcoxon test, {_p(p)})."
                        if _ok(p) else
                        "within its interval (no paired test recorded)."
                        if _ok(second.get(f"{ndcg}_high"))
                        and second[f"{ndcg}_high"] >= best[ndcg] else
                        "below its interval (no paired test recorded)."))
        others = [r for r in tied if r is not second]
        if others:
            text += (" Also not distinguishable from the best: "
                     + ", ".join(f"{r['model']} ({_p(versus[r['model']])})" for r in others)
                     + ".")
        base = next((r for r in table if r["model"] == baselines.get("top_n")), None)
        if base and base is not best:
            text += (f" The best baseline, {base['model']}, reads {_f(base[ndcg], 4)}"
                     f"{_interval(base, ndcg)}; {best['model']} against it: "
                     f"{_p(best.get(ndcg + '_p'))}.")
        lines.append(text)
        strong = [best, *tied]
        if len(strong) > 1:
            cheapest = _best(strong, "fit_seconds", largest=False)
            lines.append(f"Of the {len(strong)} models the paired tests cannot tell apart at "
                         f"the top, {cheapest['model']} is the cheapest to fit "
                         f"({_f(cheapest.get('fit_seconds'), 1)} s).")
        near = [r for r in table if _ok(r.get(ndcg)) and r[ndcg] >= 0.9 * best[ndcg]]
        varied = _best(near, f"coverage@{k}")
        plain = _best([best, *tied], f"coverage@{k}")
        if varied and plain and varied not in (best, *tied) and _ok(plain.get(f"coverage@{k}")) \
                and varied[f"coverage@{k}"] > 1.2 * plain[f"coverage@{k}"]:
            lines.append(
                f"**Varied lists: {varied['model']}**, within 10% of the best NDCG@{k} "
                f"({_f(varied[ndcg], 4)}), recommends {_f(varied[f'coverage@{k}'])} of the "
                f"catalogue against {_f(plain[f'coverage@{k}'])} for {plain['model']}, and "
                f"gives {_pct(varied.get('top1pct_share'))} of its slots to the 1% most rated "
                f"movies against {_pct(plain.get('top1pct_share'))}.")
    rating_rows = [r for r in table if _ok(r.get("rmse"))]
    best_rmse = _best(rating_rows, "rmse", largest=False)
    if best_rmse:
        others = sorted((r for r in rating_rows if r is not best_rmse), key=lambda r: r["rmse"])
        text = (f"**Rating prediction: {best_rmse['model']}**, RMSE {_f(best_rmse['rmse'], 4)}"
                f"{_interval(best_rmse, 'rmse')}")
        base = next((r for r in table if r["model"] == baselines.get("rating")), None)
        if base and base is not best_rmse:
            text += (f", against {_f(base['rmse'], 4)} for {base['model']}, the best rating "
                     f"baseline (paired t-test, {_p(best_rmse.get('rmse_p'))})")
        if others:
            nxt = others[0]
            p = (m.get("versus_best_rmse") or {}).get(nxt["model"])
            overlap = (_ok(nxt.get("rmse_low")) and _ok(best_rmse.get("rmse_high"))
                       and nxt["rmse_low"] <= best_rmse["rmse_high"])
            text += (f". Next is {nxt['model']} ({_f(nxt['rmse'], 4)}{_interval(nxt, 'rmse')})"
                     + (f", behind by a real margin (paired t-test on the same ratings, {_p(p)})"
                        if _ok(p) and p < SIGNIFICANCE else
                        f", not distinguishable from it (paired t-test on the same ratings, "
                        f"{_p(p)})" if _ok(p) else
                        ": the intervals overlap, so the order of the two is not settled by this "
                        "split" if overlap else ": the intervals do not overlap"))
        lines.append(text + ".")
    ranker = _best(rating_rows, ndcg)
    if best and ranker and best_rmse:
        if best["model"] == best_rmse["model"]:
            lines.append(f"One model, {best['model']}, is best at both jobs.")
        else:
            text = (f"No model is best at both jobs: {best_rmse['model']}, the best rating "
                    f"model, ranks at NDCG@{k} {_f(best_rmse.get(ndcg), 4)} against "
                    f"{_f(best[ndcg], 4)} for {best['model']}")
            if ranker is not best_rmse:
                text += (f"; the best ranker that also predicts ratings is {ranker['model']} "
                         f"(NDCG@{k} {_f(ranker[ndcg], 4)}, RMSE {_f(ranker['rmse'], 4)})")
            lines.append(text + ".")
    seeds = m.get("seeds") or {}
    spread = seeds.get("models") or {}
    moved = [(name, s[ndcg]) for name, s in spread.items() if ndcg in s]
    if moved:
        widest = max(moved, key=lambda item: item[1]["sd"])
        order = sorted(moved, key=lambda item: -item[1]["mean"])
        lines.append(
            f"Over seeds {', '.join(map(str, seeds.get('seeds', [])))} (mean ± sd of "
            f"NDCG@{k}): "
            + ", ".join(f"{name} {_f(s['mean'], 4)}"
                        + (f" ± {_f(s['sd'], 4)}" if round(s["sd"], 4) else " (every seed)")
                        for name, s in order[:4])
            + f". The seed moves {widest[0]} most (sd {_f(widest[1]['sd'], 4)}); the best "
              f"mean is {order[0][0]}'s, "
            + ("the best model of this run too." if best and order[0][0] == best["model"] else
               f"not this run's best ({best['model'] if best else '–'}): the order at the top "
               "is within what a seed moves."))
    if best:
        lines.append(f"p-values are not corrected for the {len(table)} models compared; read a "
                     f"p-value near {SIGNIFICANCE} with Holm's correction in mind. Cold start is "
                     "notebook 05's subject: this comparison scores users and movies seen in "
                     "train.")
    return _bullets(lines)


CONCLUSIONS: dict[str, Callable[[dict], Markdown]] = {
    "01_ratings_matrix": ratings_matrix,
    "02_regression_model": regression_model,
    "03_classification_model": classification_model,
    "04_softmax_negative_sampling": softmax_negative_sampling,
    "05_content_and_cold_start": content_and_cold_start,
    "06_multitask_two_tower": multitask_two_tower,
    "07_model_comparison": model_comparison,
}


def conclusions_for(notebook: str, metrics: dict) -> Markdown:
    """The "What this shows" bullets of ``notebook`` (a stem, e.g. ``02_regression_model``)."""
    return CONCLUSIONS[Path(notebook).stem](metrics)


def what_this_shows(notebook: str, reports_dir: str | Path = REPORTS_DIR) -> Markdown:
    """The notebook's conclusions, from the metrics it has just recorded in ``reports_dir``."""
    path = Path(reports_dir) / "metrics" / f"{Path(notebook).stem}.json"
    return conclusions_for(notebook, json.loads(path.read_text(encoding="utf-8")))
