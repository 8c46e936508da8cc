"""DLAE and EDLAE: the closed forms against a dense inverse by hand, what the dropout penalty
does, and that no dropout with a zero diagonal is EASE. What every model does (beat random,
save/load, fold-in, settings) is in test_contract.py."""

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.data.splits import per_user_split
from recommender.data.synthetic import make_synthetic
from recommender.evaluation import fit_and_evaluate
from recommender.models import make_model
from recommender.models.dlae import dlae_weights
from recommender.models.ease import ease_inputs, ease_weights


@pytest.fixture(scope="module")
def split():
    data = make_synthetic(n_users=300, n_movies=400, n_ratings=20_000, seed=3)
    return per_user_split(data.ratings, 0.2, seed=3)


def inputs(n_users: int) -> sp.csr_matrix:
    x = sp.random(n_users, 120, density=0.1, format="csr", random_state=4)
    x.data = np.random.default_rng(5).uniform(0.05, 2.0, x.nnz)  # rating weights
    return x


@pytest.mark.parametrize("n_users", [40, 300])  # Woodbury (users < items) and direct inverse
@pytest.mark.parametrize("zero_diagonal", [False, True])
def test_weights_are_the_closed_form(n_users, zero_diagonal):
    x = inputs(n_users)
    gram = (x.T @ x).toarray()
    penalty = 50.0 + 0.4 / 0.6 * np.diag(gram)  # l2 + p / (1 - p) diag(X^T X)
    inverse = np.linalg.inv(gram + np.diag(penalty))
    if zero_diagonal:  # EDLAE: B = I - P diagMat(1 / diag P)
        expected = inverse / -np.diag(inverse)
        np.fill_diagonal(expected, 0.0)
    else:  # DLAE: B = I - P Lambda
        expected = np.eye(120) - inverse * penalty[None, :]
    np.testing.assert_allclose(dlae_weights(x, 50.0, 0.4, zero_diagonal), expected, atol=1e-5)


def test_without_dropout_edlae_is_ease():
    x = inputs(40)
    np.testing.assert_allclose(dlae_weights(x, 50.0, 0.0, zero_diagonal=True),
                               ease_weights(x, 50.0), atol=1e-5)


def test_dropout_holds_back_the_most_rated_movies_weights_most():
    """The penalty of a movie grows with its squared input norm, so raising the dropout
    shrinks the weights out of a much-rated movie more than those out of a rarely rated
    one."""
    x = inputs(300)
    norms = np.asarray(x.multiply(x).sum(axis=0)).ravel()
    most, least = np.argmax(norms), np.argmin(norms[norms > 0])
    low, high = dlae_weights(x, 10.0, 0.1), dlae_weights(x, 10.0, 0.6)
    off = ~np.eye(120, dtype=bool)

    def shrink(j):  # how much of row j's off-diagonal weight the higher dropout leaves
        return np.abs(high[j][off[j]]).sum() / np.abs(low[j][off[j]]).sum()

    assert shrink(most) < shrink(np.flatnonzero(norms > 0)[least])


def test_scores_are_inputs_times_weights_and_beat_popularity(split):
    train, test = split
    model, result = fit_and_evaluate("dlae", train, test)
    users = np.arange(len(model.users))
    x = ease_inputs(_ratings(model, train), 0.5)
    np.testing.assert_allclose(model.score(users), np.asarray(x @ model.B), rtol=1e-5,
                               atol=1e-5)
    _, popular = fit_and_evaluate("popularity", train, test)
    assert result.metrics["ndcg@10"] > popular.metrics["ndcg@10"] + 0.02


def _ratings(model, train) -> sp.csr_matrix:
    """The train ratings as the model's users x movies matrix."""
    u = model.users.encode(train["userId"].to_numpy())
    i = model.items.encode(train["movieId"].to_numpy())
    return sp.csr_matrix((train["rating"].to_numpy(np.float64), (u, i)),
                         shape=model.seen.shape)


def test_edlae_setting_gives_a_zero_diagonal_and_dlae_a_free_one(split):
    train, _ = split
    free = make_model("dlae").fit(train).B
    constrained = make_model("dlae", zero_diagonal=True).fit(train).B
    assert np.all(np.diag(constrained) == 0.0)
    assert np.all(np.diag(free) > 0.0)  # I - P Lambda: each movie keeps some of itself
