"""The shared loop under MultiWorkerMirroredStrategy: two worker processes on loopback train the
same model as one process (``TF_CONFIG`` is all that differs)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("distributed_worker.py")
TIMEOUT_S = 300  # TensorFlow start-up in three processes at once, on a busy 2-core machine


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start(out: Path, tf_config: dict | None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, str(WORKER), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_workers_train_the_model_one_process_trains(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    runs = {"single": start(tmp_path / "single.json", None)}
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        runs[f"worker{index}"] = start(tmp_path / f"worker{index}.json", config)
    try:
        errors = {name: run.communicate(timeout=TIMEOUT_S)[1] for name, run in runs.items()}
    finally:
        for run in runs.values():
            run.kill()
    for name, run in runs.items():
        assert run.returncode == 0, f"{name} failed:\n{errors[name][-3000:]}"
    result = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in runs}
    assert [result[n]["replicas"] for n in ("single", "worker0", "worker1")] == [1, 2, 2]
    single = result["single"]
    assert single["loss"][-1] < single["loss"][0]  # it learns
    for name in ("worker0", "worker1"):
        np.testing.assert_allclose(result[name]["loss"], single["loss"], rtol=1e-4)
        np.testing.assert_allclose(result[name]["predictions"], single["predictions"],
                                   atol=1e-4)
