"""Fixtures of the serving tests: the synthetic set served from memory, from a folder, and a
real server process. Skips the whole folder when the serve extra is not installed."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("fastapi",
                    reason="the serve extra is not installed (pip install -e '.[serve]')")

from fastapi.testclient import TestClient  # noqa: E402

import sqlalchemy as sa  # noqa: E402

from recommender.models import make_model  # noqa: E402
from recommender.serve import RatingsStore, Service, create_app  # noqa: E402
from recommender.serve.app import Policy  # noqa: E402
from recommender.serve.store import database_url  # noqa: E402
from serving import LOCAL, OPERATOR_TOKEN, free_port  # noqa: E402


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
    """The app as on loopback (reads open), with an operator token (``serving.OPERATOR``)."""
    with TestClient(create_app(service=service, policy=Policy(operator_token=OPERATOR_TOKEN)),
                    base_url=LOCAL) as c:
        yield c


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """An empty ratings store on SQLite, then on a real PostgreSQL server."""
    if request.param == "sqlite":
        target = str(tmp_path / "store.sqlite3")
    else:
        target = request.getfixturevalue("postgres_url")
        engine = sa.create_engine(database_url(target))
        with engine.begin() as conn:  # each test starts from an empty store
            conn.execute(sa.text("DROP TABLE IF EXISTS ratings, users"))
        engine.dispose()
    s = RatingsStore(target, first_user_id=1000)
    yield s
    s.close()


@pytest.fixture(scope="session")
def dataset_folder(_synthetic_session, tmp_path_factory) -> Path:
    """The synthetic set written as a MovieLens csv release (for server processes)."""
    folder = tmp_path_factory.mktemp("synthetic-release")
    data = _synthetic_session
    data.ratings.to_csv(folder / "ratings.csv", index=False)
    movies = data.movies.assign(genres=data.movies.genres.map("|".join))
    movies[["movieId", "title", "genres"]].to_csv(folder / "movies.csv", index=False)
    return folder


def _postgres_bin() -> str | None:
    found = shutil.which("pg_ctl")
    if found:
        return os.path.dirname(os.path.realpath(found))
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(candidates[-1]) if candidates else None


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL cluster on a free loopback port (Debian's ``postgresql``);
    skips, saying why, when there is none to start."""
    if os.environ.get("RECOMMENDER_TEST_POSTGRES_URL"):
        yield os.environ["RECOMMENDER_TEST_POSTGRES_URL"]
        return
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; or set "
                    "RECOMMENDER_TEST_POSTGRES_URL)")
    run_as: list[str] = []
    folder = tempfile.mkdtemp(prefix="serve-pg-")
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run PostgreSQL")
        os.chown(folder, account.pw_uid, account.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(folder, "data"), free_port()
    subprocess.run(run_as + [f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "postgres",
                             "--no-sync"], check=True, capture_output=True)
    options = f"-k {folder} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(run_as + [f"{bindir}/pg_ctl", "-D", data, "-o", options, "-w", "-l",
                             os.path.join(folder, "log"), "start"], check=True,
                   capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(run_as + [f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
