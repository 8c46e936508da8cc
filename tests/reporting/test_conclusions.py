"""The closing "What this shows" of every notebook follows its numbers: planted metrics that
flip a finding flip the sentence (the notebooks themselves are checked against their recorded
metrics in test_pipeline.py)."""

import copy

import pytest

from recommender.reporting.conclusions import CONCLUSIONS, Markdown, conclusions_for
from recommender.reporting.guide import NOTEBOOKS


def test_every_notebook_has_its_conclusions():
    assert set(CONCLUSIONS) == {n.stem for n in NOTEBOOKS}


def test_conclusions_render_as_markdown_in_jupyter():
    text = conclusions_for("02_regression_model", {"rmse": 0.85, "mae": 0.66,
                                                   "baselines": {"baseline": {"rmse": 0.9}}})
    assert isinstance(text, Markdown) and text._repr_markdown_() == str(text)
    assert text.startswith("- ")


@pytest.mark.parametrize("stem", sorted(CONCLUSIONS))
def test_an_empty_record_gives_no_invented_finding(stem):
    """Without numbers there is nothing to conclude: no function may make one up or crash."""
    text = conclusions_for(stem, {})
    assert "0." not in text  # no number from nowhere


# -- planted metrics: each pair differs in one number, and the verdict follows it ---------------

RATINGS = {"ratings": 1000, "users": 10, "movies_rated": 100, "sparsity": 0.9,
           "top1pct_rating_share": 0.2, "single_rating_share": 0.3, "mean_rating": 3.6,
           "liked_share": 0.5, "rating_min": 0.5, "rating_max": 5.0, "train_ratings": 800,
           "test_ratings": 200, "test_ratings_with_cold_movie": 10, "users_evaluated_top_n": 9,
           "test_share_per_user_mean": 0.2, "split": "files: planted"}


def test_ratings_matrix_says_whether_ratings_concentrate():
    assert "Ratings are concentrated" in conclusions_for("01_ratings_matrix", RATINGS)
    even = {**RATINGS, "top1pct_rating_share": 0.012}
    assert "Ratings are spread evenly" in conclusions_for("01_ratings_matrix", even)
    negative = {**RATINGS, "mean_rating": 2.1}
    assert "lean negative" in conclusions_for("01_ratings_matrix", negative)
    assert "lean positive" in conclusions_for("01_ratings_matrix", RATINGS)


REGRESSION = {"rmse": 0.86, "mae": 0.66, "val_rmse": 0.87, "best_epoch": 20, "epochs_run": 24,
              "ndcg@10": 0.07,
              "baselines": {"baseline": {"rmse": 0.89, "ndcg@10": 0.08},
                            "global-mean": {"rmse": 1.05}},
              "error_by_bucket": {"user_activity": [
                  {"user_activity": "1-20", "ratings": 10, "rmse": 1.0},
                  {"user_activity": ">500", "ratings": 30, "rmse": 0.8}]},
              "dense_check": {"max_prediction_difference": 1e-6}}


def test_regression_says_whether_it_beats_the_bias_baseline():
    better = conclusions_for("02_regression_model", REGRESSION)
    assert "better than the bias baseline (0.8900)" in better
    assert "give the same model" in better and "1-20" in better
    worse = copy.deepcopy(REGRESSION)
    worse["rmse"] = 0.95
    worse["dense_check"]["max_prediction_difference"] = 0.2
    text = conclusions_for("02_regression_model", worse)
    assert "no better than the bias baseline" in text and "not the same objective" in text
    assert "imperfect guide" in text  # validation 0.87 against test 0.95


CLASSIFICATION = {"accuracy": 0.71, "test_like_share": 0.52, "auc": 0.78, "ndcg@10": 0.06,
                  "popularity_top_n": {"ndcg@10": 0.15},
                  "calibration": [{"observed": 0.1, "predicted": 0.2},
                                  {"observed": 0.9, "predicted": 0.8}]}


def test_classification_says_whether_it_beats_the_majority_and_how_it_is_calibrated():
    text = conclusions_for("03_classification_model", CLASSIFICATION)
    assert "points above always predicting the majority class" in text
    assert "under-confident" in text and "popularity predicts better" in text
    flipped = {**CLASSIFICATION, "accuracy": 0.5, "ndcg@10": 0.2,
               "calibration": [{"observed": 0.3, "predicted": 0.2},
                               {"observed": 0.7, "predicted": 0.8}]}
    text = conclusions_for("03_classification_model", flipped)
    assert "no better than always predicting the majority class" in text
    assert "over-confident" in text and "better ranker than popularity" in text


