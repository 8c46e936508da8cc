"""ASGI middleware of the API: the app's own time in a header, and a cap on request bodies."""

from __future__ import annotations

import time

from fastapi.responses import JSONResponse

__all__ = ["ServerTiming", "BodyLimit", "MAX_BODY_BYTES"]

MAX_BODY_BYTES = 64 * 1024


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
