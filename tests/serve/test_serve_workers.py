"""Several worker processes: the models handed over through a private folder of the server's
own (mode 0700, unique, removed on exit), a worker that dies started again, the operator
token never printed."""

from __future__ import annotations

import os
import signal
import stat
import time

import httpx2 as httpx
import pytest
from serving import OPERATOR, OPERATOR_TOKEN, server_process

psutil = pytest.importorskip("psutil", reason="psutil is not installed (it comes with ipykernel)")


def workers_of(process) -> list:
    """The live worker processes of the server (spawned interpreters, not its helpers)."""
    found = []
    for child in psutil.Process(process.pid).children(recursive=True):
        try:
            line = " ".join(child.cmdline())
            if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in line:
                found.append(child)
        except psutil.Error:  # gone meanwhile
            continue
    return found


@pytest.mark.slow  # end to end: server processes started, killed and stopped
def test_workers_share_a_private_folder_and_a_dead_one_is_replaced(dataset_folder, tmp_path):
    database = str(tmp_path / "store.sqlite3")
    env = {"RECOMMENDER_OPERATOR_TOKEN": OPERATOR_TOKEN}
    with server_process(dataset_folder, database, "--workers", "2", env=env) as (url, process):
        deadline = time.monotonic() + 60
        while len(workers_of(process)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = workers_of(process)
        assert len(workers) == 2
        folder = workers[0].environ()["RECOMMENDER_SERVE_HANDOVER"]
        assert os.path.basename(folder).startswith("recommender-serve-")
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(os.path.join(folder, "handover.json")).st_mode) == 0o600
        assert all(OPERATOR_TOKEN not in " ".join(w.cmdline()) for w in workers)

        os.kill(workers[0].pid, signal.SIGKILL)  # a worker dies
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            alive = [w for w in workers_of(process) if w.pid != workers[0].pid]
            if len(alive) == 2:
                break
            time.sleep(0.2)
        assert len(alive) == 2, "the dead worker was not replaced"
        for _ in range(20):  # every answer from a live worker, the operator token working
            assert httpx.get(url + "/health/ready").status_code == 200
        assert httpx.put(url + "/users/1/ratings", headers=OPERATOR, json={"ratings": [
            {"movie_id": 3, "rating": 4.5}]}).status_code == 200

        process.send_signal(signal.SIGTERM)  # a clean stop removes the folder
        process.wait(timeout=30)
        assert not os.path.exists(folder)
        messages = process.stderr.read().decode()
        assert "stopped with status -9; starting another" in messages
        assert OPERATOR_TOKEN not in messages and "operator token set" in messages
