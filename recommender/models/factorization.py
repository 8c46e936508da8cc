"""Seed 003 (Cinematch): matrix factorisation as a rating regression and a like/dislike classifier.

Both models share one factorisation of the users x movies matrix::

    output(u, i) = offset + b_u + b_i + <p_u, q_i> [+ mlp([p_u, q_i])],  q_i = x_i [+ f_i W]

with optional movie features ``f_i`` (genres, year, tags) projected into the item factor and
an optional MLP head. :class:`Regression` reads the output as a rating; :class:`Classification`
as the logit of P(like). Training goes through :func:`recommender.training.fit_loop` on one of
two data paths that optimise the same objective (so, with one full batch and the same seed,
they reach the same parameters):

- ``"dense"``: the seed's formulation, the movies x users matrix ``Y`` with its mask ``R`` and
  a full-batch loss over the matrix (small data only: the matrix is dense);
- ``"sparse"``: minibatches of ``(user, movie, target)`` triples, which scales to 25M ratings.

The objective is the mean loss over the observed ratings plus
``(l2_factor * (|P|^2 + |X|^2 + |W|^2 + |MLP kernels|^2) + l2_bias * (|b_u|^2 + |b_i|^2)) / n``,
which is the seed's ``1/2 sum R (pred - Y)^2 + lambda/2 |params|^2`` divided by ``n/2``; each
user and movie row is weighted by its rating count ** ``reg_exponent`` (0: the seed's uniform
L2, 1: per-rating L2 as in SGD-trained SVD; 0.5 was best on validation).

``penalty`` picks how the L2 term enters a step. ``"table"`` (default) takes it on the whole
tables, so gradients are dense, which Adam needs; each step then costs O(users + movies),
fine for ml-latest-small but most of an epoch on 25M ratings. ``"batch"`` takes an unbiased
estimate on the batch's rows only (same objective over an epoch); with ``optimizer="sgd"``
updates stay sparse and a step costs O(batch): about 5x faster per epoch with MovieLens-25M
sized tables (``benchmarks/speed.py``).

Early stopping watches the loss on a per-user validation slice carved from train; with
``refit`` the model is then retrained on all of train for the best number of epochs. Users
or movies unseen in train fall back to the offset plus whatever biases are known.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd
import tensorflow as tf

from recommender import metrics
from recommender.core.errors import DataError, SettingError
from recommender.models.base import Context, Recommender
from recommender.data.preprocessing import Interactions, movie_features, user_activity
from recommender.data.splits import validation_split
from recommender.models.training import History, TrainConfig, fit_loop, set_seed, strategy

__all__ = ["Regression", "HybridRegression", "Classification", "classification_report",
           "calibration", "error_buckets", "item_embedding_2d", "dense_vs_sparse",
           "positive_weight"]

_PAIR_CELLS = 2**18  # user x movie pairs scored at once when an MLP head is present


class _Factors(tf.Module):
    """The variables and forward pass of the factorisation (numpy-seeded, so reproducible)."""

    def __init__(self, n_users: int, n_items: int, dim: int, offset: float, init_std: float,
                 seed: int, features: np.ndarray | None = None, hidden: tuple[int, ...] = ()):
        super().__init__()
        rng = np.random.default_rng(seed)

        def normal(rows: int, cols: int, std: float = init_std) -> tf.Variable:
            return tf.Variable(rng.normal(0.0, std, (rows, cols)).astype(np.float32))

        self.offset = float(offset)
        self.user_bias = tf.Variable(tf.zeros([n_users]))
        self.item_bias = tf.Variable(tf.zeros([n_items]))
        self.user_factors = normal(n_users, dim)
        self.item_factors = normal(n_items, dim)
        self.features = None if features is None else tf.constant(features, tf.float32)
        self.projection = None if features is None else normal(features.shape[1], dim)
        sizes = [2 * dim, *hidden, 1] if hidden else []
        self.head = [(normal(a, b, np.sqrt(2.0 / (a + b))), tf.Variable(tf.zeros([b])))
                     for a, b in zip(sizes[:-1], sizes[1:])]  # Glorot-normal kernels

    def item_vectors(self, items: tf.Tensor | None = None) -> tf.Tensor:
        """``q_i`` for the given movie indices (all movies when ``None``)."""
        gather = (lambda t: t) if items is None else (lambda t: tf.gather(t, items))
        q = gather(self.item_factors)
        if self.projection is not None:
            q += gather(self.features) @ self.projection
        return q

    def _mlp(self, x: tf.Tensor) -> tf.Tensor:
        for layer, (kernel, bias) in enumerate(self.head):
            x = x @ kernel + bias
            x = tf.nn.relu(x) if layer < len(self.head) - 1 else x
        return x[..., 0]

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
        return out + self._mlp(tf.concat([p, q], axis=1)) if self.head else out

    def __call__(self, users, items) -> tf.Tensor:
        """Outputs for index pairs ``(users[k], items[k])`` (all indices valid)."""
        return self.output(self.rows(users, items))

    def matrix(self, users: np.ndarray | None = None) -> tf.Tensor:
        """Outputs ``(users, all movies)`` (all users when ``None``); no MLP head."""
        p = self.user_factors if users is None else tf.gather(self.user_factors, users)
        bu = self.user_bias if users is None else tf.gather(self.user_bias, users)
        return (self.offset + bu[:, None] + self.item_bias[None, :]
                + tf.matmul(p, self.item_vectors(), transpose_b=True))

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

    def named_variables(self) -> dict[str, tf.Variable]:
        """Every trainable variable under the name it is saved as."""
        named = {"user_bias": self.user_bias, "item_bias": self.item_bias,
                 "user_factors": self.user_factors, "item_factors": self.item_factors}
        if self.projection is not None:
            named["projection"] = self.projection
        for n, (kernel, bias) in enumerate(self.head):
            named.update({f"head{n}_kernel": kernel, f"head{n}_bias": bias})
        return named

    def state(self) -> dict[str, np.ndarray]:
        arrays = {k: v.numpy() for k, v in self.named_variables().items()}
        arrays["offset"] = np.float32(self.offset)
        if self.features is not None:
            arrays["features"] = self.features.numpy()
        return arrays

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray]) -> "_Factors":
        n_users, dim = arrays["user_factors"].shape
        layers = sum(k.endswith("_kernel") for k in arrays)
        hidden = tuple(arrays[f"head{n}_kernel"].shape[1] for n in range(layers - 1))
        module = cls(n_users, len(arrays["item_bias"]), dim, float(arrays["offset"]), 0.0, 0,
                     arrays.get("features"), hidden)
        for name, variable in module.named_variables().items():
            variable.assign(arrays[name])
        return module


def _columns(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """User indices, movie indices (int32) and targets (float32) of an encoded table."""
    return (table["userId"].to_numpy(np.int32), table["movieId"].to_numpy(np.int32),
            table["rating"].to_numpy(np.float32))


class _Factorization(Recommender):
    """Shared fitting, prediction and persistence; subclasses define target, loss and offset."""

    # Tuned on a per-user 10% validation slice of the u20 train split (seed 123), never test.
    defaults: dict[str, Any] = {
        "dim": 128, "l2_factor": 1.2, "l2_bias": 0.3, "reg_exponent": 0.5, "init_std": 0.05,
        "features": False, "hidden": (), "data_path": "sparse", "penalty": "table", "epochs": 60,
        "batch_size": 1024, "learning_rate": 0.003, "optimizer": "adam", "patience": 4,
        "validation": 0.1, "refit": True, "progress": False,
    }

    def __init__(self, seed: int = 0, **params: Any):
        super().__init__(seed, **params)
        if self.params["data_path"] not in ("sparse", "dense"):
            raise SettingError(f"{self.name}: data_path must be 'sparse' or 'dense', "
                             f"not {self.params['data_path']!r}")
        if self.params["penalty"] not in ("table", "batch"):
            raise SettingError(f"{self.name}: penalty must be 'table' or 'batch', "
                             f"not {self.params['penalty']!r}")
        if self.params["data_path"] == "dense" and self.params["penalty"] == "batch":
            raise SettingError(f"{self.name}: the dense path trains on one full batch; "
                             "use penalty='table' with it")
        if self.params["data_path"] == "dense" and self.params["hidden"]:
            raise SettingError(f"{self.name}: the dense path is the seed's plain factorisation; "
                             "use data_path='sparse' with an MLP head (hidden=...)")
        self.history: list[History] = []
        self._tables: tuple[np.ndarray, np.ndarray] | None = None

    # -- hooks of the two models -----------------------------------------------------------

    def _target(self, rating: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _offset(self, target: np.ndarray) -> float:
        """The output offset for these training targets (classification also sets its class
        weight here)."""
        raise NotImplementedError

    def _loss(self, output: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        """Per-example loss (elementwise)."""
        raise NotImplementedError

    # -- fitting ---------------------------------------------------------------------------

    def _fit(self, data: Interactions, context: Context) -> None:
        p = self.params
        table = pd.DataFrame({"userId": data.user_index, "movieId": data.item_index,
                              "rating": self._target(data.rating)})
        fit, held = (validation_split(table, p["validation"], self.seed) if p["validation"]
                     else (table, None))
        shape = (data.n_users, data.n_items)
        features = self._features(data, context)
        self.history = [self._train(shape, fit, held, features, p["epochs"])]
        best = self.history[0].best_epoch
        if p["refit"] and held is not None:
            self.history.append(self._train(shape, table, None, features, best))
        first = self.history[0]
        self.meta = {"best_epoch": best, "val_loss": first.best_value,
                     "epochs_run": len(first.rows), "refit": len(self.history) > 1,
                     "throughput": self.history[-1].throughput}

    def _features(self, data: Interactions, context: Context) -> np.ndarray | None:
        if not self.params["features"]:
            return None
        if context.movies is None:
            raise DataError(f"{self.name}: features=True needs the movies table: "
                             "fit(train, movies=...), or --movies on the command line "
                             "(tags are optional)")
        return movie_features(context.movies, data.items, context.tags).toarray()

    def _train(self, shape: tuple[int, int], fit: pd.DataFrame, held: pd.DataFrame | None,
               features: np.ndarray | None, epochs: int) -> History:
        """Build a fresh model, train it on ``fit`` and early-stop on ``held`` if given.

        Both tables hold user index, movie index and target as ``userId, movieId, rating``.
        """
        p = self.params
        set_seed(self.seed)
        u, i, t = _columns(fit)
        with strategy().scope():
            module = _Factors(*shape, p["dim"], self._offset(t), p["init_std"], self.seed,
                              features, tuple(p["hidden"]))
        counts = (np.bincount(u, minlength=shape[0]), np.bincount(i, minlength=shape[1]))
        weights = [np.maximum(c, 1).astype(np.float32) ** p["reg_exponent"] for c in counts]
        if p["penalty"] == "batch":
            per_row = [tf.constant(w / np.maximum(c, 1), tf.float32)
                       for w, c in zip(weights, counts)]
            penalty = lambda rows: (  # noqa: E731
                module.batch_regularisation(rows, p["l2_factor"], p["l2_bias"], *per_row)
                + module.shared_penalty(p["l2_factor"]) / len(t))
        else:
            penalty = lambda rows: module.regularisation(  # noqa: E731
                p["l2_factor"], p["l2_bias"], *weights) / len(t)
        if p["data_path"] == "dense":
            loss_fn, batches, batch_size = self._dense_loss(module, shape, u, i, t, penalty)
        else:
            batches = {"user": u, "item": i, "target": t}
            batch_size = p["batch_size"]

            def loss_fn(batch: dict) -> tuple[tf.Tensor, tf.Tensor]:
                rows = module.rows(batch["user"], batch["item"])
                return self._loss(module.output(rows), batch["target"]), penalty(rows)

        validate = None
        if held is not None:
            vu, vi, vt = (tf.constant(a) for a in _columns(held))
            validate = lambda: float(tf.reduce_mean(self._loss(module(vu, vi), vt)))  # noqa: E731
        config = TrainConfig(epochs=epochs, batch_size=batch_size,
                             learning_rate=p["learning_rate"], patience=p["patience"],
                             optimizer=p["optimizer"], seed=self.seed, progress=p["progress"])
        history = fit_loop(module, loss_fn, batches, config, validate=validate,
                           description=self.name)
        self._module, self._tables = module, None
        return history

    def _dense_loss(self, module: _Factors, shape: tuple[int, int], u: np.ndarray,
                    i: np.ndarray, t: np.ndarray, penalty: Callable[[dict | None], tf.Tensor]):
        """The seed's loss over the movies x users matrix ``Y`` and mask ``R`` (one full batch:
        the loop sees a single dummy example whose loss is the masked mean)."""
        Y = np.zeros(shape[::-1], np.float32)
        R = np.zeros_like(Y)
        Y[i, u], R[i, u] = t, 1.0
        Y, R, n = tf.constant(Y), tf.constant(R), float(len(t))

        def loss_fn(batch: dict) -> tuple[tf.Tensor, tf.Tensor]:
            cells = self._loss(tf.transpose(module.matrix()), Y)
            return tf.reshape(tf.reduce_sum(R * cells) / n, [1]), penalty(None)

        return loss_fn, {"example": np.zeros(1, np.float32)}, 1

    # -- answering -------------------------------------------------------------------------

    def _output(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        """Raw outputs for index pairs; ``-1`` (unseen) falls back to offset + known biases."""
        m = self._module
        known_u, known_i = user_index >= 0, item_index >= 0
        u, i = np.maximum(user_index, 0), np.maximum(item_index, 0)
        out = m(u, i).numpy()
        fallback = (m.offset + np.where(known_u, m.user_bias.numpy()[u], 0.0)
                    + np.where(known_i, m.item_bias.numpy()[i], 0.0))
        return np.where(known_u & known_i, out, fallback).astype(np.float32)

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        factors = self._score_factors()
        if factors is not None:
            return factors[0][user_index] @ factors[1]
        step = max(1, _PAIR_CELLS // self.n_items)
        items = np.arange(self.n_items)
        return np.concatenate([
            self._output(np.repeat(chunk, self.n_items), np.tile(items, len(chunk)))
            .reshape(len(chunk), self.n_items)
            for chunk in np.array_split(user_index, max(1, -(-len(user_index) // step)))])

    def _score_factors(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``[p_u, 1, offset + b_u]`` per user and ``[q_i; b_i; 1]`` per movie, built once,
        so that one matrix product gives every output of a batch (scoring all users of
        MovieLens 25M is that product: no pass over the batch to add biases, no TensorFlow
        call per batch); ``None`` with an MLP head."""
        if self._module.head:
            return None
        if self._tables is None:
            m = self._module
            users = np.hstack([m.user_factors.numpy(), np.ones((len(self.users), 1), np.float32),
                               (m.offset + m.user_bias.numpy())[:, None]])
            items = np.vstack([m.item_vectors().numpy().T, m.item_bias.numpy()[None],
                               np.ones((1, self.n_items), np.float32)])
            self._tables = (users.astype(np.float32), np.ascontiguousarray(items, np.float32))
        return self._tables

    def item_vectors(self) -> np.ndarray:
        """The movie factors ``q_i`` (features projected in when used), ``(n_items, dim)``."""
        self._check_fitted()
        return self._module.item_vectors().numpy()

    # -- persistence -----------------------------------------------------------------------

    def _state(self) -> dict[str, np.ndarray]:
        return self._module.state()

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        with strategy().scope():
            self._module = _Factors.from_state(arrays)
        self._tables = None


