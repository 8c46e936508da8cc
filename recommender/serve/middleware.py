"""ASGI middleware of the API, outermost first: security headers, the Host allow-list, rate
limits, HEAD as GET, the app's own time in a header, and a cap on request bodies.

Each is a plain ASGI class (no per-request task or body copy, as Starlette's
``BaseHTTPMiddleware`` would add), so a refused request costs a few microseconds.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import anyio
from fastapi.responses import JSONResponse

__all__ = ["HostCheck", "SecurityHeaders", "RateLimit", "Limits", "HeadAsGet", "ServerTiming",
           "BodyLimit", "MAX_BODY_BYTES", "MAX_HELD", "LOOPBACK_HOSTS", "SECURITY_HEADERS"]

MAX_BODY_BYTES = 64 * 1024
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
SECURITY_HEADERS = (
    # Only this origin's scripts, styles and images; no frames around the page or in it.
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; object-src "
                                 b"'none'; base-uri 'none'; form-action 'self'; "
                                 b"frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers without CSP 2
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
)


def _json_error(status: int, detail: str, headers: dict[str, str] | None = None
                ) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


class HostCheck:
    """Answers 400 to a request whose ``Host`` is not one of ``allowed`` (names, any port;
    ``*.example.org`` for its subdomains), so that a web page whose name was pointed at
    this server (DNS rebinding) cannot use it from a visitor's browser."""

    def __init__(self, app, allowed: tuple[str, ...] = LOOPBACK_HOSTS):
        self.app = app
        self.exact = {h.lower() for h in allowed if not h.startswith("*.")}
        self.suffixes = tuple(h[1:].lower() for h in allowed if h.startswith("*."))

    def allows(self, host: str) -> bool:
        name = host.lower()
        if name.startswith("["):  # [v6 address]:port
            name = name[:name.find("]") + 1]
        else:
            name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
        return name in self.exact or (bool(self.suffixes) and name.endswith(self.suffixes))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = (_header(scope, b"host") or b"").decode("latin-1")
        if not self.allows(host):
            return await _json_error(400, "unknown Host header: this server answers only to "
                                          "the names it was given")(scope, receive, send)
        await self.app(scope, receive, send)


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response, and ``Cache-Control: no-store`` to
    the API's answers (a user's ratings or list must not stay in a shared cache)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        static = scope["path"].startswith("/static/")

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), *SECURITY_HEADERS]
                if not static and not any(k == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


@dataclass(frozen=True)
class Limits:
    """Per-client request limits of one server process (token buckets: a client may send
    ``burst`` requests at once, then ``per_second`` a second); 0 turns a limit off.

    Attributes:
        per_second, burst: every request.
        signups_per_hour, signup_burst: ``POST /users`` (each makes a row in the store).
        hold_seconds: how long, on average, a refusal waits before it is sent (while fewer
            than :data:`MAX_HELD` wait), so that a client flooding over a few connections
            slows down itself rather than the server; each wait is drawn between half and
            one and a half times it, so that the flood's next requests do not come back
            all at once.
    """

    per_second: float = 0.0
    burst: int = 0
    signups_per_hour: float = 0.0
    signup_burst: int = 0
    hold_seconds: float = 1.0

    @classmethod
    def public(cls) -> "Limits":
        """The default beyond loopback: a page's burst of requests passes, a script does
        not go far."""
        return cls(per_second=20.0, burst=60, signups_per_hour=20.0, signup_burst=5)

    @property
    def on(self) -> bool:
        return self.per_second > 0 or self.signups_per_hour > 0


class _Buckets:
    """Token buckets by client, the least recently seen forgotten past ``size`` clients."""

    def __init__(self, rate: float, burst: int, size: int = 100_000):
        self.rate, self.burst, self.size = rate, max(burst, 1), size
        self._levels: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str, now: float) -> float:
        """0 when ``client`` may go on (a token taken), else the seconds until it may."""
        with self._lock:
            tokens, then = self._levels.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            self._levels[client] = (tokens - 1 if wait == 0 else tokens, now)
            if len(self._levels) > self.size:
                self._levels.popitem(last=False)
            return wait


MAX_HELD = 512  # refusals waiting at once in one process; beyond, they are sent at once


class RateLimit:
    """Answers 429 with ``Retry-After`` (whole seconds) to a client over its :class:`Limits`,
    held back for ``hold_seconds`` first.

    A client is its address as the server sees it: behind a reverse proxy, uvicorn takes it
    from ``X-Forwarded-For`` when the proxy's address is trusted (``FORWARDED_ALLOW_IPS``).
    """

    def __init__(self, app, limits: Limits = Limits()):
        self.app, self.limits = app, limits
        self.requests = _Buckets(limits.per_second, limits.burst) if limits.per_second else None
        self.signups = (_Buckets(limits.signups_per_hour / 3600, limits.signup_burst)
                        if limits.signups_per_hour else None)
        self.held = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("?", 0))[0]
        now = time.monotonic()
        wait = self.requests.take(client, now) if self.requests else 0.0
        if not wait and self.signups and scope["method"] == "POST" and scope["path"] == "/users":
            wait = self.signups.take(client, now)
        if wait:
            retry = str(max(1, math.ceil(wait)))
            if self.limits.hold_seconds and self.held < MAX_HELD:
                self.held += 1
                try:
                    await anyio.sleep(self.limits.hold_seconds * random.uniform(0.5, 1.5))
                finally:
                    self.held -= 1
            return await _json_error(429, f"too many requests: try again in {retry} s",
                                     {"Retry-After": retry})(scope, receive, send)
        await self.app(scope, receive, send)


class HeadAsGet:
    """Answers HEAD as GET without the body, wherever GET is answered (the routes of FastAPI
    declare GET only)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)

        async def headers_only(message):
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


class ServerTiming:
    """Adds ``Server-Timing: app;dur=<ms>`` to every response: the time the app spent, apart
    from any queueing before it (the benchmark reports both). A diagnostic for loopback
    servers only: to the public it would tell more than it should."""

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
    return _json_error(413, f"request body over {limit} bytes")
