"""What notebooks leave behind for readers and tests: metrics JSON and figures.

Every notebook ends with :func:`record_metrics`, so the comparison notebook, the index page
and the tests all read the same numbers from ``reports/metrics/<notebook>.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from recommender.core.config import REPORTS_DIR
from recommender.core.files import atomic_write_text

__all__ = ["record_metrics", "read_metrics", "save_figure", "read_seed_spread", "SEED_SPREAD"]

# Written by ``benchmarks/u20.py --seeds``: the headline models' metrics over several seeds.
SEED_SPREAD = Path("benchmarks") / "u20_seeds.json"


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


class _WrittenPath(type(Path())):
    """The path of a file a notebook wrote; a cell ending with the call does not echo it."""

    def _ipython_display_(self) -> None:
        pass


def record_metrics(notebook: str, metrics: dict, reports_dir: str | Path = REPORTS_DIR) -> Path:
    """Write ``metrics`` to ``<reports_dir>/metrics/<notebook>.json`` and return the path."""
    path = Path(reports_dir) / "metrics" / f"{Path(notebook).stem}.json"
    atomic_write_text(path, json.dumps(_clean(metrics), indent=2, sort_keys=True))
    return _WrittenPath(path)


def read_metrics(reports_dir: str | Path = REPORTS_DIR) -> dict[str, dict]:
    """Every recorded metrics file, keyed by notebook name."""
    folder = Path(reports_dir) / "metrics"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def read_seed_spread(reports_dir: str | Path = REPORTS_DIR, split: str | None = None,
                     dataset: str | None = None) -> dict | None:
    """The spread over seeds measured for ``split`` of ``dataset``, or None when none was.

    Returns:
        ``{"dataset", "split", "seeds", "date", "models": {name: {metric: {"mean", "sd",
        "values"}}}}`` as ``benchmarks/u20.py --seeds`` writes it.
    """
    path = Path(reports_dir) / SEED_SPREAD
    if not path.is_file():
        return None
    spread = json.loads(path.read_text())
    if (split is not None and spread.get("split") != split) or (
            dataset is not None and spread.get("dataset") != dataset):
        return None
    return spread


def save_figure(fig, name: str, reports_dir: str | Path = REPORTS_DIR) -> Path:
    """Save a matplotlib figure as ``<reports_dir>/figures/<name>.png``."""
    path = Path(reports_dir) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return _WrittenPath(path)
