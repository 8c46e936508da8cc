"""Bayesian matrix factorisation with biases, fitted by Gibbs sampling (Salakhutdinov and
Mnih 2008; the biased form of Rendle et al. 2019, "On the difficulty of evaluating
baselines").

A rating is ``r_ui ~ N(mu + b_u + b_i + <p_u, q_i>, 1 / alpha)``. Each user's vector
``[p_u, b_u]`` and each movie's ``[q_i, b_i]`` has a Gaussian prior whose mean and precision
are themselves drawn from a Normal-Wishart hyperprior (``beta0``, ``W0 = I``, ``nu0 = d``),
and the noise precision ``alpha`` from a Gamma(1, 1) prior. One Gibbs sweep draws the user
hyperparameters, every user row given the movies (a ``d x d`` Gaussian per user, solved in
one batch), then the same for the movies, then ``alpha``. Nothing is tuned by hand: the
hyperpriors set the regularisation from the data, which is why BPMF beats SGD matrix
factorisation tuned by grid search (Rendle et al. 2019).

A prediction is the mean over the ``kept`` samples taken after ``burn_in`` sweeps,
``mu + mean_s (b_u^s + b_i^s + <p_u^s, q_i^s>)``: one product of a user table and a movie
table that stack every kept sample side by side, so top-K scores batches of users as one
matrix product. A new user folds in by the posterior mean of their row under each kept
sample (deterministic). Settings and measurements: ``docs/models/bpmf.md``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import Field, model_validator

from recommender.core.progress import progress_bar
from recommender.data.preprocessing import Interactions
from recommender.models.base import Context, Recommender
from recommender.models.settings import Settings

__all__ = ["BPMF", "BPMFSettings"]


class BPMFSettings(Settings):
    """Settings of :class:`BPMF` (tuned on validation slices of train)."""

    dim: int = Field(16, ge=1, description="factor dimension of p_u and q_i")
    sweeps: int = Field(150, ge=1, description="Gibbs sweeps in all, burn-in included")
    burn_in: int = Field(30, ge=0, description="first sweeps whose samples are discarded")
    kept: int = Field(120, ge=1, description="samples kept for predictions, evenly spaced "
                      "over the sweeps after burn-in (each adds dim + 2 columns to the "
                      "scoring tables)")
    beta0: float = Field(2.0, gt=0, description="strength of the hyperprior on the mean of "
                         "the user and movie rows")
    noise_precision: float = Field(2.0, gt=0, description="starting precision alpha of the "
                                   "rating noise (then drawn every sweep)")

    @model_validator(mode="after")
    def _samples_exist(self) -> "BPMFSettings":
        if self.burn_in >= self.sweeps:
            raise ValueError(f"burn_in ({self.burn_in}) must be below sweeps ({self.sweeps})")
        if self.kept > self.sweeps - self.burn_in:
            raise ValueError(f"kept ({self.kept}) is more than the sweeps after burn-in "
                             f"({self.sweeps - self.burn_in})")
        return self


def _wishart(rng: np.random.Generator, df: float, scale_cholesky: np.ndarray) -> np.ndarray:
    """A draw from Wishart(df, L L^T) given its scale's Cholesky factor L (Bartlett)."""
    d = len(scale_cholesky)
    a = np.zeros((d, d))
    a[np.diag_indices(d)] = np.sqrt(rng.chisquare(df - np.arange(d)))
    a[np.tril_indices(d, -1)] = rng.standard_normal(d * (d - 1) // 2)
    la = scale_cholesky @ a
    return la @ la.T


def _hyper(rng: np.random.Generator, rows: np.ndarray, beta0: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """The prior mean and precision of ``rows`` drawn from their Normal-Wishart posterior
    (prior mean 0, ``W0 = I``, ``nu0 = d``)."""
    n, d = rows.shape
    mean = rows.mean(0)
    scatter = np.cov(rows.T, bias=True) * n if n > 1 else np.zeros((d, d))
    beta = beta0 + n
    w = np.linalg.inv(np.eye(d) + scatter + beta0 * n / beta * np.outer(mean, mean))
    precision = _wishart(rng, d + n, np.linalg.cholesky((w + w.T) / 2))
    noise = np.linalg.solve(np.linalg.cholesky(beta * precision).T, rng.standard_normal(d))
    return n * mean / beta + noise, precision


def _posterior(pattern: sp.csr_matrix, residual: sp.csr_matrix, other: np.ndarray,
               mean: np.ndarray, precision: np.ndarray, alpha: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and Cholesky factor of each row's Gaussian posterior given the other side.

    ``pattern`` (rows x others, ones) says who rated what, ``residual`` holds the ratings
    less what the row's vector does not explain, ``other`` the other side's augmented
    vectors ``(n_others, d)``. Cost ``O(nnz d^2 + rows d^3)``.
    """
    n, d = pattern.shape[0], other.shape[1]
    outer = (other[:, :, None] * other[:, None, :]).reshape(len(other), d * d)
    posterior = np.asarray(pattern @ outer).reshape(n, d, d) * alpha + precision
    rhs = alpha * np.asarray(residual @ other) + precision @ mean
    return np.linalg.solve(posterior, rhs[..., None])[..., 0], np.linalg.cholesky(posterior)


def _draw(rng: np.random.Generator, mean: np.ndarray, cholesky: np.ndarray) -> np.ndarray:
    """Rows drawn from ``N(mean, (L L^T)^-1)``: ``mean + L^-T z``."""
    z = rng.standard_normal(mean.shape)
    return mean + np.linalg.solve(np.swapaxes(cholesky, 1, 2), z[..., None])[..., 0]


class _Layout:
    """The ratings as a rows x columns sparse matrix, laid out once: :meth:`of` puts new
    values (one per rating, in the ratings' order) into the same structure without sorting."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int):
        self.order = np.lexsort((cols, rows))
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))])
        self.pattern = sp.csr_matrix((np.ones(len(rows)), cols[self.order], indptr),
                                     shape=(n_rows, n_cols))

    def of(self, values: np.ndarray) -> sp.csr_matrix:
        """The matrix with ``values`` where the ratings are."""
        out = self.pattern.copy()
        out.data = values[self.order]
        return out


