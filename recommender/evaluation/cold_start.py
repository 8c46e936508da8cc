"""Cold start: movies and users outside train, scored through ``Recommender.fold_in``.

Item cold start follows the LightFM paper's protocol (whole movies held out, ranked for their
raters from content); user cold start reveals a few ratings of held-out users and ranks the
train catalogue for them. :func:`cold_start_table` runs both for any registered models.
"""

from __future__ import annotations

import time
from typing import Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender import metrics, topk
from recommender.core.errors import DataError
from recommender.data import splits
from recommender.data.preprocessing import IdEncoder
from recommender.evaluation.protocol import Evaluation, settings_for
from recommender.metrics import RELEVANT_RATING
from recommender.models import MODELS, make_model, model_class

__all__ = ["RandomOrder", "Unrecommendable", "item_cold_start", "user_cold_start",
           "cold_start_table", "LIGHTFM_REFERENCE"]

# The item cold-start protocol's reference rows, measured on ml-latest-small with the split of
# ``cold_start_table``'s defaults: LightFM with 64 components, 30 epochs, item
# features = TF-IDF of genres, release decade, title words and tags.
LIGHTFM_REFERENCE = pd.DataFrame([
    {"model": "LightFM, BPR loss (reference)", "auc": 0.791, "ndcg@10": np.nan},
    {"model": "LightFM, WARP loss (reference)", "auc": np.nan, "ndcg@10": 0.102},
    {"model": "TF-IDF cosine to liked movies (reference)", "auc": 0.727, "ndcg@10": 0.035},
    {"model": "random order (reference)", "auc": 0.50, "ndcg@10": 0.012},
])


class RandomOrder:
    """Random scores through the ``fold_in`` interface: the chance row of a cold-start table."""

    name = "random"
    folds_in = True

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def fold_in(self, history: pd.DataFrame, movie_ids) -> np.ndarray:
        """Uniform scores, ``(users of history, len(movie_ids))``."""
        n_users = history["userId"].nunique()
        return self.rng.random((n_users, len(movie_ids))).astype(np.float32)


class Unrecommendable:
    """A model that scores every movie outside its training data ``-inf``
    (``scores_new_movies`` False), as seen by the cold-movie protocol, where every candidate
    is such a movie: its answer is known without fitting the model."""

    folds_in = True

    def __init__(self, name: str):
        self.name = name

    def fold_in(self, history: pd.DataFrame, movie_ids) -> np.ndarray:
        """``-inf`` for every movie, ``(users of history, len(movie_ids))``."""
        return np.full((history["userId"].nunique(), len(movie_ids)), -np.inf, np.float32)


def _rank_folded(model, history: pd.DataFrame, users: np.ndarray, movie_ids: np.ndarray,
                 relevant: sp.csr_matrix, k: int,
                 exclude: sp.csr_matrix | None = None) -> Evaluation:
    """Fold in each user's ``history``, rank ``movie_ids`` (minus ``exclude``) and score the
    ranking against ``relevant`` (rows pair with ``users``): NDCG, recall... at ``k`` and AUC."""
    history = history.sort_values("userId", kind="stable")
    bounds = np.searchsorted(history["userId"].to_numpy(), np.r_[users, np.inf])
    recommended = np.full((len(users), k), -1, np.int64)
    auc = np.full(len(users), np.nan)
    start = time.perf_counter()
    for sl in topk.iter_batches(len(users), len(movie_ids)):
        part = history.iloc[bounds[sl.start]:bounds[sl.stop]]
        scores = model.fold_in(part, movie_ids)
        if len(scores) != sl.stop - sl.start:
            raise ValueError(f"{model.name}: fold_in returned {len(scores)} rows for "
                             f"{sl.stop - sl.start} users")
        rows = np.arange(len(scores))
        block = exclude[sl] if exclude is not None else None
        recommended[sl] = topk.top_k(lambda r: scores[r], rows, k, len(movie_ids),
                                        exclude=block, batch_size=len(rows))
        candidates = None if block is None else block.toarray() == 0
        auc[sl] = metrics.roc_auc(scores, relevant[sl].toarray() > 0, candidates)
    seconds = time.perf_counter() - start
    per_user = metrics.ranking_metrics(recommended, relevant, k)
    per_user["auc"] = auc
    out = {f"{key}@{k}": float(np.mean(per_user[key])) for key in ("ndcg", "recall",
                                                                     "precision", "hr")}
    out.update(auc=float(np.nanmean(auc)), users=int(len(users)),
               candidates=int(len(movie_ids)), score_seconds=seconds)
    table = pd.DataFrame({"userId": users, **per_user})
    return Evaluation(model.name, out, table, recommended)


