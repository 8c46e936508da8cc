"""The base of every model trained through the shared loop (TensorFlow).

:class:`TowerModel` owns what those models have in common: the training settings, the
validation holdout carved from train, early stopping on it, the refit on all of train for
the best epoch count, what the fit records, and saving and restoring the variables. A model
adds its variables (:meth:`TowerModel._build`) and one training run
(:meth:`TowerModel._train`); the rest are hooks with defaults.

The fit, in order: :meth:`~TowerModel._prepare` (side tables, features), the whole training
data (:meth:`~TowerModel._whole`, a users x movies ratings matrix by default), the holdout
(:meth:`~TowerModel._holdout`, a per-user slice by default), a run on the rest early-stopped
on the holdout, with ``refit`` a second run on everything for the best epoch count, then
:meth:`~TowerModel._finish` (what scoring needs). Nothing here changes a setting.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
import tensorflow as tf

from recommender import metrics, topk
from recommender.data.preprocessing import Interactions
from recommender.data.splits import validation_split
from recommender.models.base import Context, Recommender
from recommender.models.settings import TowerSettings
from recommender.models.training import History, TrainConfig, fit_loop, strategy

__all__ = ["TowerModel", "TowerSettings", "holdout_matrix", "liked_rows", "ndcg_validation",
           "named_variables", "ratings_table", "validation_users", "VALIDATION_USERS"]


class TowerModel(Recommender):
    """A model trained through the shared loop; see the module docstring for the fit."""

    Settings: ClassVar[type[TowerSettings]] = TowerSettings
    # What the validation callback measures, and whether higher is better.
    validation_metric: ClassVar[str] = "loss"
    maximise: ClassVar[bool] = False

    def __init__(self, seed: int = 0, **settings: Any):
        super().__init__(seed, **settings)
        self.history: list[History] = []
        self.module: tf.Module | None = None

    # -- the fit ---------------------------------------------------------------------------

    def _fit(self, data: Interactions, context: Context,
             on_epoch: Callable[[int], None] | None = None) -> None:
        """See the module docstring; ``on_epoch(epoch)`` is called after every epoch of every
        run, with :attr:`module` holding that epoch's weights (it only observes: what it
        measures never selects weights or epochs, so it may look at a test set)."""
        self._prepare(data, context)
        whole = self._whole(data)
        part, held = self._holdout(whole)
        module, first = self._train(part, held, self.settings.epochs, on_epoch)
        self.history = [first]
        refit = self.settings.refit and held is not None
        if refit:
            module, last = self._train(whole, None, first.best_epoch, on_epoch)
            self.history.append(last)
        self.module = module
        seconds = first.frame()["train_seconds"].to_numpy()  # the first epoch also compiles
        self.meta.update(best_epoch=first.best_epoch, epochs_run=len(first.rows), refit=refit,
                         validation_metric=self.validation_metric,
                         validation=first.best_value,
                         epoch_seconds=float(np.median(seconds[1:] if len(seconds) > 1
                                                       else seconds)),
                         throughput=self.history[-1].throughput)
        self._finish(whole)

    def _prepare(self, data: Interactions, context: Context) -> None:
        """Read side tables and build features before training (nothing by default)."""

    def _whole(self, data: Interactions) -> Any:
        """All the training data in the form :meth:`_train` takes (a ratings matrix)."""
        return data.matrix("rating")

    def _holdout(self, whole: Any) -> tuple[Any, Any | None]:
        """``(what to train on, what to validate on)``: a per-user slice of the ratings
        (``validation`` of each user's ratings, from a ratings matrix or from an encoded
        ``userId, movieId, rating`` table), or ``(whole, None)`` without validation."""
        if not self.settings.validation:
            return whole, None
        if isinstance(whole, pd.DataFrame):
            return validation_split(whole, self.settings.validation, self.seed)
        return holdout_matrix(whole, self.settings.validation, self.seed)

    def _train(self, part: Any, held: Any | None, epochs: int,
               on_epoch: Callable[[int], None] | None) -> tuple[tf.Module, History]:
        """Fresh variables (:meth:`_fresh`) trained on ``part`` for at most ``epochs``,
        early-stopped on ``held`` when given, through :meth:`_loop` (which takes
        ``on_epoch``)."""
        raise NotImplementedError

    def _finish(self, whole: Any) -> None:
        """Keep what scoring needs once :attr:`module` holds the trained variables."""

    def _build(self) -> tf.Module:
        """A fresh module of the model's variables (seeded), under the strategy's scope."""
        raise NotImplementedError

    def _fresh(self) -> tf.Module:
        """:meth:`_build` under the strategy's scope, set as :attr:`module` (the variables
        being trained are the ones an ``on_epoch`` callback sees)."""
        with strategy().scope():
            self.module = self._build()
        return self.module

    def _loop(self, module: tf.Module, loss_fn: Callable, examples: dict[str, np.ndarray],
              epochs: int, validate: Callable[[], float] | None = None,
              batch_fn: Callable | None = None, label: str | None = None,
              on_epoch: Callable[[int], None] | None = None, **config: Any) -> History:
        """:func:`~recommender.models.training.fit_loop` with this model's training settings
        (``config`` overrides fields of :class:`TrainConfig`, e.g. ``jit_compile``)."""
        s = self.settings
        loop = TrainConfig(epochs=epochs, batch_size=s.batch_size,
                           learning_rate=s.learning_rate, patience=s.patience, seed=self.seed,
                           progress=s.progress, sample=s.epoch_fraction, **config)
        return fit_loop(module, loss_fn, examples, loop, validate=validate, batch_fn=batch_fn,
                        description=label or self.name, maximise=self.maximise,
                        on_epoch=on_epoch)

    # -- persistence -----------------------------------------------------------------------

    def _state(self) -> dict[str, np.ndarray]:
        variables = {k: v.numpy() for k, v in named_variables(self.module).items()}
        return {**variables, **self._arrays()}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self._restore(arrays)
        for name, variable in named_variables(self._fresh()).items():
            variable.assign(arrays[name])

    def _arrays(self) -> dict[str, np.ndarray]:
        """Arrays besides the variables that scoring needs (saved with the artifact)."""
        return {}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Set what :meth:`_arrays` saved, before :meth:`_build` makes the variables."""


