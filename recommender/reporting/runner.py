"""Run the numbered notebooks end to end with papermill and publish them as HTML reports.

Each notebook runs in a kernel of its own, started as if from ``notebooks/`` inside a staging
folder (``reports/.staging-<pid>-*/notebooks``), so its default ``reports_dir = "../reports"``
lands in the staging folder and the executed notebook shows exactly what an interactive run
shows: relative paths, no staging folder. Only when every notebook succeeded is the staged
``reports`` moved over ``reports/``, so a failure or an interruption never overwrites the
last good reports, and the staging folder is removed whatever happens.

Kernels talk over local (IPC) sockets, not unencrypted TCP, and run with progress bars off
(``TQDM_DISABLE=1``). Ctrl-C or SIGTERM stops the run within seconds, kernel included.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from recommender.core.config import NOTEBOOKS_DIR, PROJECT_ROOT, REPORTS_DIR
from recommender.core.errors import NotebookFailed, UsageError
from recommender.data.fetch import ensure_release
from recommender.data.releases import RELEASES
from recommender.reporting.conclusions import conclusions_for
from recommender.reporting.guide import COMPARISON
from recommender.reporting.html import export_html, write_index
from recommender.reporting.records import SEED_SPREAD, read_metrics, read_seed_spread

__all__ = ["NotebookFailed", "RunResult", "notebook_paths", "run_notebooks", "KERNEL_ENV"]

# What every kernel of a run sees on top of the runner's environment.
KERNEL_ENV = {"TQDM_DISABLE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
# The thread pools a kernel is held to while other notebooks run beside it (TensorFlow's,
# OpenMP's and the BLAS libraries'): unbounded pools of two kernels on the same cores spin
# against each other; held to their share, 02 and 03 side by side took 47 s instead of 65.
_THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS",
                     "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_STAGING = ".staging-"
# The order in which notebooks side by side start (by name prefix; others after, in order):
# chosen so that the two queues end together, each notebook still after the one whose saved
# model it reuses (04 takes 02's regression late in its run). On ml-latest-small, held to one
# core each: 02, 04 and 03 on one queue, 05, 06 and 01 on the other (two builds' notebook
# times, simulated: 278 s for both queues against 302 s for the order longest first).
START_ORDER = ("02", "05", "04", "06", "03", "01")


@dataclass
class RunResult:
    reports_dir: Path
    notebooks: list[dict]
    seconds: float


def notebook_paths(folder: Path = NOTEBOOKS_DIR, only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks (``NN_topic.ipynb``) in order, optionally filtered by prefix."""
    paths = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        paths = [p for p in paths if any(p.name.startswith(o) for o in only)]
        if not paths:
            raise UsageError(f"no notebook in {folder.name}/ matches {', '.join(only)}")
    return paths


def _failure_message(name: str, exc: BaseException) -> str:
    cell = getattr(exc, "exec_count", None)
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    where = f"cell {cell}" if cell is not None else "a cell"
    return f"notebook {name} failed in {where}: {ename}: {evalue}"


def kernel_threads(threads: int | None) -> dict[str, str]:
    """The environment that holds a kernel's thread pools to ``threads`` (None: unbounded)."""
    return {} if threads is None else {name: str(threads) for name in _THREAD_VARIABLES}


