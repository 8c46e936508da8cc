"""Every route and every client error of the API, through FastAPI's test client."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from recommender.cli import main
from recommender.data.releases import MovieLens
from recommender.models import make_model
from recommender.models.artifacts import FORMAT_VERSION
from recommender.serve import RatingsStore, ServeConfig, Service, create_app
from recommender.serve.app import STATIC, Policy
from recommender.serve.middleware import MAX_BODY_BYTES
from recommender.serve.schemas import Recommendations
from recommender.serve.server import is_loopback
from recommender.serve.service import Catalogue, Invalid, ListCache, NotFound, load_models
from serving import LOCAL, OPERATOR, OPERATOR_TOKEN, bearer


def rated_ids(client, user_id: int) -> set[int]:
    return {r["movie_id"] for r in client.get(f"/users/{user_id}/ratings").json()["ratings"]}


def test_health_names_models_counts_and_versions(client, fitted):
    data = fitted[0]
    doc = client.get("/health").json()
    assert doc["status"] == "ok" and doc["model_loaded"] is True
    assert doc["total_movies"] == len(data.movies) and doc["total_users"] == 300
    assert doc["models"]["list"]["name"] == "ease-rated"
    assert doc["models"]["rating"]["name"] == "baseline"
    assert doc["versions"]["artifact_format"] == FORMAT_VERSION
    assert doc["store"]["backend"] == "sqlite"
    assert doc["private_reads"] is False
    assert client.get("/health").headers["server-timing"].startswith("app;dur=")


def test_movies_lists_the_most_rated_and_searches_titles(client, fitted):
    data = fitted[0]
    top = client.get("/movies", params={"limit": 5}).json()
    counts = data.ratings.movieId.value_counts()
    assert [m["movie_id"] for m in top][:1] == [int(counts.index[0])]
    hits = client.get("/movies", params={"search": "movie 12", "limit": 50}).json()
    assert hits and all("movie 12" in m["title"].lower() for m in hits)
    assert hits[0]["title"].lower().startswith("synthetic movie 12")
    assert client.get("/movies", params={"search": "no such film"}).json() == []
    assert client.get("/movies/5").json()["movie_id"] == 5


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "search=" + "a" * 101])
def test_movies_rejects_bad_queries(client, query):
    response = client.get("/movies?" + query)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][0] == "query"


def test_catalogue_matches_titles_as_people_type_them():
    movies = pd.DataFrame({"movieId": [1, 2, 3, 4], "title": ["Matrix, The (1999)",
                           "Batman (1989)", "Batman Returns (1992)", "Face/Off (1997)"],
                           "year": [1999, 1989, 1992, 1997],
                           "genres": [["Sci-Fi"], ["Action"], ["Action"], ["Action"]]})
    ratings = pd.DataFrame({"userId": [1, 1, 2], "movieId": [2, 3, 3], "rating": [4.0, 3.0, 3.0]})
    c = Catalogue(movies, ratings)
    assert c.match("2") == (1, "id")
    assert c.match("Batman (1989)") == (1, "exact")
    assert c.match("the matrix") == (0, "folded")
    assert c.match("BATMAN") == (1, "folded")
    assert c.match("Matrx") == (0, "fuzzy")
    assert c.match("face/off") == (3, "folded")
    assert c.match("batman r") == (2, "search") and c.match("Face/") == (3, "search")
    with pytest.raises(NotFound):
        c.match("zzzzqqq")
    assert c.search("the matrix", 5) == [0] and c.search("batman", 5) == [2, 1]


def test_search_puts_titles_that_start_with_the_query_first_then_the_most_rated(fitted):
    data = fitted[0]
    movies = data.movies.assign(title=[f"{t}, The" if i % 3 else t for i, t in
                                       enumerate(data.movies.title)])
    c = Catalogue(movies, data.ratings)
    forms = [(t.casefold(), re.sub(r"^(.*), the$", r"the \1", t.casefold())) for t in c.titles]

    def expected(query: str, limit: int) -> list[int]:
        q = query.strip().casefold()
        hits = [i for i, pair in enumerate(forms) if any(q in form for form in pair)]
        return sorted(hits, key=lambda i: (not any(f.startswith(q) for f in forms[i]),
                                           c.rank[i]))[:limit]

    for query in ("movie 1", "MOVIE", "the synthetic", "1", "e, th", "zz", " movie 3 "):
        for limit in (1, 5, 100):
            assert c.search(query, limit) == expected(query, limit), (query, limit)
    assert c.search("movie\t1", 5) == [] and c.search("", 3) == c.popular(None, 3)


def test_predict_matches_ids_titles_and_close_spellings(client, fitted):
    data = fitted[0]
    title = data.movies.title[9]
    by_id = client.get("/predict/1/10").json()
    assert by_id["movie"] == title and by_id["matched_by"] == "id"
    assert 0.5 <= by_id["predicted_rating"] <= 5
    assert client.get(f"/predict/1/{title}").json()["matched_by"] == "exact"
    assert client.get(f"/predict/1/{title.upper()}").json()["matched_by"] == "folded"
    fuzzy = client.get("/predict/1/Synthetc Movie 10 (2010)").json()
    assert fuzzy["matched_by"] == "fuzzy" and fuzzy["movie"].startswith("Synthetic Movie 1")
    rated = data.ratings[data.ratings.userId == 1].iloc[0]
    mine = client.get(f"/predict/1/{int(rated.movieId)}").json()
    assert mine["your_rating"] == pytest.approx(float(rated.rating))


@pytest.mark.parametrize("path, status", [
    ("/predict/1/zzzzqqqwww", 404), ("/predict/99999/10", 404), ("/predict/0/10", 422),
    ("/predict/abc/10", 422), ("/predict/1/" + "x" * 201, 422), ("/predict/1/99999", 404),
])
def test_predict_errors(client, path, status):
    response = client.get(path)
    assert response.status_code == status and "detail" in response.json()


def test_recommendations_skip_rated_movies_and_give_reasons(client, fitted):
    data = fitted[0]
    doc = client.get("/recommend/1", params={"top_n": 7}).json()
    assert doc["top_n"] == 7 and len(doc["items"]) == 7 == len(doc["recommendations"])
    assert doc["recommendations"] == [i["title"] for i in doc["items"]]
    seen = set(data.ratings.movieId[data.ratings.userId == 1])
    assert not seen & {i["movie_id"] for i in doc["items"]}
    scores = [i["score"] for i in doc["items"]]
    assert scores == sorted(scores, reverse=True)
    for item in doc["items"]:
        assert item["because_movie_id"] in seen
        assert item["reason"].startswith("because you rated ")
        assert 0.5 <= item["predicted_rating"] <= 5


@pytest.mark.parametrize("path, status", [
    ("/recommend/99999", 404), ("/recommend/0", 422), ("/recommend/1?top_n=0", 422),
    ("/recommend/1?top_n=101", 422), ("/recommend/1?top_n=ten", 422),
    ("/recommend/" + "9" * 30, 422),
])
def test_recommend_errors(client, path, status):
    response = client.get(path)
    assert response.status_code == status and response.headers["content-type"] == \
        "application/json"


def test_a_new_users_list_changes_at_once_with_each_rating(client, fitted):
    data = fitted[0]
    created = client.post("/users", json={"name": "ana"})
    assert created.status_code == 201
    user, key = created.json()["user_id"], bearer(created.json()["secret"])
    assert user > data.ratings.userId.max()
    cold = client.get(f"/recommend/{user}").json()["items"]
    assert all(i["reason"] == "among the most rated movies" for i in cold)

    lists = []
    for movie in (cold[0]["movie_id"], cold[1]["movie_id"], 7):
        answer = client.put(f"/users/{user}/ratings", headers=key,
                            json={"ratings": [{"movie_id": movie, "rating": 5.0}]})
        assert answer.json() == {"user_id": user, "written": 1}
        items = client.get(f"/recommend/{user}").json()["items"]
        assert movie not in {i["movie_id"] for i in items}
        assert all(i["because_movie_id"] in rated_ids(client, user) for i in items)
        lists.append([i["movie_id"] for i in items])
    assert lists[0] != lists[1] != lists[2]


def test_lists_are_kept_until_the_users_ratings_change_in_any_process(fitted, service,
                                                                        tmp_path):
    data, lists, ratings = fitted
    # A second server process on the same store: its writes must reach this one's lists.
    other = Service(data, lists, ratings, RatingsStore(tmp_path / "store.sqlite3"))
    with TestClient(create_app(service=service), base_url=LOCAL) as a, \
            TestClient(create_app(service=other, policy=Policy(operator_token=OPERATOR_TOKEN)),
                       base_url=LOCAL) as b:
        first = a.get("/recommend/3")
        again = a.get("/recommend/3")
        assert (first.headers["x-cache"], again.headers["x-cache"]) == ("miss", "hit")
        assert again.content == first.content
        assert a.get("/recommend/3", params={"top_n": 5}).headers["x-cache"] == "miss"
        movie = first.json()["items"][0]["movie_id"]
        b.put("/users/3/ratings", json={"ratings": [{"movie_id": movie, "rating": 0.5}]},
              headers=OPERATOR)
        changed = a.get("/recommend/3")
        assert changed.headers["x-cache"] == "miss"
        assert movie not in {i["movie_id"] for i in changed.json()["items"]}
        b.put("/users/3/ratings", json={"ratings": [{"movie_id": movie, "rating": 0.5}]},
              headers=OPERATOR)
        assert a.get("/recommend/3").headers["x-cache"] == "hit"  # the same ratings
    other.store.close()


def test_recommendation_bodies_are_what_the_schema_says_kept_or_not(client, fitted,
                                                                     tmp_path):
    data, lists, ratings = fitted
    uncached = Service(data, lists, ratings, RatingsStore(tmp_path / "store.sqlite3"),
                       list_cache_mb=0)
    user = client.post("/users", json={"ratings": [{"movie_id": 5, "rating": 4.5}]}).json()
    with TestClient(create_app(service=uncached), base_url=LOCAL) as computed:
        for path in ("/recommend/1?top_n=100", f"/recommend/{user['user_id']}?top_n=3"):
            client.get(path)
            kept, fresh = client.get(path), computed.get(path)
            assert (kept.headers["x-cache"], fresh.headers["x-cache"]) == ("hit", "miss")
            assert kept.content == fresh.content
            assert kept.headers["content-type"] == "application/json"
            body = kept.content
            assert json.loads(body) == Recommendations.model_validate_json(body).model_dump()
    uncached.store.close()


def test_the_list_cache_keeps_the_latest_within_its_bytes():
    cache = ListCache(max_bytes=10)
    cache.put((1, 10), (), b"aaaa")
    cache.put((2, 10), ((5, 4.0),), b"bbbb")
    assert cache.get((1, 10), ()) == b"aaaa"  # now the most recent
    cache.put((3, 10), (), b"cccc")  # 12 bytes: the least recent, user 2, goes
    assert cache.get((2, 10), ((5, 4.0),)) is None
    assert cache.get((1, 10), ()) == b"aaaa" and cache.get((3, 10), ()) == b"cccc"
    assert cache.get((1, 10), ((5, 4.0),)) is None  # other ratings: not this list
    cache.put((4, 10), (), b"x" * 11)  # larger than the whole cache: not kept
    assert cache.get((4, 10), ()) is None and cache.get((3, 10), ()) == b"cccc"
    off = ListCache(0)
    off.put((1, 10), (), b"a")
    assert off.get((1, 10), ()) is None


def test_predicted_ratings_follow_the_users_own_ratings(client):
    movies = list(range(20, 40))
    users = {}
    for stars in (0.5, 5.0):
        users[stars] = client.post("/users", json={"ratings": [
            {"movie_id": m, "rating": stars} for m in movies]}).json()["user_id"]
    low = client.get(f"/predict/{users[0.5]}/3").json()["predicted_rating"]
    high = client.get(f"/predict/{users[5.0]}/3").json()["predicted_rating"]
    assert high - low > 1.0


def test_api_ratings_overlay_the_dataset_and_can_change(client, fitted):
    data = fitted[0]
    first = data.ratings[data.ratings.userId == 2].sort_values("movieId").iloc[0]
    movie = int(first.movieId)
    client.put("/users/2/ratings", json={"ratings": [{"movie_id": movie, "rating": 0.5}]},
               headers=OPERATOR)
    client.put("/users/2/ratings", json={"ratings": [{"movie_id": movie, "rating": 1.5}]},
               headers=OPERATOR)
    doc = client.get("/users/2/ratings").json()
    mine = [r for r in doc["ratings"] if r["movie_id"] == movie]
    assert mine == [{"movie_id": movie, "title": mine[0]["title"], "rating": 1.5,
                     "source": "api"}]
    twice = [{"movie_id": movie, "rating": 2.0}, {"movie_id": movie, "rating": 3.0}]
    assert client.put("/users/2/ratings", json={"ratings": twice},
                      headers=OPERATOR).json()["written"] == 1
    assert {r["movie_id"]: r["rating"] for r in client.get("/users/2/ratings").json()[
        "ratings"]}[movie] == 3.0
    assert doc["count"] == int((data.ratings.userId == 2).sum())


@pytest.mark.parametrize("body, status", [
    ({"ratings": [{"movie_id": 5, "rating": 0.3}]}, 422),
    ({"ratings": [{"movie_id": 5, "rating": 5.5}]}, 422),
    ({"ratings": [{"movie_id": 5, "rating": 4.3}]}, 422),
    ({"ratings": [{"movie_id": 5, "rating": "good"}]}, 422),
    ({"ratings": [{"movie_id": 0, "rating": 4.0}]}, 422),
    ({"ratings": [{"movie_id": 5, "rating": 4.0, "extra": 1}]}, 422),
    ({"ratings": [{"movie_id": m, "rating": 4.0} for m in range(1, 502)]}, 422),
    ({"rating": []}, 422),
    ({"ratings": [{"movie_id": 99999, "rating": 4.0}]}, 404),
])
def test_rating_writes_are_validated(client, body, status):
    response = client.put("/users/1/ratings", json=body, headers=OPERATOR)
    assert response.status_code == status, response.text
    assert isinstance(response.json()["detail"], (str, list))


@pytest.mark.parametrize("raw", [b'{"ratings": [{"movie_id": 5, "rating": NaN}]}',
                                 b'{"ratings": [', b"\xff\xfe", b"[]"])
def test_malformed_bodies_are_422(client, raw):
    response = client.put("/users/1/ratings", content=raw,
                          headers={"content-type": "application/json", **OPERATOR})
    assert response.status_code == 422


def test_writes_for_unknown_users_and_oversized_bodies(client):
    ok = {"ratings": [{"movie_id": 5, "rating": 4.0}]}
    assert client.put("/users/1/ratings", json={"ratings": []},
                      headers=OPERATOR).json()["written"] == 0
    assert client.put("/users/99999/ratings", json=ok, headers=OPERATOR).status_code == 404
    big = json.dumps({"ratings": [], "pad": "x" * MAX_BODY_BYTES}).encode()
    response = client.put("/users/1/ratings", content=big,
                          headers={"content-type": "application/json", **OPERATOR})
    assert response.status_code == 413 and "bytes" in response.json()["detail"]

    def chunks():  # no Content-Length: the limit holds while streaming
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b" " * 1024
    streamed = client.put("/users/1/ratings", content=chunks(),
                          headers={"content-type": "application/json", **OPERATOR})
    assert streamed.status_code == 413
    long_name = client.post("/users", json={"name": "n" * 65})
    assert long_name.status_code == 422


def test_similar_movies_exclude_the_movie_and_need_ratings(fitted, tmp_path):
    data = fitted[0]
    movies = pd.concat([data.movies, pd.DataFrame({
        "movieId": [10_000], "title": ["Unrated (2020)"], "year": [2020], "genres": [["Drama"]]
    })], ignore_index=True)
    extended = MovieLens("synthetic", data.ratings, movies)
    store = RatingsStore(tmp_path / "s.sqlite3")
    app = create_app(service=Service(extended, fitted[1], fitted[2], store),
                     policy=Policy(operator_token=OPERATOR_TOKEN))
    with TestClient(app, base_url=LOCAL) as c:
        doc = c.get("/movies/5/similar", params={"top_n": 4}).json()
        assert doc["movie"]["movie_id"] == 5 and len(doc["similar"]) == 4
        assert 5 not in {m["movie_id"] for m in doc["similar"]}
        assert c.get("/movies/10000/similar").status_code == 404
        assert c.get("/movies/123456/similar").status_code == 404
        assert c.get("/movies/5/similar?top_n=0").status_code == 422
        # an unrated catalogue movie can still be rated and shows in the user's ratings
        assert c.put("/users/1/ratings", headers=OPERATOR, json={"ratings": [
            {"movie_id": 10_000, "rating": 3.0}]}).status_code == 200
        assert c.get("/recommend/1").status_code == 200


def test_popular_filters_by_genre(client):
    everyone = client.get("/popular", params={"top_n": 10}).json()
    counts = [m["ratings"] for m in everyone]
    assert counts == sorted(counts, reverse=True) and len(everyone) == 10
    drama = client.get("/popular", params={"genre": "drama", "top_n": 5}).json()
    assert drama and all("Drama" in m["genres"] for m in drama)
    assert client.get("/popular", params={"genre": "Nope"}).status_code == 404
    assert client.get("/popular", params={"top_n": 500}).status_code == 422


def test_unknown_routes_and_methods_are_json(client):
    assert client.get("/nope").json() == {"detail": "Not Found"}
    response = client.delete("/users/1/ratings")
    assert response.status_code == 405 and "detail" in response.json()
    assert response.headers["allow"] == "GET, HEAD, PUT"


def test_the_page_is_served_and_loads_nothing_from_the_internet(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert page.headers["content-security-policy"].startswith("default-src 'self';")
    for asset in ("app.js", "style.css", "favicon.svg"):
        assert client.get(f"/static/{asset}").status_code == 200
    for path in STATIC.iterdir():
        text = path.read_text()
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", text), path.name
        assert "@import" not in text and "fetch(\"http" not in text


def test_any_folding_model_serves_lists_and_any_rating_model_predictions(fitted, tmp_path):
    data = fitted[0]
    store = RatingsStore(tmp_path / "m.sqlite3")
    for name in ("popularity", "baseline"):
        lists = make_model(name).fit(data.ratings)
        with TestClient(create_app(service=Service(data, lists, fitted[2], store)),
                        base_url=LOCAL) as c:
            items = c.get("/recommend/3", params={"top_n": 5}).json()["items"]
            assert len(items) == 5 and c.get("/movies/5/similar").status_code == 200
    with pytest.raises(Invalid, match="does not predict ratings"):
        Service(data, fitted[1], fitted[1], store)
    regression_like = make_model("global-mean").fit(data.ratings)
    with pytest.raises(Invalid, match="cannot score users outside"):
        Service(data, regression_like, fitted[2], store)


def test_models_load_from_artifacts_or_are_fitted(fitted, tmp_path):
    data, lists, ratings = fitted
    lists.save(tmp_path / "art" / "ease-rated")
    got = load_models(["ease-rated", "baseline"], data, tmp_path / "art", strict=True,
                      progress=False)
    assert got["ease-rated"][1].startswith("loaded from")
    assert got["baseline"][1].startswith("fitted on")
    users = np.arange(len(lists.users))
    np.testing.assert_array_equal(got["ease-rated"][0].score(users), lists.score(users))
    other = data.ratings.assign(movieId=data.ratings.movieId + 50_000)
    make_model("baseline").fit(other).save(tmp_path / "foreign" / "baseline")
    with pytest.raises(ValueError, match="another dataset"):
        load_models(["baseline"], data, tmp_path / "foreign", strict=True, progress=False)
    relaxed = load_models(["baseline"], data, tmp_path / "foreign", strict=False,
                          progress=False)
    assert relaxed["baseline"][1].startswith("fitted on")


def test_service_from_config_builds_everything(dataset_folder, tmp_path):
    config = ServeConfig(dataset=str(dataset_folder), artifacts=tmp_path / "none",
                         database=str(tmp_path / "c.sqlite3"), progress=False)
    service = Service.from_config(config)
    assert service.store.first_user_id == 300 and service.list_model.name == "ease-rated"
    assert service.store.label == "c.sqlite3" or service.store.label.endswith("c.sqlite3")
    service.store.close()
    with pytest.raises(Invalid, match="global-mean cannot score"):  # before any loading
        Service.from_config(ServeConfig(dataset="/nowhere", list_model="global-mean"))


def test_serve_refuses_wider_addresses_without_host_names_and_tokens_in_arguments(capsys):
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "--allowed-host" in capsys.readouterr().err
    assert main(["serve", "--write-token", "a-secret-that-ps-would-show-everyone"]) == 2
    err = capsys.readouterr().err
    assert "--write-token is gone" in err and "RECOMMENDER_OPERATOR_TOKEN" in err
    assert "a-secret-that-ps" not in err
    assert main(["serve", "--port", "70000"]) == 2
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")


def test_search_and_prediction_fold_accents_and_case_alike():
    movies = pd.DataFrame({"movieId": [1, 2, 3], "title": [
        "Amelie (Fabuleux destin d'Amélie Poulain, Le) (2001)", "Alive (1993)",
        "Lord of the Rings: The Fellowship of the Ring, The (2001)"],
        "year": [2001, 1993, 2001], "genres": [["Comedy"], ["Drama"], ["Fantasy"]]})
    ratings = pd.DataFrame({"userId": [1, 1], "movieId": [2, 3], "rating": [3.0, 5.0]})
    c = Catalogue(movies, ratings)
    for query in ("Amélie", "AMELIE", "amelie", "Fabuleux destin d'Amelie"):
        assert c.search(query, 5)[:1] == [0], query
    assert c.match("Amélie") == (0, "search")  # not "Alive (1993)", the closest spelling
    assert c.match("the lord of the") == (2, "search")
    assert c.match("Alvie") == (1, "fuzzy")
    assert c.match("ＡＬＩＶＥ") == (1, "folded")  # full-width letters, folded
