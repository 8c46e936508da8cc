"""BPMF: predictions are the mean over the kept Gibbs samples (checked by hand), it beats the
biases on planted data, a train user folded in from their own ratings gets the scores the
model gives them, and sample counts that cannot exist are refused. What every model does
(save/load, fold-in of a new user, settings) is in test_contract.py."""

import numpy as np
import pytest

from contract import fold_in_agreement, planted_split, rmse_against_biases
from recommender.core.errors import SettingError
from recommender.models import make_model

QUICK = {"sweeps": 40, "burn_in": 10, "kept": 30}


@pytest.fixture(scope="module")
def split():
    return planted_split()


@pytest.fixture(scope="module")
def fitted(split):
    return make_model("bpmf", seed=2, **QUICK).fit(split[0])


def test_predictions_are_the_mean_over_the_kept_samples(fitted, split):
    test = split[1].head(50)
    u = fitted.users.encode(test["userId"].to_numpy(), unknown="missing")
    i = fitted.items.encode(test["movieId"].to_numpy(), unknown="missing")
    known = (u >= 0) & (i >= 0)
    users, items = fitted.samples["users"], fitted.samples["items"]  # (S, n, dim + 1)
    assert len(users) == QUICK["kept"]
    by_hand = fitted.global_mean + np.mean(
        users[:, u[known], -1] + items[:, i[known], -1]
        + np.einsum("snk,snk->sn", users[:, u[known], :-1], items[:, i[known], :-1]), axis=0)
    predicted = fitted.predict(test["userId"], test["movieId"])[known]
    np.testing.assert_allclose(predicted, np.clip(by_hand, *fitted.rating_scale), atol=1e-4)


def test_beats_the_biases_on_planted_factors(fitted, split):
    rmse, biases = rmse_against_biases(fitted, split)
    assert rmse < biases - 0.02, (rmse, biases)
    assert 0 < fitted.meta["noise_sd"] < rmse  # the noise it learned is below its error


def test_a_train_user_folded_in_from_their_ratings_scores_as_the_model_does(fitted, split):
    assert fold_in_agreement(fitted, split[0]) > 0.95


@pytest.mark.parametrize("settings, words", [
    ({"sweeps": 10, "burn_in": 10, "kept": 1}, "burn_in"),
    ({"sweeps": 20, "burn_in": 10, "kept": 11}, "kept"),
])
def test_sample_counts_that_cannot_exist_are_refused_in_one_line(settings, words):
    with pytest.raises(SettingError, match=words) as error:
        make_model("bpmf", **settings)
    assert len(str(error.value).splitlines()) == 1