def _kernel_manager_class(sockets: Path, started: list, cwd: Path, threads: int | None):
    """A kernel manager class for papermill: the kernel started in ``cwd``, IPC sockets under
    ``sockets``, the run's environment (XLA's compilation cache under ``sockets`` too; thread
    pools held to ``threads`` unless None), and every started manager recorded in ``started``
    (to stop it on Ctrl-C).

    The kernel's folder is given to the kernel itself rather than through papermill's
    ``cwd``, which changes the working folder of the whole process: with notebooks side by
    side in threads, one notebook's end restored the folder while another's kernel started,
    and that kernel wrote its ``../reports`` beside the checkout."""
    from jupyter_client.manager import AsyncKernelManager

    class RunKernel(AsyncKernelManager):
        def __init__(self, **kwargs):
            # a name of its own while other notebooks of the run start kernels beside it
            super().__init__(transport="ipc", ip=str(sockets / f"k{id(self):x}"), **kwargs)

        async def start_kernel(self, **kwargs):
            kwargs["cwd"] = str(cwd)
            kwargs["env"] = {**os.environ, **kwargs.get("env", {}), **KERNEL_ENV,
                             **kernel_threads(threads)}
            # XLA programs compiled by one fit are reused by the next with the same shapes
            # (a refit, the same model in another notebook) for the rest of the run
            (sockets / "xla").mkdir(exist_ok=True)
            kwargs["env"]["TF_XLA_FLAGS"] = " ".join(filter(None, [
                kwargs["env"].get("TF_XLA_FLAGS"),
                f"--tf_xla_persistent_cache_directory={sockets / 'xla'}"]))
            # The kernel's own log says only that shutdown interrupted it ("KeyboardInterrupt
            # caught in kernel"); cell errors reach the notebook and the run's message.
            kwargs["extra_arguments"] = [*kwargs.get("extra_arguments", []),
                                         "--IPKernelApp.log_level=CRITICAL"]
            started.append(self)
            return await super().start_kernel(**kwargs)

    return RunKernel


