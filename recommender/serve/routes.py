"""The API's routes, in three routers by tag, over the service the app holds.

The event loop only parses, routes and runs short CPU work (a list's sparse-dense product, a
search in sorted titles): whatever waits (the store, over a file or a network) or may take
milliseconds of CPU (matching a misspelt title) runs in a thread, through :func:`offload`, in
one of two pools (reads; writes), so writes waiting for the disk never hold up reads.
The hot read, a user's ratings before each list, goes through :class:`Batched`: the requests
waiting at a moment share one query, so that under load a thread wakes once for many of them.

Routes on one user's data are :class:`UserRoute`\\ s: the caller is authorised
(:class:`~recommender.serve.auth.Access`) before the body is read, so a request without the
right credentials gets 401 or 403 whatever it sends.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BeforeValidator

from recommender.serve.auth import Unauthorised, bearer_token
from recommender.serve.schemas import (
    MAX_ID, Created, Error, Health, Live, Movie, NewUser, PopularMovie, Prediction, RatingsIn,
    Ready, Recommendations, Removed, Similar, UserRatings, Written,
)
from recommender.serve.service import Service

__all__ = ["status_routes", "movie_routes", "user_routes", "current_service", "offload",
           "authorise", "UserRoute", "Batched"]

ERRORS = {code: {"model": Error} for code in (400, 401, 403, 404, 413, 422, 429)}
_CANONICAL = re.compile(r"0|[1-9][0-9]{0,18}")
T = TypeVar("T")


def _digits_only(value: Any) -> Any:
    """Whole numbers in paths and queries as digits only: not ``1.0``, ``+1``, ``01`` or
    other scripts' digits (which ``int()`` would take)."""
    if isinstance(value, str) and not _CANONICAL.fullmatch(value):
        raise ValueError("expected a whole number written in digits")
    return value


Whole = BeforeValidator(_digits_only)


async def current_service(request: Request) -> Service:
    """The loaded service (a dependency, so tests can pass their own)."""
    return request.app.state.service


async def offload(request: Request, work: Callable[..., T], *args: Any, write: bool = False
                  ) -> T:
    """``work(*args)`` in a thread of the app's read (or write) pool, off the event loop
    (asyncio's executor: half the CPU of ``anyio.to_thread`` per call, 13 against 27 us)."""
    pool = request.app.state.pools[write]
    return await asyncio.get_running_loop().run_in_executor(pool, work, *args)


class Batched:
    """Reads of many keys by one call of ``read_many(keys) -> {key: value or exception}``
    in a thread of ``pool``: a read asked for while another runs waits for the next call,
    which takes every key asked for meanwhile (no delay is added to wait for company)."""

    def __init__(self, read_many: Callable[[list], dict], pool: Executor):
        self.read_many, self.pool = read_many, pool
        self._waiting: dict[Any, list[asyncio.Future]] = {}
        self._busy = False
        self._lock = threading.Lock()

    async def get(self, key: Any) -> Any:
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        with self._lock:
            self._waiting.setdefault(key, []).append(answer)
            start, self._busy = not self._busy, True
        if start:
            self.pool.submit(self._drain, loop)
        return await answer

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """In the pool's thread: read what is waiting, hand it over, until nothing waits."""
        while True:
            with self._lock:
                batch, self._waiting = self._waiting, {}
                if not batch:
                    self._busy = False
                    return
            try:
                found: dict | BaseException = self.read_many(list(batch))
            except Exception as exc:  # noqa: BLE001 (each waiting request gets the error)
                found = exc
            loop.call_soon_threadsafe(_deliver, batch, found)


def _deliver(batch: dict[Any, list[asyncio.Future]], found: dict | BaseException) -> None:
    for key, answers in batch.items():
        value = found if isinstance(found, BaseException) else found[key]
        for answer in answers:
            if answer.done():  # the client went away
                continue
            if isinstance(value, BaseException):
                answer.set_exception(value)
            else:
                answer.set_result(value)


