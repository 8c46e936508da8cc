"""Run the API with uvicorn: open on loopback, hardened beyond it, one or several processes.

This is the process runner: it builds the app (:func:`recommender.serve.app.create_app`), in
this process or in each worker process, and the app knows nothing of it. With several
workers it hands them the models through a private folder of its own (``mkdtemp``, mode
0700, removed on exit) and restarts a worker that dies.
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
import time
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from recommender.core.errors import RecommenderError, UsageError
from recommender.serve.app import Policy, create_app
from recommender.serve.auth import operator_token
from recommender.serve.middleware import Limits
from recommender.serve.service import ServeConfig, Service

__all__ = ["serve", "is_loopback", "is_private", "from_environment", "limits",
           "HANDOVER_ENV_VAR",
           "RESTARTS_PER_MINUTE"]

HANDOVER_ENV_VAR = "RECOMMENDER_SERVE_HANDOVER"  # the folder where workers find what to serve
RESTARTS_PER_MINUTE = 5  # more worker deaths than this in a minute stop the server
_CANNOT_BIND = 3  # a worker's exit status when the port is taken: restarting cannot help
_UVICORN = {"log_level": "warning", "access_log": False, "server_header": False}


def is_private(host: str, allowed_hosts: tuple[str, ...] = ()) -> bool:
    """Whether a server on ``host`` answers this machine only: a loopback address, and no
    ``--allowed-host`` (a name given means clients come through it, as behind a reverse
    proxy on the same machine)."""
    return is_loopback(host) and not allowed_hosts


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def limits(per_second: float | None, signups_per_hour: float | None, private: bool
           ) -> Limits:
    """The rate limits of ``--rate-limit`` and ``--signups-per-hour``: a burst of 3 seconds'
    requests and up to 5 sign-ups; a value not given keeps the default
    (:meth:`Limits.public` for a public server, none for a private one: :func:`is_private`)."""
    default = Limits() if private else Limits.public()
    rate = default.per_second if per_second is None else per_second
    signups = default.signups_per_hour if signups_per_hour is None else signups_per_hour
    for name, value in (("--rate-limit", rate), ("--signups-per-hour", signups)):
        if not 0 <= value <= 1e6:
            raise UsageError(f"{name} {value:g}: expected 0 (off) to 1000000")
    return Limits(per_second=rate, burst=max(1, round(3 * rate)), signups_per_hour=signups,
                  signup_burst=max(1, min(5, round(signups))))


def serve(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          operator_token_file: str | None = None, allowed_hosts: tuple[str, ...] = (),
          rate_limits: Limits | None = None) -> None:
    """Load (or fit) the models, then serve the API and the page until interrupted.

    Beyond loopback the server answers only to ``allowed_hosts`` (which must be given); a
    server given host names (beyond loopback, or behind a reverse proxy on loopback) faces
    the public: reading a user's data needs their secret, and rate limits are on. The operator token
    comes from ``operator_token_file`` or ``RECOMMENDER_OPERATOR_TOKEN``
    (:func:`~recommender.serve.auth.operator_token`).

    With ``workers > 1``, the models are fitted once here, saved to a private folder, and
    each worker process loads its own copy and listens on the port itself (see
    :func:`_run_workers`); the workers share the store.

    Raises:
        UsageError: beyond loopback without ``allowed_hosts``; a bad token or token file; a
            port, worker count or list cache size out of range.
    """
    token = operator_token(operator_token_file)
    _check_options(config, host, port, workers, allowed_hosts)
    private = is_private(host, allowed_hosts)
    policy = Policy.for_host(private, token, tuple(allowed_hosts),
                             rate_limits if rate_limits is not None else limits(None, None,
                                                                                private))
    service = Service.from_config(config)
    _announce(service, host, port, workers, policy)
    if workers == 1:
        uvicorn.run(create_app(service=service, policy=policy), host=host, port=port,
                    **_UVICORN)
        return
    folder = tempfile.mkdtemp(prefix="recommender-serve-")  # unique, mode 0700
    try:
        _hand_over(service, config, policy, folder)
        del service  # the workers hold the models now; this process only watches them
        if hasattr(socket, "SO_REUSEPORT"):
            _run_workers(host, port, workers)
        else:  # uvicorn's workers share one socket (and uvicorn restarts them)
            uvicorn.run(_WORKER_APP, factory=True, workers=workers, host=host, port=port,
                        **_UVICORN)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _check_options(config: ServeConfig, host: str, port: int, workers: int,
                   allowed_hosts: tuple[str, ...]) -> None:
    """Refuse, with a :class:`UsageError` naming the option, what :func:`serve` cannot do."""
    if not is_loopback(host) and not allowed_hosts:
        raise UsageError(f"--host {host}: beyond loopback, name the host names clients will "
                         f"use (--allowed-host movies.example.org, repeatable), so that no "
                         f"other site's page can reach this server (DNS rebinding)")
    for name in allowed_hosts:
        if not name or name == "*" or any(c in name for c in "/ @") or "*" in name[1:]:
            raise UsageError(f"--allowed-host {name!r}: expected a host name, an address, or "
                             f"*.domain for its subdomains")
    if not 0 < port < 65536:
        raise UsageError(f"--port {port}: expected 1-65535")
    if not 1 <= workers <= 64:
        raise UsageError(f"--workers {workers}: expected 1-64")
    if not 0 <= config.list_cache_mb <= 65536:
        raise UsageError(f"--list-cache-mb {config.list_cache_mb}: expected 0-65536")


def _announce(service: Service, host: str, port: int, workers: int, policy: Policy) -> None:
    """One line on stderr: what is served, from where, at which address, how guarded (the
    operator token itself is never printed)."""
    shown = f"[{host}]" if ":" in host else host
    guard = ("reads private, rate limits on, " if policy.private_reads else "") + \
        ("operator token set" if policy.operator_token else "no operator token")
    print(f"serving {service.dataset} ({service.list_model.name} lists, "
          f"{service.rating_model.name} ratings; store {service.store.label}; {workers} "
          f"worker{'s' if workers > 1 else ''}; {guard}) on http://{shown}:{port}/  "
          f"(Ctrl-C stops)", file=sys.stderr, flush=True)


def _hand_over(service: Service, config: ServeConfig, policy: Policy, folder: str) -> None:
    """Save the service's models, the config (now loading from ``folder``) and the policy
    (with the operator token, in a file only this user can read) to ``folder``, close the
    store, and name the folder in the environment, where worker processes find it
    (:func:`from_environment`)."""
    for model in (service.list_model, service.rating_model):
        model.save(os.path.join(folder, model.name))
    service.store.close()
    shared = dataclasses.replace(config, artifacts=folder, progress=False)
    handover = {"config": dataclasses.asdict(shared), "policy": dataclasses.asdict(policy)}
    descriptor = os.open(os.path.join(folder, "handover.json"),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(handover, file, default=str)
    os.environ[HANDOVER_ENV_VAR] = folder


def from_environment() -> FastAPI:
    """The app of one worker process, configured by :func:`serve` through the hand-over
    folder named in the environment."""
    folder = Path(os.environ[HANDOVER_ENV_VAR])
    handover = json.loads((folder / "handover.json").read_text())
    config = ServeConfig(**{**handover["config"], "artifacts": folder})
    policy = handover["policy"]
    policy = Policy(**{**policy, "allowed_hosts": tuple(policy["allowed_hosts"]),
                       "limits": Limits(**policy["limits"])})
    return create_app(config, policy=policy)


_WORKER_APP = "recommender.serve.server:from_environment"


def _worker(host: str, port: int) -> None:
    """One server process of several, with its own listening socket on the shared port."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        print(f"recommender: error: cannot listen on {host}:{port}: {exc.strerror}",
              file=sys.stderr, flush=True)
        sys.exit(_CANNOT_BIND)
    config = uvicorn.Config(_WORKER_APP, factory=True, **_UVICORN)
    uvicorn.Server(config).run(sockets=[sock])


