"""Fixtures of the serving tests: the synthetic set served from memory, from a folder, and a
real server process. Skips the whole folder when the serve extra is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi",
                    reason="the serve extra is not installed (pip install -e '.[serve]')")

from fastapi.testclient import TestClient  # noqa: E402

from recommender.models import make_model  # noqa: E402
from recommender.serve import RatingsStore, Service, create_app  # noqa: E402


@pytest.fixture(scope="session")
def fitted(_synthetic_session):
    """``(data, ease-rated, baseline)`` fitted once on the synthetic set."""
    data = _synthetic_session
    return (data, make_model("ease-rated").fit(data.ratings),
            make_model("baseline").fit(data.ratings))


@pytest.fixture
def service(fitted, tmp_path) -> Service:
    data, lists, ratings = fitted
    store = RatingsStore(tmp_path / "store.sqlite3", first_user_id=int(data.ratings.userId.max()))
    yield Service(data, lists, ratings, store)
    store.close()


@pytest.fixture
def client(service) -> TestClient:
    with TestClient(create_app(service=service)) as c:
        yield c


@pytest.fixture(scope="session")
def dataset_folder(_synthetic_session, tmp_path_factory) -> Path:
    """The synthetic set written as a MovieLens csv release (for server processes)."""
    folder = tmp_path_factory.mktemp("synthetic-release")
    data = _synthetic_session
    data.ratings.to_csv(folder / "ratings.csv", index=False)
    movies = data.movies.assign(genres=data.movies.genres.map("|".join))
    movies[["movieId", "title", "genres"]].to_csv(folder / "movies.csv", index=False)
    return folder
