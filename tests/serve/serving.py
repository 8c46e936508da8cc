"""Helpers of the serving tests: a free loopback port, a real server process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from recommender.serve.server import worker_models


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
def server_process(folder: Path, database: str, *options: str, timeout: float = 60.0):
    """``recommender serve [options]`` in its own process group on a free loopback port;
    yields ``(base_url, process)`` once /health answers, and kills the group afterwards."""
    import httpx2 as httpx

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "recommender.cli", "serve", "--dataset", str(folder),
         "--database", database, "--port", str(port), "--artifacts", str(folder / "none"),
         *options], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
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
        shutil.rmtree(worker_models(port), ignore_errors=True)