def _run_workers(host: str, port: int, workers: int) -> None:
    """Run ``workers`` server processes until interrupted, starting a new one for each that
    dies (one line on stderr says so), unless it could not bind the port or more than
    :data:`RESTARTS_PER_MINUTE` died within a minute: then all stop.

    Each binds the port with ``SO_REUSEPORT``, so the kernel spreads new connections evenly
    over them: through one shared socket (uvicorn's ``workers``), the process that wakes first
    may accept every waiting connection and leave the others idle.

    Raises:
        RecommenderError: a worker could not bind the port, or workers keep dying.
    """
    context = multiprocessing.get_context("spawn")

    def start() -> multiprocessing.Process:
        process = context.Process(target=_worker, args=(host, port), daemon=True)
        process.start()
        return process

    processes = [start() for _ in range(workers)]
    deaths: list[float] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the workers too
    try:
        while True:  # until Ctrl-C or SIGTERM (KeyboardInterrupt, SystemExit)
            multiprocessing.connection.wait([p.sentinel for p in processes])
            for i, process in enumerate(processes):
                status = process.exitcode
                if status is None:
                    continue
                if status == _CANNOT_BIND:
                    raise RecommenderError(f"a server worker could not listen on port {port} "
                                           f"(see above); the others were stopped too")
                deaths = [t for t in deaths if time.monotonic() - t < 60] + [time.monotonic()]
                if len(deaths) > RESTARTS_PER_MINUTE:
                    raise RecommenderError(f"{len(deaths)} server workers died within a "
                                           f"minute (the last with status {status}); stopping")
                print(f"recommender: a server worker (pid {process.pid}) stopped with status "
                      f"{status}; starting another", file=sys.stderr, flush=True)
                processes[i] = start()
    finally:
        for process in processes:
            process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        for process in processes:
            process.join()
