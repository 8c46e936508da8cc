"""Baselines and EASE: closed forms on hand-built cases, what each learns, fold-in of train
users. What every model does (beat random, save/load, settings) is in test_contract.py."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recommender.data.splits import per_user_split
from recommender.data.synthetic import make_synthetic
from recommender.evaluation import fit_and_evaluate
from recommender.models import make_model
from recommender.models.ease import ease_inputs, ease_weights


@pytest.fixture(scope="module")
def split():
    data = make_synthetic(n_users=300, n_movies=400, n_ratings=20_000, seed=3)
    return per_user_split(data.ratings, 0.2, seed=3)


def test_biases_match_their_closed_form_on_a_tiny_example():
    ratings = pd.DataFrame({"userId": [1, 1, 2], "movieId": [1, 2, 1],
                            "rating": [5.0, 3.0, 4.0]})
    model = make_model("baseline", reg_user=0.0, reg_item=0.0, epochs=50).fit(ratings)
    pred = model.predict([1, 1, 2], [1, 2, 1])
    np.testing.assert_allclose(pred, [5.0, 3.0, 4.0], atol=1e-3)
    # unknown user and movie fall back to the global mean plus known biases, never raise
    assert model.predict([99], [99])[0] == pytest.approx(4.0)


def test_ease_beats_popularity_with_less_popularity_bias(split):
    train, test = split
    results = {name: fit_and_evaluate(name, train, test)[1].metrics
               for name in ("popularity", "ease")}
    assert results["ease"]["ndcg@10"] > results["popularity"]["ndcg@10"] + 0.02
    assert results["popularity"]["top1pct_share"] > results["ease"]["top1pct_share"]


def test_ease_restricted_to_most_popular_movies_scores_others_minus_inf(split):
    train, _ = split
    model = make_model("ease", max_items=50).fit(train)
    scores = model.score(np.array([0, 1]))
    assert np.isfinite(scores).sum(axis=1).tolist() == [50, 50]
    kept_counts = model.seen.sum(axis=0).A1[model.kept]
    assert kept_counts.min() >= np.sort(model.seen.sum(axis=0).A1)[-50]


@pytest.mark.parametrize("n_users", [40, 300])  # Woodbury (users < items) and direct inverse
def test_ease_weights_are_the_closed_form(n_users):
    x = sp.random(n_users, 120, density=0.1, format="csr", random_state=4)
    x.data = np.random.default_rng(5).uniform(0.05, 2.0, x.nnz)  # rating weights
    gram = x.astype(np.float64).T @ x.astype(np.float64)
    inverse = np.linalg.inv(gram.toarray() + 50.0 * np.eye(120))
    expected = inverse / -np.diag(inverse)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(ease_weights(x, 50.0), expected, atol=1e-5)


@pytest.mark.parametrize("name", ["ease", "ease-rated"])
def test_low_rank_ease_at_full_rank_is_exact_ease(name, split):
    # rank >= rank(X): the same item-item weights, the same scores and lists as the closed form
    train, _ = split
    exact = make_model(name).fit(train)
    full = make_model(name, rank=1000).fit(train)  # cut to the 300 users: every singular pair
    users = np.arange(len(exact.users))
    np.testing.assert_allclose(full.score(users), exact.score(users), rtol=1e-3, atol=2e-4)
    np.testing.assert_allclose(full._weights(np.arange(40), np.arange(60)),
                               exact.B[:40, :60], atol=2e-4)
    agree = (full.top_k(users, 10) == exact.top_k(users, 10)).mean()
    assert agree > 0.97  # near-ties in float32 may swap
    row = exact.inputs[:1]
    assert full.explain(row, np.arange(50)).tolist() == exact.explain(row, np.arange(50)).tolist()


def test_low_rank_ease_ranks_by_its_scores_and_stays_near_exact(split):
    # a rank below the data's keeps most of exact EASE's NDCG; its top-k path (one product)
    # lists what its scores rank first
    train, test = split
    exact = fit_and_evaluate("ease", train, test)[1].metrics["ndcg@10"]
    model, result = fit_and_evaluate("ease", train, test, rank=64)
    assert result.metrics["ndcg@10"] > exact - 0.03
    users = np.arange(len(model.users))
    scores = model.score(users)
    scores[model.seen[users].toarray() > 0] = -np.inf
    listed = model.top_k(users, 10)
    np.testing.assert_allclose(np.take_along_axis(scores, listed, axis=1),
                               -np.sort(-scores, axis=1)[:, :10], rtol=1e-4, atol=1e-5)


def test_ease_inputs_weight_ratings_around_the_user_mean():
    ratings = sp.csr_matrix(np.array([[5.0, 3.0, 0.0], [0.0, 1.0, 1.0]], np.float32))
    assert ease_inputs(ratings).toarray().tolist() == [[1, 1, 0], [0, 1, 1]]
    weighted = ease_inputs(ratings, rating_weight=0.5).toarray()
    np.testing.assert_allclose(weighted, [[1.5, 0.5, 0.0], [0.0, 1.0, 1.0]])
    assert ease_inputs(ratings, rating_weight=10.0).data.min() == pytest.approx(0.05)


@pytest.mark.parametrize("name, settings", [("baseline", {}), ("popularity", {}), ("ease", {}),
                                            ("ease-rated", {}), ("ease", {"rank": 32})])
def test_fold_in_of_a_train_user_matches_their_own_scores(name, settings, split):
    """Folding a train user's own ratings back in gives the scores the model has for them."""
    train, _ = split
    model = make_model(name, **settings).fit(train)
    user = int(train["userId"].iloc[0])
    history = train[train["userId"] == user]
    folded = model.fold_in(history)
    own = model.score(model.users.encode([user]))
    np.testing.assert_allclose(folded, own, rtol=1e-4, atol=1e-5)
    assert model.folds_in


def test_fold_in_serves_a_brand_new_user_and_cold_movies(split):
    train, _ = split
    model = make_model("ease").fit(train)
    top = train["movieId"].value_counts().index[:3].to_numpy()
    new_user = pd.DataFrame({"userId": [10**6] * 3, "movieId": top, "rating": [5.0, 4.0, 4.5]})
    unknown_movie = int(train["movieId"].max()) + 1
    scores = model.fold_in(new_user, movie_ids=np.r_[top, unknown_movie])
    assert scores.shape == (1, 4)
    assert np.isneginf(scores[0, -1])  # EASE cannot score a movie it never saw
    assert np.isfinite(scores[0, :3]).all()
