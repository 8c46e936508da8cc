"""Each rule of a server facing the public, one test each, on SQLite and PostgreSQL where the
store takes part: per-user secrets, the operator token, private reads, the Host allow-list,
security headers, HEAD, diagnostics, rate limits, live and ready, work off the event loop."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from recommender.core.errors import UsageError
from recommender.serve import Service, create_app
from recommender.serve.app import Policy
from recommender.serve.auth import operator_token
from recommender.serve.middleware import SECURITY_HEADERS, Limits
from recommender.serve.routes import Batched
from recommender.serve.server import is_private, limits
from serving import LOCAL, OPERATOR, OPERATOR_TOKEN, bearer
from test_serve_security import PUBLIC, new_user, public_app, ratings_of


@pytest.fixture
def public(store, fitted):
    data, lists, ratings = fitted
    with TestClient(public_app(Service(data, lists, ratings, store)), base_url=PUBLIC) as c:
        yield c


@pytest.fixture
def local(store, fitted):
    """A loopback server (reads open) over the same kinds of store."""
    data, lists, ratings = fitted
    app = create_app(service=Service(data, lists, ratings, store),
                     policy=Policy(operator_token=OPERATOR_TOKEN))
    with TestClient(app, base_url=LOCAL) as c:
        yield c


def test_a_new_user_gets_a_secret_once_and_the_store_keeps_only_its_hash(public, store):
    created = public.post("/users", json={"name": "ana"}).json()
    user, secret = created["user_id"], created["secret"]
    assert len(secret) >= 43
    with store.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM users WHERE user_id = :u"), {"u": user}
                           ).mappings().one()
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(dict(row))
    mine = public.get(f"/users/{user}/ratings", headers=bearer(secret)).json()
    assert "secret" not in mine and secret not in public.get("/health").text


def test_the_owner_writes_changes_removes_and_deletes_with_the_secret(public):
    user, key = new_user(public, ((5, 4.0), (7, 2.0)))
    lower = {"Authorization": "bearer " + key["Authorization"].split()[1]}  # any case
    assert public.put(f"/users/{user}/ratings", headers=lower, json={"ratings": [
        {"movie_id": 7, "rating": 3.5}, {"movie_id": 9, "rating": 5}]}).status_code == 200
    assert ratings_of(public, user) == {5: 4.0, 7: 3.5, 9: 5.0}
    assert public.delete(f"/users/{user}/ratings/7", headers=key).json()["movie_id"] == 7
    assert public.delete(f"/users/{user}/ratings/7", headers=key).status_code == 404
    assert ratings_of(public, user) == {5: 4.0, 9: 5.0}
    assert public.delete(f"/users/{user}", headers=key).json()["user_deleted"] is True
    assert public.get(f"/users/{user}/ratings", headers=OPERATOR).status_code == 404
    assert public.put(f"/users/{user}/ratings", headers=key, json={"ratings": []}
                      ).status_code == 401
    again, _ = new_user(public)
    assert again > user  # a deleted user's id is never given again


def test_dataset_users_are_read_only_but_for_the_operator(public, fitted):
    data = fitted[0]
    first = data.ratings[data.ratings.userId == 4].sort_values("movieId")
    movie = int(first.movieId.iloc[0])
    _, key = new_user(public)
    body = {"ratings": [{"movie_id": movie, "rating": 0.5}]}
    assert public.put("/users/4/ratings", json=body).status_code == 401
    assert public.put("/users/4/ratings", json=body, headers=key).status_code == 403
    assert public.put("/users/4/ratings", json=body, headers=OPERATOR).status_code == 200
    assert ratings_of(public, 4)[movie] == 0.5
    # the operator removes a dataset rating: it leaves the user's ratings and may come back
    assert public.delete(f"/users/4/ratings/{movie}", headers=OPERATOR).status_code == 200
    assert movie not in ratings_of(public, 4)
    assert len(ratings_of(public, 4)) == len(first) - 1
    assert public.delete("/users/4", headers=OPERATOR).status_code == 422  # not deletable


def test_reads_are_open_on_loopback_and_private_beyond(public, local):
    for client in (public, local):
        user, key = new_user(client)
        for path in (f"/users/{user}/ratings", f"/recommend/{user}", f"/predict/{user}/5",
                     f"/movies/5/similar?user={user}", "/users/1/ratings", "/recommend/1"):
            anonymous = client.get(path)
            assert anonymous.status_code == (401 if client is public else 200), path
            if not path.endswith("/1/ratings") and not path.endswith("/recommend/1"):
                assert client.get(path, headers=key).status_code == 200, path
            assert client.get(path, headers=OPERATOR).status_code == 200, path
        assert client.put(f"/users/{user}/ratings", json={"ratings": []}).status_code == 401
    assert public.get("/health").json()["private_reads"] is True
    assert local.get("/health").json()["private_reads"] is False


def test_more_like_this_leaves_out_what_the_user_rated(local):
    plain = [m["movie_id"] for m in local.get("/movies/5/similar?top_n=5").json()["similar"]]
    user, _ = new_user(local, ((plain[0], 4.0), (plain[2], 1.0)))
    mine = [m["movie_id"] for m in
            local.get(f"/movies/5/similar?top_n=5&user={user}").json()["similar"]]
    assert plain[0] not in mine and plain[2] not in mine and len(mine) == 5
    assert mine[:2] == [plain[1], plain[3]]


def test_reasons_name_only_movies_the_user_liked(local):
    ratings = [(m, 5.0 if m % 2 else 1.0) for m in range(1, 41)]
    user, _ = new_user(local, ratings)
    liked = {m for m, r in ratings if r == 5.0}
    items = local.get(f"/recommend/{user}?top_n=20").json()["items"]
    named = [i["because_movie_id"] for i in items if i["because_movie_id"] is not None]
    assert named and set(named) <= liked
    assert all("/5" not in i["reason"] or " 5/5" in i["reason"] for i in items)
    disliker, _ = new_user(local, [(m, 1.0) for m in range(1, 11)])
    items = local.get(f"/recommend/{disliker}").json()["items"]
    assert all(i["because_movie_id"] is None for i in items)
    assert all(i["reason"] == "ranked by ease-rated" for i in items)


def test_only_the_given_host_names_are_answered(service):
    with TestClient(create_app(service=service), base_url=LOCAL) as c:
        for host in ("localhost", "localhost:8000", "127.0.0.1:1", "[::1]:8000", "[::1]"):
            assert c.get("/health/live", headers={"Host": host}).status_code == 200, host
        for host in ("evil.example", "127.0.0.2", "localhost.evil.example", "::1", ""):
            answer = c.get("/health/live", headers={"Host": host})
            assert answer.status_code == 400 and "Host" in answer.json()["detail"], host
    policy = Policy.for_host(private=False, allowed_hosts=("*.example.org", "10.0.0.5"))
    with TestClient(create_app(service=service, policy=policy), base_url=LOCAL) as c:
        for host, status in (("a.example.org", 200), ("b.a.example.org:443", 200),
                             ("example.org", 400), ("10.0.0.5:8000", 200),
                             ("evilexample.org", 400)):
            assert c.get("/health/live", headers={"Host": host}).status_code == status, host


def test_every_response_carries_the_security_headers(public):
    user, key = new_user(public)
    answers = [public.get("/"), public.get("/static/app.js"), public.get("/health"),
               public.get("/nope"), public.get("/movies/0"), public.get(f"/recommend/{user}"),
               public.put(f"/users/{user}/ratings", json={}), public.head("/"),
               public.get("/health", headers={"Host": "evil.example"}),
               public.put(f"/users/{user}/ratings", headers=key, content=b"x" * 70_000)]
    assert [a.status_code for a in answers] == [200, 200, 200, 404, 422, 401, 401, 200, 400,
                                                413]
    for answer in answers:
        for name, value in SECURITY_HEADERS:
            assert answer.headers[name.decode()] == value.decode(), (answer.url, name)
    csp = answers[0].headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert answers[2].headers["cache-control"] == "no-store"


def test_head_answers_wherever_get_does(public, local):
    for path in ("/", "/health", "/health/live", "/recommend/1", "/static/app.js",
                 "/movies/5"):
        got, head = local.get(path), local.head(path)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b"" and head.headers["content-type"] == \
            got.headers["content-type"]
    assert local.head("/users").status_code == 405


def test_no_diagnostics_to_the_public_and_no_docs_from_a_cdn(public, local):
    user, key = new_user(public)
    for _ in range(2):
        answer = public.get(f"/recommend/{user}", headers=key)
        assert "x-cache" not in answer.headers and "server-timing" not in answer.headers
    assert local.get("/recommend/1").headers["server-timing"].startswith("app;dur=")
    for path in ("/docs", "/redoc"):
        assert public.get(path).status_code == 404
    assert public.get("/openapi.json").json()["info"]["title"] == "Movie recommender"


def test_rate_limits_answer_429_with_retry_after_per_client(service):
    limits = Limits(per_second=1.0, burst=3, signups_per_hour=2.0, signup_burst=2,
                    hold_seconds=0.2)
    app = public_app(service, limits)
    with TestClient(app, base_url=PUBLIC, client=("203.0.113.7", 1)) as flood, \
            TestClient(app, base_url=PUBLIC, client=("203.0.113.8", 1)) as other:
        statuses = [flood.get("/movies/5").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        start = time.monotonic()
        refused = flood.get("/movies/5")
        assert time.monotonic() - start >= 0.1  # held back 0.5-1.5 x 0.2 s: floods slow down
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert "try again" in refused.json()["detail"]
        assert refused.headers["x-content-type-options"] == "nosniff"
        assert other.get("/movies/5").status_code == 200  # another client is not held up
    signups_only = public_app(service, Limits(signups_per_hour=2.0, signup_burst=2,
                                              hold_seconds=0))
    with TestClient(signups_only, base_url=PUBLIC, client=("203.0.113.9", 1)) as c:
        assert [c.post("/users", json={}).status_code for _ in range(3)] == [201, 201, 429]
        assert int(c.post("/users", json={}).headers["retry-after"]) > 60  # 2 an hour
        assert c.get("/movies/5").status_code == 200  # other requests go on


def test_live_is_free_ready_checks_the_store_and_counts_are_kept(local, monkeypatch):
    service = local.app.state.service
    counted = []
    original = service.store.counts
    monkeypatch.setattr(service.store, "counts", lambda: counted.append(1) or original())
    for _ in range(3):
        assert local.get("/health").status_code == 200
    assert len(counted) == 1  # at most once every 10 s
    assert local.get("/health/live").json() == {"status": "ok"}
    assert local.get("/health/ready").json()["status"] == "ok"

    def unreachable():
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(service.store, "ping", unreachable)
    assert local.get("/health/ready").status_code == 503
    assert local.get("/health/live").status_code == 200


def test_the_store_and_title_matching_run_off_the_event_loop(local, monkeypatch):
    service = local.app.state.service
    threads: list[str] = []

    def recorded(function):
        def wrapper(*args, **kwargs):
            threads.append(threading.current_thread().name)
            return function(*args, **kwargs)
        return wrapper

    for name in ("ratings", "ratings_of", "has_user", "put_ratings", "secret_hash"):
        monkeypatch.setattr(service.store, name, recorded(getattr(service.store, name)))
    monkeypatch.setattr(service.catalogue, "closest", recorded(service.catalogue.closest))
    user, key = new_user(local)
    local.put(f"/users/{user}/ratings", headers=key,
              json={"ratings": [{"movie_id": 3, "rating": 4}]})
    for path in (f"/recommend/{user}", f"/predict/{user}/Synthetc Movie 10",
                 f"/users/{user}/ratings", f"/movies/5/similar?user={user}"):
        assert local.get(path).status_code == 200, path
    assert len(threads) >= 7 and sum(n.startswith("store-read") for n in threads) >= 5
    assert all(name.startswith("store-") for name in threads), threads


def test_the_operator_token_comes_from_a_private_file_or_the_environment(tmp_path,
                                                                         monkeypatch):
    monkeypatch.delenv("RECOMMENDER_OPERATOR_TOKEN", raising=False)
    monkeypatch.delenv("RECOMMENDER_WRITE_TOKEN", raising=False)
    assert operator_token() is None
    path = tmp_path / "token"
    path.write_text(OPERATOR_TOKEN + "\n")
    path.chmod(0o644)
    with pytest.raises(UsageError, match="other users can read it; chmod 600"):
        operator_token(path)
    path.chmod(0o600)
    assert operator_token(path) == OPERATOR_TOKEN
    path.write_text("short\n")
    with pytest.raises(UsageError, match="32-512 characters") as error:
        operator_token(path)
    assert "short" not in str(error.value)
    with pytest.raises(UsageError, match="cannot read it"):
        operator_token(tmp_path / "missing")
    monkeypatch.setenv("RECOMMENDER_OPERATOR_TOKEN", "x" * 31)
    with pytest.raises(UsageError, match="at least|32-512"):
        operator_token()
    monkeypatch.setenv("RECOMMENDER_OPERATOR_TOKEN", OPERATOR_TOKEN)
    assert operator_token() == OPERATOR_TOKEN
    monkeypatch.setenv("RECOMMENDER_WRITE_TOKEN", "old")
    with pytest.raises(UsageError, match="RECOMMENDER_WRITE_TOKEN is no longer read"):
        operator_token()


def test_a_server_given_host_names_faces_the_public_even_on_loopback():
    assert is_private("127.0.0.1") and is_private("::1")
    assert not is_private("127.0.0.1", ("movies.example.org",))  # behind a reverse proxy
    assert not is_private("0.0.0.0", ("movies.example.org",))
    assert limits(None, None, private=False) == Limits(20.0, 60, 20.0, 5)
    assert limits(None, None, private=True) == Limits(0.0, 1, 0.0, 1)
    assert not limits(None, None, private=True).on
    assert limits(5, 0, private=False) == Limits(5.0, 15, 0.0, 1)
    with pytest.raises(UsageError, match="--rate-limit -1"):
        limits(-1, None, private=True)


def test_reads_waiting_together_share_one_query():
    calls: list[list[int]] = []

    def read_many(keys):
        calls.append(sorted(keys))
        time.sleep(0.05)  # the first read runs while the others arrive
        if 13 in keys:
            raise RuntimeError("the store is down")
        return {k: (LookupError(f"no {k}") if k == 7 else k * 10) for k in keys}

    async def main():
        with ThreadPoolExecutor(2) as pool:
            batched = Batched(read_many, pool)
            first = asyncio.ensure_future(batched.get(1))
            await asyncio.sleep(0.01)
            rest = await asyncio.gather(*(batched.get(k) for k in (2, 3, 3, 4, 7)),
                                        return_exceptions=True)
            failed = await asyncio.gather(batched.get(13), return_exceptions=True)
            return await first, rest, failed

    first, rest, failed = asyncio.run(main())
    assert first == 10 and rest[:4] == [20, 30, 30, 40] and isinstance(rest[4], LookupError)
    assert calls[:2] == [[1], [2, 3, 4, 7]]  # the five waiting reads in one call
    assert isinstance(failed[0], RuntimeError)
