"""Shared fixtures: a small synthetic MovieLens, and the shared real data when present.

Tests must pass offline and without ``../shared``: real-data tests take ``shared_data``,
which skips when the folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from recommender.data.releases import MovieLens
from recommender.data.synthetic import make_synthetic

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

if SHARED_DATA.is_dir():
    os.environ.setdefault("RECOMMENDER_DATA", str(SHARED_DATA))


@pytest.fixture(scope="session")
def _synthetic_session() -> MovieLens:
    return make_synthetic(n_users=300, n_movies=400, n_ratings=15_000, rank=4, n_genres=8,
                          seed=0)


@pytest.fixture
def synthetic_small(_synthetic_session: MovieLens):
    """A 15,000-rating synthetic set, built once; fails the test that modifies it."""
    before = pd.util.hash_pandas_object(_synthetic_session.ratings).sum()
    yield _synthetic_session
    after = pd.util.hash_pandas_object(_synthetic_session.ratings).sum()
    assert before == after, "a test modified the shared synthetic_small ratings"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (one folder per release); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_benchmarks(shared_data: Path) -> Path:
    """``../shared/benchmarks`` (the fixed splits); skips the test when it is absent."""
    folder = shared_data.parent / "benchmarks"
    if not folder.is_dir():
        pytest.skip(f"shared benchmarks not found at {folder}")
    return folder
