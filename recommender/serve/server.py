"""Run the API with uvicorn: loopback by default, a write token for anything wider.

This is the process runner: it builds the app (:func:`recommender.serve.app.create_app`), in
this process or in each worker process, and the app knows nothing of it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import tempfile

from pathlib import Path

import uvicorn
from fastapi import FastAPI

from recommender.core.errors import RecommenderError, UsageError
from recommender.serve.app import create_app
from recommender.serve.service import ServeConfig, Service

__all__ = ["serve", "is_loopback", "worker_models", "from_environment", "TOKEN_ENV_VAR",
           "CONFIG_ENV_VAR"]

TOKEN_ENV_VAR = "RECOMMENDER_WRITE_TOKEN"
CONFIG_ENV_VAR = "RECOMMENDER_SERVE_CONFIG"  # how worker processes learn what to serve


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def worker_models(port: int) -> str:
    """Where a multi-worker server on ``port`` keeps the models its workers load: one folder
    per port, replaced at each start, so a server killed before its clean-up leaves at most
    one behind (and whoever killed it can remove it)."""
    return os.path.join(tempfile.gettempdir(), f"recommender-serve-{port}-models")


def serve(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000,
          write_token: str | None = None, workers: int = 1) -> None:
    """Load (or fit) the models, then serve the API and the page until interrupted.

    With ``workers > 1``, the models are fitted once here, saved to a temporary artifacts
    folder, and each worker process loads its own copy of them and listens on the port
    itself (see :func:`_run_workers`); the workers share the store.

    Raises:
        UsageError: ``host`` is not a loopback address and no write token was given (on the
            command line or in ``RECOMMENDER_WRITE_TOKEN``), or a port, worker count or list
            cache size is out of range.
    """
    token = write_token or os.environ.get(TOKEN_ENV_VAR) or None
    _check_options(config, host, port, workers, token)
    service = Service.from_config(config)
    _announce(service, host, port, workers)
    if workers == 1:
        uvicorn.run(create_app(service=service, write_token=token), host=host, port=port,
                    log_level="warning", access_log=False)
        return
    folder = worker_models(port)
    try:
        _hand_over(service, config, folder, token)
        del service  # the workers hold the models now; this process only waits for them
        if hasattr(socket, "SO_REUSEPORT"):
            _run_workers(host, port, workers)
        else:  # uvicorn's workers share one socket
            uvicorn.run(_WORKER_APP, factory=True, workers=workers, host=host, port=port,
                        log_level="warning", access_log=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _check_options(config: ServeConfig, host: str, port: int, workers: int,
                   token: str | None) -> None:
    """Refuse, with a :class:`UsageError` naming the option, what :func:`serve` cannot do."""
    if not is_loopback(host) and not token:
        raise UsageError(f"refusing to listen on {host}: beyond loopback, writes need a token "
                         f"(--write-token or {TOKEN_ENV_VAR}); or use --host 127.0.0.1")
    if not 0 < port < 65536:
        raise UsageError(f"--port {port}: expected 1-65535")
    if not 1 <= workers <= 64:
        raise UsageError(f"--workers {workers}: expected 1-64")
    if not 0 <= config.list_cache_mb <= 65536:
        raise UsageError(f"--list-cache-mb {config.list_cache_mb}: expected 0-65536")


def _announce(service: Service, host: str, port: int, workers: int) -> None:
    """One line on stderr: what is served, from where, at which address."""
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {service.dataset} ({service.list_model.name} lists, "
          f"{service.rating_model.name} ratings; store {service.store.label}; {workers} "
          f"worker{'s' if workers > 1 else ''}) on http://{shown}:{port}/  (API docs at /docs; "
          f"Ctrl-C stops)", file=sys.stderr, flush=True)


def _hand_over(service: Service, config: ServeConfig, folder: str, token: str | None) -> None:
    """Save the service's models to ``folder``, close its store, and leave the config (now
    loading from ``folder``) and the token in the environment, where worker processes find
    them (:func:`from_environment`)."""
    for model in (service.list_model, service.rating_model):
        model.save(os.path.join(folder, model.name))
    service.store.close()
    shared = dataclasses.replace(config, artifacts=folder, progress=False)
    os.environ[CONFIG_ENV_VAR] = json.dumps(dataclasses.asdict(shared), default=str)
    if token:
        os.environ[TOKEN_ENV_VAR] = token


def from_environment() -> FastAPI:
    """The app of one worker process, configured by :func:`serve` through the environment
    (the config as JSON, the write token)."""
    fields = json.loads(os.environ[CONFIG_ENV_VAR])
    fields["artifacts"] = Path(fields["artifacts"])
    return create_app(ServeConfig(**fields), write_token=os.environ.get(TOKEN_ENV_VAR) or None)


_WORKER_APP = "recommender.serve.server:from_environment"


def _worker(host: str, port: int) -> None:
    """One server process of several, with its own listening socket on the shared port."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sys.exit(f"recommender: error: cannot listen on {host}:{port}: {exc.strerror}")
    config = uvicorn.Config(_WORKER_APP, factory=True, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


def _run_workers(host: str, port: int, workers: int) -> None:
    """Run ``workers`` server processes until interrupted, or until one of them stops.

    Each binds the port with ``SO_REUSEPORT``, so the kernel spreads new connections evenly
    over them: through one shared socket (uvicorn's ``workers``), the process that wakes first
    may accept every waiting connection and leave the others idle.

    Raises:
        RecommenderError: a worker failed (it could not bind the port, say).
    """
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker, args=(host, port), daemon=True)
                 for _ in range(workers)]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the workers too
    for process in processes:
        process.start()
    try:  # until one stops: after Ctrl-C (each worker gets it too), or by failing
        multiprocessing.connection.wait([p.sentinel for p in processes])
    finally:
        for process in processes:
            process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        for process in processes:
            process.join()
    failed = [p.exitcode for p in processes if p.exitcode]
    if failed:
        raise RecommenderError(f"a server worker failed (exit status {failed[0]}; see its "
                               f"messages above); the others were stopped too")
