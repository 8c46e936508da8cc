"""Movie-recommendation analysis toolkit: MovieLens data, models, metrics, reports."""

import os

# TensorFlow's C++ start-up chatter drowns notebooks and CLI output; real errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
