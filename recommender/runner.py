"""Run the numbered notebooks end to end with papermill and publish them as HTML reports.

Notebooks execute into a staging folder; only when every one of them succeeded is the staging
folder's content moved over ``reports/``, so a failure never overwrites the last good reports.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from recommender.config import NOTEBOOKS_DIR, REPORTS_DIR
from recommender.errors import NotebookFailed, UsageError
from recommender.reports import read_metrics, write_index

__all__ = ["NotebookFailed", "RunResult", "notebook_paths", "run_notebooks"]


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


def _export_html(notebook: Path, target: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    target.write_text(body, encoding="utf-8")


def _failure_message(name: str, exc: Exception) -> str:
    cell = getattr(exc, "exec_count", None)
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    where = f"cell {cell}" if cell is not None else "a cell"
    return f"notebook {name} failed in {where}: {ename}: {evalue}"


def run_notebooks(dataset: str = "ml-latest-small", data_dir: str | None = None,
                  split_dir: str | None = None, quick: bool = False, seed: int = 42,
                  reports_dir: Path = REPORTS_DIR, only: list[str] | None = None,
                  progress: bool = True, notebooks_dir: Path = NOTEBOOKS_DIR) -> RunResult:
    """Execute the notebooks in order, export each to HTML, write ``reports/index.html``.

    Args:
        dataset: MovieLens release name, or ``synthetic`` for generated data.
        data_dir: folder holding the releases (default: ``RECOMMENDER_DATA`` or ``data/raw``).
        split_dir: folder with ``train.csv``/``test.csv``; default: the fixed benchmark split
            when one exists for ``dataset``, else a seeded per-user 20% split.
        quick: small data and few epochs (what the tests use).
        seed: passed to every notebook.
        reports_dir: where reports land.
        only: run only the notebooks whose names start with one of these prefixes.
        progress: print one line per notebook.
        notebooks_dir: the folder of numbered notebooks to run.

    Raises:
        NotebookFailed: naming the notebook and the cell; ``reports_dir`` is left untouched and
            the failed executed notebook is kept in ``reports_dir/failed/``.
    """
    import papermill as pm

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # kernels inherit it: no C++ log noise
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=reports_dir))
    params = {"dataset": dataset, "data_dir": str(data_dir or ""),
              "split_dir": str(split_dir or ""), "quick": bool(quick), "seed": int(seed),
              "reports_dir": str(staging)}
    # Earlier runs' metrics let a partial run (--only) still build the full comparison.
    if (reports_dir / "metrics").is_dir():
        shutil.copytree(reports_dir / "metrics", staging / "metrics")
    done: list[dict] = []
    start = time.perf_counter()
    try:
        for path in notebook_paths(Path(notebooks_dir), only=only):
            executed = staging / path.name
            t0 = time.perf_counter()
            if progress:
                print(f"running {path.name} ...", file=sys.stderr, flush=True)
            try:
                pm.execute_notebook(str(path), str(executed), parameters=params,
                                    cwd=str(path.parent), kernel_name="python3",
                                    progress_bar=False, log_output=False)
            except Exception as exc:
                failed = reports_dir / "failed"
                failed.mkdir(exist_ok=True)
                if executed.exists():
                    shutil.copy2(executed, failed / path.name)
                raise NotebookFailed(_failure_message(path.name, exc)) from None
            _export_html(executed, staging / f"{path.stem}.html")
            seconds = time.perf_counter() - t0
            done.append({"name": path.name, "html": f"{path.stem}.html", "seconds": seconds})
            if progress:
                print(f"  done in {seconds:.1f} s", file=sys.stderr, flush=True)
        total = time.perf_counter() - start
        _publish(staging, reports_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    metrics = read_metrics(reports_dir)
    comparison = _comparison_table(metrics)
    ran = [metrics.get(Path(n["name"]).stem, {}) for n in done]  # this run's, not stale ones
    split = next((m["split"] for m in ran if "split" in m), split_dir or "per-user 20% (seeded)")
    run_info = {"dataset": dataset, "split": split, "seed": seed, "quick": quick,
                "total seconds": f"{total:.1f}"}
    write_index(reports_dir, done, run_info, comparison)
    return RunResult(reports_dir, done, total)


_INDEX_COLUMNS = ("rmse", "mae", "precision@10", "recall@10", "ndcg@10", "map@10", "hr@10",
                  "coverage@10", "novelty", "top1pct_share", "ndcg@10_p", "rmse_p",
                  "fit_seconds", "score_seconds")


def _comparison_table(metrics: dict[str, dict]):
    """The comparison rows of notebook 07 for the index: point estimates with their 95%
    intervals in one cell, then p-values and timings."""
    import pandas as pd

    rows = metrics.get("07_model_comparison", {}).get("table")
    if not rows:
        return None
    table = pd.DataFrame(rows)

    def cell(row, column):
        value = row.get(column)
        if value is None or pd.isna(value):
            return "–"
        if column.endswith("_p"):
            return f"{value:.1e}"
        if column.endswith("seconds"):
            return f"{value:.1f}"
        low, high = row.get(f"{column}_low"), row.get(f"{column}_high")
        if low is not None and high is not None and pd.notna(low):
            return f"{value:.4f} [{low:.3f}, {high:.3f}]"
        return f"{value:.4f}"

    columns = [c for c in _INDEX_COLUMNS if c in table]
    return pd.DataFrame([{"model": r["model"], **{c: cell(r, c) for c in columns}}
                         for r in table.to_dict(orient="records")])


def _publish(staging: Path, reports_dir: Path) -> None:
    """Move every staged file over ``reports_dir`` (file by file, each an atomic rename)."""
    for src in sorted(staging.rglob("*")):
        if src.is_file():
            dst = reports_dir / src.relative_to(staging)
            dst.parent.mkdir(parents=True, exist_ok=True)
            src.replace(dst)