def item_cold_start(model, train: pd.DataFrame, test: pd.DataFrame, k: int = 10,
                    threshold: float = RELEVANT_RATING) -> Evaluation:
    """Rank the cold movies (every movie of ``test``, none in ``train``) for their raters.

    The protocol of the LightFM paper: for each user with a cold movie rated >= ``threshold``
    and some train ratings, the user's train ratings are folded in as history and only the
    cold movies are ranked; NDCG/recall/precision/HR at ``k`` against the liked cold movies,
    and per-user ROC AUC of the liked cold movies against every other cold movie.

    Args:
        model: a fitted model that folds in (or :class:`RandomOrder`).
        train: its training ratings.
        test: the held-out movies' ratings (``cold_start_split(by="movie")``).
        k: list length.
        threshold: lowest rating that counts as liked.

    Returns:
        An :class:`Evaluation`; ``metrics`` holds ``ndcg@k, recall@k, precision@k, hr@k, auc,
        users, candidates, score_seconds``.
    """
    cold = IdEncoder.fit(test["movieId"])
    if np.isin(cold.ids, train["movieId"].unique()).any():
        raise DataError("item_cold_start: some test movies occur in train; hold out whole "
                         "movies with splits.cold_start_split(by='movie')")
    liked = test[(test["rating"] >= threshold) & test["userId"].isin(train["userId"].unique())]
    users = IdEncoder.fit(liked["userId"])
    relevant = sp.csr_matrix((np.ones(len(liked), np.float32),
                              (users.encode(liked["userId"]), cold.encode(liked["movieId"]))),
                             shape=(len(users), len(cold)))
    relevant.sum_duplicates()
    history = train[train["userId"].isin(users.ids)]
    return _rank_folded(model, history, users.ids, cold.ids, relevant, k)


def user_cold_start(model, train: pd.DataFrame, revealed: pd.DataFrame, hidden: pd.DataFrame,
                    k: int = 10, threshold: float = RELEVANT_RATING) -> Evaluation:
    """Rank the train catalogue for new users known only by their ``revealed`` ratings.

    For each held-out user with a ``hidden`` train-catalogue movie rated >= ``threshold``, the
    revealed ratings are the history; candidates are the train movies minus the revealed ones;
    NDCG/recall/precision/HR at ``k`` and ROC AUC of the liked hidden movies against every other
    candidate.

    Args:
        model: a fitted model that folds in (or :class:`RandomOrder`).
        train: its training ratings (no held-out user in it).
        revealed: the new users' known ratings (:func:`splits.reveal_ratings`).
        hidden: the rest of their ratings, to predict.
        k: list length.
        threshold: lowest rating that counts as liked.

    Returns:
        An :class:`Evaluation` (metrics as in :func:`item_cold_start`).
    """
    if np.isin(revealed["userId"].unique(), train["userId"].unique()).any():
        raise DataError("user_cold_start: some held-out users occur in train; hold out whole "
                         "users with splits.cold_start_split(by='user')")
    catalogue = IdEncoder.fit(train["movieId"])
    liked = hidden[(hidden["rating"] >= threshold) & np.isin(hidden["movieId"], catalogue.ids)
                   & hidden["userId"].isin(revealed["userId"].unique())]
    users = IdEncoder.fit(liked["userId"])

    def matrix(table: pd.DataFrame) -> sp.csr_matrix:
        table = table[table["userId"].isin(users.ids) & np.isin(table["movieId"], catalogue.ids)]
        out = sp.csr_matrix((np.ones(len(table), np.float32),
                             (users.encode(table["userId"]), catalogue.encode(table["movieId"]))),
                            shape=(len(users), len(catalogue)))
        out.sum_duplicates()
        return out

    history = revealed[revealed["userId"].isin(users.ids)]
    return _rank_folded(model, history, users.ids, catalogue.ids, matrix(liked), k,
                        exclude=matrix(history))


