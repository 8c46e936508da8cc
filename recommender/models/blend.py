"""A blend of registered models, its weights learned on a validation slice carved from train.

The members are fitted on ``fit``, the train ratings less a per-user ``validation`` share
(:func:`recommender.data.splits.validation_split`, the model's seed), and answer for the
held-out share:

* ratings: ridge stacking ``r = w_0 + sum_m w_m r_m(u, i) + w_u log(1 + n_u) +
  w_i log(1 + n_i)`` over the rating members' predictions and the user's and movie's train
  counts, fitted by least squares with an L2 penalty ``ridge`` (the intercept unpenalised);
* lists: ``s(u, .) = sum_m w_m z_m(u, .)``, each member's scores z-scored per user over the
  catalogue, the first member weighing 1 and each other's weight picked from
  :data:`WEIGHT_GRID` by NDCG@10 of the held-out liked movies (coordinate ascent, two rounds).

The members are then refitted on all of train with the same seed, and the learned weights
applied to them. A member that early-stops on a holdout of its own (a model of the shared
training loop with ``refit``) does it once, on the carve, keeping its best epoch's weights
there, and is refitted on all of train for that epoch count without a holdout: the one run
its own refit would have made, without the early-stopped run before it. The test file is
never read: every weight comes from the slice of train. A blend is saved as one artifact
holding its members'. Settings and measurements: ``docs/models/blend.md``.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field, field_validator
from threadpoolctl import threadpool_limits

from recommender import metrics
from recommender.data.preprocessing import Interactions
from recommender.data.splits import known_tags, validation_split
from recommender.models import MODELS, make_model, model_class, model_summary
from recommender.models.base import Context, Recommender
from recommender.models.settings import Names, Settings, TowerSettings
from recommender.topk import top_k

__all__ = ["Blend", "BlendSettings", "WEIGHT_GRID", "zscore"]

# The weights a list member other than the first may take (the first weighs 1).
WEIGHT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
_MOST_USERS = 2_000  # held-out users the list weights are chosen on (bounds the memory)


class BlendSettings(Settings):
    """Settings of :class:`Blend` (members chosen on validation slices of train)."""

    rating_members: Names = Field(("bpmf", "multitask", "time-biases"), min_length=1,
                                  description="models whose predicted ratings are stacked")
    list_members: Names = Field(("dlae", "multitask"), min_length=1,
                                description="models whose z-scored scores are summed")
    validation: float = Field(0.1, gt=0, lt=1, description="share of each user's train "
                              "ratings held out to learn the weights on")
    ridge: float = Field(10.0, ge=0, description="L2 penalty of the stacking weights")

    @field_validator("rating_members", "list_members")
    @classmethod
    def _registered(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [n for n in names if n not in MODELS or n == Blend.name]
        if unknown:
            raise ValueError(f"not a registered model other than blend: {', '.join(unknown)}")
        if len(set(names)) < len(names):
            raise ValueError("a member is named twice")
        return names

    @field_validator("rating_members")
    @classmethod
    def _rates(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        silent = [n for n in names if not model_summary(n)[1]]
        if silent:
            raise ValueError(f"these models do not predict ratings: {', '.join(silent)}")
        return names


def zscore(scores: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Each row less its mean, over its standard deviation, both taken over the finite
    entries of the same row of ``reference`` (default: ``scores``; a blend standardises any
    movies by the statistics of the train catalogue); entries that are not finite (a movie a
    member cannot score) get the row's lowest standardised reference value less 1."""
    scores = np.asarray(scores, np.float64)
    reference = scores if reference is None else np.asarray(reference, np.float64)
    clean = np.where(np.isfinite(reference), reference, np.nan)
    mean = np.nanmean(clean, axis=1, keepdims=True)
    sd = np.nanstd(clean, axis=1, keepdims=True)
    sd = np.where(sd > 0, sd, 1.0)
    lowest = (np.nanmin(clean, axis=1, keepdims=True) - mean) / sd - 1.0
    z = (np.where(np.isfinite(scores), scores, 0.0) - mean) / sd
    return np.where(np.isfinite(scores), z, lowest).astype(np.float32)


def _ratings_table(data: Interactions) -> pd.DataFrame:
    """The train ratings as a raw-id table again, to fit the members on."""
    return pd.DataFrame({"userId": data.users.decode(data.user_index),
                         "movieId": data.items.decode(data.item_index),
                         "rating": data.rating, "timestamp": data.timestamp})


def _refits(name: str) -> bool:
    """Whether model ``name``, by default, early-stops on a holdout of its own and then
    retrains on all it was given for the epoch count chosen (``refit``)."""
    defaults = model_class(name).Settings()
    return bool(getattr(defaults, "refit", False) and getattr(defaults, "validation", 0))


def _carve_run(name: str) -> dict[str, bool]:
    """Settings for a member fitted on the carve: one that early-stops keeps its best
    epoch's weights instead of retraining on the whole carve (the blend refits after)."""
    return {"refit": False} if _refits(name) else {}


