"""Planted taste clusters shared by the tests of the models that learn lists from histories
(softmax, softmax-dnn, recvae): each module fits on the same split and compares with the same
popularity figure."""

import pytest

from recommender.data.splits import per_user_split
from recommender.data.synthetic import planted_clusters
from recommender.evaluation import fit_and_evaluate


@pytest.fixture(scope="module")
def data():
    """Planted taste clusters: 4 genres of 50 movies; each user watches 20 movies of one
    genre, movie popularity within a genre follows Zipf, so popularity alone is weak."""
    return planted_clusters(n_clusters=4, movies_per_cluster=50, n_users=400, per_user=20)


@pytest.fixture(scope="module")
def split(data):
    """Train and test of the planted clusters, 20% of each user's movies held out."""
    return per_user_split(data[0], 0.2, seed=3)


@pytest.fixture(scope="module")
def popularity(split):
    """NDCG@10 of popularity on the planted split: what a model must beat."""
    return fit_and_evaluate("popularity", *split)[1].metrics["ndcg@10"]
