"""Run the API with uvicorn: loopback by default, a write token for anything wider."""

from __future__ import annotations

import ipaddress
import os
import sys

from recommender.serve.service import ServeConfig, Service

__all__ = ["serve", "is_loopback", "TOKEN_ENV_VAR"]

TOKEN_ENV_VAR = "RECOMMENDER_WRITE_TOKEN"


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000,
          write_token: str | None = None) -> None:
    """Load (or fit) the models, then serve the API and the page until interrupted.

    Raises:
        ValueError: ``host`` is not a loopback address and no write token was given (on the
            command line or in ``RECOMMENDER_WRITE_TOKEN``).
    """
    token = write_token or os.environ.get(TOKEN_ENV_VAR) or None
    if not is_loopback(host) and not token:
        raise ValueError(f"refusing to listen on {host}: beyond loopback, writes need a token "
                         f"(--write-token or {TOKEN_ENV_VAR}); or use --host 127.0.0.1")
    if not 0 < port < 65536:
        raise ValueError(f"--port {port}: expected 1-65535")
    import uvicorn

    from recommender.serve.app import create_app

    service = Service.from_config(config)
    app = create_app(service=service, write_token=token)
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {service.dataset} ({service.list_model.name} lists, "
          f"{service.rating_model.name} ratings; store {service.store.label}) on "
          f"http://{shown}:{port}/  (API docs at /docs; Ctrl-C stops)", file=sys.stderr,
          flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
