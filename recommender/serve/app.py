"""The FastAPI application: the routes, the page, errors as JSON, the service loaded at start.

Every client mistake is a 4xx JSON ``{"detail": ...}`` saying what was wrong; nothing a client
sends produces a 500 or a traceback. How the app faces its clients (who may read and write
whose ratings, which Host names it answers, rate limits, diagnostic headers) is its
:class:`Policy`: open on loopback, closed by default to the public (:meth:`Policy.for_host`).
"""

from __future__ import annotations

import dataclasses
import gc
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from recommender.serve.auth import Access, Forbidden, Unauthorised
from recommender.serve.middleware import (
    LOOPBACK_HOSTS, BodyLimit, HeadAsGet, HostCheck, Limits, RateLimit, SecurityHeaders,
    ServerTiming,
)
from recommender.serve.routes import (
    Batched, movie_routes, signup_routes, status_routes, user_routes,
)
from recommender.serve.service import Invalid, NotFound, ServeConfig, Service

__all__ = ["create_app", "Policy", "STATIC", "THREADS"]

STATIC = Path(__file__).parent / "static"
THREADS = 8  # threads for store reads, and as many for writes (the store pools 16 connections)
_log = logging.getLogger("recommender.serve")
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")  # as Allow lists them


@dataclasses.dataclass(frozen=True)
class Policy:
    """How the app faces its clients.

    Attributes:
        operator_token: may read and write every user's ratings (see :class:`Access`).
        private_reads: reading a user's ratings and lists needs their secret too.
        allowed_hosts: the ``Host`` names answered (any port; ``*.example.org``).
        limits: per-client rate limits (:class:`Limits`; off when all 0).
        diagnostics: ``Server-Timing`` and ``X-Cache`` headers (for the benchmark).
    """

    operator_token: str | None = None
    private_reads: bool = False
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    limits: Limits = Limits()
    diagnostics: bool = True

    @classmethod
    def for_host(cls, private: bool, operator_token: str | None = None,
                 allowed_hosts: tuple[str, ...] = (), limits: Limits | None = None
                 ) -> "Policy":
        """Open for a server only this machine reaches (reads, no limits, diagnostics);
        for one facing the public, private reads, :meth:`Limits.public` and no
        diagnostics. ``allowed_hosts`` add to the loopback names; ``limits`` replace the
        default."""
        return cls(operator_token=operator_token, private_reads=not private,
                   allowed_hosts=LOOPBACK_HOSTS + tuple(allowed_hosts),
                   limits=limits if limits is not None else
                   Limits() if private else Limits.public(),
                   diagnostics=private)


def create_app(config: ServeConfig | None = None, service: Service | None = None,
               policy: Policy = Policy()) -> FastAPI:
    """The API and the page over ``service``, or over one built from ``config`` (default:
    :class:`ServeConfig`) when the app starts, facing clients as ``policy`` says.

    The schema is at ``/openapi.json``; the interactive ``/docs`` and ``/redoc`` pages are
    off, as FastAPI loads their scripts from a CDN, which would run on the API's origin.
    """
    app = FastAPI(title="Movie recommender", version="1", lifespan=_lifespan,
                  exception_handlers=_error_handlers(), docs_url=None, redoc_url=None,
                  description="Recommendations, predicted ratings and similar movies from the "
                              "project's models; users and ratings in a real database.")
    app.state.config, app.state.service = config, service
    app.state.access = Access(policy.operator_token, policy.private_reads)
    app.state.diagnostics = policy.diagnostics
    app.add_middleware(BodyLimit)  # innermost
    if policy.diagnostics:
        app.add_middleware(ServerTiming)
    app.add_middleware(HeadAsGet)
    if policy.limits.on:
        app.add_middleware(RateLimit, limits=policy.limits)
    app.add_middleware(HostCheck, allowed=policy.allowed_hosts)
    app.add_middleware(SecurityHeaders)  # outermost: on every answer, refusals included
    app.add_api_route("/", _page, include_in_schema=False, name="page")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for routes in (status_routes, movie_routes, signup_routes, user_routes):
        app.include_router(routes)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI):
    """Build the service from the app's config at start-up unless one was given, and close
    the store of the one built here when the app stops (a service passed in belongs to the
    caller); make the thread pools of :func:`~recommender.serve.routes.offload` and the
    batched reads of users' ratings; freeze what was loaded out of the garbage collector."""
    built = getattr(app.state, "service", None) is None
    if built:
        app.state.service = await anyio.to_thread.run_sync(
            Service.from_config, app.state.config or ServeConfig())
    # SQLite has one writer at a time: more threads would only queue on its lock, in sleeps
    # that grow to 100 ms (its busy handler); PostgreSQL writes rows side by side.
    writers = 1 if app.state.service.store.dialect == "sqlite" else THREADS
    app.state.pools = {False: ThreadPoolExecutor(THREADS, thread_name_prefix="store-read"),
                       True: ThreadPoolExecutor(writers, thread_name_prefix="store-write")}
    app.state.stored = Batched(app.state.service.stored_of, app.state.pools[False])
    # What is loaded now lives as long as the process: out of the collector's full scans,
    # which otherwise stop the server for 25-30 ms (ml-latest-small's catalogue and models).
    gc.collect()
    gc.freeze()
    yield
    for pool in app.state.pools.values():
        pool.shutdown()
    if built:
        app.state.service.store.close()


async def _page() -> FileResponse:
    return FileResponse(STATIC / "index.html")


def _error_handlers() -> dict:
    """Every error as JSON ``{"detail": ...}``: the service's (404, 422), credentials (401,
    403), request validation (422, without echoing the input), HTTP errors, and anything
    unexpected (500, logged)."""
    return {NotFound: _not_found, Invalid: _invalid, Unauthorised: _unauthorised,
            Forbidden: _forbidden, RequestValidationError: _bad_request,
            StarletteHTTPException: _http_error, Exception: _internal}


async def _unauthorised(_request: Request, exc: Unauthorised) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=401,
                        headers={"WWW-Authenticate": "Bearer"})


async def _forbidden(_request: Request, exc: Forbidden) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=403)


async def _not_found(_request: Request, exc: NotFound) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _invalid(_request: Request, exc: Invalid) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=422)


async def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """Pydantic's errors without the echoed input (which may not even be valid JSON)."""
    detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
              for e in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:  # every method of the path, not just the first route's
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """The methods some route answers at the request's path, found by matching the path with
    each method (routes of included routers are not listed in ``app.routes``); the static
    files' mount, which matches any method, is left out."""
    routes = [route for route in request.app.routes if not isinstance(route, Mount)]
    allowed = {method for method in _METHODS
               if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
                      for route in routes)}
    if "GET" in allowed:
        allowed.add("HEAD")  # HeadAsGet answers it
    return sorted(allowed)


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    _log.exception("internal error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal error (logged on the server)"}, status_code=500)
