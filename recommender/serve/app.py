"""The FastAPI application: routes, validation, errors as JSON, the write token, the page.

Every client mistake is a 4xx JSON ``{"detail": ...}`` saying what was wrong; nothing a client
sends produces a 500 or a traceback. When the server listens beyond loopback, write routes
need ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import logging
import secrets
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import Depends, FastAPI, Header, HTTPException, Path as PathParam, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from recommender.serve.schemas import (
    MAX_ID, Error, Health, Movie, NewUser, PopularMovie, Prediction, RatingOut, RatingsIn,
    Recommendations, Similar, UserRatings, Written,
)
from recommender.serve.service import Invalid, NotFound, ServeConfig, Service

__all__ = ["create_app", "MAX_BODY_BYTES"]

STATIC = Path(__file__).parent / "static"
MAX_BODY_BYTES = 64 * 1024
_log = logging.getLogger("recommender.serve")
_ERRORS = {400: {"model": Error}, 401: {"model": Error}, 404: {"model": Error},
           413: {"model": Error}, 422: {"model": Error}}


class ServerTiming:
    """Adds ``Server-Timing: app;dur=<ms>`` to every response: the time the app spent, apart
    from any queueing before it (the benchmark reports both)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()

        async def timed(message):
            if message["type"] == "http.response.start":
                spent = f"app;dur={(time.perf_counter() - start) * 1e3:.2f}".encode()
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"server-timing", spent)]}
            await send(message)

        await self.app(scope, receive, timed)


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with a 413, declared or streamed."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await _too_large(self.limit)(scope, receive, send)
        seen, refused = 0, False

        async def limited():
            nonlocal seen, refused
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit and not refused:
                refused = True  # answer now; the app sees the client leave
                await _too_large(self.limit)(scope, receive, send)
                return {"type": "http.disconnect"}
            return message

        async def quiet_after_refusal(message):
            if not refused:
                await send(message)

        await self.app(scope, limited, quiet_after_refusal)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"request body over {limit} bytes"}, status_code=413)


def _validation_detail(exc: RequestValidationError) -> list[dict]:
    """Pydantic's errors without the echoed input (which may not even be valid JSON)."""
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()]


async def _service(request: Request) -> Service:
    """The loaded service (a dependency, so tests can pass their own)."""
    return request.app.state.service


async def _writer(request: Request,
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


Svc = Annotated[Service, Depends(_service)]
UserId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="a dataset or API user")]
MovieId = Annotated[int, PathParam(ge=1, le=MAX_ID)]
TopN = Annotated[int, Query(ge=1, le=100)]


