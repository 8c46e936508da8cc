"""The FastAPI application: the routes, the page, errors as JSON, the service loaded at start.

Every client mistake is a 4xx JSON ``{"detail": ...}`` saying what was wrong; nothing a client
sends produces a 500 or a traceback. When the server listens beyond loopback, write routes
need ``Authorization: Bearer <token>`` (:func:`recommender.serve.routes.check_write_token`).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from recommender.serve.middleware import BodyLimit, ServerTiming
from recommender.serve.routes import movie_routes, status_routes, user_routes
from recommender.serve.service import Invalid, NotFound, ServeConfig, Service

__all__ = ["create_app", "STATIC"]

STATIC = Path(__file__).parent / "static"
_log = logging.getLogger("recommender.serve")
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")  # as Allow lists them


def create_app(config: ServeConfig | None = None, service: Service | None = None,
               write_token: str | None = None) -> FastAPI:
    """The API and the page over ``service``, or over one built from ``config`` (default:
    :class:`ServeConfig`) when the app starts.

    Args:
        write_token: when set, POST and PUT routes need ``Authorization: Bearer <token>``.
    """
    app = FastAPI(title="Movie recommender", version="1", lifespan=_lifespan,
                  exception_handlers=_error_handlers(),
                  description="Recommendations, predicted ratings and similar movies from the "
                              "project's models; users and ratings in a real database.")
    app.state.config, app.state.service, app.state.write_token = config, service, write_token
    app.add_middleware(BodyLimit)
    app.add_middleware(ServerTiming)
    app.add_api_route("/", _page, include_in_schema=False, name="page")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for routes in (status_routes, movie_routes, user_routes):
        app.include_router(routes)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI):
    """Build the service from the app's config at start-up unless one was given, and close
    the store of the one built here when the app stops (a service passed in belongs to the
    caller)."""
    built = getattr(app.state, "service", None) is None
    if built:
        app.state.service = Service.from_config(app.state.config or ServeConfig())
    yield
    if built:
        app.state.service.store.close()


async def _page() -> FileResponse:
    return FileResponse(STATIC / "index.html",
                        headers={"Content-Security-Policy": "default-src 'self'"})


def _error_handlers() -> dict:
    """Every error as JSON ``{"detail": ...}``: the service's (404, 422), request validation
    (422, without echoing the input), HTTP errors, and anything unexpected (500, logged)."""
    return {NotFound: _not_found, Invalid: _invalid, RequestValidationError: _bad_request,
            StarletteHTTPException: _http_error, Exception: _internal}


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
    return [method for method in _METHODS
            if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
                   for route in routes)]


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    _log.exception("internal error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal error (logged on the server)"}, status_code=500)
