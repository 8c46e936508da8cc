"""DLAE, the denoising linear autoencoder (Steck 2020): EASE whose L2 penalty is dropout's.

Training a full-rank linear autoencoder ``B`` on inputs with each entry dropped with
probability ``p`` (and the others scaled by ``1 / (1 - p)``) is, in expectation, least squares
with the penalty ``|Lambda^(1/2) B|^2``, ``Lambda = l2 I + p / (1 - p) diagMat(diag(X^T X))``:
a movie's weights are held back in proportion to how often it was rated, which is what stops
the autoencoder from learning the identity. In closed form, with ``P = (X^T X + Lambda)^-1``,

    DLAE:   B = I - P Lambda                    (the diagonal is free)
    EDLAE:  B = I - P diagMat(1 / diag(P))      (emphasised dropout: zero diagonal, as EASE)

(Steck, "Autoencoders that don't overfit towards the identity", NeurIPS 2020). The inputs are
EASE's rating-weighted ones (:func:`recommender.models.ease.ease_inputs`); scoring, folding in,
``explain`` and the artifact are EASE's. Settings and measurements: ``docs/models/dlae.md``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from recommender.data.preprocessing import Interactions
from recommender.models.base import Context
from recommender.models.ease import RatedEASE, ease_inputs
from recommender.models.settings import Settings

__all__ = ["DLAE", "DLAESettings", "dlae_weights"]


class DLAESettings(Settings):
    """Settings of :class:`DLAE` (tuned on validation slices of train: docs/models/dlae.md)."""

    l2: float = Field(300.0, gt=0, description="L2 weight lambda added to every movie")
    dropout: float = Field(0.33, ge=0, lt=1, description="input dropout p: a movie's penalty "
                           "grows by p / (1 - p) times its squared input norm")
    rating_weight: float = Field(0.5, ge=0, description="weight of a rating's distance from "
                                 "the user's mean in the inputs (0: binary inputs)")
    zero_diagonal: bool = Field(False, description="emphasised dropout (EDLAE): constrain the "
                                "diagonal to zero as EASE does, instead of DLAE's free one")
    max_items: int = Field(20_000, ge=1, description="most-rated movies modelled (the "
                           "item-item matrix is dense: 20,000 movies take 1.6 GB)")


class DLAE(RatedEASE):
    """Denoising linear autoencoder (Steck 2020): EASE with dropout's per-movie penalty.

    ``B = I - P Lambda``, ``P = (X^T X + Lambda)^-1``, ``Lambda = l2 I + p / (1 - p)
    diagMat(diag(X^T X))`` on EASE's rating-weighted inputs; ``zero_diagonal`` gives EDLAE.
    """

    name = "dlae"
    Settings = DLAESettings
    # Dense item-item like exact EASE, without EASE's low-rank form (the per-movie penalty
    # does not fit its SVD); not measured at MovieLens-25M scale.
    large_data = None

    def _fit(self, data: Interactions, context: Context) -> None:
        s = self.settings
        self.inputs = ease_inputs(data.matrix("rating"), s.rating_weight)
        self._kept = None
        counts = data.item_counts()
        self.kept = np.sort(np.lexsort((np.arange(data.n_items), -counts))[: s.max_items])
        self.B = dlae_weights(self._kept_inputs(), s.l2, s.dropout, s.zero_diagonal)


def dlae_weights(inputs: sp.spmatrix, l2: float, dropout: float,
                 zero_diagonal: bool = False) -> np.ndarray:
    """The item-item matrix of DLAE (``B = I - P Lambda``) or, with ``zero_diagonal``, of
    EDLAE (``B = I - P diagMat(1 / diag(P))``), ``P = (X^T X + Lambda)^-1``,
    ``Lambda = l2 I + dropout / (1 - dropout) diagMat(diag(X^T X))``.

    With fewer users than items ``P`` comes from the Woodbury identity with a diagonal,
    ``P = L^-1 - A^T (I + X A^T)^-1 A``, ``A = X L^-1``: a users x users solve instead of an
    items x items inverse.

    Returns:
        ``(n_items, n_items)`` float32, C-ordered. Memory: one dense items x items float64
        matrix besides it (0.5 GB for 7,700 movies).
    """
    x = sp.csr_matrix(inputs, dtype=np.float64)
    n_users, n_items = x.shape
    penalty = l2 + dropout / (1.0 - dropout) * np.asarray(x.multiply(x).sum(axis=0)).ravel()
    if n_users < n_items:
        a = x @ sp.diags(1.0 / penalty)
        inner = (a @ x.T).toarray()
        inner[np.diag_indices_from(inner)] += 1.0
        inverse = -np.asarray(a.T @ np.linalg.solve(inner, a.toarray()))
        inverse[np.diag_indices_from(inverse)] += 1.0 / penalty
    else:
        gram = (x.T @ x).toarray()
        gram[np.diag_indices_from(gram)] += penalty
        inverse = np.linalg.inv(gram)
    # in place: the dense items x items float64 matrix is the peak of the fit's memory
    inverse /= -np.diag(inverse).copy() if zero_diagonal else -1.0 / penalty
    inverse[np.diag_indices_from(inverse)] = 0.0 if zero_diagonal else inverse.diagonal() + 1.0
    return np.ascontiguousarray(inverse, dtype=np.float32)
