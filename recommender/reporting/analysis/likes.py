"""Analyses of a like / dislike classifier (Cinematch's classification model, notebook 03):
the class balance its loss corrects for, its classification quality and its calibration.

A like is a rating at or above the model's ``threshold`` setting; the model answers P(like)
through ``predict_proba`` (:class:`~recommender.models.factorization.Classification`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from recommender import metrics
from recommender.models import Recommender

__all__ = ["positive_weight", "classification_report", "calibration"]


def positive_weight(liked) -> float:
    """The weight of a like in the balanced loss: dislikes / likes, so both classes weigh the
    same (``liked``: booleans or 0/1 labels of the training pairs)."""
    liked = np.asarray(liked, dtype=bool)
    return float((~liked).sum() / liked.sum())


def _labels_and_probabilities(model: Recommender,
                              test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    labels = (test["rating"].to_numpy() >= model.settings.threshold).astype(int)
    return labels, model.predict_proba(test["userId"].to_numpy(), test["movieId"].to_numpy())


def classification_report(model: Recommender, test: pd.DataFrame,
                          threshold: float = 0.5) -> dict:
    """Accuracy, precision, recall, F1, ROC-AUC and log loss of P(like) on a test table.

    Args:
        model: a fitted classifier (``predict_proba`` and a ``threshold`` setting).
        test: ratings table; like = rating >= the model's ``threshold`` setting.
        threshold: probability at or above which a pair is predicted liked.

    Returns:
        :func:`recommender.metrics.classification_metrics` of the test pairs.
    """
    labels, prob = _labels_and_probabilities(model, test)
    return metrics.classification_metrics(labels, prob, threshold)


def calibration(model: Recommender, test: pd.DataFrame, n_bins: int = 10,
                strategy: Literal["quantile", "uniform"] = "quantile") -> pd.DataFrame:
    """Calibration curve of P(like) on a test table, ready to plot.

    Args:
        model: a fitted classifier (``predict_proba`` and a ``threshold`` setting).
        test: ratings table; like = rating >= the model's ``threshold`` setting.
        n_bins: number of probability bins.
        strategy: ``"quantile"`` (equal-count bins) or ``"uniform"`` (equal-width bins).

    Returns:
        One row per non-empty bin: ``predicted`` (mean P(like)) and ``observed`` (share liked).
    """
    from sklearn.calibration import calibration_curve

    labels, prob = _labels_and_probabilities(model, test)
    observed, predicted = calibration_curve(labels, prob, n_bins=n_bins, strategy=strategy)
    return pd.DataFrame({"predicted": predicted, "observed": observed})
