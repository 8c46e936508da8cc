"""Cold-start protocol: the splits (no leaks, the reference draw), AUC, and the fold-in
evaluation on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommender.data import splits
from recommender.core.errors import DataError
from recommender.evaluation import RandomOrder, cold_start_table, item_cold_start, \
    user_cold_start
from recommender.metrics import roc_auc
from recommender.models import make_model


def test_item_split_is_the_reference_draw_and_leaks_nothing(synthetic_small):
    ratings = synthetic_small.ratings
    train, test = splits.cold_start_split(ratings, "movie", 0.2, 42)
    rated = sorted(ratings["movieId"].unique())
    reference = np.random.default_rng(42).choice(rated, round(0.2 * len(rated)), replace=False)
    assert set(test["movieId"]) == set(reference)
    assert set(train["movieId"]).isdisjoint(test["movieId"])
    assert len(train) + len(test) == len(ratings)


@pytest.mark.parametrize("order", ["random", "earliest"])
def test_reveal_ratings_keeps_users_whole_and_nested(synthetic_small, order):
    train, test = splits.cold_start_split(synthetic_small.ratings, "user", 0.2, 3)
    assert set(train["userId"]).isdisjoint(test["userId"])
    shown = {}
    for k in (1, 5, 10):
        revealed, hidden = splits.reveal_ratings(test, k, order, seed=3)
        assert len(revealed) + len(hidden) == len(test)
        counts = test["userId"].value_counts()
        got = revealed["userId"].value_counts().reindex(counts.index)
        assert (got == np.minimum(k, counts - 1)).all()  # every user keeps one to predict
        assert set(hidden["userId"]) == set(test["userId"])
        shown[k] = {(u, m) for u, m in zip(revealed["userId"], revealed["movieId"])}
        if order == "earliest":  # nothing hidden is earlier than what was revealed
            last = revealed.groupby("userId")["timestamp"].max()
            first = hidden.groupby("userId")["timestamp"].min()
            assert (last <= first.reindex(last.index)).all()
    assert shown[1] <= shown[5] <= shown[10]


def test_reveal_rejects_bad_arguments(synthetic_small):
    with pytest.raises(DataError, match="k must be >= 1"):
        splits.reveal_ratings(synthetic_small.ratings, 0)
    with pytest.raises(DataError, match="'random' or 'earliest'"):
        splits.reveal_ratings(synthetic_small.ratings, 1, order="latest")


def test_known_tags_drops_held_out_users_and_pairs():
    train = pd.DataFrame({"userId": [1, 1, 2], "movieId": [10, 11, 10]})
    test = pd.DataFrame({"userId": [1, 3], "movieId": [12, 10]})
    tags = pd.DataFrame({"userId": [1, 1, 2, 3], "movieId": [10, 12, 12, 10],
                         "tag": ["a", "leak", "ok", "new user"]})
    assert list(splits.known_tags(tags, train, test)["tag"]) == ["a", "ok"]
    assert splits.known_tags(None, train, test) is None


def test_roc_auc_hand_computed():
    scores = np.array([[0.9, 0.8, 0.7, 0.6], [1.0, 1.0, 0.0, 5.0]])
    relevant = np.array([[1, 0, 1, 0], [1, 0, 0, 0]], bool)
    candidates = np.array([[1, 1, 1, 1], [1, 1, 1, 0]], bool)  # 5.0 is not a candidate
    # row 0: 0.9 beats both negatives, 0.7 beats one of two -> 3/4
    # row 1: 1.0 ties 1.0 (1/2) and beats 0.0 (1) -> 3/4
    assert roc_auc(scores, relevant, candidates) == pytest.approx([0.75, 0.75])
    assert np.isnan(roc_auc(scores[:1], np.ones((1, 4), bool))[0])  # no negative


class _Fixed:
    """Folds in to fixed per-movie scores, so metrics can be computed by hand."""

    name = "fixed"
    folds_in = True

    def __init__(self, scores: dict):
        self.scores = scores

    def fold_in(self, history, movie_ids=None):
        n = history["userId"].nunique()
        return np.tile([self.scores.get(m, 0.0) for m in movie_ids], (n, 1))


def test_item_cold_start_hand_computed():
    train = pd.DataFrame({"userId": [1, 2, 3], "movieId": [1, 1, 2], "rating": [4.0] * 3})
    test = pd.DataFrame({"userId": [1, 1, 2, 4], "movieId": [10, 11, 12, 10],
                         "rating": [5.0, 2.0, 4.0, 5.0]})
    result = item_cold_start(_Fixed({10: 3.0, 11: 2.0, 12: 1.0}), train, test, k=2)
    # user 1 likes 10 (ranked 1st of 3): NDCG 1, AUC 1; user 2 likes 12 (3rd): NDCG 0, AUC 0;
    # user 4 has no train history and user 3 no liked cold movie: both left out
    assert list(result.per_user["userId"]) == [1, 2]
    assert result.metrics["ndcg@2"] == pytest.approx(0.5)
    assert result.metrics["auc"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="occur in train"):
        item_cold_start(RandomOrder(), train, train)


def test_user_cold_start_excludes_revealed_movies():
    train = pd.DataFrame({"userId": [1, 1, 1], "movieId": [10, 11, 12], "rating": [4.0] * 3})
    revealed = pd.DataFrame({"userId": [9], "movieId": [10], "rating": [5.0]})
    hidden = pd.DataFrame({"userId": [9, 9], "movieId": [11, 99], "rating": [4.0, 5.0]})
    result = user_cold_start(_Fixed({10: 9.0, 11: 1.0, 12: 2.0}), train, revealed, hidden, k=1)
    # candidates 11 and 12 (10 was revealed); 11 is liked but ranked 2nd: AUC 0, no hit at 1
    assert result.metrics["users"] == 1 and result.metrics["candidates"] == 3
    assert result.metrics["auc"] == 0.0 and result.metrics["recall@1"] == 0.0
    assert result.recommended[0, 0] == 2  # index of movie 12, never the revealed 10


def test_cold_start_table_rows(synthetic_small):
    data = synthetic_small
    table = cold_start_table(["popularity", "regression"], data.ratings, data.movies,
                             reveal=(1, 5), test_fraction=0.2, seed=0)
    scored = table[table["skipped"] == ""]
    assert set(scored["model"]) == {"random", "popularity"}
    assert len(scored) == 2 * 3  # items + users at two reveal sizes, per model
    assert table.loc[table["model"] == "regression", "skipped"].str.contains("cannot").all()
    random_auc = scored.loc[scored["model"] == "random", "auc"]
    assert ((random_auc > 0.4) & (random_auc < 0.6)).all()


def test_reference_draw_on_ml_latest_small(shared_data):
    from recommender.data.releases import load_movielens

    ratings = load_movielens(shared_data / "ml-latest-small").ratings
    train, test = splits.cold_start_split(ratings, "movie", 0.2, 42)
    assert test["movieId"].nunique() == 1813
    result = item_cold_start(RandomOrder(0), train, test)
    assert result.metrics["users"] == 651 and result.metrics["candidates"] == 1813
    assert 0.45 < result.metrics["auc"] < 0.55


def test_cold_movies_row_of_an_unfitted_catalogue_model_is_the_fitted_models(synthetic_small):
    # EASE scores every movie outside train -inf: the table takes its cold-movie row from
    # Unrecommendable, without a fit, and it is the row the fitted model gives
    data = synthetic_small
    table = cold_start_table(["ease"], data.ratings, data.movies, reveal=(1,),
                             test_fraction=0.2, seed=0, random_row=False)
    row = table[table["protocol"] == "items"].iloc[0]
    assert np.isnan(row["fit_seconds"])
    train, test = splits.cold_start_split(data.ratings, "movie", 0.2, 0)
    fitted = item_cold_start(make_model("ease", seed=0).fit(train), train, test).metrics
    for key in ("ndcg@10", "recall@10", "precision@10", "hr@10", "auc", "users", "candidates"):
        assert row[key] == fitted[key], key
