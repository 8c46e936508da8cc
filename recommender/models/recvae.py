"""RecVAE (Shenbin, Alekseev, Tutubalina, Malykh and Nikolenko 2020, "RecVAE: a new
variational autoencoder for top-N recommendations with implicit feedback").

A user's history ``x_u`` (ones, or weighted like ``ease-rated``'s inputs with
``rating_weight``) is L2-normalised, dropped out, and encoded into a Gaussian posterior
``q(z | x_u) = N(mu(x_u), diag sigma^2(x_u))``: ``depth`` dense layers with swish and layer
norm, each fed the sum of the outputs before it. The decoder is one linear layer, a softmax over
the catalogue. A user's loss is the negative ELBO with the multinomial likelihood::

    loss(u) = - sum_j x_uj log softmax(W z + b)_j + beta_u (log q(z | x_u) - log p(z | x_u))
    beta_u  = gamma * sum_j x_uj                       (the KL weight grows with the history)
    p(z | x_u) = 3/20 N(z; 0, I) + 3/4 q_old(z | x_u) + 1/10 N(z; 0, e^10 I)   per dimension

``z = mu + sigma * eps`` (reparameterised); ``q_old`` is the encoder as it was after the
previous encoder passes (the composite prior keeps the encoder from straying far per step).
Training alternates: ``encoder_passes`` epochs update the encoder alone (input ``dropout``),
then ``decoder_passes`` epochs update the decoder alone (no dropout); each epoch of the shared
loop is one pass in one phase, validated and early-stopped like any other. One Adam optimiser
serves both parts (the shared loop's): the part outside its phase gets zero gradients, so it
moves only by Adam's decaying momentum. A score is the decoder's logit at the posterior mean,
``mu(x_u) W + b``: one product, and a user the model never saw is scored by the same encoder
(it folds in). Settings and measurements: ``docs/models/recvae.md``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import tensorflow as tf
from pydantic import Field

from recommender.models.ease import ease_inputs
from recommender.models.neural import dense_layers, flat_history, multinomial_loss, variable
from recommender.models.settings import TowerSettings
from recommender.models.tower import TowerModel, ndcg_validation
from recommender.models.training import History

__all__ = ["RecVAE", "RecVAESettings"]

_MIXTURE = (3 / 20, 3 / 4, 1 / 10)  # weights of the prior's standard, old-posterior, wide parts
_WIDE_LOGVAR = 10.0  # log variance of the prior's wide part
_NORM_EPSILON = 0.1  # layer norm's epsilon (the paper's)
_USER_BATCH = 1024  # users encoded at once when every user is scored


class RecVAESettings(TowerSettings):
    """Settings of :class:`RecVAE` (tuned on validation slices of train: docs/models/recvae.md)."""

    latent: int = Field(64, ge=1, description="size of the latent vector z")
    hidden: int = Field(256, ge=1, description="width of the encoder's dense layers")
    depth: int = Field(2, ge=1, description="number of the encoder's dense layers")
    dropout: float = Field(0.7, ge=0, lt=1, description="share of input movies dropped in an "
                           "encoder pass")
    gamma: float = Field(0.005, ge=0, description="KL weight per movie of the history (beta = "
                         "gamma x the user's number of movies)")
    rating_weight: float = Field(0.5, ge=0, description="weight of a rating's distance from "
                                 "the user's mean in input and target (0: binary)")
    encoder_passes: int = Field(3, ge=1, description="epochs of encoder updates per cycle")
    decoder_passes: int = Field(1, ge=1, description="epochs of decoder updates per cycle")
    epochs: int = Field(400, ge=1, description="most epochs (passes of either phase); early "
                        "stopping picks the count")
    batch_size: int = Field(64, ge=1, description="users per step")
    learning_rate: float = Field(1e-3, gt=0, description="Adam's step size")
    patience: int = Field(10, ge=1, description="epochs without a better validation NDCG@10 "
                          "before stopping")


class _Encoder(tf.Module):
    """``mu(x), log sigma^2(x)``: dense layers with swish and layer norm, each layer fed the
    sum of the layers before it, then one linear layer to both."""

    def __init__(self, layers, norms, posterior, latent: int, name: str):
        super().__init__(name=name)
        self.layers, self.norms, self.posterior, self.latent = layers, norms, posterior, latent

    @classmethod
    def fresh(cls, rng: np.random.Generator, n_items: int, s: RecVAESettings) -> "_Encoder":
        layers = dense_layers(rng, [n_items] + [s.hidden] * s.depth, "encoder",
                              init="glorot_uniform")
        norms = [(tf.Variable(tf.ones([s.hidden]), name=f"encoder{n}_norm_gain"),
                  tf.Variable(tf.zeros([s.hidden]), name=f"encoder{n}_norm_shift"))
                 for n in range(s.depth)]
        posterior = dense_layers(rng, [s.hidden, 2 * s.latent], "posterior",
                                 init="glorot_uniform")[0]
        return cls(layers, norms, posterior, s.latent, "encoder")

    def frozen(self) -> "_Encoder":
        """A copy whose variables are not trained (the prior's ``q_old``)."""
        def copy(v: tf.Variable) -> tf.Variable:
            return tf.Variable(v, trainable=False, name="old_" + v.name.split(":")[0])

        return _Encoder([(copy(k), copy(b)) for k, b in self.layers],
                        [(copy(g), copy(c)) for g, c in self.norms],
                        tuple(map(copy, self.posterior)), self.latent, "old_encoder")

    def remember(self, other: "_Encoder") -> None:
        """Set this (frozen) encoder's variables to ``other``'s."""
        for mine, theirs in zip(self.variables, other.variables):
            mine.assign(theirs)

    def first_layer(self, item: tf.Tensor, segment: tf.Tensor, weight: tf.Tensor,
                    n: tf.Tensor) -> tf.Tensor:
        """``x K_1`` for inputs given as flat lists: a gather over the history."""
        return tf.math.unsorted_segment_sum(weight[:, None] * tf.gather(self.layers[0][0], item),
                                            segment, n)

    def __call__(self, first: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(mu, log sigma^2)`` from the first layer's product ``x K_1``."""
        h, total = first, 0.0
        for n, ((kernel, bias), (gain, shift)) in enumerate(zip(self.layers, self.norms)):
            into = (h if n == 0 else h @ kernel) + bias + total
            h = _layer_norm(tf.nn.silu(into), gain, shift)
            total = total + h
        out = h @ self.posterior[0] + self.posterior[1]
        return out[:, : self.latent], out[:, self.latent:]


def _layer_norm(x: tf.Tensor, gain: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
    mean, var = tf.nn.moments(x, axes=[1], keepdims=True)
    return (x - mean) * tf.math.rsqrt(var + _NORM_EPSILON) * gain + shift


def _log_normal(z: tf.Tensor, mean: tf.Tensor | float, logvar: tf.Tensor | float) -> tf.Tensor:
    """``log N(z; mean, e^logvar)`` per entry."""
    return -0.5 * (logvar + np.log(2 * np.pi) + (z - mean) ** 2 / tf.exp(logvar))


def composite_prior(z: tf.Tensor, old_mu: tf.Tensor, old_logvar: tf.Tensor) -> tf.Tensor:
    """``log p(z | x)`` per latent dimension: the mixture of a standard normal, the old
    encoder's posterior and a wide normal, weighted 3/20, 3/4, 1/10."""
    parts = [_log_normal(z, 0.0, 0.0), _log_normal(z, old_mu, old_logvar),
             _log_normal(z, 0.0, _WIDE_LOGVAR)]
    return tf.reduce_logsumexp(tf.stack([p + np.log(w) for p, w in zip(parts, _MIXTURE)],
                                        axis=-1), axis=-1)


class _VAE(tf.Module):
    """The encoder, the frozen encoder of the prior, and the decoder ``(W, b)``."""

    def __init__(self, n_items: int, s: RecVAESettings, rng: np.random.Generator):
        super().__init__(name="recvae")
        self.encoder = _Encoder.fresh(rng, n_items, s)
        self.old = self.encoder.frozen()
        self.decoder = variable(rng, (s.latent, n_items), "glorot_uniform", "decoder_kernel")
        self.decoder_bias = tf.Variable(tf.zeros([n_items]), name="decoder_bias")

    def means(self, rows: sp.csr_matrix) -> np.ndarray:
        """``mu(x_u)`` of users given by their weighted history rows (no dropout)."""
        first = _unit(rows) @ self.encoder.layers[0][0].numpy()
        return self.encoder(tf.constant(first, tf.float32))[0].numpy()


def _unit(rows: sp.csr_matrix) -> sp.csr_matrix:
    """Each row over its L2 norm (empty rows stay empty)."""
    norm = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(1.0 / np.maximum(norm, 1e-12)) @ rows, dtype=np.float32)


class _Batches:
    """A batch of users: their weighted histories as flat lists, the dropout of this phase
    (``keep``: 0 or ``1 / (1 - p)`` per entry), the reparameterisation noise and the phase."""

    def __init__(self, history: sp.csr_matrix, dropout: float, latent: int):
        self.history, self.dropout, self.latent = history, dropout, latent
        self.train_encoder = True  # set by the model between epochs

    def __call__(self, batch: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
        rows = self.history[batch["user"]]
        flat = flat_history(rows)
        p = self.dropout if self.train_encoder else 0.0
        keep = (rng.random(len(flat["item"])) >= p) / (1.0 - p)
        n = rows.shape[0]
        return {**flat, "keep": keep.astype(np.float32),
                "noise": rng.standard_normal((n, self.latent)).astype(np.float32),
                "encoder_phase": np.full(n, float(self.train_encoder), np.float32)}


class RecVAE(TowerModel):
    """RecVAE: a VAE over user histories with a composite prior and alternating updates."""

    name = "recvae"
    Settings = RecVAESettings
    folds_in = True
    scores_new_movies = False  # its scores span the train catalogue only
    validation_metric, maximise = "ndcg@10", True
    large_data = None  # not measured at MovieLens-25M scale (docs/models/recvae.md)

    def __init__(self, seed: int = 0, **settings):
        super().__init__(seed, **settings)
        self.user_means: np.ndarray | None = None

    def _build(self) -> _VAE:
        return _VAE(self.n_items, self.settings, np.random.default_rng(self.seed))

    def _weighted(self, ratings: sp.csr_matrix) -> sp.csr_matrix:
        """A users x items ratings matrix as the model's input and target weights."""
        return ease_inputs(ratings, self.settings.rating_weight)

    def _train(self, part: sp.csr_matrix, held: sp.csr_matrix | None, epochs: int,
               on_epoch=None) -> tuple[_VAE, History]:
        s = self.settings
        history = self._weighted(part)
        vae = self._fresh()
        batches = _Batches(history, s.dropout, s.latent)

        def loss_fn(batch):
            n = tf.shape(batch["noise"])[0]
            item, segment, weight = batch["item"], batch["segment"], batch["weight"]
            norm = tf.sqrt(tf.math.unsorted_segment_sum(weight * weight, segment, n))
            unit = weight / tf.gather(tf.maximum(norm, 1e-12), segment)
            mu, logvar = vae.encoder(vae.encoder.first_layer(item, segment,
                                                             unit * batch["keep"], n))
            old_mu, old_logvar = vae.old(vae.old.first_layer(item, segment, unit, n))
            z = mu + batch["noise"] * tf.exp(0.5 * logvar)
            # the phase: 1 trains the encoder alone, 0 the decoder alone
            e = tf.reduce_max(batch["encoder_phase"])
            z = e * z + (1.0 - e) * tf.stop_gradient(z)
            kernel = e * tf.stop_gradient(vae.decoder) + (1.0 - e) * vae.decoder
            bias = e * tf.stop_gradient(vae.decoder_bias) + (1.0 - e) * vae.decoder_bias
            logits = z @ kernel + bias
            target = tf.scatter_nd(tf.stack([segment, item], axis=1), weight, tf.shape(logits))
            beta = s.gamma * tf.math.unsorted_segment_sum(weight, segment, n)
            kl = tf.reduce_sum(_log_normal(z, mu, logvar)
                               - composite_prior(z, old_mu, old_logvar), axis=1)
            return multinomial_loss(logits, target) + e * beta * kl, 0.0

        cycle = s.encoder_passes + s.decoder_passes

        def next_phase(epoch: int) -> None:
            """After epoch ``epoch``: the prior remembers the encoder when its passes end,
            and the next epoch's phase is set; then the caller's ``on_epoch``."""
            if epoch % cycle == s.encoder_passes:
                vae.old.remember(vae.encoder)
            batches.train_encoder = epoch % cycle < s.encoder_passes
            if on_epoch is not None:
                on_epoch(epoch)

        validate = None
        if held is not None:
            validate = ndcg_validation(lambda u: self._logits(vae, history[u]), history, held,
                                       self.seed)
        users = np.flatnonzero(np.diff(history.indptr) > 0).astype(np.int64)
        result = self._loop(vae, loss_fn, {"user": users}, epochs, validate=validate,
                            batch_fn=batches, on_epoch=next_phase)
        return vae, result

    @staticmethod
    def _logits(vae: _VAE, rows: sp.csr_matrix) -> np.ndarray:
        """Catalogue logits at the posterior mean for users given by their input rows."""
        return vae.means(rows) @ vae.decoder.numpy() + vae.decoder_bias.numpy()

    def _finish(self, whole: sp.csr_matrix) -> None:
        inputs = self._weighted(whole)
        self.user_means = np.vstack([self.module.means(inputs[lo: lo + _USER_BATCH])
                                     for lo in range(0, inputs.shape[0], _USER_BATCH)])

    def _score_factors(self, user_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``[mu_u, 1]`` and ``[W; b]``: the logits are one product."""
        rows = np.hstack([self.user_means[user_index],
                          np.ones((len(user_index), 1), np.float32)])
        items = np.vstack([self.module.decoder.numpy(), self.module.decoder_bias.numpy()[None]])
        return rows.astype(np.float32), np.ascontiguousarray(items, np.float32)

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        rows, items = self._score_factors(user_index)
        return rows @ items

    def _score_history(self, ratings, movie_ids, user_ids):
        return self._pick(self._logits(self.module, self._weighted(ratings)), movie_ids)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"user_means": self.user_means}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_means = arrays["user_means"]