async def stored(request: Request, user_id: int) -> list:
    """The user's API ratings (:meth:`Service.stored`), read with other requests' (404 for
    an unknown user)."""
    return await request.app.state.stored.get(user_id)


async def authorise(request: Request, user_id: int | None, write: bool) -> None:
    """Let the request act on ``user_id`` (any user when ``None``: the id did not parse), or
    raise :class:`~recommender.serve.auth.Unauthorised` / ``Forbidden``."""
    token = bearer_token(request.headers.get("authorization"))
    access = request.app.state.access
    if not write and not access.private_reads:
        return
    if user_id is None:  # the handler answers 422 for the id; credentials come first
        if token is None:
            raise Unauthorised("send credentials as 'Authorization: Bearer <token>'")
        return
    service: Service = request.app.state.service
    await offload(request, service.check_access, access, user_id, token, write)


class UserRoute(APIRoute):
    """A route on the data of the user in its path: the caller is authorised before
    FastAPI reads or validates the body (so 401/403 come before 422)."""

    def get_route_handler(self) -> Callable:
        handle = super().get_route_handler()
        write = "GET" not in self.methods

        async def authorised(request: Request) -> Response:
            user = request.path_params.get("user_id", "")
            await authorise(request, int(user) if _CANONICAL.fullmatch(user) else None, write)
            return await handle(request)

        return authorised


Svc = Annotated[Service, Depends(current_service)]
# Whole after Path/Query, so that the schema keeps their bounds (minimum, maximum).
UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="a dataset or API user"), Whole]
MovieId = Annotated[int, Path(ge=1, le=MAX_ID), Whole]
TopN = Annotated[int, Query(ge=1, le=100), Whole]

status_routes = APIRouter(tags=["status"])
movie_routes = APIRouter(tags=["movies"], responses=ERRORS)
user_routes = APIRouter(tags=["users"], responses=ERRORS, route_class=UserRoute)
signup_routes = APIRouter(tags=["users"], responses=ERRORS)


@status_routes.get("/health/live", response_model=Live)
async def live() -> dict:
    """The process answers (for a supervisor's liveness probe: touches nothing)."""
    return {"status": "ok"}


@status_routes.get("/health/ready", response_model=Ready,
                   responses={503: {"model": Error}})
async def ready(service: Svc, request: Request) -> Response | dict:
    """Models loaded and the store reachable (one round trip): ready for traffic."""
    try:
        await offload(request, service.store.ping)
    except Exception:  # noqa: BLE001 (any failure of the database means not ready)
        return Response('{"detail":"the store does not answer"}', status_code=503,
                        media_type="application/json")
    return {"status": "ok", "store": service.store.dialect}


@status_routes.get("/health", response_model=Health)
async def health(service: Svc, request: Request) -> dict:
    """Models and where they came from, counts (at most 10 s old), store, versions."""
    details = await offload(request, service.health)
    return {**details, "private_reads": request.app.state.access.private_reads}


@movie_routes.get("/movies", response_model=list[Movie])
async def movies(service: Svc, limit: Annotated[int, Query(ge=1, le=100), Whole] = 20,
                 search: Annotated[str | None, Query(max_length=100)] = None) -> list[dict]:
    """Movies, most rated first; with ``search``, titles containing it, case and accents
    folded (autocomplete)."""
    c = service.catalogue
    rows = c.search(search, limit) if search else c.popular(None, limit)
    return [c.describe(i) for i in rows]


@movie_routes.get("/movies/{movie_id}", response_model=Movie)
async def movie(service: Svc, movie_id: MovieId) -> dict:
    return service.catalogue.describe(service.catalogue.index(movie_id))


@movie_routes.get("/movies/{movie_id}/similar", response_model=Similar)
async def similar(service: Svc, request: Request, movie_id: MovieId, top_n: TopN = 10,
                  user: Annotated[int | None, Query(
                      ge=1, le=MAX_ID, description="leave out the movies this user rated "
                                                   "(read as their ratings are)"), Whole] = None
                  ) -> dict:
    """More like this: what the list model ranks first for someone who loved this movie."""
    history = None
    if user is not None:
        await authorise(request, user, write=False)
        history = service.history(user, await stored(request, user))
    items = service.similar(movie_id, top_n, history)
    return {"movie": service.catalogue.describe(service.catalogue.index(movie_id)),
            "model": service.list_model.name, "similar": items}


