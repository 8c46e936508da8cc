"""The API's routes, in three routers by tag, over the service the app holds.

Reads are ``async``: they run on the event loop, being short CPU work (a sparse-dense product,
a store read) that threads could not run in parallel under the GIL and would only slow down
by switching. Writes are plain functions, run in the thread pool: they wait for the disk (the
store syncs every commit), and the loop goes on answering reads meanwhile.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import Response

from recommender.serve.schemas import (
    MAX_ID, Error, Health, Movie, NewUser, PopularMovie, Prediction, RatingsIn,
    Recommendations, Similar, UserRatings, Written,
)
from recommender.serve.service import Service

__all__ = ["status_routes", "movie_routes", "user_routes", "current_service",
           "check_write_token"]

ERRORS = {code: {"model": Error} for code in (400, 401, 404, 413, 422)}


async def current_service(request: Request) -> Service:
    """The loaded service (a dependency, so tests can pass their own)."""
    return request.app.state.service


async def check_write_token(
        request: Request,
        authorization: Annotated[str | None, Header(max_length=512)] = None) -> None:
    """With a write token configured, refuse writes that do not carry it (401)."""
    token = request.app.state.write_token
    if token is None:
        return
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not secrets.compare_digest(given.encode(), token.encode()):
        raise HTTPException(401, "this server needs a write token: send "
                                 "'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})


Svc = Annotated[Service, Depends(current_service)]
UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="a dataset or API user")]
MovieId = Annotated[int, Path(ge=1, le=MAX_ID)]
TopN = Annotated[int, Query(ge=1, le=100)]
Writes = [Depends(check_write_token)]

status_routes = APIRouter(tags=["status"])
movie_routes = APIRouter(tags=["movies"], responses=ERRORS)
user_routes = APIRouter(tags=["users"], responses=ERRORS)


@status_routes.get("/health", response_model=Health)
async def health(service: Svc, request: Request) -> dict:
    """Model loaded, counts, model names and where they came from, versions."""
    return {**service.health(), "writes_need_token": request.app.state.write_token is not None}


@movie_routes.get("/movies", response_model=list[Movie])
async def movies(service: Svc, limit: Annotated[int, Query(ge=1, le=100)] = 20,
                 search: Annotated[str | None, Query(max_length=100)] = None) -> list[dict]:
    """Movies, most rated first; with ``search``, titles containing it (autocomplete)."""
    c = service.catalogue
    rows = c.search(search, limit) if search else c.popular(None, limit)
    return [c.describe(i) for i in rows]


@movie_routes.get("/movies/{movie_id}", response_model=Movie)
async def movie(service: Svc, movie_id: MovieId) -> dict:
    return service.catalogue.describe(service.catalogue.index(movie_id))


@movie_routes.get("/movies/{movie_id}/similar", response_model=Similar)
async def similar(service: Svc, movie_id: MovieId, top_n: TopN = 10) -> dict:
    """More like this: what the list model ranks first for someone who loved this movie."""
    items = service.similar(movie_id, top_n)
    return {"movie": service.catalogue.describe(service.catalogue.index(movie_id)),
            "model": service.list_model.name, "similar": items}


@movie_routes.get("/popular", response_model=list[PopularMovie])
async def popular(service: Svc, genre: Annotated[str | None, Query(max_length=40)] = None,
                  top_n: TopN = 10) -> list[dict]:
    """The most rated movies, of one genre if given."""
    return service.popular(genre, top_n)


@user_routes.get("/recommend/{user_id}", response_model=Recommendations)
async def recommend(service: Svc, user_id: UserId, top_n: TopN = 10) -> Response:
    """The user's top movies not rated yet, each with a reason and a predicted rating;
    ratings given a moment ago count at once. ``X-Cache: hit`` when the server kept the
    list from an earlier request (the user's ratings unchanged since)."""
    body, hit = service.recommendations(user_id, top_n)
    # Built by the service as JSON bytes (and kept), not validated again by Pydantic
    # on the way out: the tests check the body against the schema.
    return Response(body, media_type="application/json",
                    headers={"X-Cache": "hit" if hit else "miss"})


@user_routes.get("/predict/{user_id}/{movie_title:path}", response_model=Prediction)
async def predict(service: Svc, user_id: UserId,
                  movie_title: Annotated[str, Path(min_length=1, max_length=200)]) -> dict:
    """The rating the user would give a movie named by id, title (any case, with or
    without its year) or a close spelling; the response names the movie matched."""
    return service.predict(user_id, movie_title)


@user_routes.post("/users", response_model=Written, status_code=201, dependencies=Writes)
def create_user(service: Svc, body: NewUser) -> dict:
    """A new user (id above every dataset user), optionally with first ratings."""
    ratings = body.as_dict()
    return {"user_id": service.create_user(body.name, ratings), "written": len(ratings)}


@user_routes.put("/users/{user_id}/ratings", response_model=Written, dependencies=Writes)
def put_ratings(service: Svc, user_id: UserId, body: RatingsIn) -> dict:
    """Add or change ratings (one transaction; on disk before the answer)."""
    ratings = body.as_dict()
    service.rate(user_id, ratings)
    return {"user_id": user_id, "written": len(ratings)}


@user_routes.get("/users/{user_id}/ratings", response_model=UserRatings)
async def get_ratings(service: Svc, user_id: UserId) -> dict:
    """Every rating of the user, the dataset's and the API's."""
    return service.user_ratings(user_id)
