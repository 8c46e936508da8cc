"""The benchmark protocol end to end, including the reference rows on the real split."""

import numpy as np
import pandas as pd
import pytest

from recommender.data import read_ratings
from recommender.evaluation import evaluate, fit_and_evaluate, relevance_matrix
from recommender.models import make_model

KEYS = {"rmse", "mae", "precision@10", "recall@10", "ndcg@10", "map@10", "hr@10",
        "coverage@10", "users", "fit_seconds"}


def test_relevance_keeps_liked_test_movies_known_in_train():
    train = pd.DataFrame({"userId": [1, 1, 2, 2], "movieId": [1, 2, 1, 3],
                          "rating": [4.0, 4.0, 3.0, 5.0]})
    test = pd.DataFrame({"userId": [1, 1, 2, 2, 3], "movieId": [3, 9, 2, 3, 1],
                         "rating": [4.0, 5.0, 3.5, 2.0, 5.0]})
    model = make_model("popularity").fit(train)
    users, relevant = relevance_matrix(model, test)
    # user 1: movie 3 (movie 9 is unknown); user 2: nothing >= 4; user 3 unknown -> skipped
    assert model.users.decode(users).tolist() == [1]
    assert relevant.toarray().tolist() == [[0, 0, 1]]


def test_fit_and_evaluate_reports_every_key(synthetic_small):
    from recommender.data.splits import per_user_split

    train, test = per_user_split(synthetic_small.ratings, 0.2, seed=0)
    _, result = fit_and_evaluate("baseline", train, test)
    assert KEYS <= set(result.metrics)
    assert len(result.per_user) == result.metrics["users"]
    assert np.isclose(result.per_user["ndcg"].mean(), result.metrics["ndcg@10"])


def test_classifiers_also_report_their_classification_metrics(synthetic_small):
    from recommender.data.splits import per_user_split

    train, test = per_user_split(synthetic_small.ratings, 0.2, seed=0)
    _, result = fit_and_evaluate("classification", train, test, epochs=2, dim=4, refit=False)
    assert {"accuracy", "precision", "recall", "f1", "auc", "log_loss"} <= set(result.metrics)
    assert 0.0 <= result.metrics["auc"] <= 1.0 and result.metrics["log_loss"] > 0
    assert np.isclose(result.metrics["positive_rate"], (test["rating"] >= 4.0).mean())


@pytest.fixture(scope="module")
def u20(shared_benchmarks):
    folder = shared_benchmarks / "ml-latest-small-u20"
    return read_ratings(folder / "train.csv"), read_ratings(folder / "test.csv")


def test_popularity_reproduces_the_reference_row(u20):
    _, result = fit_and_evaluate("popularity", *u20)
    m = result.metrics
    reference = {"precision@10": 0.1143, "recall@10": 0.0995, "ndcg@10": 0.1502,
                 "map@10": 0.0783, "hr@10": 0.5736, "coverage@10": 0.0063}
    for key, value in reference.items():
        assert round(m[key], 4) == value, key
    assert m["users"] == 659


def test_global_mean_and_biases_reproduce_the_reference_rmse(u20):
    assert round(fit_and_evaluate("global-mean", *u20)[1].metrics["rmse"], 4) == 1.0501
    baseline = fit_and_evaluate("baseline", *u20)[1].metrics
    assert baseline["rmse"] <= 0.889 and round(baseline["mae"], 4) == 0.6869


def test_ease_reproduces_the_reference_ndcg(u20):
    _, result = fit_and_evaluate("ease", *u20, l2=200.0)
    assert result.metrics["ndcg@10"] == pytest.approx(0.2835, abs=5e-4)


def test_cache_dir_reuses_a_model_only_for_the_same_data_and_settings(synthetic_small,
                                                                     tmp_path, monkeypatch):
    from recommender.models.baselines import Biases
    from recommender.data.splits import per_user_split

    train, test = per_user_split(synthetic_small.ratings, 0.2, seed=0)
    fits = []
    original = Biases._fit
    monkeypatch.setattr(Biases, "_fit", lambda self, *args: fits.append(1) or
                        original(self, *args))
    _, first = fit_and_evaluate("baseline", train, test, cache_dir=tmp_path)
    assert fits == [1] and (tmp_path / "baseline" / "model.json").is_file()
    _, again = fit_and_evaluate("baseline", train, test, cache_dir=tmp_path)
    assert fits == [1] and again.metrics["rmse"] == first.metrics["rmse"]  # loaded
    fit_and_evaluate("baseline", train, test, cache_dir=tmp_path, reg_user=1.0)
    fit_and_evaluate("baseline", train.iloc[1:], test, cache_dir=tmp_path)
    assert fits == [1, 1, 1]  # other settings, other data: fitted again


