"""The ratings store on SQLite (WAL, transactions) and on a real PostgreSQL server."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from recommender.serve import Service, create_app
from recommender.serve.store import RatingsStore, database_url
from serving import LOCAL, bearer


def test_database_urls():
    assert database_url("data/x.sqlite3") == "sqlite:///data/x.sqlite3"
    assert database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("sqlite:///a.db") == "sqlite:///a.db"
    with pytest.raises(ValueError, match="unsupported database"):
        RatingsStore("mysql://u@h/db")


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path):
    s = RatingsStore(tmp_path / "deep" / "store.sqlite3")
    with s.engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(sa.text("PRAGMA synchronous")).scalar() == 2  # FULL
    s.close()


def test_users_and_ratings_round_trip(store):
    first = store.create_user("ana")
    assert first == 1001 and store.create_user(None) == 1002
    assert store.has_user(first) and not store.has_user(5)
    store.put_ratings(first, {10: 4.0, 11: 2.5})
    store.put_ratings(first, {10: 1.5})
    assert [(r.movie_id, r.rating) for r in store.ratings(first)] == [(10, 1.5), (11, 2.5)]
    assert store.counts() == {"users": 2, "ratings": 2}
    assert store.ratings(1002) == []


def test_concurrent_writers_lose_nothing(store):
    def sign_up_and_rate(k: int) -> tuple[int, dict[int, float]]:
        user = store.create_user(f"user {k}")
        ratings = {m: 0.5 + (k + m) % 10 / 2 for m in range(k % 7 + 1)}
        store.put_ratings(user, ratings)
        return user, ratings

    with ThreadPoolExecutor(8) as pool:
        acknowledged = list(pool.map(sign_up_and_rate, range(60)))
    users = [u for u, _ in acknowledged]
    assert len(set(users)) == 60 and min(users) == 1001
    stored = {(u, m): r for u, m, r in store.all_ratings()}
    expected = {(u, m): r for u, ratings in acknowledged for m, r in ratings.items()}
    assert stored == expected


def test_a_failed_transaction_writes_nothing(store):
    user = store.create_user()
    with pytest.raises(Exception):  # the second row overflows a 64-bit integer
        store.put_ratings(user, {1: 4.0, 2**70: 3.0})
    assert store.ratings(user) == []


def test_the_api_runs_on_either_store(store, fitted):
    data, lists, ratings = fitted
    with TestClient(create_app(service=Service(data, lists, ratings, store)),
                    base_url=LOCAL) as c:
        first = {"ratings": [{"movie_id": 5, "rating": 5.0}]}
        created = c.post("/users", json=first).json()
        user = created["user_id"]
        before = c.get(f"/recommend/{user}").json()["items"]
        assert c.put(f"/users/{user}/ratings", headers=bearer(created["secret"]), json={
            "ratings": [{"movie_id": before[0]["movie_id"], "rating": 4.5}]}).status_code == 200
        after = c.get(f"/recommend/{user}").json()["items"]
        assert before[0]["movie_id"] not in {i["movie_id"] for i in after}
        assert c.get("/health").json()["store"]["backend"] == store.dialect
        assert c.get(f"/users/{user}/ratings").json()["count"] == 2


def test_users_keep_a_secret_hash_and_deleted_ids_stay_taken(store):
    user = store.create_user("ana", secret_hash="ab" * 32, ratings={3: 4.0, 4: 0.5})
    assert store.secret_hash(user) == "ab" * 32 and store.secret_hash(5) is None
    assert store.delete_ratings(user, [4, 99]) == 1
    assert [(r.movie_id, r.rating) for r in store.ratings(user)] == [(3, 4.0)]
    assert store.delete_user(user) and not store.delete_user(user)
    assert not store.has_user(user) and store.secret_hash(user) is None
    assert store.ratings(user) == [] and store.counts() == {"users": 0, "ratings": 0}
    assert store.create_user() == user + 1


def test_a_store_of_an_earlier_version_gains_the_new_columns(tmp_path):
    path = tmp_path / "old.sqlite3"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE users (user_id BIGINT PRIMARY KEY, name VARCHAR(64),"
                             " created_at FLOAT NOT NULL)"))
        conn.execute(sa.text("INSERT INTO users VALUES (1001, 'old', 0)"))
    engine.dispose()
    s = RatingsStore(path, first_user_id=1000)
    assert s.has_user(1001) and s.secret_hash(1001) is None  # only the operator writes it
    assert s.create_user(secret_hash="cd" * 32) == 1002
    s.close()