@movie_routes.get("/popular", response_model=list[PopularMovie])
async def popular(service: Svc, genre: Annotated[str | None, Query(max_length=40)] = None,
                  top_n: TopN = 10) -> list[dict]:
    """The most rated movies, of one genre if given."""
    return service.popular(genre, top_n)


@user_routes.get("/recommend/{user_id}", response_model=Recommendations)
async def recommend(service: Svc, request: Request, user_id: UserId, top_n: TopN = 10
                    ) -> Response:
    """The user's top movies not rated yet, each with a reason and a predicted rating;
    ratings given a moment ago count at once."""
    body, hit = service.recommendations(user_id, top_n, await stored(request, user_id))
    # Built by the service as JSON bytes (and kept), not validated again by Pydantic
    # on the way out: the tests check the body against the schema. Whether the list was
    # kept is said only to loopback clients (the benchmark counts it).
    headers = {"X-Cache": "hit" if hit else "miss"} if request.app.state.diagnostics else None
    return Response(body, media_type="application/json", headers=headers)


@user_routes.get("/predict/{user_id}/{movie_title:path}", response_model=Prediction)
async def predict(service: Svc, request: Request, user_id: UserId,
                  movie_title: Annotated[str, Path(min_length=1, max_length=200)]) -> dict:
    """The rating the user would give a movie named by id, title (any case or accents, with
    or without its year), the start of a title, or a close spelling; the response names the
    movie matched."""
    found = (service.catalogue.quick_match(movie_title)
             or await offload(request, service.catalogue.closest, movie_title))
    return service.predict(user_id, found, await stored(request, user_id))


@user_routes.get("/users/{user_id}/ratings", response_model=UserRatings)
async def get_ratings(service: Svc, request: Request, user_id: UserId) -> dict:
    """Every rating of the user, the dataset's and the API's."""
    return service.user_ratings(user_id, await stored(request, user_id))


@user_routes.put("/users/{user_id}/ratings", response_model=Written)
async def put_ratings(service: Svc, request: Request, user_id: UserId, body: RatingsIn
                      ) -> dict:
    """Add or change ratings (one transaction; on disk before the answer). Needs the
    user's secret (or the operator token)."""
    ratings = body.as_dict()
    await offload(request, service.rate, user_id, ratings, write=True)
    return {"user_id": user_id, "written": len(ratings)}


@user_routes.delete("/users/{user_id}/ratings/{movie_id}", response_model=Removed)
async def delete_rating(service: Svc, request: Request, user_id: UserId, movie_id: MovieId
                        ) -> dict:
    """Remove one rating of the user (the dataset's too, for the operator). Needs the
    user's secret (or the operator token)."""
    await offload(request, service.unrate, user_id, movie_id, write=True)
    return {"user_id": user_id, "movie_id": movie_id, "user_deleted": False}


@user_routes.delete("/users/{user_id}", response_model=Removed)
async def delete_user(service: Svc, request: Request, user_id: UserId) -> dict:
    """Forget a user created through the API, with every rating. Needs the user's secret
    (or the operator token)."""
    await offload(request, service.delete_user, user_id, write=True)
    return {"user_id": user_id, "movie_id": None, "user_deleted": True}


@signup_routes.post("/users", response_model=Created, status_code=201)
async def create_user(service: Svc, request: Request, body: NewUser) -> dict:
    """A new user (id above every dataset user), optionally with first ratings; the answer
    holds the user's secret, shown this once."""
    ratings = body.as_dict()
    user_id, secret = await offload(request, service.create_user, body.name, ratings,
                                    write=True)
    return {"user_id": user_id, "written": len(ratings), "secret": secret}
