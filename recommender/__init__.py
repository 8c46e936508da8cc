"""Movie-recommendation analysis toolkit: MovieLens data, models, metrics, reports."""

from recommender.core import quiet

# TensorFlow is imported only where a model needs it, and then without its start-up log.
quiet.install()

__version__ = "0.1.0"
