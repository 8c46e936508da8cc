"""The notebooks as a reader opens them: the project's kernel, one default seed, the template.

JupyterLab rewrites a notebook's kernelspec and language_info with what the running kernel
reports; committed values that differ would mark every notebook modified on opening (and
autosave would rewrite the committed file), so they must be what the project's kernel says.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from recommender.core.config import NOTEBOOKS_DIR, PROJECT_ROOT
from recommender.reporting.runner import notebook_paths

NOTEBOOKS = notebook_paths()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_kernel_metadata_is_what_the_projects_kernel_reports(path):
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    metadata = json.loads(path.read_text())["metadata"]
    assert metadata["kernelspec"] == {"display_name": spec.display_name,
                                      "language": spec.language, "name": "python3"}
    reported = dict(IPythonKernel.language_info)
    committed = dict(metadata["language_info"])
    # The Python patch version is the one of the environment the notebooks were committed
    # from; pyproject.toml pins the minor version.
    assert committed.pop("version").rsplit(".", 1)[0] == reported.pop("version").rsplit(".", 1)[0]
    assert committed == reported


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_follows_the_template(path):
    nb = nbformat.read(path, as_version=4)
    tags = [cell.metadata.get("tags", []) for cell in nb.cells]
    assert nb.cells[0].cell_type == "markdown"
    assert nb.cells[0].source.startswith(f"# {path.stem[:2]} · ")
    (parameters,) = [c for c, t in zip(nb.cells, tags) if "parameters" in t]
    assert "\nseed = 0 " in f"\n{parameters.source}"
    assert "record_metrics(" in nb.cells[-3].source and "remove-cell" in tags[-3]
    assert nb.cells[-2].source.startswith("## What this shows")
    assert nb.cells[-1].source == f'what_this_shows("{path.stem}", reports_dir)'
    assert tags[-1] == ["remove-input"]
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")


def test_one_default_seed_everywhere():
    """`recommender evaluate`, `recommender run`, the runner, the notebooks' data and every
    notebook's parameters default to the same seed, so their figures are one set."""
    from recommender.cli import build_parser
    from recommender.data.experiment import load_experiment
    from recommender.reporting.runner import run_notebooks

    parser = build_parser()
    defaults = {
        "evaluate": parser.parse_args(["evaluate", "--model", "x", "--train", "a",
                                       "--test", "b"]).seed,
        "run": parser.parse_args(["run"]).seed,
        "run_notebooks": inspect.signature(run_notebooks).parameters["seed"].default,
        "load_experiment": inspect.signature(load_experiment).parameters["seed"].default,
    }
    assert set(defaults.values()) == {0}, defaults


def test_a_kernel_started_in_notebooks_finds_the_data_as_make_run_does(tmp_path):
    """What `jupyter lab` started by hand gives a notebook: its folder as working directory and
    no RECOMMENDER_DATA; the data folder must still be the one `make run` uses."""
    env = {k: v for k, v in os.environ.items() if k != "RECOMMENDER_DATA"}
    code = "from recommender.core.config import data_dir; print(data_dir())"
    found = subprocess.run([sys.executable, "-c", code], cwd=NOTEBOOKS_DIR, env=env,
                           capture_output=True, text=True, timeout=60, check=True)
    made = subprocess.run(["make", "-s", "-n", "run"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert "RECOMMENDER_DATA" not in made.stdout  # make leaves the choice to config.data_dir
    assert Path(found.stdout.strip()) == _data_dir_in_a_fresh_interpreter(env)


def test_the_data_folder_is_resolved_in_one_order(tmp_path, monkeypatch):
    from recommender.core import config

    raw, shared = tmp_path / "data" / "raw", tmp_path / "shared" / "data"
    raw.mkdir(parents=True)
    (raw / ".gitkeep").touch()
    monkeypatch.setattr(config, "RAW_DIR", raw)
    monkeypatch.setattr(config, "SHARED_DATA_DIR", shared)
    monkeypatch.delenv("RECOMMENDER_DATA", raising=False)
    assert config.data_dir() == raw  # nothing beside the checkout: data/raw, to fetch into
    shared.mkdir(parents=True)
    assert config.data_dir() == shared  # data/raw empty, ../shared/data present
    (raw / "ml-latest-small").mkdir()
    assert config.data_dir() == raw  # data/raw holds a release
    monkeypatch.setenv("RECOMMENDER_DATA", str(tmp_path / "env"))
    assert config.data_dir() == tmp_path / "env"
    assert config.data_dir(tmp_path / "explicit") == tmp_path / "explicit"


def _data_dir_in_a_fresh_interpreter(env: dict) -> Path:
    code = "from recommender.core.config import data_dir; print(data_dir())"
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    return Path(done.stdout.strip())


CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)


@pytest.mark.slow  # a JupyterLab server and a browser
def test_a_notebook_opens_unmodified_in_jupyterlab(tmp_path):
    if CHROMIUM is None:
        pytest.skip("no chromium executable (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    folder = tmp_path / "notebooks"
    folder.mkdir()
    shutil.copy(NOTEBOOKS[0], folder)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
         "--ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
         "--allow-root", f"--notebook-dir={folder}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            deadline = time.monotonic() + 60
            while True:
                try:
                    page.goto(f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOKS[0].name}")
                    break
                except playwright.Error:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                                   timeout=90_000)
            time.sleep(3)  # the kernel's info has arrived; any metadata update is made
            dirty = page.locator(".lm-TabBar-tab.jp-mod-dirty").count()
            browser.close()
    finally:
        server.terminate()
        server.wait(20)
    assert dirty == 0, "JupyterLab marked the committed notebook modified on opening"
    assert (folder / NOTEBOOKS[0].name).read_bytes() == NOTEBOOKS[0].read_bytes()
