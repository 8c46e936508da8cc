"""The shared training loop: early stopping, best-weight restore, NaN guard, reproducibility."""

import numpy as np
import pytest
import tensorflow as tf

from recommender.models.training import TrainConfig, TrainingError, fit_loop, strategy


class Line(tf.Module):
    """y = a x + b, the smallest model that can be trained through the loop."""

    def __init__(self):
        super().__init__()
        with strategy().scope():
            self.a = tf.Variable(0.0)
            self.b = tf.Variable(0.0)

    def loss(self, batch):
        return tf.square(self.a * batch["x"] + self.b - batch["y"]), tf.constant(0.0)


def line_data(n: int = 256, seed: int = 0) -> dict[str, np.ndarray]:
    x = np.random.default_rng(seed).normal(size=n).astype(np.float32)
    return {"x": x, "y": (2.0 * x + 1.0).astype(np.float32)}


def config(**overrides) -> TrainConfig:
    return TrainConfig(**{"epochs": 10, "batch_size": 32, "learning_rate": 0.05,
                          "progress": False, **overrides})


def test_loop_learns_a_line():
    model = Line()
    history = fit_loop(model, model.loss, line_data(), config(epochs=30))
    assert model.a.numpy() == pytest.approx(2.0, abs=0.05)
    assert model.b.numpy() == pytest.approx(1.0, abs=0.05)
    assert history.best_epoch == 30 and not history.stopped_early
    assert history.throughput > 0 and list(history.frame().columns[:2]) == ["epoch", "loss"]


def test_early_stopping_restores_the_best_weights():
    model = Line()
    scripted = iter([5.0, 4.0, 3.0, 3.5, 4.0, 4.5, 5.0])
    seen = []

    def validate():
        seen.append(model.a.numpy().item())
        return next(scripted)

    history = fit_loop(model, model.loss, line_data(), config(patience=2), validate=validate)
    assert history.stopped_early and history.best_epoch == 3 and len(history.rows) == 5
    assert model.a.numpy() == seen[2] != seen[-1]


def test_nan_guard_names_the_learning_rate():
    model = Line()
    with pytest.raises(TrainingError, match="learning rate"):
        fit_loop(model, model.loss, line_data(), config(optimizer="sgd", learning_rate=1e30))


def test_same_seed_gives_the_same_weights_and_batch_fn_gets_the_seeded_rng():
    def run(seed):
        model = Line()
        draws = []

        def batch_fn(batch, rng):
            draws.append(rng.integers(1 << 30))
            return batch

        fit_loop(model, model.loss, line_data(), config(epochs=3, seed=seed), batch_fn=batch_fn)
        return model.a.numpy(), draws

    (a1, d1), (a2, d2), (a3, d3) = run(1), run(1), run(2)
    assert a1 == a2 and d1 == d2
    assert d1 != d3


@pytest.mark.parametrize("with_batch_fn", [False, True])  # the in-graph and the Python epoch
def test_an_epoch_fraction_draws_a_fresh_share_of_the_examples_every_epoch(with_batch_fn):
    drawn = []

    def batch_fn(batch, rng):
        drawn.append(batch["x"].copy())
        return batch

    model = Line()
    data = line_data(320)
    history = fit_loop(model, model.loss, data, config(epochs=3, sample=0.25),
                       batch_fn=batch_fn if with_batch_fn else None)
    assert history.examples_seen == 3 * 64  # 80 of 320 examples an epoch: 2 batches of 32
    if with_batch_fn:
        epochs = [np.concatenate(drawn[e * 2:(e + 1) * 2]) for e in range(3)]
        assert all(len(np.unique(e)) == 64 for e in epochs)
        assert not np.array_equal(np.sort(epochs[0]), np.sort(epochs[1]))  # a fresh subset


def test_batches_made_ahead_on_a_thread_are_the_batches_made_in_turn():
    # batch_fn's draws come from the loop's generator: made ahead or not, the same batches
    def run(depth):
        import recommender.models.training as training

        made = []
        previous, training._PREFETCH = training._PREFETCH, depth
        try:
            model = Line()
            fit_loop(model, model.loss, line_data(), config(epochs=2),
                     batch_fn=lambda b, rng: made.append(rng.random()) or b)
        finally:
            training._PREFETCH = previous
        return made, model.a.numpy()

    assert run(0) == run(2)


def test_an_error_while_making_a_batch_ahead_reaches_the_loop():
    def broken(batch, rng):
        raise RuntimeError("no batch")

    model = Line()
    with pytest.raises(RuntimeError, match="no batch"):
        fit_loop(model, model.loss, line_data(), config(epochs=1), batch_fn=broken)


def test_validation_ranks_every_user_up_to_the_cap_then_a_seeded_sample():
    from recommender.models.tower import VALIDATION_USERS, validation_users

    few = np.arange(0, 2 * VALIDATION_USERS, 3)[:VALIDATION_USERS]
    assert validation_users(few, seed=0) is few
    many = np.arange(0, 3 * VALIDATION_USERS, 2)
    sample = validation_users(many, seed=0)
    assert len(sample) == VALIDATION_USERS and np.all(np.diff(sample) > 0)
    assert np.isin(sample, many).all()
    assert np.array_equal(sample, validation_users(many, seed=0))
    assert not np.array_equal(sample, validation_users(many, seed=1))
