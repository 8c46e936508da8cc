"""The model registry: every model of the project, reachable by name.

Names map to ``module:Class`` so that TensorFlow is imported only when a TensorFlow model is
asked for. A new model is one small module plus one line here.
"""

from __future__ import annotations

import importlib

from recommender.models.base import Context, Recommender

__all__ = ["MODELS", "Recommender", "Context", "model_class", "make_model", "load_model"]

MODELS: dict[str, str] = {
    "global-mean": "recommender.models.baselines:GlobalMean",
    "baseline": "recommender.models.baselines:Biases",
    "popularity": "recommender.models.baselines:Popularity",
    "ease": "recommender.models.baselines:EASE",
    "ease-rated": "recommender.models.baselines:RatedEASE",
    "regression": "recommender.models.factorization:Regression",
    "regression-hybrid": "recommender.models.factorization:HybridRegression",
    "classification": "recommender.models.factorization:Classification",
    "softmax": "recommender.models.softmax:Softmax",
    "softmax-dnn": "recommender.models.softmax_dnn:SoftmaxDNN",
}


def model_class(name: str) -> type[Recommender]:
    """The class registered under ``name``."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    module, cls = MODELS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_model(name: str, seed: int = 0, **params) -> Recommender:
    """A new, unfitted model with the shipped (tuned) defaults, overridden by ``params``."""
    return model_class(name)(seed=seed, **params)


def load_model(path) -> Recommender:
    """Load any saved model from its artifact folder."""
    return Recommender.load(path)
