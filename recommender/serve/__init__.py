"""Serving: the models behind a REST API, a web page and a ratings database.

As the multitask two-tower recommender (origin 001) and Cinematch (origin 003) served theirs
with FastAPI: ``recommender serve`` (or :func:`create_app`) loads saved models or fits the
quick defaults, answers from memory, and keeps users and ratings added through the API in
SQLite (default) or PostgreSQL. The app (:mod:`~recommender.serve.app`, its routes and
middleware) reads the :class:`Service`, which uses only the public ``Recommender`` interface;
:mod:`~recommender.serve.server` runs the app. Needs the optional ``serve`` extra:
``pip install -e ".[serve]"``.
"""

from recommender.serve.app import create_app
from recommender.serve.service import ServeConfig, Service
from recommender.serve.store import RatingsStore

__all__ = ["create_app", "ServeConfig", "Service", "RatingsStore"]
