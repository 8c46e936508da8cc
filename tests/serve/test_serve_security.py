"""The security suite: what a hostile client tries against a server facing the public, on
SQLite and on PostgreSQL, and what it gets.

It tries (each attempt below names itself): the issue's requests (rewriting a dataset user's
ratings, rebinding the Host, type confusion, tokens without a scheme, bodies validated before
the token), writes and deletes on another user with one's own secret, a missing, malformed,
oversized, truncated or lower-case-scheme token, a deleted user's secret, reading another
user's ratings, list, predictions or "more like this", oversized, streamed, deeply nested
and malformed bodies, odd paths and digits, method overrides, and floods of requests and
sign-ups. It counts writes that changed someone else's ratings (must be 0) and 5xx answers
(must be 0), and prints the tally.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace

import pytest
from fastapi.testclient import TestClient

from recommender.serve import Service, create_app
from recommender.serve.app import Policy
from recommender.serve.middleware import Limits
from serving import OPERATOR, OPERATOR_TOKEN, bearer

PUBLIC = "https://movies.example.org"  # the name the server was given (--allowed-host)


def public_app(service: Service, limits: Limits = Limits()):
    """The app as ``recommender serve --host 0.0.0.0 --allowed-host movies.example.org``
    with an operator token builds it (limits off unless given: one test client is one
    client)."""
    policy = Policy.for_host(private=False, operator_token=OPERATOR_TOKEN,
                             allowed_hosts=("movies.example.org",), limits=limits)
    return create_app(service=service, policy=policy)


@pytest.fixture
def public(store, fitted):
    """A public server's test client over an empty store (SQLite, then PostgreSQL)."""
    data, lists, ratings = fitted
    with TestClient(public_app(Service(data, lists, ratings, store)), base_url=PUBLIC) as c:
        yield c


def new_user(client, ratings=((5, 4.0), (7, 2.0))) -> tuple[int, dict[str, str]]:
    answer = client.post("/users", json={"ratings": [
        {"movie_id": m, "rating": r} for m, r in ratings]})
    assert answer.status_code == 201, answer.text
    return answer.json()["user_id"], bearer(answer.json()["secret"])


@dataclass
class Tally:
    """Every attempt's status, and the 5xx among them."""

    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    server_errors: int = 0

    def expect(self, what: str, response, allowed: set[int]) -> None:
        self.statuses[response.status_code] += 1
        self.server_errors += response.status_code >= 500
        if response.status_code not in allowed:
            self.failures.append(f"{what}: {response.status_code} {response.text[:120]}")


def ratings_of(client, user: int) -> dict[int, float]:
    answer = client.get(f"/users/{user}/ratings", headers=OPERATOR)
    assert answer.status_code == 200, answer.text
    return {r["movie_id"]: r["rating"] for r in answer.json()["ratings"]}


