"""Ratings data: MovieLens releases, downloads, validation, synthetic sets, splits, encodings.

The bottom data layer: it knows nothing of models. Submodules import each other directly;
this package only re-exports the names people use most.
"""

from recommender.data.validation import RATING_COLUMNS, read_ratings, validate_ratings
from recommender.data.releases import RELEASES, MovieLens, Release, load_movielens
from recommender.data.preprocessing import IdEncoder, Interactions
from recommender.data.synthetic import make_synthetic
from recommender.data.experiment import Experiment, load_experiment

__all__ = ["RATING_COLUMNS", "read_ratings", "validate_ratings", "RELEASES", "MovieLens",
           "Release", "load_movielens", "IdEncoder", "Interactions", "make_synthetic",
           "Experiment", "load_experiment"]
