"""The one custom training loop every TensorFlow model of the project trains through.

A ``tf.function`` step with ``tf.GradientTape``; minibatches reshuffled every epoch from an
explicit seed; early stopping on a validation metric computed on a slice carved from train
(the test set is never seen here) with the best weights restored; a per-epoch history for
plots; a tqdm bar; and a guard that stops with a clear error when the loss is NaN or infinite.

Models hand the loop two things: the variables to train (any ``tf.Module``/Keras model built
inside :func:`strategy` 's scope) and a loss function mapping a batch (a dict of tensors) to
``(per_example_loss, regularisation)``. The loop averages per-example losses over the global
batch, so the same model code runs under the default strategy, under ``MirroredStrategy``
when GPUs are present, and under ``MultiWorkerMirroredStrategy`` across machines when
``TF_CONFIG`` names a cluster (see :func:`strategy`): each replica takes its slice of every
global batch and gradients are summed, so the workers train the model one process would.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import tensorflow as tf
import keras

from recommender.core.errors import SettingError, TrainingError
from recommender.core.progress import progress_bar

__all__ = ["TrainingError", "TrainConfig", "History", "strategy", "set_seed", "fit_loop"]

LossFn = Callable[[dict], tuple[tf.Tensor, tf.Tensor]]


@dataclass
class TrainConfig:
    """Loop settings shared by every model (each model ships tuned defaults for them)."""

    epochs: int = 30
    batch_size: int = 4096
    learning_rate: float = 0.01
    patience: int = 3
    min_delta: float = 1e-4
    optimizer: str = "adam"
    jit_compile: bool = True
    seed: int = 0
    progress: bool = True
    sample: float = 1.0  # share of the examples an epoch draws afresh (1: every example)


@dataclass
class History:
    """Per-epoch loss and validation metric, and where the best weights came from."""

    rows: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_value: float | None = None
    stopped_early: bool = False
    examples_seen: int = 0
    seconds: float = 0.0

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    @property
    def throughput(self) -> float:
        """Training examples processed per second (validation time excluded)."""
        train_seconds = sum(r["train_seconds"] for r in self.rows)
        return self.examples_seen / train_seconds if train_seconds else 0.0

    def to_dict(self) -> dict:
        return {"rows": self.rows, "best_epoch": self.best_epoch, "best_value": self.best_value,
                "stopped_early": self.stopped_early, "examples_seen": self.examples_seen,
                "seconds": self.seconds}


def strategy() -> tf.distribute.Strategy:
    """The strategy every model trains under, chosen once per process.

    ``MultiWorkerMirroredStrategy`` when the ``TF_CONFIG`` environment variable names a
    cluster of several workers (each worker runs the same program; batches are split across
    them and gradients summed, so they train the model one process would), else
    ``MirroredStrategy`` over the visible GPUs when there are any, else the default one.
    On a cluster, call it first thing: TensorFlow sets up collective ops at start-up.
    Models create their variables inside ``strategy().scope()``.
    """
    global _STRATEGY
    if _STRATEGY is None:
        if len(json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
               .get("worker", [])) > 1:
            _STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()
        elif tf.config.list_logical_devices("GPU"):
            _STRATEGY = tf.distribute.MirroredStrategy()
    return _STRATEGY or tf.distribute.get_strategy()


_STRATEGY: tf.distribute.Strategy | None = None


def set_seed(seed: int) -> None:
    """Seed Python, numpy, TensorFlow and Keras in one call."""
    keras.utils.set_random_seed(int(seed))


def _optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    options = {"adam": keras.optimizers.Adam, "adagrad": keras.optimizers.Adagrad,
               "sgd": keras.optimizers.SGD}
    if name not in options:
        raise SettingError(f"unknown optimizer {name!r}; choose from {', '.join(options)}")
    return options[name](learning_rate=learning_rate)


def _snapshot(variables) -> list[np.ndarray]:
    return [v.numpy().copy() for v in variables]


def fit_loop(module: tf.Module, loss_fn: LossFn, data: dict[str, np.ndarray],
             config: TrainConfig, validate: Callable[[], float] | None = None,
             batch_fn: Callable[[dict, np.random.Generator], dict] | None = None,
             description: str = "train", maximise: bool = False,
             on_epoch: Callable[[int], None] | None = None) -> History:
    """Train ``module``'s variables on ``data`` and return the history.

    Args:
        module: holds the trainable variables (built under :func:`strategy`'s scope).
        loss_fn: batch dict -> (per-example loss ``[B]``, regularisation scalar).
        data: equal-length numpy arrays, one example per row (shuffled every epoch).
        config: epochs, batch size, learning rate, patience, optimizer, seed.
        validate: returns the validation metric after each epoch; enables early stopping
            with the best weights restored. Without it, the last epoch is kept.
        batch_fn: optional numpy hook that turns a batch of rows into the model's inputs
            (e.g. draws negatives); it receives the loop's seeded generator.
        description: label for the progress bar.
        maximise: the validation metric is better when higher (NDCG), not lower (a loss).
        on_epoch: called with the epoch number after each epoch (after validation), while
            the variables hold that epoch's weights.

    Returns:
        The :class:`History`.

    Raises:
        TrainingError: the loss became NaN or infinite.
    """
    set_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    n = len(next(iter(data.values())))
    if n == 0:
        raise ValueError("fit_loop: no training examples")
    batch_size = min(config.batch_size, n)
    # An epoch of ``sample`` < 1 is the first rows of that epoch's permutation: a fresh
    # subset every epoch (for data too large to pass over whole between validations).
    per_epoch = n if config.sample >= 1 else max(batch_size, int(round(config.sample * n)))
    step = _training_step(module, loss_fn, config, batch_size)
    run_epoch = _epoch_runner(step, data, per_epoch // batch_size, batch_size, batch_fn, rng)
    # Row indices in int32 where they fit: the same permutation (the same shuffle of the same
    # draws) in half the memory, 200 MB less at MovieLens-25M scale with its tensor copy.
    indices = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
    history = History()
    variables = module.trainable_variables
    sign = -1.0 if maximise else 1.0
    best_weights = None
    waited = 0
    start = time.perf_counter()
    bar = progress_bar(range(1, config.epochs + 1), config.progress, desc=description,
                       leave=False)
    for epoch in bar:
        epoch_start = time.perf_counter()
        total = run_epoch(rng.permutation(indices)[:per_epoch])
        train_seconds = time.perf_counter() - epoch_start
        steps = per_epoch // batch_size
        history.examples_seen += steps * batch_size
        loss = total / max(steps, 1)
        if not math.isfinite(loss):
            raise TrainingError(
                f"{description}: the training loss became {loss} at epoch {epoch}; lower the "
                f"learning rate (now {config.learning_rate:g}) or raise the regularisation")
        row = {"epoch": epoch, "loss": loss, "train_seconds": train_seconds}
        if validate is not None:
            value = float(validate())
            row["val"] = value
            if (history.best_value is None
                    or sign * value < sign * history.best_value - config.min_delta):
                history.best_value, history.best_epoch = value, epoch
                best_weights = _snapshot(variables)
                waited = 0
            else:
                waited += 1
        history.rows.append(row)
        if on_epoch is not None:
            on_epoch(epoch)
        bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k in ("loss", "val")})
        if validate is not None and waited >= config.patience:
            history.stopped_early = True
            break
    if best_weights is not None:
        for variable, value in zip(variables, best_weights):
            variable.assign(value)
    else:
        history.best_epoch = len(history.rows)
    history.seconds = time.perf_counter() - start
    return history


_PREFETCH = 2  # batches made ahead of the step that takes them


def _ahead(items: Iterator, depth: int) -> Iterator:
    """``items`` in order, up to ``depth`` of them made ahead on one worker thread."""
    if depth <= 0:
        yield from items
        return
    import queue
    import threading

    done = object()
    made: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        made.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            made.put(done)
        except BaseException as exc:  # raised again in the consumer
            made.put(exc)

    worker = threading.Thread(target=produce, name="batches", daemon=True)
    worker.start()
    try:
        while (item := made.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _training_step(module: tf.Module, loss_fn: LossFn, config: TrainConfig,
                   batch_size: int) -> Callable:
    """One optimiser step on a global batch, compiled, on every replica of the strategy."""
    strat = strategy()
    replicas = strat.num_replicas_in_sync
    with strat.scope():
        optimizer = _optimizer(config.optimizer, config.learning_rate)
    variables = module.trainable_variables

    def gradients(batch):
        with tf.GradientTape() as tape:
            per_example, reg = loss_fn(batch)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=batch_size)
            loss += reg / replicas
        return loss, tape.gradient(loss, variables)

    # No Python control flow depends on a tensor in a step, so autograph has nothing to
    # convert: without it a trace takes up to a second less (the same graph).
    if replicas == 1:  # one XLA program per step, update included
        @tf.function(jit_compile=config.jit_compile, reduce_retracing=True, autograph=False)
        def replica_step(batch):
            loss, grads = gradients(batch)
            optimizer.apply_gradients(zip(grads, variables))
            return loss
    else:  # XLA has no collectives on CPU: the all-reduce and the update run outside it
        compiled = tf.function(gradients, jit_compile=config.jit_compile, reduce_retracing=True,
                               autograph=False)

        @tf.function(reduce_retracing=True, autograph=False)
        def replica_step(batch):
            loss, grads = compiled(batch)
            optimizer.apply_gradients(zip(grads, variables))
            return loss

    @tf.function(reduce_retracing=True, autograph=False)
    def step(batch):
        losses = strat.run(replica_step, args=(batch,))
        return strat.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    return step


def _epoch_runner(step: Callable, data: dict[str, np.ndarray], n_steps: int, batch_size: int,
                  batch_fn: Callable | None, rng: np.random.Generator
                  ) -> Callable[[np.ndarray], float]:
    """A function that runs one epoch over a row order and returns the summed batch losses
    (full batches only; the order reshuffles every epoch)."""
    strat = strategy()
    replicas = strat.num_replicas_in_sync

    def batches(order: np.ndarray) -> Iterator[dict]:
        for lo in range(0, n_steps * batch_size, batch_size):
            rows = order[lo: lo + batch_size]
            batch = {k: v[rows] for k, v in data.items()}
            yield batch if batch_fn is None else batch_fn(batch, rng)

    def python_epoch(order: np.ndarray) -> float:
        """One epoch batch by batch from Python: for ``batch_fn`` and for several replicas.

        The next batches are made on a thread while a step runs (``batch_fn`` is numpy work,
        which at MovieLens-25M scale took as long as a step): the same batches, in the same
        order, from the same draws of ``rng``.
        """
        total = 0.0
        for batch in _ahead(batches(order), _PREFETCH if batch_fn is not None else 0):
            tensors = {k: tf.convert_to_tensor(v) for k, v in batch.items()}
            if replicas > 1:
                tensors = strat.experimental_distribute_values_from_function(
                    lambda ctx, t=tensors: {k: tf.split(v, replicas)[ctx.replica_id_in_sync_group]
                                            for k, v in t.items()})
            total += float(step(tensors))
        return total

    if batch_fn is not None or replicas > 1:
        return python_epoch
    # The whole epoch is one graph: the batches are gathered from the data (held once as
    # tensors) inside a loop, so a step costs no Python, no conversion and no sync, which was
    # a fifth of an epoch at MovieLens-25M scale; same batches, same steps.
    tensors = {k: tf.convert_to_tensor(v) for k, v in data.items()}

    @tf.function(autograph=False)
    def graph_epoch(order: tf.Tensor) -> tf.Tensor:
        def one_step(s: tf.Tensor, total: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            rows = order[s * batch_size: (s + 1) * batch_size]
            batch = {k: tf.gather(t, rows) for k, t in tensors.items()}
            return s + 1, total + tf.cast(step(batch), tf.float64)

        return tf.while_loop(lambda s, _: s < n_steps, one_step,
                             (tf.constant(0), tf.constant(0.0, tf.float64)))[1]

    return lambda order: float(graph_epoch(tf.constant(order)))
