"""What a reader needs to find their way: the notebooks, the origin systems, the columns.

One place for the facts the index page, the README and ``docs/origins.md`` all state: what
each notebook shows and which models it explains, which write-up each model comes from and
what that write-up reported, and what every column of the comparison means. A test checks
that the README and ``docs/origins.md`` agree with :data:`ORIGINS`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NotebookGuide", "NOTEBOOKS", "Origin", "ORIGINS", "GLOSSARY", "notebook_of",
           "COMPARISON", "ORIGIN_001_REPORTED"]

COMPARISON = "07_model_comparison"


@dataclass(frozen=True)
class NotebookGuide:
    """One notebook: its file stem, title, what it shows in a line, the models it explains."""

    stem: str
    title: str
    description: str
    models: tuple[str, ...] = ()


NOTEBOOKS = (
    NotebookGuide("01_ratings_matrix", "The ratings matrix",
                  "MovieLens as the models see it: rating values, the long tail, user "
                  "activity, sparsity, and the split every notebook shares."),
    NotebookGuide("02_regression_model", "The regression model",
                  "Cinematch's rating model, biased matrix factorisation: its loss, where its "
                  "errors are, its movie map, against the bias baselines.",
                  ("regression", "regression-hybrid", "baseline", "global-mean")),
    NotebookGuide("03_classification_model", "The classification model",
                  "Will a user like a movie? P(like) from the same factorisation: accuracy, "
                  "ROC, calibration, and ranking by P(like).", ("classification",)),
    NotebookGuide("04_softmax_negative_sampling", "Softmax over the catalogue, and negative "
                  "sampling",
                  "The overview's softmax DNN: folding, full against sampled softmax, "
                  "popularity bias, and against matrix factorisation and EASE.",
                  ("softmax-dnn", "softmax")),
    NotebookGuide("05_content_and_cold_start", "Demographic and content-based filtering, and "
                  "cold start",
                  "Weighted-rating charts, 'more like this', and new movies and new users "
                  "scored without refitting, next to LightFM.",
                  ("popularity", "weighted-popularity", "content", "feature-embedding",
                   "tag-text")),
    NotebookGuide("06_multitask_two_tower", "The multitask two-tower model",
                  "One model for ratings and retrieval: the origin system's per-epoch table, "
                  "the task trade-off, and two-stage ranking.", ("multitask",)),
    NotebookGuide(COMPARISON, "Model comparison",
                  "Every registered model on one split with 95% intervals and paired tests, "
                  "across seeds, and which model to use for which job.", ("ease", "ease-rated")),
)


def notebook_of(model: str) -> str:
    """The notebook that explains ``model`` (the comparison, for a model no notebook does)."""
    return next((n.stem for n in NOTEBOOKS if model in n.models), COMPARISON)


@dataclass(frozen=True)
class Origin:
    """One of the five write-ups the project grew from."""

    number: str
    name: str
    built: str
    models: tuple[str, ...]
    notebooks: tuple[str, ...]
    reported: str


ORIGINS = (
    Origin("000", "the feature-embedding recommender",
           "movie embeddings computed from the movies' attributes, users as the movies they "
           "watched, a network for P(watched) and a density method; new movies and users "
           "without retraining",
           ("feature-embedding",), ("05_content_and_cold_start",),
           "no figure (its metrics section breaks off)"),
    Origin("001", "the multitask two-tower recommender (TFRS)",
           "user and movie towers with a rating head and a retrieval task, trained jointly "
           "with TensorFlow Recommenders",
           ("multitask",), ("06_multitask_two_tower",),
           "RMSE 0.8537 and top-100 accuracy 62.67% after 15 epochs, on its own 35,000 / "
           "8,188 split"),
    Origin("002", "MovieRecSys (tag texts)",
           "users and movies as strings of tags through BERT token embeddings and a linear "
           "projection, trained with a cosine embedding loss",
           ("tag-text",), ("05_content_and_cold_start",),
           "no figure (12,000 balanced pairs, validation only)"),
    Origin("003", "Cinematch",
           "a ratings matrix of movies x users, a regression model of the rating and a "
           "classification model of like / not like, in a custom TensorFlow training loop",
           ("regression", "regression-hybrid", "classification"),
           ("02_regression_model", "03_classification_model"), "no figure"),
    Origin("004", "the recommender-systems overview",
           "demographic filtering (a weighted-rating chart), content-based filtering, and a "
           "softmax DNN over the catalogue with negative sampling",
           ("popularity", "weighted-popularity", "content", "softmax", "softmax-dnn"),
           ("04_softmax_negative_sampling", "05_content_and_cold_start"),
           "no figure (a design essay)"),
)

# The multitask origin system's per-epoch table as its write-up gives it (TFRS, its own 35,000
# / 8,188 split of 43,188 ratings over 42,373 titles): epoch -> (RMSE, top-100 accuracy).
ORIGIN_001_REPORTED = {1: (1.5053, 0.1727), 5: (0.9536, 0.4720), 10: (0.8932, 0.5688),
                       15: (0.8537, 0.6267)}

# The comparison's columns, as the index and notebook 07 name them.
GLOSSARY = {
    "RMSE": "root mean squared error of the predicted rating over every test rating, in "
            "stars (lower is better); rating models only",
    "NDCG@10": "normalised discounted cumulative gain of each user's 10-movie list: "
               "relevant movies count more the higher they rank (0 to 1)",
    "P@10": "precision: share of the 10 recommended movies that are relevant",
    "R@10": "recall: share of the user's relevant test movies that made the list",
    "HR@10": "hit rate: share of users with at least one relevant movie in their list",
    "cov@10": "coverage: share of the train catalogue recommended to at least one user",
    "top-1% share": "share of all list slots taken by the 1% most rated movies (popularity "
                    "bias: 1 means blockbusters only)",
    "NDCG p": "p-value of a paired Wilcoxon signed-rank test of per-user NDCG@10 against the "
              "best baseline: how often chance alone would give a gap this large",
    "RMSE p": "p-value of a paired t-test of per-rating squared error against the best "
              "rating baseline",
    "fit s": "seconds to fit on this machine (a model reused from an earlier notebook shows "
             "the time recorded then)",
    "[low, high]": "the 95% bootstrap interval over users",
    "relevant": "a test movie the user rated 4 or more that occurs in train; candidates are "
                "the train movies the user has not rated",
    "–": "does not apply: a ranking-only model has no RMSE, a baseline is not tested "
         "against itself",
}
