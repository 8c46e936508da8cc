"""Where things live: the project root, the data folder, the reports folder.

The data folder is resolved in one place so that the CLI, ``make``, the notebooks (run by
``recommender run``, ``make lab`` or a plain ``jupyter lab``) and the tests agree: an explicit
``--data-dir`` wins, else the ``RECOMMENDER_DATA`` environment variable, else ``data/raw``
under the project root, unless that is empty and a ``shared/data`` folder sits beside the
checkout (the layout CI and the benchmark machines use), which is then taken.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
REPORTS_DIR = PROJECT_ROOT / "reports"
PROCESSED_DIR = PROJECT_ROOT / "data" / "processed"
DATA_ENV_VAR = "RECOMMENDER_DATA"
RAW_DIR = PROJECT_ROOT / "data" / "raw"
SHARED_DATA_DIR = PROJECT_ROOT.parent / "shared" / "data"


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Return the folder that holds the MovieLens releases (one sub-folder each)."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(DATA_ENV_VAR):
        return Path(os.environ[DATA_ENV_VAR]).expanduser()
    raw_is_empty = not any(p.name != ".gitkeep" for p in RAW_DIR.glob("*"))
    return SHARED_DATA_DIR if raw_is_empty and SHARED_DATA_DIR.is_dir() else RAW_DIR


def shown(path: str | os.PathLike) -> str:
    """``path`` as a message shows it: relative to the working folder when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