def named_variables(module: tf.Module) -> dict[str, tf.Variable]:
    """Every trainable variable of ``module`` under its name (``name:0`` without ``:0``).

    Raises:
        ValueError: two variables share a name (they could not be saved apart).
    """
    named: dict[str, tf.Variable] = {}
    for variable in module.trainable_variables:
        key = variable.name.split(":")[0]
        if key in named:
            raise ValueError(f"two variables are named {key!r}; name every variable apart")
        named[key] = variable
    return named


def ratings_table(data: Interactions, target: np.ndarray | None = None) -> pd.DataFrame:
    """The encoded ratings as a ``userId, movieId, rating`` table of indices, with ``target``
    in place of the ratings when given: the whole data of a model trained on rating triples
    (:meth:`TowerModel._holdout` splits it per user)."""
    return pd.DataFrame({"userId": data.user_index, "movieId": data.item_index,
                         "rating": data.rating if target is None else target})


def holdout_matrix(ratings: sp.csr_matrix, fraction: float,
                   seed: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Split a users x items ratings matrix with :func:`recommender.data.splits.validation_split`
    into the part trained on and the per-user validation slice."""
    coo = ratings.tocoo()
    frame = pd.DataFrame({"userId": coo.row, "movieId": coo.col, "rating": coo.data})

    def matrix(part: pd.DataFrame) -> sp.csr_matrix:
        return sp.csr_matrix((part["rating"], (part["userId"], part["movieId"])),
                             shape=ratings.shape)

    return tuple(map(matrix, validation_split(frame, fraction, seed)))


VALIDATION_USERS = 10_000  # most users an epoch's validation ranks (a seeded sample past it)


def validation_users(users: np.ndarray, seed: int) -> np.ndarray:
    """``users`` (sorted), or a seeded sample of :data:`VALIDATION_USERS` of them: ranking
    every validation user of MovieLens 25M after every epoch would cost more than the epoch."""
    if len(users) <= VALIDATION_USERS:
        return users
    return np.sort(np.random.default_rng(seed).choice(users, VALIDATION_USERS, replace=False))


def liked_rows(validation: sp.csr_matrix, seed: int = 0) -> tuple[np.ndarray, sp.csr_matrix]:
    """Users with a held-out movie rated >= 4 (at most :data:`VALIDATION_USERS`, see
    :func:`validation_users`), and their binary relevance rows."""
    liked = validation.multiply(validation >= metrics.RELEVANT_RATING).tocsr()
    liked.eliminate_zeros()
    users = validation_users(np.flatnonzero(np.diff(liked.indptr) > 0), seed)
    relevant = liked[users]
    relevant.data[:] = 1.0
    return users, relevant


def ndcg_validation(score: Callable[[np.ndarray], np.ndarray], history: sp.csr_matrix,
                    held: sp.csr_matrix, seed: int = 0) -> Callable[[], float]:
    """A validation callback: mean NDCG@10 of the held-out liked movies, ranked by
    ``score(user indices)`` among the movies each user has not in ``history``."""
    users, relevant = liked_rows(held, seed)

    def validate() -> float:
        recommended = topk.top_k(score, users, 10, history.shape[1], exclude=history)
        return float(np.mean(metrics.ranking_metrics(recommended, relevant)["ndcg"]))

    return validate