def _kill(managers: list) -> None:
    """Kill the kernels of ``managers`` at once (they sit in sessions of their own, so a
    terminal's Ctrl-C never reaches them)."""
    for km in managers:
        process = getattr(getattr(km, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            process.kill()


def _execute(path: Path, executed: Path, cwd: Path, params: dict, sockets: Path,
             started: list, threads: int | None) -> None:
    """Execute one notebook with papermill in a worker thread, so that the main thread keeps
    Ctrl-C and SIGTERM (and nbclient installs no handlers that would swallow them); its kernel
    manager is added to ``started``, its thread pools held to ``threads`` unless None."""
    import papermill as pm

    outcome: dict = {}

    def work() -> None:
        try:
            pm.execute_notebook(str(path), str(executed), parameters=params,
                                kernel_name="python3", progress_bar=False, log_output=False,
                                kernel_manager_class=_kernel_manager_class(sockets, started,
                                                                           cwd, threads))
        except BaseException as exc:  # handed to the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=work, name=f"papermill {path.name}", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except BaseException:
        _kill(started)
        worker.join(10)
        raise
    if "error" in outcome:
        raise outcome["error"]


@contextlib.contextmanager
def _stop_on_signals():
    """Ctrl-C (SIGINT) and SIGTERM stop the run: the staging folder is removed on the way out.

    Both are set explicitly, so that a SIGINT the run inherited as ignored (a job started in
    the background by a shell) still stops it."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _remove_abandoned_staging(reports_dir: Path) -> None:
    """Staging folders of runs that were killed outright (SIGKILL), whose process is gone."""
    for folder in reports_dir.glob(f"{_STAGING}*"):
        match = re.match(rf"{re.escape(_STAGING)}(\d+)-", folder.name)
        if match and not _alive(int(match.group(1))):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _shown_path(path: str | None, cwd: Path) -> str:
    """A data or split folder as the kernel should get it: relative to its working folder."""
    if not path:
        return ""
    return os.path.relpath(Path(path).expanduser().resolve(), cwd)


def run_notebooks(dataset: str = "ml-latest-small", data_dir: str | None = None,
                  split_dir: str | None = None, quick: bool = False, seed: int = 0,
                  reports_dir: Path = REPORTS_DIR, only: list[str] | None = None,
                  progress: bool = True, notebooks_dir: Path = NOTEBOOKS_DIR,
                  jobs: int = 1) -> RunResult:
    """Execute the notebooks in order, export each to HTML, write ``reports/index.html``.

    Args:
        dataset: MovieLens release name, or ``synthetic`` for generated data. A release
            missing from the data folder is fetched first (checksum-verified).
        data_dir: folder holding the releases (default: ``RECOMMENDER_DATA`` or ``data/raw``).
        split_dir: folder with ``train.csv``/``test.csv``; default: the fixed benchmark split
            when one exists for ``dataset``, else a seeded per-user 20% split.
        quick: small data and few epochs (what the tests use).
        seed: passed to every notebook.
        reports_dir: where reports land.
        only: run only the notebooks whose names start with one of these prefixes.
        progress: print one line per notebook.
        notebooks_dir: the folder of numbered notebooks to run.
        jobs: notebooks run at once (see :func:`_run_all`); on 2 cores 2 keep both busy while
            one notebook is in single-threaded work (pandas, plots, a kernel starting).

    Raises:
        NotebookFailed: naming the notebook and the cell; ``reports_dir`` is left untouched and
            the failed executed notebook is kept in ``reports_dir/failed/``.
        DataError: the release is missing and cannot be downloaded (one line on what to do).
        KeyboardInterrupt: Ctrl-C or SIGTERM; kernels stopped, ``reports_dir`` untouched.
    """
    paths = notebook_paths(Path(notebooks_dir), only=only)
    if not quick and dataset in RELEASES:
        ensure_release(dataset, data_dir, progress=progress)
    reports_dir = Path(reports_dir).resolve()
    reports_dir.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(reports_dir)
    start = time.perf_counter()
    with _staging(reports_dir) as (cwd, staged, sockets), _stop_on_signals(), \
            _papermill_files_in_place():
        params = {"dataset": dataset, "data_dir": _shown_path(data_dir, cwd),
                  "split_dir": _shown_path(split_dir, cwd), "quick": bool(quick),
                  "seed": int(seed)}
        done = _run_all(paths, jobs, lambda path, started, threads: _run_one(
            path, staged, cwd, params, sockets, reports_dir, progress, started, threads))
        total = time.perf_counter() - start
        _publish(staged, reports_dir)
    _write_index(reports_dir, done, dataset, split_dir, seed, quick, total)
    return RunResult(reports_dir, done, total)


@contextlib.contextmanager
def _papermill_files_in_place():
    """Hold papermill's local file handler to no folder of its own for the run.

    papermill reads and writes local files inside a ``chdir`` to a folder kept in one
    process-wide handler, set and restored by every ``execute_notebook``: notebooks side by
    side restore each other's value out of order, leave it at a stale folder (the one of an
    earlier run) and move the whole process there while a notebook is written. Paths are
    resolved before the run, so the handler needs no folder."""
    from papermill.iorw import papermill_io

    handler = papermill_io.get_handler("local")
    stale = handler.cwd(None)
    handler.cwd = lambda path: None  # shadows the method for the run
    try:
        yield
    finally:
        del handler.cwd
        handler.cwd(stale)


@contextlib.contextmanager
def _staging(reports_dir: Path):
    """``(kernel working folder, staged reports, socket folder)`` of one run, removed at the
    end whatever happens; the staged reports start with the last run's metrics, so that a
    partial run (``--only``) still builds the full comparison, and with the measured spread
    over seeds, which notebook 07 reads."""
    staging = Path(tempfile.mkdtemp(prefix=f"{_STAGING}{os.getpid()}-", dir=reports_dir))
    sockets = Path(tempfile.mkdtemp(prefix="recommender-kernels-"))  # short socket paths
    try:
        cwd, staged = staging / "notebooks", staging / "reports"
        cwd.mkdir()
        staged.mkdir()
        if (reports_dir / "metrics").is_dir():
            shutil.copytree(reports_dir / "metrics", staged / "metrics")
        if (reports_dir / SEED_SPREAD).is_file():
            (staged / SEED_SPREAD).parent.mkdir(parents=True)
            shutil.copy2(reports_dir / SEED_SPREAD, staged / SEED_SPREAD)
        yield cwd, staged, sockets
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(sockets, ignore_errors=True)


def _run_all(paths: list[Path], jobs: int, run_one) -> list[dict]:
    """``run_one(path, started, threads)`` for every notebook, up to ``jobs`` at once (started
    in :func:`start_order`, results in order), each side-by-side kernel held to its share of
    the cores (``threads``); the last notebook (the comparison, which loads the models the
    others saved) starts when all the others are done, with every core. A notebook whose
    saved model is not there yet (artifacts are written atomically) fits it again: the same
    results, some time lost. The first failure or Ctrl-C stops every kernel of the run."""
    started: list = []
    if jobs <= 1 or len(paths) <= 2:
        return [run_one(path, started, None) for path in paths]
    share = max(1, (os.cpu_count() or 1) // jobs)
    pool = concurrent.futures.ThreadPoolExecutor(jobs, thread_name_prefix="notebook")
    futures: dict[Path, concurrent.futures.Future] = {}
    try:
        futures = {path: pool.submit(run_one, path, started, share)
                   for path in start_order(paths[:-1])}
        pending = set(futures.values())
        while pending:  # short waits, so that Ctrl-C reaches the main thread
            done, pending = concurrent.futures.wait(
                pending, timeout=0.2, return_when=concurrent.futures.FIRST_EXCEPTION)
            for future in done:
                future.result()  # the first failure stops the run
        results = [futures[path].result() for path in paths[:-1]]
        return [*results, _result(pool.submit(run_one, paths[-1], started, None))]
    except BaseException:
        for future in futures.values():
            future.cancel()
        _kill(started)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def start_order(paths: list[Path]) -> list[Path]:
    """``paths`` in :data:`START_ORDER` (by name prefix), the others after them in order."""
    def rank(path: Path) -> int:
        return next((i for i, prefix in enumerate(START_ORDER) if path.name.startswith(prefix)),
                    len(START_ORDER))

    return sorted(paths, key=rank)  # stable: unlisted notebooks keep their order


def _result(future: concurrent.futures.Future):
    """``future``'s result, waited for in short steps so that Ctrl-C reaches the main thread."""
    while True:
        try:
            return future.result(timeout=0.2)
        except concurrent.futures.TimeoutError:
            continue


def _run_one(path: Path, staged: Path, cwd: Path, params: dict, sockets: Path,
             reports_dir: Path, progress: bool, started: list, threads: int | None) -> dict:
    """Execute one notebook into the staging folder (thread pools held to ``threads`` unless
    None) and export it to HTML.

    Raises:
        NotebookFailed: the executed notebook is kept in ``reports_dir/failed/``.
    """
    executed = staged / path.name
    start = time.perf_counter()
    if progress:
        print(f"running {path.name} ...", file=sys.stderr, flush=True)
    try:
        _execute(path, executed, cwd, params, sockets, started, threads)
    except Exception as exc:
        failed = reports_dir / "failed"
        failed.mkdir(exist_ok=True)
        if executed.exists():
            shutil.copy2(executed, failed / path.name)
        raise NotebookFailed(_failure_message(path.name, exc)) from None
    export_html(executed, staged / f"{path.stem}.html")
    seconds = time.perf_counter() - start
    if progress:
        print(f"  {path.name} done in {seconds:.1f} s", file=sys.stderr, flush=True)
    return {"name": path.name, "html": f"{path.stem}.html", "seconds": seconds}


def _commit() -> str:
    """The checkout's commit (short), marked when tracked files outside ``reports/`` (which
    the run itself rewrites) have local changes."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True,
                              text=True, timeout=30, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!reports")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"{commit} with local changes" if changed else commit


def _write_index(reports_dir: Path, done: list[dict], dataset: str, split_dir: str | None,
                 seed: int, quick: bool, total: float) -> None:
    """``index.html`` from the metrics the notebooks of this run recorded."""
    from datetime import datetime

    metrics = read_metrics(reports_dir)
    ran = [metrics.get(Path(n["name"]).stem, {}) for n in done]  # this run's, not stale ones
    split = next((m["split"] for m in ran if "split" in m),
                 f"files: {Path(split_dir).name}" if split_dir else "per-user 20% (seeded)")
    run_info = {"dataset": dataset, "split": split, "seed": seed, "quick": quick,
                "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
                "commit": _commit(), "total seconds": f"{total:.1f}"}
    comparison = metrics.get(COMPARISON, {})
    write_index(reports_dir, done, run_info, comparison.get("table"),
                summary_markdown=conclusions_for(COMPARISON, comparison) if comparison else "",
                seed_spread=None if quick else read_seed_spread(reports_dir, split, dataset))


def _publish(staging: Path, reports_dir: Path) -> None:
    """Move every staged file over ``reports_dir`` (file by file, each an atomic rename)."""
    for src in sorted(staging.rglob("*")):
        if src.is_file():
            dst = reports_dir / src.relative_to(staging)
            dst.parent.mkdir(parents=True, exist_ok=True)
            src.replace(dst)
