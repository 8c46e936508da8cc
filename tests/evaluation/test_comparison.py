"""The comparison: bootstrap intervals, paired tests, curves and the table of every model."""

import numpy as np
import pandas as pd
import pytest

from recommender.evaluation import settings_for
from recommender.evaluation.comparison import (bootstrap_ci, compare, paired_p_value,
                                    precision_recall_at_k, rmse_by_activity)
from recommender.evaluation import evaluate, fit_and_evaluate

BASELINES = ["global-mean", "baseline", "popularity", "ease"]


@pytest.fixture(scope="module")
def split():
    from recommender.data.splits import per_user_split
    from recommender.data.synthetic import make_synthetic

    data = make_synthetic(n_users=150, n_movies=200, n_ratings=6_000, rank=4, n_genres=8, seed=1)
    return per_user_split(data.ratings, 0.2, seed=0)


@pytest.fixture(scope="module")
def baselines(split):
    return compare(BASELINES, *split, seed=3, n_resamples=200)


def test_interval_contains_the_mean_and_narrows_with_more_users():
    rng = np.random.default_rng(0)
    small, large = rng.random(50), rng.random(5_000)
    low, high = bootstrap_ci(small, seed=0)
    assert low < small.mean() < high
    low_l, high_l = bootstrap_ci(large, seed=0)
    assert high_l - low_l < (high - low) / 5


def test_interval_is_seeded_and_per_column():
    values = np.random.default_rng(1).random((80, 3))
    first = bootstrap_ci(values, seed=7)
    assert first.shape == (2, 3)
    np.testing.assert_array_equal(first, bootstrap_ci(values, seed=7))
    assert not np.array_equal(first, bootstrap_ci(values, seed=8))
    assert (first[0] < values.mean(axis=0)).all() and (values.mean(axis=0) < first[1]).all()


def test_interval_with_counts_is_of_the_pooled_ratio():
    sums, counts = np.array([2.0, 4.0, 6.0, 8.0] * 10), np.array([1.0, 2.0, 3.0, 4.0] * 10)
    low, high = bootstrap_ci(sums, counts, seed=0)
    assert low == pytest.approx(2.0) and high == pytest.approx(2.0)  # every user has ratio 2


def test_identical_models_give_p_one_and_a_clear_winner_a_small_p():
    rng = np.random.default_rng(2)
    a = rng.random(300)
    assert paired_p_value(a, a) == 1.0
    assert paired_p_value(a, a, test="t") == 1.0
    better = a + 0.05 + 0.01 * rng.standard_normal(300)
    assert paired_p_value(better, a) < 1e-6
    assert paired_p_value(better, a, test="t") < 1e-6
    noise = a + 0.01 * rng.standard_normal(300)
    assert paired_p_value(noise, a) > 0.01
    with pytest.raises(ValueError, match="length"):
        paired_p_value(a, a[:-1])


def test_curves_at_k_match_the_evaluation(split):
    model, result = fit_and_evaluate("popularity", *split)
    curve = precision_recall_at_k(model, split[1], max_k=20)
    assert curve["k"].tolist() == list(range(1, 21))
    at_10 = curve.set_index("k").loc[10]
    assert at_10["precision"] == pytest.approx(result.metrics["precision@10"])
    assert at_10["recall"] == pytest.approx(result.metrics["recall@10"])
    assert curve["recall"].is_monotonic_increasing


def test_one_ranking_pass_gives_the_metrics_at_k_and_the_curves(split):
    """evaluate(depth=50) ranks once: its metrics are those of the top-10 lists, and the
    curves from its lists equal the curves from a second pass."""
    train, test = split
    model = fit_and_evaluate("ease", train, test)[0]
    plain = evaluate(model, test, k=10)
    deep = evaluate(model, test, k=10, depth=50)
    assert deep.recommended.shape[1] == 50
    np.testing.assert_array_equal(deep.recommended[:, :10], plain.recommended)
    assert ({m: v for m, v in deep.metrics.items() if m != "score_seconds"}
            == {m: v for m, v in plain.metrics.items() if m != "score_seconds"})
    pd.testing.assert_frame_equal(precision_recall_at_k(model, test, 50, deep.recommended),
                                  precision_recall_at_k(model, test, 50))


def test_squared_errors_allow_paired_tests_between_rating_models(baselines, split):
    errors = baselines.squared_errors
    assert list(errors) == ["global-mean", "baseline"]  # the rating models, in order
    assert len(errors) == len(split[1])
    table = baselines.table.set_index("model")
    assert np.sqrt(errors.mean()).to_numpy() == pytest.approx(table.loc[list(errors), "rmse"])


def test_rmse_by_activity_buckets_users_by_train_ratings():
    train = pd.DataFrame({"userId": [1] * 25 + [2] * 5, "movieId": range(30), "rating": 3.0})
    predictions = pd.DataFrame({"userId": [1, 1, 2, 3], "rating": [4.0, 2.0, 3.0, 5.0],
                                "prediction": [3.0, 3.0, 3.0, 3.0]})
    out = rmse_by_activity(predictions, train).set_index("activity")
    assert out.loc["0", "rmse"] == pytest.approx(2.0)  # user 3 is not in train
    assert out.loc["1-20", "rmse"] == pytest.approx(0.0)
    assert out.loc["21-50", "ratings"] == 2 and out.loc["21-50", "rmse"] == pytest.approx(1.0)


def test_quick_mode_passes_only_known_parameters():
    assert settings_for("baseline", None, quick=True) == {"epochs": 2}
    assert settings_for("ease", None, quick=True) == {}
    assert settings_for("baseline", {"baseline": {"epochs": 5}}, quick=True) == {"epochs": 5}
    assert settings_for("baseline", None, quick=False) == {}


def test_table_has_intervals_and_p_values_against_the_best_baseline(baselines):
    table = baselines.table.set_index("model")
    assert list(table.index) == BASELINES
    best = table["ndcg@10"].idxmax()
    assert baselines.baselines == {"top_n": best, "rating": table["rmse"].idxmin()}
    for metric in ["precision@10", "recall@10", "ndcg@10", "map@10", "hr@10", "rmse"]:
        rows = table.dropna(subset=[metric])
        assert (rows[f"{metric}_low"] <= rows[metric]).all(), metric
        assert (rows[metric] <= rows[f"{metric}_high"]).all(), metric
    assert np.isnan(table.loc[best, "ndcg@10_p"])
    assert table["ndcg@10_p"].drop(best).between(0, 1).all()
    assert np.isnan(table.loc["baseline", "rmse_p"]) and table.loc["global-mean", "rmse_p"] < 0.05
    assert np.isnan(table.loc["popularity", "rmse_p"])  # ranks only


def test_comparison_tables_cover_every_model(baselines):
    assert set(baselines.curves["model"]) == set(BASELINES)
    assert baselines.curves.groupby("model")["k"].max().eq(50).all()
    assert set(baselines.activity["model"]) == {"global-mean", "baseline"}
    assert baselines.per_user.groupby("model").size().nunique() == 1
    records = baselines.records()
    assert [r["model"] for r in records] == BASELINES and "ndcg@10_low" in records[0]


def test_same_seed_gives_the_same_table(split, baselines):
    again = compare(BASELINES, *split, seed=3, n_resamples=200)
    timing = ["fit_seconds", "score_seconds"]
    pd.testing.assert_frame_equal(again.table.drop(columns=timing),
                                  baselines.table.drop(columns=timing))
