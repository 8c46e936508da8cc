"""Nothing acknowledged is lost: a real server killed (SIGKILL) in the middle of concurrent
writes, restarted on the same SQLite file (as two worker processes), still has every rating
it answered 200 for."""

from __future__ import annotations

import threading
import time

import httpx2 as httpx
import pytest
from serving import kill_all, server_process


@pytest.mark.slow  # end to end: server processes started, killed and started again
def test_a_killed_server_keeps_every_acknowledged_rating(dataset_folder, tmp_path):
    database = str(tmp_path / "store.sqlite3")
    acknowledged: dict[int, dict[int, float]] = {}
    with server_process(dataset_folder, database) as (url, process):
        created = [httpx.post(url + "/users", json={}).json() for _ in range(8)]
        users = [c["user_id"] for c in created]
        keys = {c["user_id"]: {"Authorization": f"Bearer {c['secret']}"} for c in created}
        stop = threading.Event()

        def write(user: int) -> None:
            mine = acknowledged.setdefault(user, {})
            with httpx.Client(base_url=url, timeout=10, headers=keys[user]) as client:
                for k in range(400):  # each movie once: a stored value is the acked one
                    if stop.is_set():
                        return
                    movie, rating = 1 + k, 0.5 + (k * 7 + user) % 10 / 2
                    try:
                        answer = client.put(f"/users/{user}/ratings", json={
                            "ratings": [{"movie_id": movie, "rating": rating}]})
                    except httpx.TransportError:
                        return  # the server died under us: this one was not acknowledged
                    assert answer.status_code == 200, answer.text
                    mine[movie] = rating

        threads = [threading.Thread(target=write, args=(u,)) for u in users]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while sum(map(len, acknowledged.values())) < 150 and time.monotonic() < deadline:
            time.sleep(0.05)
        kill_all(process)  # SIGKILL mid-load: no shutdown hook runs
        stop.set()
        for t in threads:
            t.join(timeout=15)
    total = sum(map(len, acknowledged.values()))
    assert total >= 150, f"only {total} writes acknowledged before the kill"

    with server_process(dataset_folder, database, "--workers", "2") as (url, _):
        for user, ratings in acknowledged.items():
            stored = {r["movie_id"]: r["rating"] for r in
                      httpx.get(f"{url}/users/{user}/ratings").json()["ratings"]
                      if r["source"] == "api"}
            missing = {m: r for m, r in ratings.items() if stored.get(m) != r}
            assert not missing, f"user {user}: acknowledged but lost {missing}"
        items = httpx.get(f"{url}/recommend/{users[0]}").json()["items"]
        assert not set(acknowledged[users[0]]) & {i["movie_id"] for i in items}
