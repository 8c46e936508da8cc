"""What the model contract suite (``test_contract.py``) is built from: the data, the settings
that keep a fit short, the random-order reference, and bad values for typed settings.

Kept apart from the tests so that a model's own test file can reuse them (for example
``contract_settings`` to fit a model the way the contract does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import annotated_types
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recommender import metrics
from recommender.data import splits
from recommender.data.synthetic import make_synthetic
from recommender.data.releases import MovieLens
from recommender.evaluation import evaluate, quick_settings
from recommender.models import MODELS, Recommender, make_model, model_class
from recommender.models.tower import TowerModel

SEED = 7  # any fixed seed: the same one for every fit of the suite

# Beyond quick_settings (few epochs, no refit): what keeps a fit to a few seconds on 2 cores
# and still shows what the model learns; every other setting keeps its default.
# - softmax: all users in one batch, so XLA compiles one padded history shape instead of one
#   per batch (a fit takes 4 s instead of 6-10 s; NDCG@10 0.53 either way).
# - regression: its biases and factors move slowly at its learning rate: 2 epochs leave its
#   RMSE at 0.93 against the global mean's 0.97, 20 reach 0.67 in the same time (the first
#   epoch, which compiles, dominates).
# - tag-text: the planted tastes are genre tastes, and tag-text reads genres only as genre
#   tokens (genres=True): without them NDCG@10 is 0.067, with them 0.086 (random: 0.019).
FAST: dict[str, dict[str, Any]] = {
    "softmax": {"batch_size": 512},
    "regression": {"epochs": 20},
    "tag-text": {"genres": True, "epochs": 5},
    # blend: members that fit in a second (its defaults include multitask, which compiles)
    "blend": {"rating_members": ("bpmf", "baseline"), "list_members": ("ease-rated", "ease")},
}

# Models whose ranking is constant by design: they are the references the others are
# measured against, not rankers (checked to tie every movie instead of to beat random).
CONSTANT_RANKING = {"global-mean"}


@dataclass(frozen=True)
class Split:
    """A planted synthetic set split per user, with the side tables a model may read."""

    train: pd.DataFrame
    test: pd.DataFrame
    movies: pd.DataFrame
    tags: pd.DataFrame  # only the tags the model could know at training time

    @classmethod
    def of(cls, data: MovieLens, seed: int = 0) -> "Split":
        train, test = splits.per_user_split(data.ratings, 0.2, seed=seed)
        return cls(train, test, data.movies, splits.known_tags(data.tags, train, test))


def contract_settings(name: str) -> dict[str, Any]:
    """The settings the contract fits model ``name`` with: quick mode, then :data:`FAST`."""
    return {**quick_settings(name), **FAST.get(name, {})}


def trains_with_tensorflow(name: str) -> bool:
    """Whether model ``name`` trains through the shared TensorFlow loop, where every fit
    compiles its training step (seconds, whatever the data)."""
    try:
        return issubclass(model_class(name), TowerModel)
    except ImportError:  # a model that does not import fails every contract test anyway
        return False


def refit_cases() -> list:
    """Every registered model, for tests that fit it again: marked slow where a fit compiles
    (the fast suite still fits each of those models once, in the shared fixture)."""
    return [pytest.param(name, marks=pytest.mark.slow) if trains_with_tensorflow(name) else name
            for name in MODELS]


def fit(name: str, data: Split, seed: int = SEED) -> Recommender:
    """Model ``name`` made with :func:`contract_settings` and fitted on ``data.train``."""
    model = make_model(name, seed=seed, **contract_settings(name))
    return model.fit(data.train, movies=data.movies, tags=data.tags)


class RandomScores(Recommender):
    """Uniform random scores: the ranking every model must beat."""

    name = "random"

    def _fit(self, data, context) -> None:
        self.rng = np.random.default_rng(self.seed)

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        return self.rng.random((len(user_index), self.n_items)).astype(np.float32)


def random_ndcg(data: Split, draws: int = 20) -> tuple[float, float]:
    """Mean and standard deviation of NDCG@10 of ``draws`` random rankings under the
    evaluation protocol (the same candidates and relevant movies as a model gets)."""
    values = [evaluate(RandomScores(seed=draw).fit(data.train), data.test).metrics["ndcg@10"]
              for draw in range(draws)]
    return float(np.mean(values)), float(np.std(values))


def history_matrix(model: Recommender, history: pd.DataFrame) -> tuple[sp.csr_matrix,
                                                                          np.ndarray]:
    """``(ratings rows, user ids)`` of a ``history`` table over the model's train movies,
    built here (not by the model) to check ``score_history`` against ``fold_in``."""
    users, rows = np.unique(history["userId"].to_numpy(), return_inverse=True)
    position = {movie: col for col, movie in enumerate(model.items.ids.tolist())}
    cols = np.array([position.get(m, -1) for m in history["movieId"].tolist()])
    keep = cols >= 0
    matrix = sp.csr_matrix((history["rating"].to_numpy(np.float32)[keep],
                            (rows[keep], cols[keep])), shape=(len(users), len(position)))
    return matrix, users


def _bounds(field) -> dict[str, float]:
    """The ``ge``/``gt``/``le``/``lt`` bounds pydantic holds for a field."""
    out = {}
    for item in field.metadata:
        for key in ("ge", "gt", "le", "lt"):
            if isinstance(item, getattr(annotated_types, key.capitalize())):
                out[key] = getattr(item, key)
    return out


def _kind(field) -> str:
    text = str(field.annotation)
    if field.annotation is bool:
        return "bool"
    if field.annotation in (int, float):
        return "number"
    if text.startswith("typing.Literal"):
        return "choice"
    if "tuple" in text:
        return "sizes"
    return "other"


def bad_settings(name: str) -> Iterator[tuple[str, Any, str]]:
    """``(setting, value, why)`` for every way the settings of model ``name`` can be wrong:
    an unknown name, a value of the wrong type for each typed setting (``True`` for a
    number), a value outside each bound, a choice that is not offered."""
    yield "no_such_setting", 1, "unknown name"
    for key, field in model_class(name).Settings.model_fields.items():
        kind = _kind(field)
        if kind == "number":
            yield key, True, "a boolean for a number"
            yield key, "3", "text for a number"
        elif kind == "bool":
            yield key, "yes", "text for a boolean"
        elif kind == "choice":
            yield key, "no-such-choice", "a choice not offered"
        elif kind == "sizes":
            yield key, ("wide",), "text for a layer size"
        bounds = _bounds(field)
        step = 1 if field.annotation is int else 0.5
        if "ge" in bounds:
            yield key, bounds["ge"] - step, f"below the minimum {bounds['ge']}"
        if "gt" in bounds:
            yield key, bounds["gt"], f"not above {bounds['gt']}"
        if "le" in bounds:
            yield key, bounds["le"] + step, f"above the maximum {bounds['le']}"
        if "lt" in bounds:
            yield key, bounds["lt"], f"not below {bounds['lt']}"


def planted_split(seed: int = 11) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A planted rank-4 set (200 users, 300 movies, 12,000 ratings) split 80/20 per user:
    what the rating models' own tests fit on, to check a formula or a gain over the biases."""
    data = make_synthetic(n_users=200, n_movies=300, n_ratings=12_000, rank=4, seed=seed)
    return splits.per_user_split(data.ratings, 0.2, seed=seed)


