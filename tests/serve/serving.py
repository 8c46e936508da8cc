"""Helpers of the serving tests: a free loopback port, a real server process, credentials."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

LOCAL = "http://127.0.0.1:8000"  # a base URL whose Host the app answers (TestClient's is not)
OPERATOR_TOKEN = "operator-token-for-tests-0123456789abcdef"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_all(process: subprocess.Popen) -> None:
    """SIGKILL the server and its worker processes at once, as a crash would."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


@contextmanager
def server_process(folder: Path, database: str, *options: str, timeout: float = 60.0,
                   env: dict[str, str] | None = None):
    """``recommender serve [options]`` in its own process group on a free loopback port;
    yields ``(base_url, process)`` once /health answers, and kills the group afterwards."""
    import httpx2 as httpx

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "recommender.cli", "serve", "--dataset", str(folder),
         "--database", database, "--port", str(port), "--artifacts", str(folder / "none"),
         *options], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start in time")
            time.sleep(0.2)
        yield url, process
    finally:
        kill_all(process)
        process.stderr.close()
