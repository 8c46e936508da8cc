"""tag-text: the cosine embedding loss, texts without leaks, learning, fold-in with the users'
own tags, the genre tokens' table (the contract suite covers the rest)."""

import numpy as np
import pytest

from recommender.core.errors import DataError
from recommender.data.preprocessing import Interactions
from recommender.data.splits import per_user_split
from recommender.models import make_model
from recommender.models.tag_text import cosine_embedding_loss
from recommender.reporting.analysis.content import pair_similarity

FAST = {"epochs": 4, "patience": 4, "dim": 16, "batch_size": 256, "genres": True}


def test_cosine_embedding_loss_by_hand():
    cos = np.array([0.5, 0.5, -0.2, 0.05])
    label = np.array([1, -1, -1, -1])
    got = np.asarray(cosine_embedding_loss(cos, label, margin=0.1))
    np.testing.assert_allclose(got, [0.5, 0.4, 0.0, 0.0], atol=1e-7)


@pytest.fixture(scope="module")
def fitted():
    from recommender.data.synthetic import make_synthetic

    data = make_synthetic(n_users=300, n_movies=400, n_ratings=15_000, rank=4, n_genres=8,
                          seed=0)
    train, test = per_user_split(data.ratings, 0.2, seed=1)
    train = train[train["movieId"] != 7]  # movie 7: known from the movies table only
    model = make_model("tag-text", **FAST).fit(train, movies=data.movies, tags=data.tags)
    return data, train, test, model


@pytest.mark.slow
def test_liked_pairs_sit_closer_than_disliked_ones(fitted):
    data, train, test, model = fitted
    pairs = pair_similarity(model, train, test)
    assert len(pairs) == len(test) and pairs["similarity"].notna().all()
    liked = pairs.loc[pairs["liked"], "similarity"].mean()
    disliked = pairs.loc[~pairs["liked"], "similarity"].mean()
    assert liked > disliked + 0.05


@pytest.mark.slow
def test_pair_similarity_in_small_batches_of_users_is_the_cosine_of_each_pair(fitted,
                                                                             monkeypatch):
    from recommender.reporting.analysis import content

    data, train, test, model = fitted
    monkeypatch.setattr(content, "_SCORED_AT_ONCE", 1_000)  # a few users per batch
    pairs = content.pair_similarity(model, train, test).sort_index()
    for user, movie, similarity in pairs[["userId", "movieId", "similarity"]].sample(
            50, random_state=0).itertuples(index=False):
        alone = model.fold_in(train[train["userId"] == user], np.array([movie]))[0, 0]
        assert similarity == pytest.approx(alone, abs=1e-5)
    assert (pairs[["userId", "movieId"]].to_numpy()
            == test.sort_index()[["userId", "movieId"]].to_numpy()).all()


@pytest.mark.slow
def test_one_run_early_stopped_on_held_out_pairs_by_default(fitted):
    data, train, test, model = fitted
    meta = model.meta
    assert meta["refit"] is False and len(model.history) == 1
    assert meta["validation_metric"] == "loss" and 0 <= meta["validation"] < 1
    assert 1 <= meta["best_epoch"] <= meta["epochs_run"] <= FAST["epochs"]
    assert meta["pairs"] > 100 and meta["vocabulary"] == len(model.vocabulary)


@pytest.mark.slow
def test_refit_trains_again_on_every_pair_for_the_best_epoch_count(fitted):
    data, train, test, model = fitted
    refit = make_model("tag-text", **FAST, refit=True).fit(train, movies=data.movies,
                                                            tags=data.tags)
    first, last = refit.history
    assert refit.meta["refit"] is True and len(last.rows) == first.best_epoch
    assert "val" not in last.frame() and last.best_value is None  # nothing held out
    assert last.examples_seen >= first.examples_seen * len(last.rows) / len(first.rows)
    np.testing.assert_array_equal(refit.history[0].frame()["loss"],  # same first run
                                  model.history[0].frame()["loss"])
    assert not np.allclose(refit.score(np.arange(5)), model.score(np.arange(5)))


@pytest.mark.slow
def test_fold_in_a_brand_new_user_and_a_brand_new_movie(fitted):
    data, train, test, model = fitted
    history = train[train["userId"] == 1].assign(userId=10_000)  # a stranger with user 1's taste
    scores = model.fold_in(history, [7, 1, 99_999])
    assert scores.shape == (1, 3)
    assert np.isfinite(scores[0, :2]).all() and np.isinf(scores[0, 2])
    np.testing.assert_allclose(model.fold_in(history)[0],  # same ratings, same user text
                               model.fold_in(train[train["userId"] == 1])[0], atol=1e-6)


@pytest.mark.slow
def test_own_tags_count_through_the_user_ids(fitted):
    data, train, test, model = fitted
    tagged = data.tags.merge(train, on=["userId", "movieId"])["userId"].value_counts()
    user = tagged.index[0]  # the user with the most tags on their own train movies
    history = train[train["userId"] == user]
    ratings = Interactions.from_ratings(history, items=model.items).matrix("rating")
    own = model.score_history(ratings, user_ids=[user])
    np.testing.assert_array_equal(model.fold_in(history), own)  # fold_in passes the ids
    np.testing.assert_allclose(own[0], model.score(model.users.encode([user]))[0], atol=1e-6)
    anonymous = model.score_history(ratings)  # no ids: only the liked movies' tags
    assert not np.allclose(anonymous, own)
    text = model.user_text(ratings, np.array([user]))
    assert text.sum() > model.user_text(ratings, np.array([-1])).sum()


def test_genre_tokens_need_the_movies_table(synthetic_small):
    with pytest.raises(ValueError, match="genres=True needs the movies table"):
        make_model("tag-text", **FAST).fit(synthetic_small.ratings, tags=synthetic_small.tags)


def test_a_release_without_tags_gives_genre_and_title_words(synthetic_small):
    # ml-100k and ml-1m have no tags table: the movies' own words make the texts
    data = synthetic_small
    model = make_model("tag-text", **FAST).fit(data.ratings, movies=data.movies)
    assert model.meta["text"].startswith("genre and title words")
    assert {"drama", "comedy", "synthetic"} <= set(model.vocabulary)
    scores = model.score(np.arange(5))
    assert np.isfinite(scores).all() and scores.std() > 0
    with pytest.raises(DataError, match="needs the tags table or the movies table"):
        make_model("tag-text", **FAST).fit(data.ratings)