class Regression(_Factorization):
    """Biased matrix factorisation predicting ratings (0.5-5): seed 003's regression model.

    ``mu + b_u + b_i + <p_u, q_i>`` trained on squared error plus L2 (see the module
    docstring). Defaults were tuned on a per-user validation slice of the u20 train split.
    """

    name = "regression"
    predicts_ratings = True
    defaults = {**_Factorization.defaults}
    # SGD with the batch penalty touches only the batch's rows (Adam updates both whole
    # tables every step: 120 s per 25M-rating epoch). 32 factors: an epoch's gathers and
    # scatters and the top-K products cost about half of 64's; validation RMSE on 5M
    # synthetic ratings (25M-sized tables) was the same to 1e-4 over 10 epochs.
    large_data = {"penalty": "batch", "optimizer": "sgd", "batch_size": 16_384,
                  "learning_rate": 30.0, "dim": 32}

    def _target(self, rating: np.ndarray) -> np.ndarray:
        return rating.astype(np.float32)

    def _offset(self, target: np.ndarray) -> float:
        return float(np.mean(target))

    def _loss(self, output: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        return tf.square(output - target)

    def _predict(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        return self._output(user_index, item_index)


class HybridRegression(Regression):
    """:class:`Regression` with seed 003's options on: movie features (genre multi-hot,
    year, tag TF-IDF) projected into each movie's factor, and an MLP head over the
    concatenated user and movie vectors. Needs the movies table (tags optional).

    Picked on the per-user validation slice of the u20 train split (seed 0, test never
    seen): validation RMSE 0.8452 against 0.8586 for plain ``regression`` (features alone
    0.8514, head alone 0.8707; seeds 1 and 2: 0.8526 / 0.8528 against 0.8680 / 0.8680).
    Heads of 32 or 128 units, l2 2.0, batch 4,096 or other learning rates were no better.
    """

    name = "regression-hybrid"
    defaults = {**Regression.defaults, "features": True, "hidden": (64,)}
    large_data = None  # the MLP head scores every user-movie pair: 9.6e9 pairs at ml-25m


class Classification(_Factorization):
    """The same factorisation read as the logit of P(like), like = rating >= ``threshold``.

    Trained on binary cross-entropy. With ``balance=True`` positives are weighted by
    ``pos_weight = negatives / positives`` of train (and the offset starts at the balanced
    logit 0), so both classes weigh the same: probabilities then estimate a balanced
    P(like) and are not calibrated to the raw positive rate (see :func:`calibration`).
    Scores for top-N are the logits.
    """

    name = "classification"
    defaults = {**_Factorization.defaults, "threshold": metrics.RELEVANT_RATING,
                "balance": True}
    large_data = Regression.large_data  # the same fast path (learning rate not tuned there)

    def _target(self, rating: np.ndarray) -> np.ndarray:
        return (rating >= self.params["threshold"]).astype(np.float32)

    def _offset(self, target: np.ndarray) -> float:
        positives, total = float(target.sum()), float(len(target))
        if not 0 < positives < total:
            raise DataError(f"{self.name}: train needs both liked and disliked ratings "
                             f"(threshold {self.params['threshold']})")
        self.pos_weight = (total - positives) / positives if self.params["balance"] else 1.0
        return float(np.log(self.pos_weight * positives / (total - positives)))

    def _loss(self, output: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        return tf.nn.weighted_cross_entropy_with_logits(target, output, self.pos_weight)

    def extra_metrics(self, test: pd.DataFrame) -> dict[str, float]:
        """Accuracy, precision, recall, F1, ROC-AUC and log loss of P(like) on ``test``."""
        return classification_report(self, test)

    def predict_proba(self, users, movies) -> np.ndarray:
        """P(like) for raw ``(userId, movieId)`` pairs; unseen ids fall back to the biases."""
        self._check_fitted()
        u = self.users.encode(np.asarray(users), unknown="missing")
        i = self.items.encode(np.asarray(movies), unknown="missing")
        return (1.0 / (1.0 + np.exp(-self._output(u, i)))).astype(np.float32)


def positive_weight(liked) -> float:
    """The weight of a like in the balanced loss: dislikes / likes, so both classes weigh the
    same (``liked``: booleans or 0/1 labels of the training pairs)."""
    liked = np.asarray(liked, dtype=bool)
    return float((~liked).sum() / liked.sum())


def _labels_and_probabilities(model: Classification,
                              test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    labels = (test["rating"].to_numpy() >= model.params["threshold"]).astype(int)
    return labels, model.predict_proba(test["userId"].to_numpy(), test["movieId"].to_numpy())


def classification_report(model: Classification, test: pd.DataFrame,
                          threshold: float = 0.5) -> dict:
    """Accuracy, precision, recall, F1, ROC-AUC and log loss of P(like) on a test table.

    Args:
        model: a fitted :class:`Classification`.
        test: ratings table; like = rating >= the model's ``threshold`` parameter.
        threshold: probability above which a pair is predicted liked.

    Returns:
        :func:`recommender.metrics.classification_metrics` of the test pairs.
    """
    labels, prob = _labels_and_probabilities(model, test)
    return metrics.classification_metrics(labels, prob, threshold)


def calibration(model: Classification, test: pd.DataFrame, n_bins: int = 10,
                strategy: str = "quantile") -> pd.DataFrame:
    """Calibration curve of P(like) on a test table, ready to plot.

    Args:
        model: a fitted :class:`Classification`.
        test: ratings table; like = rating >= the model's ``threshold`` parameter.
        n_bins: number of probability bins.
        strategy: ``"quantile"`` (equal-count bins) or ``"uniform"`` (equal-width bins).

    Returns:
        One row per non-empty bin: ``predicted`` (mean P(like)) and ``observed`` (share liked).
    """
    from sklearn.calibration import calibration_curve

    labels, prob = _labels_and_probabilities(model, test)
    observed, predicted = calibration_curve(labels, prob, n_bins=n_bins, strategy=strategy)
    return pd.DataFrame({"predicted": predicted, "observed": observed})


def _count_buckets(counts: pd.Series, n_buckets: int) -> pd.Series:
    """Quantile buckets of integer counts, labelled by the count range they hold (``"3-12"``)."""
    cut = pd.qcut(counts, n_buckets, duplicates="drop")
    names = {iv: f"{max(int(np.floor(iv.left)) + 1, 0)}-{int(np.floor(iv.right))}"
             for iv in cut.cat.categories}
    return cut.cat.rename_categories(names)


def error_buckets(predictions: pd.DataFrame, train: pd.DataFrame,
                  n_buckets: int = 5) -> pd.DataFrame:
    """Test predictions with their error and the activity/popularity bucket of each pair.

    Args:
        predictions: ``userId``, ``movieId``, ``rating``, ``prediction`` (as in
            ``Evaluation.predictions``).
        train: the ratings the model was fitted on; a user's activity and a movie's popularity
            are their numbers of train ratings (0 when unseen).
        n_buckets: quantile buckets of movie popularity (``pd.qcut``; fewer when counts tie).

    Returns:
        ``predictions`` plus ``error`` (prediction - rating), ``abs_error``, ``squared_error``,
        ``user_activity`` (the buckets of :func:`recommender.preprocessing.user_activity`) and
        ``movie_popularity`` (ordered categories labelled by count range).
    """
    movies = predictions["movieId"].map(train["movieId"].value_counts()).fillna(0)
    error = predictions["prediction"] - predictions["rating"]
    return predictions.assign(error=error, abs_error=error.abs(), squared_error=error ** 2,
                              user_activity=user_activity(predictions["userId"], train),
                              movie_popularity=_count_buckets(movies, n_buckets))


def item_embedding_2d(model: Recommender, movies: pd.DataFrame, n: int = 1500,
                      method: str = "pca", top_genres: int = 8, seed: int = 0) -> pd.DataFrame:
    """The factors of the ``n`` most-rated train movies projected to 2-D, with first genre.

    Args:
        model: a fitted model with ``item_vectors()``: :class:`Regression`,
            :class:`Classification`, or the content embeddings of ``feature-embedding``.
        movies: the movies table (``movieId``, ``title``, ``genres`` as lists).
        n: how many of the most-rated movies to project.
        method: ``"pca"`` (fast, linear) or ``"tsne"`` (neighbourhoods, slower).
        top_genres: first genres kept as they are; the rest are labelled ``"other"``.
        seed: random state of the projection.

    Returns:
        ``movieId, title, genre, ratings, x, y``, one row per projected movie.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    counts = np.asarray(model.seen.sum(axis=0)).ravel()
    top = np.argsort(-counts, kind="stable")[:n]
    vectors = model.item_vectors()[top]
    if method == "tsne":
        points = TSNE(2, init="pca", random_state=seed, max_iter=500,
                      perplexity=min(30.0, (len(top) - 1) / 3)).fit_transform(vectors)
    elif method == "pca":
        points = PCA(2, random_state=seed).fit_transform(vectors)
    else:
        raise SettingError(f"method must be 'pca' or 'tsne', not {method!r}")
    ids = model.items.decode(top)
    info = movies.set_index("movieId").reindex(ids)
    first = info["genres"].map(lambda g: g[0] if isinstance(g, (list, tuple, np.ndarray))
                               and len(g) else "(no genres listed)")
    keep = first.value_counts().index[:top_genres]
    return pd.DataFrame({"movieId": ids, "title": info["title"].to_numpy(),
                         "genre": first.where(first.isin(keep), "other").to_numpy(),
                         "ratings": counts[top], "x": points[:, 0], "y": points[:, 1]})


def dense_vs_sparse(train: pd.DataFrame, test: pd.DataFrame, n_movies: int = 10_000,
                    n_users: int = 5_000, epochs: int = 20, seed: int = 0,
                    **params: Any) -> tuple[pd.DataFrame, float]:
    """Fit :class:`Regression` on the capped ratings matrix by both data paths, full batch.

    The train ratings are restricted to seed 003's matrix (the ``n_movies`` most-rated movies x
    the ``n_users`` most active users of train); the ``"dense"`` path trains on ``Y``/``R``, the
    ``"sparse"`` path on the same triples in one batch of all of them, with the same seed, no
    validation slice and no refit, so both optimise the same objective step for step.

    Args:
        train, test: ratings tables; test is restricted to the same users and movies.
        n_movies, n_users: the cap of the dense matrix.
        epochs: full-batch steps (one per epoch).
        seed: model seed.
        **params: other :class:`Regression` parameters (e.g. ``dim``, ``learning_rate``).

    Returns:
        One row per path (``data_path, fit_seconds, final_loss, rmse``) and the largest
        absolute difference between the two paths' test predictions.
    """
    from recommender.data.preprocessing import ratings_matrix

    capped = ratings_matrix(train, n_movies=n_movies, n_users=n_users)

    def keep(t: pd.DataFrame) -> pd.DataFrame:
        return t[t["movieId"].isin(capped.movie_ids) & t["userId"].isin(capped.user_ids)]

    train, test = keep(train), keep(test)
    rows, predictions = [], []
    for path in ("dense", "sparse"):
        model = Regression(seed=seed, **{**params, "data_path": path, "epochs": epochs,
                                         "validation": 0.0, "refit": False,
                                         "batch_size": len(train)})
        model.fit(train)
        pred = model.predict(test["userId"].to_numpy(), test["movieId"].to_numpy())
        predictions.append(pred)
        rows.append({"data_path": path, "fit_seconds": model.meta["fit_seconds"],
                     "final_loss": model.history[-1].rows[-1]["loss"],
                     "rmse": metrics.rmse(test["rating"], pred)})
    return pd.DataFrame(rows), float(np.max(np.abs(predictions[0] - predictions[1])))
