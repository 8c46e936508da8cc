"""What notebooks leave behind: metrics JSON, figures, and the HTML index that links them.

Every notebook ends with :func:`record_metrics`, so the comparison notebook, the index page
and the tests all read the same numbers from ``reports/metrics/<notebook>.json``.
"""

from __future__ import annotations

import html
import json
import math
import os
import tempfile
from importlib import metadata
from pathlib import Path

import pandas as pd

from recommender.config import REPORTS_DIR

__all__ = ["record_metrics", "read_metrics", "save_figure", "write_index", "package_versions",
           "atomic_write_text"]

MAIN_PACKAGES = ("tensorflow", "keras", "numpy", "pandas", "scipy", "scikit-learn",
                 "matplotlib", "papermill")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _clean(value):
    """JSON-safe: numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def record_metrics(notebook: str, metrics: dict, reports_dir: str | Path = REPORTS_DIR) -> Path:
    """Write ``metrics`` to ``<reports_dir>/metrics/<notebook>.json`` and return the path."""
    path = Path(reports_dir) / "metrics" / f"{Path(notebook).stem}.json"
    atomic_write_text(path, json.dumps(_clean(metrics), indent=2, sort_keys=True))
    return path


def read_metrics(reports_dir: str | Path = REPORTS_DIR) -> dict[str, dict]:
    """Every recorded metrics file, keyed by notebook name."""
    folder = Path(reports_dir) / "metrics"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def save_figure(fig, name: str, reports_dir: str | Path = REPORTS_DIR) -> Path:
    """Save a matplotlib figure as ``<reports_dir>/figures/<name>.png``."""
    path = Path(reports_dir) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def package_versions() -> dict[str, str]:
    out = {}
    for name in MAIN_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.meta td{text-align:left}"""


def _table(frame: pd.DataFrame, digits: int = 4) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.{digits}f}", na_rep="–",
                         border=0, escape=True)


def write_index(reports_dir: str | Path, notebooks: list[dict], run_info: dict,
                comparison: pd.DataFrame | None = None) -> Path:
    """Write ``reports/index.html``: the comparison table first, then the notebooks and the run.

    Args:
        reports_dir: the reports folder.
        notebooks: one dict per notebook with ``name``, ``html`` (relative link), ``seconds``.
        run_info: dataset, split, seed, total seconds... shown as a key/value table.
        comparison: the model comparison table (one row per model), if the run produced one.
    """
    reports_dir = Path(reports_dir)
    parts = [f"<!doctype html><meta charset='utf-8'><title>Recommender reports</title>"
             f"<style>{_STYLE}</style><h1>Movie recommender lab: reports</h1>"]
    if comparison is not None and not comparison.empty:
        parts.append("<h2>Model comparison</h2>" + _table(comparison))
    rows = "".join(
        f"<tr><td><a href='{html.escape(n['html'])}'>{html.escape(n['name'])}</a></td>"
        f"<td>{n['seconds']:.1f}</td></tr>" for n in notebooks)
    parts.append("<h2>Notebooks</h2><table><tr><th>notebook</th><th>seconds</th></tr>"
                 f"{rows}</table>")
    info = {**run_info, **{f"version: {k}": v for k, v in package_versions().items()}}
    meta = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in info.items())
    parts.append(f"<h2>Run</h2><table class='meta'>{meta}</table>")
    path = reports_dir / "index.html"
    atomic_write_text(path, "\n".join(parts))
    return path
