"""The benchmark protocols: evaluate a model on a split, cold start, comparisons with statistics.

Knows models only through the public :class:`~recommender.models.Recommender` interface and
nothing of notebooks or reports.
"""

from recommender.evaluation.protocol import (QUICK_SETTINGS, Evaluation, evaluate,
                                             fit_and_evaluate, quick_settings,
                                             relevance_matrix, scales, settings_for)
from recommender.evaluation.cold_start import (LIGHTFM_REFERENCE, RandomOrder,
                                               cold_start_table, item_cold_start,
                                               user_cold_start)
from recommender.evaluation.comparison import BASELINES, Comparison, compare
from recommender.evaluation.retrieval import top_k_accuracy

__all__ = ["QUICK_SETTINGS", "Evaluation", "evaluate", "fit_and_evaluate", "quick_settings",
           "relevance_matrix", "scales", "settings_for", "LIGHTFM_REFERENCE", "RandomOrder",
           "cold_start_table", "item_cold_start", "user_cold_start", "BASELINES", "Comparison",
           "compare", "top_k_accuracy"]