def test_cache_key_covers_the_side_tables_the_fit_read(synthetic_small, tmp_path, monkeypatch):
    """A model whose fit read the movies table is reused only with the same movies; tables
    it never read do not matter."""
    from recommender.models.baselines import Biases
    from recommender.data.splits import per_user_split

    train, test = per_user_split(synthetic_small.ratings, 0.2, seed=0)
    movies, other_movies = synthetic_small.movies, synthetic_small.movies.iloc[1:]
    tags = pd.DataFrame({"userId": [1], "movieId": [1], "tag": ["x"], "timestamp": [0]})
    fits = []
    original = Biases._fit

    def reads_movies(self, data, context):
        fits.append(context.movies is not None)
        original(self, data, context)

    monkeypatch.setattr(Biases, "_fit", reads_movies)
    run = lambda **side: fit_and_evaluate("baseline", train, test, cache_dir=tmp_path, **side)
    run(movies=movies)
    run(movies=movies, tags=tags)  # tags were never read: reused
    assert fits == [True]
    run(movies=None)  # fitted without content where content was read: not reused
    run(movies=other_movies)
    assert fits == [True, False, True]


def test_evaluate_refuses_a_list_length_below_one(synthetic_small):
    from recommender.core.errors import UsageError

    model = make_model("popularity").fit(synthetic_small.ratings)
    with pytest.raises(UsageError, match="k \\(the list length\\)"):
        evaluate(model, synthetic_small.ratings, k=0)
    with pytest.raises(UsageError, match="depth must be a whole number"):
        evaluate(model, synthetic_small.ratings, k=10, depth=0)


def test_fit_and_evaluate_hides_tags_on_held_out_ratings(synthetic_small, monkeypatch):
    """A tag on a test rating tells which movie the user watched: the fit never sees it."""
    from recommender.models.baselines import Biases
    from recommender.data.splits import per_user_split

    train, test = per_user_split(synthetic_small.ratings, 0.2, seed=0)
    on_test, on_train = test.iloc[0], train.iloc[0]
    tags = pd.DataFrame({"userId": [on_test.userId, on_train.userId],
                         "movieId": [on_test.movieId, on_train.movieId],
                         "tag": ["leak", "fine"], "timestamp": [0, 0]})
    seen = []
    original = Biases._fit

    def records_tags(self, data, context):
        seen.append(context.tags["tag"].tolist())
        original(self, data, context)

    monkeypatch.setattr(Biases, "_fit", records_tags)
    fit_and_evaluate("baseline", train, test, tags=tags)
    assert seen == [["fine"]]


def test_a_big_release_runs_each_model_with_its_large_data_settings():
    from recommender.evaluation import QUICK_SETTINGS, quick_settings, scales, settings_for
    from recommender.models import MODELS, model_class

    for name in MODELS:
        cls = model_class(name)
        assert quick_settings(name, False) == {}
        assert quick_settings(name, False, large=True) == (cls.large_data or {})
        assert scales(name) == (cls.large_data is not None)
        # quick mode shortens training on top of the large_data settings
        quick = quick_settings(name, True, large=True)
        assert {k: v for k, v in quick.items() if k in QUICK_SETTINGS} == {
            k: v for k, v in QUICK_SETTINGS.items() if k in cls.Settings.model_fields}
    assert quick_settings("ease", False, large=True)["rank"] > 0  # low-rank EASE on big data
    assert settings_for("ease", {"ease": {"rank": 8}}, False, large=True)["rank"] == 8
    assert not scales("softmax")  # a dense Gram matrix of the catalogue


def test_the_test_ratings_dates_go_to_the_models_that_use_time_only(synthetic_small,
                                                                    monkeypatch):
    """A model that says it reads time (``uses_time``) is asked about each test rating at its
    timestamp; any other model's ``_predict`` is called as before, without dates."""
    from recommender.data.splits import per_user_split
    from recommender.models.baselines import Biases

    train, test = per_user_split(synthetic_small.ratings, 0.2, seed=0)
    asked = []
    original = Biases._predict

    def records_times(self, user_index, item_index, *times):
        asked.append(times)
        return original(self, user_index, item_index)

    monkeypatch.setattr(Biases, "_predict", records_times)
    fitted = make_model("baseline").fit(train)
    plain = evaluate(fitted, test).metrics["rmse"]
    monkeypatch.setattr(Biases, "uses_time", True)
    timed = evaluate(fitted, test).metrics["rmse"]
    assert asked[0] == ()
    np.testing.assert_array_equal(asked[1][0], test["timestamp"].to_numpy())
    assert plain == timed  # the biases ignore the dates they are given
