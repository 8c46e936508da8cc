"""Cinematch (origin 003): matrix factorisation as a rating regression and a like/dislike
classifier.

Both models share one factorisation of the users x movies matrix::

    output(u, i) = offset + b_u + b_i + <p_u, q_i> [+ mlp([p_u, q_i])],  q_i = x_i [+ f_i W]

with optional movie features ``f_i`` (genres, year, tags) projected into the movie factor and
an optional MLP head. :class:`Regression` reads the output as a rating (squared error);
:class:`Classification` as the logit of P(like) (weighted cross-entropy). The objective is
the mean loss over the observed ratings plus
``(l2_factor (|P|^2 + |X|^2 + |W|^2 + |kernels|^2) + l2_bias (|b_u|^2 + |b_i|^2)) / n``,
each user and movie row weighted by its rating count ** ``reg_exponent``: the origin
system's ``1/2 sum R (pred - Y)^2 + lambda/2 |params|^2`` divided by ``n/2`` when the
exponent is 0.

Two data paths optimise that one objective: ``sparse`` minibatches of ``(user, movie,
target)`` triples, which scale, and ``dense``, the origin system's movies x users matrix
``Y`` with its mask ``R`` in one full batch (small data only). ``penalty`` is how the L2
term enters a step: on the whole tables (dense gradients, which Adam needs) or as an unbiased
estimate on the batch's rows (sparse gradients: with SGD a step costs O(batch), not
O(users + movies)). Settings and measurements: ``docs/models/regression.md``.
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np
import pandas as pd
import tensorflow as tf
from pydantic import Field, model_validator

from recommender import metrics
from recommender.core.errors import DataError
from recommender.data.preprocessing import Interactions, movie_features
from recommender.models.base import Context
from recommender.models.neural import dense_layers, mlp, variable
from recommender.models.settings import Sizes, TowerSettings
from recommender.models.tower import TowerModel, ratings_table
from recommender.models.training import History

__all__ = ["Regression", "HybridRegression", "Classification", "RegressionSettings",
           "HybridRegressionSettings", "ClassificationSettings"]

_PAIR_CELLS = 2**18  # user x movie pairs scored at once when an MLP head is present


class RegressionSettings(TowerSettings):
    """Settings of :class:`Regression` (tuned on a validation slice of train)."""

    dim: int = Field(128, ge=1, description="factor dimension of p_u and q_i")
    l2_factor: float = Field(1.2, ge=0, description="L2 weight of the factors, the feature "
                             "projection and the MLP kernels")
    l2_bias: float = Field(0.3, ge=0, description="L2 weight of the user and movie biases")
    reg_exponent: float = Field(0.5, ge=0, description="a row's L2 weight is its rating count "
                                "to this power (0: uniform, as the origin system)")
    init_std: float = Field(0.05, ge=0, description="standard deviation of the initial factors")
    features: bool = Field(False, description="project movie features (genres, year, tags) "
                           "into q_i; needs the movies table")
    hidden: Sizes = Field((), description="ReLU layer sizes of an MLP head over [p_u, q_i] "
                          "(empty: none)")
    data_path: Literal["sparse", "dense"] = Field("sparse", description="minibatches of "
                                                  "rating triples, or the dense Y/R matrices "
                                                  "in one full batch")
    penalty: Literal["table", "batch"] = Field("table", description="L2 on the whole tables "
                                               "every step, or estimated on the batch's rows")
    optimizer: Literal["adam", "adagrad", "sgd"] = Field("adam", description="the optimiser")
    epochs: int = Field(60, ge=1, description="most epochs; early stopping picks the count")
    learning_rate: float = Field(0.003, gt=0, description="the optimiser's step size")
    patience: int = Field(4, ge=1, description="epochs without a lower validation loss "
                          "before stopping")

    @model_validator(mode="after")
    def _dense_path_is_plain(self) -> "RegressionSettings":
        if self.data_path == "dense" and self.penalty == "batch":
            raise ValueError("the dense path trains on one full batch; use penalty='table' "
                             "with it")
        if self.data_path == "dense" and self.hidden:
            raise ValueError("the dense path is the origin system's plain factorisation; use "
                             "data_path='sparse' with an MLP head (hidden=...)")
        return self


class HybridRegressionSettings(RegressionSettings):
    """Settings of :class:`HybridRegression`: movie features and an MLP head on."""

    features: bool = Field(True, description="project movie features (genres, year, tags) "
                           "into q_i; needs the movies table")
    hidden: Sizes = Field((64,), description="ReLU layer sizes of an MLP head over [p_u, q_i] "
                          "(empty: none)")


class ClassificationSettings(RegressionSettings):
    """Settings of :class:`Classification`."""

    threshold: float = Field(metrics.RELEVANT_RATING, description="a rating at or above it "
                             "is a like")
    balance: bool = Field(True, description="weight likes by dislikes / likes of train so "
                          "both classes weigh the same")


class _Factors(tf.Module):
    """The variables and forward pass of the factorisation (numpy-seeded, so reproducible)."""

    def __init__(self, n_users: int, n_items: int, s: RegressionSettings, offset: float,
                 features: np.ndarray | None, rng: np.random.Generator):
        super().__init__(name="factors")
        self.offset = float(offset)
        self.user_bias = tf.Variable(tf.zeros([n_users]), name="user_bias")
        self.item_bias = tf.Variable(tf.zeros([n_items]), name="item_bias")
        self.user_factors = variable(rng, (n_users, s.dim), s.init_std, "user_factors")
        self.item_factors = variable(rng, (n_items, s.dim), s.init_std, "item_factors")
        self.features = None if features is None else tf.constant(features, tf.float32)
        self.projection = (None if features is None
                           else variable(rng, (features.shape[1], s.dim), s.init_std,
                                         "projection"))
        self.head = dense_layers(rng, [2 * s.dim, *s.hidden, 1], "head") if s.hidden else []

    def item_vectors(self, items: tf.Tensor | None = None) -> tf.Tensor:
        """``q_i`` for the given movie indices (all movies when ``None``)."""
        gather = (lambda t: t) if items is None else (lambda t: tf.gather(t, items))
        q = gather(self.item_factors)
        if self.projection is not None:
            q += gather(self.features) @ self.projection
        return q

    def rows(self, users, items) -> dict[str, tf.Tensor]:
        """The table rows of index pairs ``(users[k], items[k])``, gathered once: a step that
        reads them for both the output and the batch penalty then has one sparse gradient
        per table, not two (half the scatter work of an SGD update)."""
        return {"users": users, "items": items, "p": tf.gather(self.user_factors, users),
                "x": tf.gather(self.item_factors, items),
                "bu": tf.gather(self.user_bias, users), "bi": tf.gather(self.item_bias, items)}

    def output(self, rows: dict[str, tf.Tensor]) -> tf.Tensor:
        """Outputs from gathered :meth:`rows`."""
        p, q = rows["p"], rows["x"]
        if self.projection is not None:
            q += tf.gather(self.features, rows["items"]) @ self.projection
        out = self.offset + rows["bu"] + rows["bi"] + tf.reduce_sum(p * q, axis=1)
        return out + mlp(tf.concat([p, q], axis=1), self.head)[..., 0] if self.head else out

    def __call__(self, users, items) -> tf.Tensor:
        """Outputs for index pairs ``(users[k], items[k])`` (all indices valid)."""
        return self.output(self.rows(users, items))

    def matrix(self) -> tf.Tensor:
        """Outputs ``(all users, all movies)``; no MLP head."""
        return (self.offset + self.user_bias[:, None] + self.item_bias[None, :]
                + tf.matmul(self.user_factors, self.item_vectors(), transpose_b=True))

    def regularisation(self, l2_factor: float, l2_bias: float, user_weight: np.ndarray,
                       item_weight: np.ndarray) -> tf.Tensor:
        """The whole unnormalised L2 penalty, user and movie rows weighted per row.

        Taken on the whole tables (not gathered rows) so that gradients are dense: Keras's Adam
        squares gathered (IndexedSlices) gradients slice by slice, which is not Adam.
        """
        def rows(weight: np.ndarray, factors: tf.Variable, bias: tf.Variable) -> tf.Tensor:
            return tf.reduce_sum(weight * (l2_factor * tf.reduce_sum(tf.square(factors), 1)
                                           + l2_bias * tf.square(bias)))

        return (rows(user_weight, self.user_factors, self.user_bias)
                + rows(item_weight, self.item_factors, self.item_bias)
                + self.shared_penalty(l2_factor))

    @staticmethod
    def batch_regularisation(rows: dict[str, tf.Tensor], l2_factor: float, l2_bias: float,
                             user_weight: tf.Tensor, item_weight: tf.Tensor) -> tf.Tensor:
        """An unbiased minibatch estimate of :meth:`regularisation`, on the batch's gathered
        :meth:`rows` only.

        Each occurrence of a row carries ``weight / count``, so over an epoch every row is
        penalised by its full weight, as in the table penalty; gradients stay sparse
        (IndexedSlices), so SGD updates only the rows in the batch.
        """
        def penalty(weight, factors, bias) -> tf.Tensor:
            return weight * (l2_factor * tf.reduce_sum(tf.square(factors), 1)
                             + l2_bias * tf.square(bias))

        return tf.reduce_mean(
            penalty(tf.gather(user_weight, rows["users"]), rows["p"], rows["bu"])
            + penalty(tf.gather(item_weight, rows["items"]), rows["x"], rows["bi"]))

    def shared_penalty(self, l2_factor: float) -> tf.Tensor:
        """L2 of the weights every pair shares (MLP kernels, feature projection)."""
        shared = [k for k, _ in self.head] + ([self.projection] if self.projection is not None
                                               else [])
        return l2_factor * tf.add_n([tf.reduce_sum(tf.square(w)) for w in shared] + [0.0])


def _columns(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """User indices, movie indices (int32) and targets (float32) of an encoded table."""
    return (table["userId"].to_numpy(np.int32), table["movieId"].to_numpy(np.int32),
            table["rating"].to_numpy(np.float32))


class _Factorization(TowerModel):
    """Shared training, answers and persistence; subclasses define target, loss and offset."""

    Settings = RegressionSettings

    def __init__(self, seed: int = 0, **settings):
        super().__init__(seed, **settings)
        self.features: np.ndarray | None = None
        self.offset = 0.0
        self._tables: tuple[np.ndarray, np.ndarray] | None = None

    # -- what the two models define --------------------------------------------------------

    def _target(self, rating: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _offset(self, target: np.ndarray) -> float:
        """The output offset for these training targets (classification also sets its class
        weight here)."""
        raise NotImplementedError

    def _loss(self, output: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        """Per-example loss (elementwise)."""
        raise NotImplementedError

    # -- training --------------------------------------------------------------------------

    def _prepare(self, data: Interactions, context: Context) -> None:
        self.features = None
        if self.settings.features:
            if context.movies is None:
                raise DataError(f"{self.name}: features=True needs the movies table: "
                                "fit(train, movies=...), or --movies on the command line "
                                "(tags are optional)")
            self.features = movie_features(context.movies, data.items, context.tags).toarray()

    def _whole(self, data: Interactions) -> pd.DataFrame:
        """The encoded ratings table with the model's target in ``rating``."""
        return ratings_table(data, self._target(data.rating))

    def _build(self) -> _Factors:
        return _Factors(self.n_users, self.n_items, self.settings, self.offset,
                        self.features, np.random.default_rng(self.seed))

    def _train(self, part: pd.DataFrame, held: pd.DataFrame | None, epochs: int,
               on_epoch=None) -> tuple[_Factors, History]:
        s = self.settings
        u, i, t = _columns(part)
        self.offset = self._offset(t)
        module = self._fresh()
        self._tables = None  # scores read the variables being trained
        counts = (np.bincount(u, minlength=self.n_users),
                  np.bincount(i, minlength=self.n_items))
        weights = [np.maximum(c, 1).astype(np.float32) ** s.reg_exponent for c in counts]
        if s.penalty == "batch":
            per_row = [tf.constant(w / np.maximum(c, 1), tf.float32)
                       for w, c in zip(weights, counts)]
            penalty = lambda rows: (  # noqa: E731
                module.batch_regularisation(rows, s.l2_factor, s.l2_bias, *per_row)
                + module.shared_penalty(s.l2_factor) / len(t))
        else:
            penalty = lambda rows: module.regularisation(  # noqa: E731
                s.l2_factor, s.l2_bias, *weights) / len(t)
        if s.data_path == "dense":
            loss_fn, examples = self._dense_loss(module, u, i, t, penalty)
        else:
            examples = {"user": u, "item": i, "target": t}

            def loss_fn(batch: dict) -> tuple[tf.Tensor, tf.Tensor]:
                rows = module.rows(batch["user"], batch["item"])
                return self._loss(module.output(rows), batch["target"]), penalty(rows)

        validate = None
        if held is not None:
            vu, vi, vt = (tf.constant(a) for a in _columns(held))
            validate = lambda: float(tf.reduce_mean(self._loss(module(vu, vi), vt)))  # noqa: E731
        history = self._loop(module, loss_fn, examples, epochs, validate=validate,
                             on_epoch=on_epoch, optimizer=s.optimizer)
        return module, history

    def _dense_loss(self, module: _Factors, u: np.ndarray, i: np.ndarray, t: np.ndarray,
                    penalty: Callable[[dict | None], tf.Tensor]):
        """The origin system's loss over the movies x users matrix ``Y`` and mask ``R``: one
        full batch (the loop sees a single dummy example whose loss is the masked mean)."""
        Y = np.zeros((self.n_items, self.n_users), np.float32)
        R = np.zeros_like(Y)
        Y[i, u], R[i, u] = t, 1.0
        Y, R, n = tf.constant(Y), tf.constant(R), float(len(t))

        def loss_fn(batch: dict) -> tuple[tf.Tensor, tf.Tensor]:
            cells = self._loss(tf.transpose(module.matrix()), Y)
            return tf.reshape(tf.reduce_sum(R * cells) / n, [1]), penalty(None)

        return loss_fn, {"example": np.zeros(1, np.float32)}

    def _finish(self, whole: pd.DataFrame) -> None:
        self._tables = self._factor_tables()

    # -- answers ---------------------------------------------------------------------------

    def _output(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        """Raw outputs for index pairs; ``-1`` (unseen) falls back to offset + known biases."""
        m = self.module
        known_u, known_i = user_index >= 0, item_index >= 0
        u, i = np.maximum(user_index, 0), np.maximum(item_index, 0)
        out = m(u, i).numpy()
        fallback = (m.offset + np.where(known_u, m.user_bias.numpy()[u], 0.0)
                    + np.where(known_i, m.item_bias.numpy()[i], 0.0))
        return np.where(known_u & known_i, out, fallback).astype(np.float32)

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        factors = self._score_factors(user_index)
        if factors is not None:
            return factors[0] @ factors[1]
        step = max(1, _PAIR_CELLS // self.n_items)
        items = np.arange(self.n_items)
        return np.concatenate([
            self._output(np.repeat(chunk, self.n_items), np.tile(items, len(chunk)))
            .reshape(len(chunk), self.n_items)
            for chunk in np.array_split(user_index, max(1, -(-len(user_index) // step)))])

    def _score_factors(self, user_index: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``[p_u, 1, offset + b_u]`` per user and ``[q_i; b_i; 1]`` per movie, so that one
        matrix product gives every output of a batch (no pass to add biases, no TensorFlow
        call per batch); ``None`` with an MLP head. Built once the model is fitted; while it
        trains, from the current variables at every call."""
        tables = self._tables if self._tables is not None else self._factor_tables()
        return None if tables is None else (tables[0][user_index], tables[1])

    def _factor_tables(self) -> tuple[np.ndarray, np.ndarray] | None:
        m = self.module
        if m.head:
            return None
        users = np.hstack([m.user_factors.numpy(), np.ones((self.n_users, 1), np.float32),
                           (m.offset + m.user_bias.numpy())[:, None]])
        items = np.vstack([m.item_vectors().numpy().T, m.item_bias.numpy()[None],
                           np.ones((1, self.n_items), np.float32)])
        return users.astype(np.float32), np.ascontiguousarray(items, np.float32)

    def item_vectors(self) -> np.ndarray:
        """The movie factors ``q_i`` (features projected in when used), ``(n_items, dim)``."""
        self._check_fitted()
        return self.module.item_vectors().numpy()

    # -- persistence -----------------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"offset": np.float32(self.offset)}
        if self.features is not None:
            arrays["features"] = np.asarray(self.features, np.float32)
        return arrays

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.offset, self.features = float(arrays["offset"]), arrays.get("features")

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(arrays)
        self._tables = self._factor_tables()


class Regression(_Factorization):
    """Biased matrix factorisation predicting ratings (0.5-5): Cinematch's regression model.

    ``mu + b_u + b_i + <p_u, q_i>`` trained on squared error plus L2 (see the module
    docstring).
    """

    name = "regression"
    Settings = RegressionSettings
    predicts_ratings = True
    validation_metric = "mse"
    # SGD with the batch penalty touches only the batch's rows (Adam updates both whole
    # tables every step); 32 factors halve an epoch's and the top-K's cost at the same
    # validation RMSE (docs/models/regression.md). No refit: at 25M the early-stopped fit
    # runs its 60 epochs, and a refit would run them again.
    large_data = {"penalty": "batch", "optimizer": "sgd", "batch_size": 16_384,
                  "learning_rate": 30.0, "dim": 32, "refit": False}

    def _target(self, rating: np.ndarray) -> np.ndarray:
        return rating.astype(np.float32)

    def _offset(self, target: np.ndarray) -> float:
        return float(np.mean(target))

    def _loss(self, output: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        return tf.square(output - target)

    def _predict(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        return self._output(user_index, item_index)


class HybridRegression(Regression):
    """Regression with movie features projected into each movie's factor and an MLP head.

    Cinematch's options on: genre multi-hot, year and tag TF-IDF projected into ``q_i``, and
    an MLP over ``[p_u, q_i]`` added to the output. Needs the movies table (tags optional).
    """

    name = "regression-hybrid"
    Settings = HybridRegressionSettings
    large_data = None  # the MLP head scores every user-movie pair: 9.6e9 pairs at ml-25m


class Classification(_Factorization):
    """The same factorisation read as the logit of P(like): a like is a rating >= threshold.

    Trained on binary cross-entropy. With ``balance`` likes are weighted by dislikes / likes
    of train and the offset starts at the balanced logit 0, so both classes weigh the same:
    probabilities then estimate a balanced P(like), not the raw like rate. Top-N ranks by the
    logit.
    """

    name = "classification"
    Settings = ClassificationSettings
    validation_metric = "weighted cross-entropy"
    large_data = Regression.large_data  # the same fast path (learning rate not tuned there)

    def _target(self, rating: np.ndarray) -> np.ndarray:
        return (rating >= self.settings.threshold).astype(np.float32)

    def _offset(self, target: np.ndarray) -> float:
        positives, total = float(target.sum()), float(len(target))
        if not 0 < positives < total:
            raise DataError(f"{self.name}: train needs both liked and disliked ratings "
                            f"(threshold {self.settings.threshold})")
        self.pos_weight = (total - positives) / positives if self.settings.balance else 1.0
        return float(np.log(self.pos_weight * positives / (total - positives)))

    def _loss(self, output: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        return tf.nn.weighted_cross_entropy_with_logits(target, output, self.pos_weight)

    def extra_metrics(self, test: pd.DataFrame) -> dict[str, float]:
        """Accuracy, precision, recall, F1, ROC-AUC and log loss of P(like) on ``test``
        (:func:`recommender.metrics.classification_metrics`, a like predicted at 0.5)."""
        liked = test["rating"].to_numpy() >= self.settings.threshold
        prob = self.predict_proba(test["userId"].to_numpy(), test["movieId"].to_numpy())
        return metrics.classification_metrics(liked, prob)

    def predict_proba(self, users, movies) -> np.ndarray:
        """P(like) for raw ``(userId, movieId)`` pairs; unseen ids fall back to the biases."""
        self._check_fitted()
        u = self.users.encode(np.asarray(users), unknown="missing")
        i = self.items.encode(np.asarray(movies), unknown="missing")
        return (1.0 / (1.0 + np.exp(-self._output(u, i)))).astype(np.float32)
