"""The model registry: every model of the project, reachable by name.

Names map to ``module:Class`` so that TensorFlow is imported only when a TensorFlow model is
asked for. A new model is one small module plus one line here (``docs/adding-a-model.md``).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from pathlib import Path

from recommender.core.errors import UnknownModel
from recommender.models.artifacts import read_artifact
from recommender.models.base import Context, Recommender
from recommender.models.settings import Settings

__all__ = ["MODELS", "Recommender", "Context", "Settings", "model_class", "make_model",
           "load_model", "model_summary"]

MODELS: dict[str, str] = {
    "global-mean": "recommender.models.baselines:GlobalMean",
    "baseline": "recommender.models.baselines:Biases",
    "popularity": "recommender.models.baselines:Popularity",
    "ease": "recommender.models.ease:EASE",
    "ease-rated": "recommender.models.ease:RatedEASE",
    "dlae": "recommender.models.dlae:DLAE",
    "regression": "recommender.models.factorization:Regression",
    "regression-hybrid": "recommender.models.factorization:HybridRegression",
    "classification": "recommender.models.factorization:Classification",
    "softmax": "recommender.models.softmax:Softmax",
    "weighted-popularity": "recommender.models.demographic:WeightedPopularity",
    "content": "recommender.models.content:Content",
    "content-ridge": "recommender.models.content_ridge:ContentRidge",
    "feature-embedding": "recommender.models.feature_embedding:FeatureEmbedding",
    "tag-text": "recommender.models.tag_text:TagText",
    "multitask": "recommender.models.multitask:MultiTask",
    "softmax-dnn": "recommender.models.softmax_dnn:SoftmaxDNN",
    "bpmf": "recommender.models.bpmf:BPMF",
    "neighbourhood": "recommender.models.neighbourhood:Neighbourhood",
    "autorec": "recommender.models.autorec:AutoRec",
    "recvae": "recommender.models.recvae:RecVAE",
    "time-biases": "recommender.models.time_biases:TimeBiases",
    "blend": "recommender.models.blend:Blend",
}


def _entry(name: str) -> tuple[str, str]:
    if name not in MODELS:
        raise UnknownModel(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    module, cls = MODELS[name].split(":")
    return module, cls


def model_class(name: str) -> type[Recommender]:
    """The class registered under ``name`` (imports its module, TensorFlow included)."""
    module, cls = _entry(name)
    return getattr(importlib.import_module(module), cls)


def make_model(name: str, seed: int = 0, **settings) -> Recommender:
    """A new, unfitted model with the shipped (tuned) defaults, overridden by ``settings``."""
    return model_class(name)(seed=seed, **settings)


def load_model(path) -> Recommender:
    """Load any saved model from its artifact folder (see :meth:`Recommender.save`)."""
    name, settings, arrays, meta = read_artifact(path)
    return model_class(name).from_artifact(settings, arrays, meta)


def model_summary(name: str) -> tuple[str, bool]:
    """The first docstring line of model ``name`` and whether it predicts ratings.

    Read from the module's source when the module is not loaded yet, so that listing the
    models does not import TensorFlow (``recommender models`` answers in a fraction of a
    second). Class attributes are looked up through base classes defined in the same module;
    anything else falls back to :class:`Recommender`'s.
    """
    module, cls = _entry(name)
    if module in sys.modules:
        found = getattr(sys.modules[module], cls)
        return (found.__doc__ or "").strip().splitlines()[0], found.predicts_ratings
    tree = ast.parse(Path(importlib.util.find_spec(module).origin).read_text(encoding="utf-8"))
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}

    def lookup(class_name: str, attribute: str):
        node = classes.get(class_name)
        if node is None:
            return getattr(Recommender, attribute)
        for stmt in node.body:
            targets = (stmt.targets if isinstance(stmt, ast.Assign)
                       else [stmt.target] if isinstance(stmt, ast.AnnAssign) else [])
            if any(isinstance(t, ast.Name) and t.id == attribute for t in targets):
                return ast.literal_eval(stmt.value)
        bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
        return lookup(bases[0], attribute) if bases else getattr(Recommender, attribute)

    doc = (ast.get_docstring(classes[cls]) or "").strip().splitlines()[0]
    return doc, bool(lookup(cls, "predicts_ratings"))