def create_app(config: ServeConfig | None = None, service: Service | None = None,
               write_token: str | None = None) -> FastAPI:
    """The API over ``service`` (or one built from ``config`` when the app starts).

    Reads run on the event loop: they are short CPU work (a sparse-dense product, a store
    read), which threads cannot run in parallel under the GIL and only slow down by switching
    (measured at 32 clients: 2.95 ms of server CPU per recommendation in the thread pool,
    1.2 ms on the loop). Writes run in the thread pool: they wait for the disk (the store
    syncs every commit), and the loop goes on answering reads meanwhile.

    Args:
        write_token: when set, POST and PUT routes need ``Authorization: Bearer <token>``.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        built = getattr(app.state, "service", None) is None
        if built:
            app.state.service = Service.from_config(config or ServeConfig())
        yield
        if built:  # a service passed in belongs to the caller
            app.state.service.store.close()

    app = FastAPI(title="Movie recommender", version="1", lifespan=lifespan,
                  description="Recommendations, predicted ratings and similar movies from the "
                              "project's models; users and ratings in a real database.")
    app.state.service = service
    app.state.write_token = write_token
    app.add_middleware(BodyLimit)
    app.add_middleware(ServerTiming)

    @app.exception_handler(NotFound)
    async def not_found(_request, exc: NotFound):
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Invalid)
    async def invalid(_request, exc: Invalid):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request, exc: RequestValidationError):
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # every method of the path, not just the first route's
            methods = {m for route in request.app.routes
                       if route.matches(request.scope)[0] != Match.NONE
                       for m in getattr(route, "methods", ())}
            headers["Allow"] = ", ".join(sorted(methods))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                            headers=headers)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):
        _log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error (logged on the server)"},
                            status_code=500)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html",
                            headers={"Content-Security-Policy": "default-src 'self'"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health", response_model=Health, tags=["status"])
    async def health(service: Svc, request: Request) -> dict:
        """Model loaded, counts, model names and where they came from, versions."""
        return {**service.health(), "writes_need_token": request.app.state.write_token is not None}

    @app.get("/movies", response_model=list[Movie], tags=["movies"], responses=_ERRORS)
    async def movies(service: Svc, limit: Annotated[int, Query(ge=1, le=100)] = 20,
               search: Annotated[str | None, Query(max_length=100)] = None) -> list[dict]:
        """Movies, most rated first; with ``search``, titles containing it (autocomplete)."""
        c = service.catalogue
        rows = c.search(search, limit) if search else c.popular(None, limit)
        return [c.describe(i) for i in rows]

    @app.get("/movies/{movie_id}", response_model=Movie, tags=["movies"], responses=_ERRORS)
    async def movie(service: Svc, movie_id: MovieId) -> dict:
        return service.catalogue.describe(service.catalogue.index(movie_id))

    @app.get("/movies/{movie_id}/similar", response_model=Similar, tags=["movies"],
             responses=_ERRORS)
    async def similar(service: Svc, movie_id: MovieId,
                top_n: TopN = 10) -> dict:
        """More like this: what the list model ranks first for someone who loved this movie."""
        items = service.similar(movie_id, top_n)
        return {"movie": service.catalogue.describe(service.catalogue.index(movie_id)),
                "model": service.list_model.name, "similar": items}

    @app.get("/popular", response_model=list[PopularMovie], tags=["movies"], responses=_ERRORS)
    async def popular(service: Svc, genre: Annotated[str | None, Query(max_length=40)] = None,
                top_n: TopN = 10) -> list[dict]:
        """The most rated movies, of one genre if given."""
        return service.popular(genre, top_n)

    @app.get("/recommend/{user_id}", response_model=Recommendations, tags=["users"],
             responses=_ERRORS)
    async def recommend(service: Svc, user_id: UserId, top_n: TopN = 10) -> Response:
        """The user's top movies not rated yet, each with a reason and a predicted rating;
        ratings given a moment ago count at once. ``X-Cache: hit`` when the server kept the
        list from an earlier request (the user's ratings unchanged since)."""
        body, hit = service.recommendations(user_id, top_n)
        # Built by the service as JSON bytes (and kept), not validated again by Pydantic
        # on the way out: the tests check the body against the schema.
        return Response(body, media_type="application/json",
                        headers={"X-Cache": "hit" if hit else "miss"})

    @app.get("/predict/{user_id}/{movie_title:path}", response_model=Prediction,
             tags=["users"], responses=_ERRORS)
    async def predict(service: Svc, user_id: UserId,
                movie_title: Annotated[str, PathParam(min_length=1, max_length=200)]) -> dict:
        """The rating the user would give a movie named by id, title (any case, with or
        without its year) or a close spelling; the response names the movie matched."""
        return service.predict(user_id, movie_title)

    @app.post("/users", response_model=Written, status_code=201, tags=["users"],
              responses=_ERRORS, dependencies=[Depends(_writer)])
    def create_user(service: Svc, body: NewUser) -> dict:
        """A new user (id above every dataset user), optionally with first ratings."""
        ratings = body.as_dict()
        return {"user_id": service.create_user(body.name, ratings), "written": len(ratings)}

    @app.put("/users/{user_id}/ratings", response_model=Written, tags=["users"],
             responses=_ERRORS, dependencies=[Depends(_writer)])
    def put_ratings(service: Svc, user_id: UserId,
                    body: RatingsIn) -> dict:
        """Add or change ratings (one transaction; on disk before the answer)."""
        ratings = body.as_dict()
        service.rate(user_id, ratings)
        return {"user_id": user_id, "written": len(ratings)}

    @app.get("/users/{user_id}/ratings", response_model=UserRatings, tags=["users"],
             responses=_ERRORS)
    async def get_ratings(service: Svc, user_id: UserId
                    ) -> dict:
        """Every rating of the user, the dataset's and the API's."""
        history = service.history(user_id)
        c = service.catalogue
        rows = np.minimum(np.searchsorted(c.ids, history.movies), len(c) - 1)
        ratings = [RatingOut(movie_id=int(m), title=c.titles[i] if c.ids[i] == m else "",
                             rating=float(r), source="api" if api else "dataset")
                   for m, i, r, api in zip(history.movies, rows, history.ratings,
                                           history.from_api)]
        return {"user_id": user_id, "count": len(ratings), "ratings": ratings}

    return app