def rmse_against_biases(model: Recommender, split: tuple[pd.DataFrame, pd.DataFrame]
                        ) -> tuple[float, float]:
    """Test RMSE of a fitted rating ``model`` and of the ``baseline`` biases fitted on the
    same train."""
    train, test = split
    biases = make_model("baseline").fit(train)
    return tuple(metrics.rmse(test["rating"], m.predict(test["userId"], test["movieId"]))
                 for m in (model, biases))


def fold_in_agreement(model: Recommender, train: pd.DataFrame) -> float:
    """Correlation between the first train user's scores and their scores folded in from
    their own train ratings: a model that folds in should nearly repeat itself."""
    user = int(model.users.ids[0])
    folded = model.fold_in(train[train["userId"] == user])[0]
    return float(np.corrcoef(folded, model.score(np.array([0]))[0])[0, 1])


def newcomer_cluster_share(model: Recommender, movies: pd.DataFrame, tolerance: float) -> int:
    """How many of the 20 best movies for a newcomer who rated movies 1-5 (all of planted
    cluster "Genre 0") are in that cluster, after checking that folding in the first train
    user's own history repeats their scores (to ``tolerance``) and that an unknown movie
    scores -inf."""
    own = model.seen[0].indices
    history = pd.DataFrame({"userId": model.users.ids[0], "movieId": model.items.decode(own),
                            "rating": np.float32(4.0)})
    np.testing.assert_allclose(model.fold_in(history), model.score([0]), rtol=tolerance,
                               atol=tolerance)
    newcomer = pd.DataFrame({"userId": 10_000, "movieId": [1, 2, 3, 4, 5], "rating": 4.0})
    assert np.isneginf(model.fold_in(newcomer, movie_ids=[10**9])).all()
    scores = model.fold_in(newcomer, movie_ids=movies["movieId"])[0]
    genre = {m: g[0] for m, g in zip(movies["movieId"], movies["genres"])}
    top = movies["movieId"].to_numpy()[np.argsort(-scores)[:20]]
    return sum(genre[m] == "Genre 0" for m in top)