def test_hostile_requests_change_no_one_elses_ratings_and_never_fail(public, capsys):
    c = public
    victim, victim_key = new_user(c)
    attacker, attacker_key = new_user(c, ((9, 3.0),))
    gone, gone_key = new_user(c)
    assert c.delete(f"/users/{gone}", headers=gone_key).status_code == 200
    before = {u: ratings_of(c, u) for u in (1, victim)}
    rate = {"ratings": [{"movie_id": 31, "rating": 5}]}
    tally = Tally()
    denied = {401, 403}

    attempts = [
        # (what it tries, method, path, headers, json body or raw bytes, allowed statuses)
        ("the issue's PUT on dataset user 1, no credentials", "PUT", "/users/1/ratings",
         {}, rate, {401}),
        ("dataset user 1 with another user's secret", "PUT", "/users/1/ratings",
         attacker_key, rate, {403}),
        ("removing dataset user 1's rating with a user's secret", "DELETE",
         "/users/1/ratings/31", attacker_key, None, {403}),
        ("deleting dataset user 1 with a user's secret", "DELETE", "/users/1",
         attacker_key, None, {403}),
        ("the victim's ratings, no credentials", "PUT", f"/users/{victim}/ratings", {}, rate,
         {401}),
        ("the victim's ratings with the attacker's secret", "PUT",
         f"/users/{victim}/ratings", attacker_key, rate, {401}),
        ("removing the victim's rating with the attacker's secret", "DELETE",
         f"/users/{victim}/ratings/5", attacker_key, None, {401}),
        ("deleting the victim with the attacker's secret", "DELETE", f"/users/{victim}",
         attacker_key, None, {401}),
        ("deleting the victim, no credentials", "DELETE", f"/users/{victim}", {}, None,
         {401}),
        ("the victim's secret without the Bearer scheme", "PUT", f"/users/{victim}/ratings",
         {"Authorization": victim_key["Authorization"].split()[1]}, rate, {401}),
        ("the victim's secret as Basic", "PUT", f"/users/{victim}/ratings",
         {"Authorization": "Basic " + victim_key["Authorization"].split()[1]}, rate, {401}),
        ("an empty bearer token", "PUT", f"/users/{victim}/ratings",
         {"Authorization": "Bearer "}, rate, {401}),
        ("a 600-character token", "PUT", f"/users/{victim}/ratings",
         {"Authorization": "Bearer " + "a" * 600}, rate, {401}),
        ("the operator token less its last character", "PUT", "/users/1/ratings",
         {"Authorization": "Bearer " + OPERATOR_TOKEN[:-1]}, rate, denied),
        ("the operator token with a space inside", "PUT", "/users/1/ratings",
         {"Authorization": "Bearer " + OPERATOR_TOKEN[:5] + " " + OPERATOR_TOKEN[5:]}, rate,
         denied),
        ("a deleted user's secret on the victim", "PUT", f"/users/{victim}/ratings",
         gone_key, rate, {401}),
        ("a deleted user's secret on itself", "PUT", f"/users/{gone}/ratings", gone_key,
         rate, {401}),
        ("an invalid body without credentials (401 before 422)", "PUT",
         f"/users/{victim}/ratings", {}, {"ratings": [{"movie_id": "x"}]}, {401}),
        ("malformed JSON without credentials (401 before 422)", "PUT",
         f"/users/{victim}/ratings", {}, b'{"ratings": [', {401}),
        ("an overridden method (X-HTTP-Method-Override: DELETE)", "GET",
         f"/users/{victim}/ratings", {"X-HTTP-Method-Override": "DELETE"}, None, {401}),
        ("the victim's ratings, read without credentials", "GET",
         f"/users/{victim}/ratings", {}, None, {401}),
        ("the victim's ratings, read with the attacker's secret", "GET",
         f"/users/{victim}/ratings", attacker_key, None, {401}),
        ("the victim's list", "GET", f"/recommend/{victim}", attacker_key, None, {401}),
        ("a prediction for the victim", "GET", f"/predict/{victim}/5", {}, None, {401}),
        ("more like this without the victim's movies", "GET",
         f"/movies/5/similar?user={victim}", attacker_key, None, {401}),
        ("dataset user 1's ratings", "GET", "/users/1/ratings", attacker_key, None, {401}),
        ("an invalid user id without credentials", "PUT", "/users/abc/ratings", {}, rate,
         {401}),
    ]
    for rating in (True, "4.5", None, [4], {"stars": 4}, 4.25, float("nan")):
        attempts.append((f"rating {rating!r} (type confusion)", "PUT",
                         f"/users/{attacker}/ratings", attacker_key,
                         json.dumps({"ratings": [{"movie_id": 5, "rating": rating}]},
                                    allow_nan=True).encode(), {422}))
    for movie in (True, "5", 5.5, -5, 2**63):
        attempts.append((f"movie id {movie!r} (type confusion)", "PUT",
                         f"/users/{attacker}/ratings", attacker_key,
                         {"ratings": [{"movie_id": movie, "rating": 4}]}, {422}))
    for raw, allowed in ((b"[" * 60_000, {400, 413, 422}),
                         (b'{"ratings":' + b"[" * 20_000 + b"]" * 20_000 + b"}", {400, 422}),
                         (json.dumps({"ratings": [], "pad": "x" * 70_000}).encode(), {413}),
                         (b"\xff\xfe\x00", {400, 422}), (b"null", {422}), (b"", {422})):
        attempts.append((f"a malformed or oversized body ({len(raw):,} bytes)", "PUT",
                         f"/users/{attacker}/ratings", attacker_key, raw, allowed))
    for path in ("/movies/1.0", "/movies/+1", "/movies/01", "/movies/%D9%A3",
                 "/recommend/1?top_n=1e1", "/recommend/" + "9" * 40, "/predict/1/%00",
                 "/predict/1/%C2%B2", "/movies?search=%27%20OR%201%3D1%20--",
                 "/users/1%2F..%2F2/ratings", "/popular?genre=%00"):
        attempts.append((f"an odd path: {path}", "GET", path, OPERATOR, None,
                         {200, 400, 404, 422}))

    for what, method, path, headers, body, allowed in attempts:
        kwargs = ({"content": body, "headers": {**headers, "content-type": "application/json"}}
                  if isinstance(body, bytes) else {"json": body, "headers": headers})
        tally.expect(what, c.request(method, path, **kwargs), allowed)

    # DNS rebinding: a page on another name reaching this server.
    for host in ("evil.example", "movies.example.org.evil.example", "127.0.0.1.nip.io",
                 "evil.example:443", "", "movies.example.org@evil.example"):
        response = c.put("/users/1/ratings", json=rate, headers={"Host": host, **OPERATOR})
        tally.expect(f"Host {host!r} (DNS rebinding)", response, {400})

    # Flooding: one client sends 300 requests (fuzzy title matches, lists, sign-ups) at once
    # under the public limits (refusals sent at once: the test client waits for each);
    # another client, meanwhile, is answered as usual.
    limited = public_app(c.app.state.service, replace(Limits.public(), hold_seconds=0))
    with TestClient(limited, base_url=PUBLIC, client=("203.0.113.66", 1)) as flood, \
            TestClient(limited, base_url=PUBLIC, client=("203.0.113.5", 1)) as bystander:
        for k in range(300):
            response = (flood.post("/users", json={}) if k % 3 == 0 else
                        flood.get("/predict/1/Synthetc%20Movi%2012", headers=OPERATOR)
                        if k % 3 == 1 else flood.get("/recommend/1", headers=OPERATOR))
            tally.expect("a flood from one client", response, {200, 201, 429})
            if k % 30 == 0:
                tally.expect("a bystander during the flood",
                             bystander.get("/movies/5"), {200})
    flooded = tally.statuses[429]
    assert 230 <= flooded <= 260, flooded  # a burst of 60 requests, 5 of them sign-ups

    after = {u: ratings_of(c, u) for u in (1, victim)}
    cross_user_writes = sum(after[u] != before[u] for u in before)
    with capsys.disabled():
        print(f"\nsecurity suite ({c.app.state.service.store.dialect}): "
              f"{sum(tally.statuses.values())} hostile requests; statuses "
              f"{dict(sorted(tally.statuses.items()))} ({flooded} of the flood's 300 refused "
              f"with 429); {cross_user_writes} cross-user writes, {tally.server_errors} 5xx")
    assert not tally.failures, "\n".join(tally.failures)
    assert cross_user_writes == 0 and tally.server_errors == 0
