"""EASE, the embarrassingly shallow autoencoder (Steck 2019): a closed-form item-item model.

Exact on catalogues whose dense item-item matrix fits (``rank = 0``), or of rank ``r`` over
any catalogue (``rank = r``): with ``X^T X ~ V diag(s^2) V^T`` from a randomised SVD of the
inputs (top ``r`` singular pairs), ``P = (I - V D V^T) / lambda``, ``D = s^2 / (s^2 +
lambda)``, and an unseen movie ``j`` scores ``(x V D V_j^T) / (1 - h_j)``, ``h_j = (V D
V^T)_jj``: EASE with the spectrum past ``r`` left out, exact when ``r`` reaches the rank of
``X``, and one user-vector x movie-vector product to rank.

Its pieces, the rating-weighted inputs and the closed form, also serve the wide path of the
softmax model and the inputs of the softmax DNN.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

from recommender.data.preprocessing import Interactions
from recommender.models.base import Context, Recommender
from recommender.models.settings import Settings

__all__ = ["EASE", "EASESettings", "RatedEASE", "RatedEASESettings", "ease_inputs",
           "ease_weights", "low_rank_ease"]


class EASESettings(Settings):
    """Settings of :class:`EASE`."""

    l2: float = Field(200.0, gt=0, description="L2 weight lambda of the closed form")
    rating_weight: float = Field(0.0, ge=0, description="weight of a rating's distance from "
                                 "the user's mean in the inputs (0: binary inputs)")
    max_items: int = Field(20_000, ge=1, description="most-rated movies modelled by the exact "
                           "form (its item-item matrix is dense: 20,000 movies take 1.6 GB)")
    rank: int = Field(0, ge=0, description="0: the exact closed form; r > 0: EASE of rank r "
                      "over every movie (for catalogues too wide for the dense form)")


class EASE(Recommender):
    """Embarrassingly Shallow Autoencoder (Steck 2019), closed form.

    ``P = (X^T X + lambda I)^-1`` and ``B = I - P diagMat(1 / diag(P))``; a user's scores are
    ``x_u B``. With ``rating_weight = 0`` ``X`` is the binary matrix of the reference row;
    otherwise each rating enters as ``max(1 + rating_weight * (r - user mean), 0.05)``, so a
    movie the user loved pulls its neighbours up more than one they disliked. The item-item
    matrix is dense, so only the ``max_items`` most-rated movies are modelled (others score
    -inf): 20,000 movies take 1.6 GB in float32.
    """

    name = "ease"
    Settings = EASESettings
    folds_in = True
    scores_new_movies = False  # its scores span the train catalogue only
    # Rank 320 over the whole catalogue (the dense form takes 9 GB for 20,000 movies); on
    # u20 NDCG@10 0.2814 against the exact 0.2835 (ease-rated 0.3054 against 0.3050; rank
    # 256: 0.2757 and 0.3033). docs/scale.md has the 25M figures.
    large_data = {"rank": 320}

    def _fit(self, data: Interactions, context: Context) -> None:
        self.inputs = ease_inputs(data.matrix("rating"), self.settings.rating_weight)
        self._kept = None
        if self.settings.rank:
            self.kept = np.arange(data.n_items)
            self.B = None
            self.V, self.D = low_rank_ease(self.inputs, self.settings.l2, self.settings.rank,
                                           self.seed)
            return
        counts = data.item_counts()
        order = np.lexsort((np.arange(data.n_items), -counts))
        self.kept = np.sort(order[: self.settings.max_items])
        self.B = ease_weights(self._kept_inputs(), self.settings.l2)

    def _kept_inputs(self) -> sp.csr_matrix:
        """The input columns of the modelled movies, sliced once (column slicing of a CSR
        matrix is slow, and scoring every user of ml-25m would repeat it per batch)."""
        if self._kept is None:
            every = len(self.kept) == self.inputs.shape[1]
            self._kept = self.inputs if every else self.inputs[:, self.kept].tocsr()
        return self._kept

    def _score(self, user_index):
        if self.B is None:
            return self._scores(self.inputs[user_index])
        part = np.asarray(self._kept_inputs()[user_index] @ self.B)
        if len(self.kept) == self.n_items:
            return part
        scores = np.full((len(user_index), self.n_items), -np.inf, np.float32)
        scores[:, self.kept] = part
        return scores

    def _score_factors(self, user_index: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Of rank ``r``: ``x V D`` against ``V^T / (1 - h)``, the scores of the unseen
        movies (a rated movie's own term is left out, and it is never listed)."""
        if self.B is not None:
            return None
        rows = np.asarray(self.inputs[user_index] @ self.V) * self.D
        return rows.astype(np.float32), np.ascontiguousarray(self.V.T / (1.0 - self._h()))

    def _h(self) -> np.ndarray:
        """``h_j = (V D V^T)_jj``: ``P_jj = (1 - h_j) / lambda``."""
        return np.einsum("jr,jr,r->j", self.V, self.V, self.D)

    def _score_history(self, ratings, movie_ids, user_ids):
        """``x B`` for new rows ``x``, weighted as in training."""
        return self._pick(self._scores(ease_inputs(ratings, self.settings.rating_weight)),
                          movie_ids)

    def explain(self, ratings: sp.csr_matrix, columns: np.ndarray) -> np.ndarray:
        """The rated column ``j`` with the largest ``x_j B[j, i]`` for each column ``i``: the
        movie whose weighted rating pulled ``i`` up most (``-1`` where none did)."""
        none = np.full(len(columns), -1, np.int64)
        row = ease_inputs(sp.csr_matrix(ratings), self.settings.rating_weight)
        if not len(columns) or not row.nnz:
            return none
        kept = self.kept
        pos = np.minimum(np.searchsorted(kept, row.indices), len(kept) - 1)
        ok = kept[pos] == row.indices
        target = np.minimum(np.searchsorted(kept, columns), len(kept) - 1)
        modelled = kept[target] == columns
        if not ok.any():
            return none
        contrib = row.data[ok, None] * self._weights(pos[ok], target)
        best = np.where(contrib.max(axis=0) > 0, row.indices[ok][np.argmax(contrib, axis=0)], -1)
        return np.where(modelled, best, -1)

    def _weights(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``B[rows, cols]`` (positions among the modelled movies)."""
        if self.B is not None:
            return self.B[np.ix_(rows, cols)]
        out = (self.V[rows] * self.D) @ self.V[cols].T / (1.0 - self._h()[cols])
        out[rows[:, None] == cols[None, :]] = 0.0
        return out

    def _scores(self, inputs: sp.csr_matrix) -> np.ndarray:
        """``x B`` for rows ``x`` weighted by :func:`ease_inputs`; movies outside the
        modelled ones score -inf. ``(rows, n_items)`` float32, a new array."""
        if self.B is None:
            h = self._h()
            scores = np.asarray(inputs @ self.V) * self.D @ self.V.T
            scores -= np.asarray(inputs.multiply(h[None, :]).todense())  # B_jj = 0
            return (scores / (1.0 - h)).astype(np.float32)
        if len(self.kept) == self.n_items:
            return np.asarray(inputs @ self.B)
        scores = np.full((inputs.shape[0], self.n_items), -np.inf, np.float32)
        scores[:, self.kept] = np.asarray(inputs[:, self.kept] @ self.B)
        return scores

    def _state(self):
        x = self.inputs
        weights = {"B": self.B} if self.B is not None else {"V": self.V, "D": self.D}
        return {"kept": self.kept, **weights, "x_indptr": x.indptr, "x_indices": x.indices,
                "x_data": x.data}

    def _set_state(self, arrays):
        self.kept, self.B = arrays["kept"], arrays.get("B")
        self.V, self.D = arrays.get("V"), arrays.get("D")
        self.inputs = sp.csr_matrix((arrays["x_data"], arrays["x_indices"], arrays["x_indptr"]),
                                    shape=self.seen.shape)
        self._kept: sp.csr_matrix | None = None


class RatedEASESettings(EASESettings):
    """Settings of :class:`RatedEASE`: EASE's, with the tuned rating weight and l2."""

    l2: float = Field(300.0, gt=0, description="L2 weight lambda of the closed form")
    rating_weight: float = Field(0.5, ge=0, description="weight of a rating's distance from "
                                 "the user's mean in the inputs (0: binary inputs)")


class RatedEASE(EASE):
    """EASE on rating-weighted inputs: a movie the user loved pulls its neighbours up more.

    ``rating_weight`` and ``l2`` were tuned on a validation slice of train
    (``docs/models/ease.md``).
    """

    name = "ease-rated"
    Settings = RatedEASESettings


def ease_inputs(ratings: sp.csr_matrix, rating_weight: float = 0.0) -> sp.csr_matrix:
    """EASE's users x items input: ones, or ``max(1 + rating_weight * (r - user mean), 0.05)``
    per rated movie, so a movie the user loved pulls its neighbours up more than one they
    disliked. Same sparsity as ``ratings`` (every stored rating is >= 0.5)."""
    out = sp.csr_matrix(ratings, dtype=np.float32, copy=True)
    if not rating_weight:
        out.data[:] = 1.0
        return out
    counts = np.diff(out.indptr)
    means = np.asarray(out.sum(axis=1)).ravel() / np.maximum(counts, 1)
    out.data = np.maximum(1.0 + rating_weight * (out.data - np.repeat(means, counts)),
                          0.05).astype(np.float32)
    return out


def ease_weights(inputs: sp.spmatrix, l2: float) -> np.ndarray:
    """Steck's EASE item-item matrix ``B = I - P diagMat(1 / diag(P))``,
    ``P = (X^T X + l2 I)^-1``, with a zero diagonal, from the users x items ``inputs`` X.

    With fewer users than items ``P`` comes from the Woodbury identity,
    ``P = (I - X^T (l2 I + X X^T)^-1 X) / l2``: a users x users inverse instead of an
    items x items one (exact; about 1 s instead of 9 s for ml-latest-small).

    Returns:
        ``(n_items, n_items)`` float32, C-ordered (scoring multiplies by it row-major).
    """
    x = sp.csr_matrix(inputs, dtype=np.float64)
    n_users, n_items = x.shape
    if n_users < n_items:
        k_x = np.asarray(x.T @ _spd_inverse((x @ x.T).toarray(), l2)).T
        inverse = -np.asarray(x.T @ k_x)
        inverse[np.diag_indices_from(inverse)] += 1.0
        inverse /= l2
    else:
        inverse = _spd_inverse((x.T @ x).toarray(), l2)
    weights = inverse / (-np.diag(inverse))
    weights[np.diag_indices_from(weights)] = 0.0
    return np.ascontiguousarray(weights, dtype=np.float32)


def low_rank_ease(inputs: sp.spmatrix, l2: float, rank: int,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """EASE of rank ``rank``: ``(V, D)`` with ``P = (I - V diag(D) V^T) / l2``.

    ``V`` (items x r) are the top right singular vectors of the users x items ``inputs`` X
    (a randomised SVD, float32) and ``D = s^2 / (s^2 + l2)``: ``X^T X`` with the spectrum
    past ``r`` left out, which is exact when ``r`` reaches the rank of ``X`` (``rank`` is cut
    to the smaller side of ``X``). Memory: a few users x (r + 10) float32 blocks.

    Returns:
        ``V`` ``(n_items, r)`` float32 and ``D`` ``(r,)`` float32.
    """
    from sklearn.utils.extmath import randomized_svd

    x = sp.csr_matrix(inputs, dtype=np.float32)
    rank = min(rank, *x.shape)
    if rank == min(x.shape):  # every singular pair: exact, and faster than randomised
        _, s, vt = np.linalg.svd(x.toarray(), full_matrices=False)
    else:
        _, s, vt = randomized_svd(x, rank, n_oversamples=16, n_iter=4, random_state=seed)
    squared = s.astype(np.float64) ** 2
    return (np.ascontiguousarray(vt.T, np.float32),
            (squared / (squared + l2)).astype(np.float32))


def _spd_inverse(gram: np.ndarray, l2: float) -> np.ndarray:
    """``(gram + l2 I)^-1`` for a symmetric positive semi-definite ``gram``, in place.

    Cholesky (LAPACK ``potrf`` then ``potri``): half the work of a general inverse.
    """
    gram[np.diag_indices_from(gram)] += l2
    # Threaded OpenBLAS 0.3.31 (numpy's and scipy's wheels) segfaults in potrf once the matrix
    # reaches 2 GiB (measured: n = 14,000 runs, n = 16,384 crashes on 2 threads; OpenBLAS
    # issue 2562): past that size the factorisation runs on one thread.
    threads = 1 if gram.nbytes >= 2**31 else None
    with threadpool_limits(limits=threads, user_api="blas"):
        factor, info = lapack.dpotrf(gram.T, lower=False, clean=False, overwrite_a=True)
        if info == 0:
            inverse, info = lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: the Gram matrix plus l2 = {l2:g} is not positive "
                                    f"definite (LAPACK info {info}); raise l2")
    # LAPACK saw the transpose (Fortran order) and filled its upper triangle, which is the
    # lower triangle of the C-ordered view: mirror it onto the upper, block by block.
    inverse = inverse.T
    n, block = len(inverse), 2048
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        inverse[:lo, lo:hi] = inverse[lo:hi, :lo].T
        diagonal = inverse[lo:hi, lo:hi]
        diagonal[:] = np.tril(diagonal) + np.tril(diagonal, -1).T
    return inverse