SOFTMAX = {"ndcg@10": 0.29, "best_epoch": 60, "coverage@10": 0.1, "fit_seconds": 70.0,
           "versus": [{"model": "MF regression", "ndcg@10": 0.07},
                      {"model": "EASE", "ndcg@10": 0.28, "coverage@10": 0.05,
                       "fit_seconds": 4.0}],
           "folding": [{"data": "real split (first genre)", "loss": "positives-only",
                        "gap": 0.001, "ndcg@10": 0.13},
                       {"data": "real split (first genre)", "loss": "full", "gap": 0.02,
                        "ndcg@10": 0.19}],
           "cost": [{"movies": 60000, "loss": "full", "epoch_seconds": 10.0},
                    {"movies": 60000, "loss": "sampled-popularity", "epoch_seconds": 6.0}],
           "negatives": [{"num_negatives": 16, "ndcg@10": 0.11},
                         {"num_negatives": 4096, "ndcg@10": 0.16}],
           "popularity_bias": [{"model": "softmax-dnn, uniform negatives", "top1pct_share": 0.93},
                               {"model": "softmax-dnn, popularity negatives + logQ",
                                "top1pct_share": 0.99}]}


def test_softmax_verdicts_follow_folding_cost_negatives_and_bias():
    text = conclusions_for("04_softmax_negative_sampling", SOFTMAX)
    assert "ahead of EASE" in text and "fold onto each other" in text
    assert "sampling saves time" in text and "More sampled negatives help" in text
    assert "every one below the full softmax" in text and "did not reduce" in text
    flipped = copy.deepcopy(SOFTMAX)
    flipped["ndcg@10"] = 0.2
    flipped["folding"][0]["gap"] = 0.019
    flipped["cost"][1]["epoch_seconds"] = 10.0
    flipped["negatives"][1]["ndcg@10"] = 0.1
    flipped["popularity_bias"][1]["top1pct_share"] = 0.8
    text = conclusions_for("04_softmax_negative_sampling", flipped)
    assert "behind EASE" in text and "some folding, milder" in text
    assert "sampling saves nothing" in text and "do not help" in text
    assert "reduced the share" in text and "did not reduce" not in text


def _cold(popularity_at_1: float) -> dict:
    users = [{"protocol": "users", "model": m, "revealed": r, "ndcg@10": v, "auc": 0.9}
             for m, r, v in [("popularity", 1, popularity_at_1), ("softmax-dnn", 1, 0.3),
                             ("popularity", 10, 0.26), ("softmax-dnn", 10, 0.42)]]
    items = [{"protocol": "items", "model": m, "ndcg@10": v, "auc": a, "users": 651,
              "candidates": 1813}
             for m, v, a in [("random", 0.01, 0.51), ("content", 0.11, 0.80)]]
    return {"cold_start": items + users,
            "warm": [{"model": "popularity", "ndcg@10": 0.15},
                     {"model": "weighted-popularity", "ndcg@10": 0.11},
                     {"model": "content", "ndcg@10": 0.07}],
            "weighted_chart": {"m": 24, "C": 3.3},
            "reference": [{"model": "LightFM (WARP loss)", "ndcg@10": 0.102, "auc": None}]}


def test_new_users_verdict_follows_the_numbers_at_each_revealed_count():
    text = conclusions_for("05_content_and_cold_start", _cold(popularity_at_1=0.29))
    assert "with 1 revealed rating: softmax-dnn beats popularity (0.300 against 0.290" in text
    assert "with 10 revealed ratings: softmax-dnn beats popularity" in text
    assert "ranks below plain popularity" in text and "content ranks best" in text
    assert "(LightFM (WARP loss) NDCG@10 0.102): content passes every one of them" in text
    text = conclusions_for("05_content_and_cold_start", _cold(popularity_at_1=0.35))
    assert "with 1 revealed rating: popularity is the best model" in text


def test_a_cold_movie_lead_on_ndcg_with_an_auc_near_chance_is_called_so():
    metrics = _cold(popularity_at_1=0.29)
    metrics["cold_start"].append({"protocol": "items", "model": "tag-text", "ndcg@10": 0.14,
                                  "auc": 0.54, "users": 651, "candidates": 1813})
    text = conclusions_for("05_content_and_cold_start", metrics)
    assert "tag-text ranks best by NDCG@10 (0.140) and content by AUC (0.800)" in text
    assert "tag-text's AUC is near chance (0.540)" in text
    assert "content passes every one of them" in text  # tag-text's AUC is near chance


