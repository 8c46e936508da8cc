"""Helpers of the serving tests: a free loopback port, a real server process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server_process(folder: Path, database: str, timeout: float = 60.0):
    """``recommender serve`` in a subprocess on a free loopback port; yields
    ``(base_url, process)`` once /health answers, and kills it afterwards."""
    import httpx2 as httpx

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "recommender.cli", "serve", "--dataset", str(folder),
         "--database", database, "--port", str(port), "--artifacts", str(folder / "none")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
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
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        process.stderr.close()