def _augmented(rows: np.ndarray) -> np.ndarray:
    """``[factors, 1]``: the other side's bias enters a row's posterior as a constant."""
    return np.hstack([rows[:, :-1], np.ones((len(rows), 1))])


class BPMF(Recommender):
    """Bayesian matrix factorisation with biases (Gibbs sampling); predicts ratings, folds in."""

    name = "bpmf"
    Settings = BPMFSettings
    predicts_ratings = True
    folds_in = True
    scores_new_movies = False  # its scores span the train catalogue only
    large_data = None  # not measured at MovieLens-25M scale (docs/models/bpmf.md)

    def _fit(self, data: Interactions, context: Context) -> None:
        s = self.settings
        rng = np.random.default_rng(self.seed)
        u, i = data.user_index, data.item_index
        r = data.rating.astype(np.float64) - self.global_mean
        n_users, n_items, d = data.n_users, data.n_items, s.dim + 1
        by_user, by_item = _Layout(u, i, n_users, n_items), _Layout(i, u, n_items, n_users)
        users = np.zeros((n_users, d))  # [p_u, b_u]
        items = rng.normal(0.0, 0.1, (n_items, d))  # [q_i, b_i]
        items[:, -1] = 0.0
        alpha = s.noise_precision
        keep = set(np.linspace(s.burn_in, s.sweeps - 1, s.kept).round().astype(int).tolist())
        samples: dict[str, list] = {"users": [], "items": [], "user_mean": [],
                                    "user_precision": [], "alpha": []}
        for sweep in progress_bar(range(s.sweeps), desc=self.name, leave=False):
            mean_u, precision_u = _hyper(rng, users, s.beta0)
            users = _draw(rng, *_posterior(by_user.pattern, by_user.of(r - items[i, -1]),
                                           _augmented(items), mean_u, precision_u, alpha))
            mean_i, precision_i = _hyper(rng, items, s.beta0)
            items = _draw(rng, *_posterior(by_item.pattern, by_item.of(r - users[u, -1]),
                                           _augmented(users), mean_i, precision_i, alpha))
            error = r - users[u, -1] - items[i, -1] - np.einsum(
                "nk,nk->n", users[u, :-1], items[i, :-1])
            alpha = rng.gamma(1.0 + len(r) / 2, 1.0 / (1.0 + 0.5 * error @ error))
            if sweep in keep:
                for key, value in (("users", users), ("items", items), ("user_mean", mean_u),
                                   ("user_precision", precision_u), ("alpha", alpha)):
                    samples[key].append(value)
        self.samples = {key: np.asarray(value, np.float32) for key, value in samples.items()}
        self.meta["noise_sd"] = float(np.mean(self.samples["alpha"]) ** -0.5)
        self._tables()

    # -- answers ---------------------------------------------------------------------------

    def _tables(self) -> None:
        """The scoring tables from the kept samples (see :meth:`_user_rows`)."""
        items = self.samples["items"]  # (S, n_items, d)
        self.item_table = np.ascontiguousarray(np.concatenate(
            [np.concatenate([items[:, :, :-1], np.ones_like(items[:, :, -1:]),
                             items[:, :, -1:]], axis=2).transpose(1, 0, 2)
             .reshape(self.n_items, -1), np.ones((self.n_items, 1), np.float32)], axis=1).T)
        self.user_table = self._user_rows(self.samples["users"])
        self.item_bias = items[:, :, -1].mean(0)
        self.user_bias = self.samples["users"][:, :, -1].mean(0)

    def _user_rows(self, users: np.ndarray) -> np.ndarray:
        """User-table rows ``[p^s / S, b_u^s / S, 1 / S for each s, mu]`` from samples
        ``(S, n, d)``: their product with the movie table's ``[q^s; 1; b_i^s] ..., 1`` is
        the posterior-mean rating."""
        count, n, _ = users.shape
        rows = np.concatenate([users, np.ones_like(users[:, :, :1])], axis=2) / count
        return np.concatenate([rows.transpose(1, 0, 2).reshape(n, -1),
                               np.full((n, 1), self.global_mean, np.float32)], axis=1
                              ).astype(np.float32)

    def _predict(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        known_u, known_i = user_index >= 0, item_index >= 0
        u, i = np.maximum(user_index, 0), np.maximum(item_index, 0)
        both = np.einsum("nk,kn->n", self.user_table[u], self.item_table[:, i])
        fallback = (self.global_mean + np.where(known_u, self.user_bias[u], 0.0)
                    + np.where(known_i, self.item_bias[i], 0.0))
        return np.where(known_u & known_i, both, fallback)

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        return self.user_table[user_index] @ self.item_table

    def _score_factors(self, user_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.user_table[user_index], self.item_table

    def _score_history(self, ratings: sp.csr_matrix, movie_ids: np.ndarray,
                       user_ids: np.ndarray) -> np.ndarray:
        """Each new user's row under each kept sample is its posterior mean given the
        movies' vectors, the user prior and the noise of that sample."""
        pattern = ratings.copy()
        pattern.data[:] = 1.0
        rows = []
        for items, mean, precision, alpha in zip(
                self.samples["items"].astype(np.float64), self.samples["user_mean"],
                self.samples["user_precision"], self.samples["alpha"]):
            residual = ratings.copy().astype(np.float64)
            residual.data -= self.global_mean + items[ratings.indices, -1]
            rows.append(_posterior(pattern, residual, _augmented(items), mean, precision,
                                   alpha)[0])
        return self._pick(self._user_rows(np.asarray(rows)) @ self.item_table, movie_ids)

    # -- persistence -----------------------------------------------------------------------

    def _state(self) -> dict[str, np.ndarray]:
        return dict(self.samples)

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.samples = dict(arrays)
        self._tables()