MULTITASK = {"rmse": 0.85, "ndcg@10": 0.29,
             "origin_preset": {"per_epoch_benchmark": [
                 {"epoch": 1, "top_100_accuracy": 0.137, "rmse": 1.13},
                 {"epoch": 15, "top_100_accuracy": 0.057, "rmse": 1.06}]},
             "ablation": [{"weights": "(1.0, 0.0)", "rmse": 1.0, "ndcg@10": 0.001},
                          {"weights": "(0.0, 1.0)", "rmse": 3.2, "ndcg@10": 0.049},
                          {"weights": "(1.0, 1.0)", "rmse": 1.062, "ndcg@10": 0.049}],
             "stages": [{"mode": "two-stage", "ndcg@10": 0.29},
                        {"mode": "retrieval tower alone", "ndcg@10": 0.27},
                        {"mode": "re-ranked by predicted rating alone", "ndcg@10": 0.22}]}


def test_multitask_says_whether_accuracy_falls_and_what_joint_training_does():
    text = conclusions_for("06_multitask_two_tower", MULTITASK)
    assert "top-100 accuracy falls" in text and "62.67%" in text
    assert "costs rating accuracy" in text and "leaves retrieval unchanged" in text
    assert "two-stage ranking beats the retrieval tower alone" in text
    flipped = copy.deepcopy(MULTITASK)
    flipped["origin_preset"]["per_epoch_benchmark"][1]["top_100_accuracy"] = 0.3
    flipped["ablation"][2]["rmse"] = 0.9
    flipped["ablation"][2]["ndcg@10"] = 0.06
    text = conclusions_for("06_multitask_two_tower", flipped)
    assert "top-100 accuracy rises" in text
    assert "improves rating accuracy" in text and "improves retrieval" in text


def _row(model, ndcg, rmse=None, fit=1.0, coverage=0.05, p=None):
    return {"model": model, "ndcg@10": ndcg, "ndcg@10_low": ndcg - 0.02,
            "ndcg@10_high": ndcg + 0.02, "rmse": rmse,
            "rmse_low": None if rmse is None else rmse - 0.03,
            "rmse_high": None if rmse is None else rmse + 0.03, "fit_seconds": fit,
            "coverage@10": coverage, "top1pct_share": 0.6, "ndcg@10_p": p, "rmse_p": None}


def _comparison(p_runner_up: float) -> dict:
    return {"k": 10, "baselines": {"top_n": "ease", "rating": "baseline"},
            "table": [_row("baseline", 0.08, rmse=0.89), _row("ease", 0.28, fit=3.0),
                      _row("ease-rated", 0.305, fit=1.0, p=2e-7),
                      _row("softmax", 0.304, fit=20.0, coverage=0.06),
                      _row("multitask", 0.29, rmse=0.85, coverage=0.1)],
            "versus_best": {"baseline": 1e-60, "ease": 1e-7, "softmax": p_runner_up,
                            "multitask": 1e-3}}


def test_comparison_verdict_names_the_best_model_and_whether_the_runner_up_is_tied():
    tied = conclusions_for("07_model_comparison", _comparison(p_runner_up=0.4))
    assert "**Top-N lists (what a user will watch next): ease-rated**" in tied
    assert "softmax (0.3040 [0.284, 0.324]), is not distinguishable from it" in tied
    assert "ease-rated is the cheapest to fit" in tied
    assert "**Varied lists: multitask**, within 10% of the best" in tied
    assert "**Rating prediction: multitask**" in tied and "intervals overlap" in tied
    assert "No model is best at both jobs" in tied
    apart = conclusions_for("07_model_comparison", _comparison(p_runner_up=1e-4))
    assert "behind by a real margin (paired Wilcoxon test, p = 1.0e-04)" in apart
    assert "Also not distinguishable" not in apart and "Among the" not in apart


def test_comparison_reads_the_spread_over_seeds():
    metrics = _comparison(p_runner_up=0.4)
    metrics["seeds"] = {"seeds": [0, 1, 2], "models": {
        "ease-rated": {"ndcg@10": {"mean": 0.305, "sd": 0.0}},
        "softmax": {"ndcg@10": {"mean": 0.306, "sd": 0.002}}}}
    text = conclusions_for("07_model_comparison", metrics)
    assert "Over seeds 0, 1, 2" in text and "softmax 0.3060 ± 0.0020" in text
    assert "not this run's best (ease-rated)" in text


def test_comparison_says_whether_the_best_rating_model_really_beats_the_next():
    metrics = _comparison(p_runner_up=0.4)
    metrics["versus_best_rmse"] = {"baseline": 3e-9}
    text = conclusions_for("07_model_comparison", metrics)
    assert ("Next is baseline (0.8900 [0.860, 0.920]), behind by a real margin (paired "
            "t-test on the same ratings, p = 3.0e-09)") in text
    metrics["versus_best_rmse"] = {"baseline": 0.2}
    text = conclusions_for("07_model_comparison", metrics)
    assert "not distinguishable from it (paired t-test on the same ratings, p = 0.2)" in text