def cold_start_table(names: Iterable[str] | None, ratings: pd.DataFrame,
                     movies: pd.DataFrame | None = None, tags: pd.DataFrame | None = None,
                     reveal: Iterable[int] = (1, 5, 10), test_fraction: float = 0.2,
                     seed: int = 42, k: int = 10, reveal_order: str = "random",
                     params: dict[str, dict] | None = None, quick: bool = False,
                     large: bool = False,
                     random_row: bool = True, models: dict | None = None,
                     progress: bool = False) -> pd.DataFrame:
    """Item and user cold start for every named model (plus random order), one row each.

    Item cold start: ``splits.cold_start_split(ratings, "movie", test_fraction, seed)`` (with
    the defaults, the LightFM-protocol draw). User cold start: the same fraction of users held
    out with ``seed``, ``k`` of their ratings revealed for each ``k`` in ``reveal``
    (:func:`splits.reveal_ratings` with ``reveal_order`` and ``seed``). Each model is fitted
    once per protocol with ``movies`` and only the tags it may know
    (:func:`splits.known_tags`). A model that cannot fold in gets a row saying so; one that
    scores every movie outside train ``-inf`` (``scores_new_movies`` False) is not fitted for
    the cold movies, whose row is then :class:`Unrecommendable`'s (``fit_seconds`` NaN).

    Args:
        names: registered model names (None: every registered model).
        ratings: every rating.
        movies, tags: side information for the models.
        reveal: revealed ratings per new user.
        test_fraction: share of movies (users) held out.
        seed: split seed (42: the reference draw).
        k: list length.
        reveal_order: ``"random"`` or ``"earliest"``.
        params: per-model parameter overrides, ``{name: {param: value}}``.
        quick: few epochs, as ``comparison.compare(quick=True)`` (what the tests run).
        large: a big release: the models' ``large_data`` settings, as ``compare(large=True)``.
        random_row: add the random-order row.
        models: a dict to receive the fitted models, keyed ``(protocol, name)``, for
            further analysis of the same fits.
        progress: print a line per model fitted.

    Returns:
        Columns ``protocol, revealed, model, ndcg@k, recall@k, precision@k, hr@k, auc, users,
        candidates, fit_seconds, score_seconds, skipped``.
    """
    names = list(MODELS) if names is None else list(names)
    item_train, item_test = splits.cold_start_split(ratings, "movie", test_fraction, seed)
    user_train, user_test = splits.cold_start_split(ratings, "user", test_fraction, seed)
    revealed = {n: splits.reveal_ratings(user_test, n, reveal_order, seed) for n in reveal}
    protocols = [("items", item_train, item_test), ("users", user_train, user_test)]
    rows = []
    for name in (["random"] if random_row else []) + names:
        settings = {} if name == "random" else settings_for(name, params, quick, large)
        if name != "random" and not make_model(name, seed=seed, **settings).folds_in:
            rows.append({"protocol": "items, users", "model": name,
                         "skipped": "cannot score users outside its training data"})
            continue
        for protocol, train, test in protocols:
            if protocol == "items" and name != "random" and \
                    not model_class(name).scores_new_movies:
                rows.append({"protocol": protocol, "revealed": np.nan, "model": name,
                             **item_cold_start(Unrecommendable(name), train, test, k).metrics,
                             "fit_seconds": np.nan, "skipped": ""})
                continue
            fitted = _fitted(name, settings, seed, train, test, movies, tags)
            fit_seconds = fitted.meta["fit_seconds"] if name != "random" else 0.0
            if models is not None and name != "random":
                models[protocol, name] = fitted
            if progress and name != "random":
                print(f"{name}: fitted on the {protocol} cold-start train in {fit_seconds:.1f} s")
            if protocol == "items":
                results = [(np.nan, item_cold_start(fitted, train, test, k))]
            else:
                results = [(n, user_cold_start(fitted, train, shown, hidden, k))
                           for n, (shown, hidden) in revealed.items()]
            rows += [{"protocol": protocol, "revealed": n, "model": result.model,
                      **result.metrics, "fit_seconds": fit_seconds, "skipped": ""}
                     for n, result in results]
    return pd.DataFrame(rows)


def _fitted(name: str, settings: dict, seed: int, train: pd.DataFrame, test: pd.DataFrame,
            movies: pd.DataFrame | None, tags: pd.DataFrame | None):
    """Model ``name`` fitted on a cold-start ``train`` with the tags it may know, or the
    random order for ``"random"``."""
    if name == "random":
        return RandomOrder(seed)
    model = make_model(name, seed=seed, **settings)
    return model.fit(train, movies=movies, tags=splits.known_tags(tags, train, test))
