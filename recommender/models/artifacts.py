"""The one artifact format every model saves to and loads from (no pickle).

An artifact is a folder holding ``model.json`` (model name, format version, settings, free-form
metadata) and ``arrays.npz`` (every learned array, TensorFlow weights included, as
plain numpy arrays read back with ``allow_pickle=False``; object arrays are refused). It is
written to a temporary sibling folder and swapped in by renames (the old artifact is moved
aside, the new one moved in, then the old one deleted), so a crash at any moment leaves a
complete artifact at ``path``, old or new, never half of one and never none.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from recommender.core.errors import DataError
from recommender.core.files import ordinary_permissions

__all__ = ["FORMAT_VERSION", "write_artifact", "read_artifact"]

FORMAT_VERSION = 2  # 2: typed settings under "settings" (1 held untyped "params")


def write_artifact(path: str | os.PathLike, model: str, settings: dict,
                   arrays: dict[str, np.ndarray], meta: dict | None = None) -> Path:
    """Write an artifact folder atomically; an existing artifact at ``path`` is replaced.

    Raises:
        ValueError: an array holds Python objects (it could only be read back with pickle).
    """
    path = Path(path)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    objects = sorted(k for k, v in arrays.items() if v.dtype.hasobject)
    if objects:
        raise ValueError(f"cannot save object arrays ({', '.join(objects)}): an artifact holds "
                         "numbers and strings only, read back without pickle")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.new-", dir=path.parent))
    try:
        doc = {"model": model, "format_version": FORMAT_VERSION, "settings": settings,
               "meta": meta or {}}
        (tmp / "model.json").write_text(json.dumps(doc, indent=2, sort_keys=True))
        np.savez(tmp / "arrays.npz", **arrays)
        ordinary_permissions(tmp)  # mkdtemp made it 0700
        _swap_in(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _swap_in(new: Path, path: Path) -> None:
    """Move the folder ``new`` to ``path``; an old ``path`` is renamed away first and deleted
    only once the new one is in place (put back if the second rename fails)."""
    if not path.exists():
        os.replace(new, path)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
    os.replace(path, old)  # renaming a folder onto an empty folder is atomic on POSIX
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def read_artifact(path: str | os.PathLike) -> tuple[str, dict, dict[str, np.ndarray], dict]:
    """Read ``(model name, settings, arrays, meta)`` from an artifact folder."""
    path = Path(path)
    spec = path / "model.json"
    if not spec.is_file():
        raise FileNotFoundError(f"{path}: not a model artifact (no model.json inside)")
    doc = json.loads(spec.read_text())
    if doc.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path}: artifact format {doc.get('format_version')} is not "
                         f"supported (this version reads format {FORMAT_VERSION})")
    with np.load(path / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return doc["model"], doc["settings"], arrays, doc.get("meta", {})