def _final_run(name: str, carved: Recommender) -> dict[str, float | int]:
    """Settings for a member's fit on all of train: one that early-stopped on the carve
    trains once for the epoch count it chose there, instead of carving a holdout of its
    own and early-stopping again (the one run its own refit would have made)."""
    return ({"validation": 0.0, "epochs": int(carved.meta["best_epoch"])} if _refits(name)
            else {})


class Blend(Recommender):
    """Stacks rating models and sums z-scored list models, weights learned on validation.

    The weights come from a validation slice carved from train; the members are then refitted
    on all of train (see the module docstring)."""

    name = "blend"
    Settings = BlendSettings
    predicts_ratings = True
    large_data = None  # its members fit twice; not measured at MovieLens-25M scale

    def __init__(self, seed: int = 0, **settings):
        super().__init__(seed, **settings)
        self.members: dict[str, Recommender] = {}
        # a blend folds in when every list member does (the class, unconfigured, does not)
        self.folds_in = all(model_class(n).folds_in for n in self.settings.list_members)
        # and reads the rating's date when a rating member does (it passes the dates on)
        self.uses_time = any(model_class(n).uses_time for n in self.settings.rating_members)

    def _names(self) -> list[str]:
        s = self.settings
        return list(dict.fromkeys(s.rating_members + s.list_members))

    # -- fitting ---------------------------------------------------------------------------

    def _fit(self, data: Interactions, context: Context) -> None:
        s = self.settings
        train = _ratings_table(data)
        fit, held = validation_split(train, s.validation, seed=self.seed)
        tags = context.tags
        inner = self._fit_members(fit, context.movies, known_tags(tags, fit, held),
                                  _carve_run)
        counts = (np.asarray(self.seen.sum(axis=1)).ravel(),
                  np.asarray(self.seen.sum(axis=0)).ravel())
        fit_seen = inner[s.list_members[0]].seen
        fit_counts = (np.asarray(fit_seen.sum(axis=1)).ravel(),
                      np.asarray(fit_seen.sum(axis=0)).ravel())
        self.coefficients, rating_validation = self._learn_stacking(inner, fit_counts, held)
        self.list_weights, list_validation = self._learn_list_weights(inner, held)
        self.members = self._fit_members(train, context.movies, tags,
                                         lambda name: _final_run(name, inner[name]))
        self.counts = counts
        self.meta.update(
            validation_rmse=rating_validation, validation_ndcg=list_validation,
            coefficients=self.coefficients.tolist(), list_weights=self.list_weights.tolist(),
            member_fit_seconds={n: inner[n].meta["fit_seconds"] + m.meta["fit_seconds"]
                                for n, m in self.members.items()},
            members=json.loads(json.dumps({n: {"settings": m.contents()[0],
                                               "meta": m.contents()[2]}
                                           for n, m in self.members.items()})))

    def _fit_members(self, train: pd.DataFrame, movies: pd.DataFrame | None,
                     tags: pd.DataFrame | None, settings: Callable[[str], dict]
                     ) -> dict[str, Recommender]:
        """Every member, made with ``settings(name)`` and the blend's seed, fitted on
        ``train``. Members outside the shared training loop (``bpmf``, ``dlae``: NumPy with
        generators of their own) fit in a second thread beside those on it, which seed
        TensorFlow's global state and so fit one at a time in this one: the same models as
        one after another, in about the time of the longer of the two queues on 2 cores."""
        def fit(name: str) -> Recommender:
            return make_model(name, seed=self.seed, **settings(name)).fit(
                train, movies=movies, tags=tags)

        names = self._names()
        beside = [n for n in names if not issubclass(model_class(n).Settings, TowerSettings)]
        # BLAS and OpenMP on one thread while TensorFlow's pool takes the cores: the same
        # models, and on u20 on 2 cores 12% less wall time and 17% less CPU than unbounded
        with threadpool_limits(limits=1), \
                ThreadPoolExecutor(1, thread_name_prefix="blend-member") as pool:
            futures = {name: pool.submit(fit, name) for name in beside}
            fitted = {name: fit(name) for name in names if name not in futures}
            fitted.update({name: future.result() for name, future in futures.items()})
        return {name: fitted[name] for name in names}

    def _features(self, predictions: list[np.ndarray], user_index: np.ndarray,
                  item_index: np.ndarray, counts: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """``[1, r_m..., log(1 + n_u), log(1 + n_i)]`` per pair (count 0 when unseen)."""
        n_u = np.where(user_index >= 0, counts[0][np.maximum(user_index, 0)], 0)
        n_i = np.where(item_index >= 0, counts[1][np.maximum(item_index, 0)], 0)
        return np.column_stack([np.ones(len(user_index)), *predictions, np.log1p(n_u),
                                np.log1p(n_i)])

    def _learn_stacking(self, inner: dict[str, Recommender],
                        counts: tuple[np.ndarray, np.ndarray], held: pd.DataFrame
                        ) -> tuple[np.ndarray, dict[str, float]]:
        """Ridge weights of the stacking and the validation RMSE of each member and of it."""
        users, movies = held["userId"].to_numpy(), held["movieId"].to_numpy()
        times, target = held["timestamp"].to_numpy(), held["rating"].to_numpy(np.float64)
        some = inner[self.settings.rating_members[0]]
        predictions = [inner[n].predict(users, movies, times).astype(np.float64)
                       for n in self.settings.rating_members]
        x = self._features(predictions, some.users.encode(users, unknown="missing"),
                           some.items.encode(movies, unknown="missing"), counts)
        penalty = self.settings.ridge * np.eye(x.shape[1])
        penalty[0, 0] = 0.0
        coefficients = np.linalg.solve(x.T @ x + penalty, x.T @ target)
        stacked = np.clip(x @ coefficients, *self.rating_scale)
        report = {n: metrics.rmse(target, p)
                  for n, p in zip(self.settings.rating_members, predictions)}
        return coefficients, {**report, self.name: metrics.rmse(target, stacked)}

    def _learn_list_weights(self, inner: dict[str, Recommender], held: pd.DataFrame
                            ) -> tuple[np.ndarray, dict[str, float]]:
        """List weights by NDCG@10 of the held-out liked movies, and each member's NDCG."""
        names = self.settings.list_members
        first = inner[names[0]]
        liked = held[held["rating"] >= metrics.RELEVANT_RATING]
        u = first.users.encode(liked["userId"].to_numpy(), unknown="missing")
        i = first.items.encode(liked["movieId"].to_numpy(), unknown="missing")
        known = (u >= 0) & (i >= 0)
        users = np.unique(u[known])[:_MOST_USERS]
        keep = known & np.isin(u, users)
        relevant = sp.csr_matrix((np.ones(keep.sum()), (np.searchsorted(users, u[keep]),
                                                        i[keep])),
                                 shape=(len(users), first.n_items))
        relevant.sum_duplicates()
        z = [zscore(inner[n].score(users)) for n in names]
        exclude = first.seen[users]

        def ndcg(weights: np.ndarray) -> float:
            scores = sum(w * part for w, part in zip(weights, z))
            listed = top_k(lambda rows: scores[rows], np.arange(len(users)), 10,
                           first.n_items, exclude)
            return float(np.mean(metrics.ranking_metrics(listed, relevant)["ndcg"]))

        weights = np.zeros(len(names))
        weights[0] = 1.0
        for _ in range(2):
            for m in range(1, len(names)):
                best = max(WEIGHT_GRID, key=lambda w: (ndcg(np.r_[weights[:m], w,
                                                                    weights[m + 1:]]), -w))
                weights[m] = best
        report = {n: ndcg(np.eye(len(names))[k]) for k, n in enumerate(names)}
        return weights, {**report, self.name: ndcg(weights)}

    # -- answers ---------------------------------------------------------------------------

    def _predict(self, user_index: np.ndarray, item_index: np.ndarray,
                 times: np.ndarray | None = None) -> np.ndarray:
        users = np.where(user_index >= 0, self.users.ids[np.maximum(user_index, 0)], -1)
        movies = np.where(item_index >= 0, self.items.ids[np.maximum(item_index, 0)], -1)
        predictions = [self.members[n].predict(users, movies, times).astype(np.float64)
                       for n in self.settings.rating_members]
        return self._features(predictions, user_index, item_index, self.counts
                              ) @ self.coefficients

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        return sum(w * zscore(self.members[n].score(user_index))
                   for w, n in zip(self.list_weights, self.settings.list_members))

    def _score_history(self, ratings: sp.csr_matrix, movie_ids: np.ndarray,
                       user_ids: np.ndarray) -> np.ndarray:
        """Each member's scores over ``movie_ids`` (movies outside train included, for
        members that score them from content), standardised by its scores over the train
        catalogue."""
        total = np.zeros((ratings.shape[0], len(movie_ids)), np.float32)
        for weight, name in zip(self.list_weights, self.settings.list_members):
            member = self.members[name]
            catalogue = member.score_history(ratings, user_ids=user_ids)
            wanted = (catalogue if movie_ids is self.items.ids
                      else member.score_history(ratings, movie_ids, user_ids))
            total += weight * zscore(wanted, catalogue)
        return total

    # -- persistence -----------------------------------------------------------------------

    def _state(self) -> dict[str, np.ndarray]:
        arrays = {"coefficients": self.coefficients, "list_weights": self.list_weights,
                  "user_counts": self.counts[0], "item_counts": self.counts[1]}
        for name, member in self.members.items():
            arrays.update({f"{name}/{key}": value
                           for key, value in member.contents()[1].items()})
        return arrays

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.coefficients, self.list_weights = arrays["coefficients"], arrays["list_weights"]
        self.counts = (arrays["user_counts"], arrays["item_counts"])
        self.members = {}
        for name, saved in self.meta["members"].items():
            prefix = f"{name}/"
            own = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
            self.members[name] = model_class(name).from_artifact(saved["settings"], own,
                                                                 saved["meta"])
