"""The one artifact format every model saves to and loads from (no pickle).

An artifact is a folder holding ``model.json`` (model name, format version, hyperparameters,
free-form metadata) and ``arrays.npz`` (every learned array, TensorFlow weights included, as
plain numpy arrays read back with ``allow_pickle=False``). It is written to a temporary
sibling folder and renamed into place, so a crash never leaves half an artifact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["FORMAT_VERSION", "write_artifact", "read_artifact"]

FORMAT_VERSION = 1


def write_artifact(path: str | os.PathLike, model: str, params: dict,
                   arrays: dict[str, np.ndarray], meta: dict | None = None) -> Path:
    """Write an artifact folder atomically; an existing artifact at ``path`` is replaced."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        doc = {"model": model, "format_version": FORMAT_VERSION, "params": params,
               "meta": meta or {}}
        (tmp / "model.json").write_text(json.dumps(doc, indent=2, sort_keys=True))
        np.savez(tmp / "arrays.npz", **{k: np.asarray(v) for k, v in arrays.items()})
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_artifact(path: str | os.PathLike) -> tuple[str, dict, dict[str, np.ndarray], dict]:
    """Read ``(model name, params, arrays, meta)`` from an artifact folder."""
    path = Path(path)
    spec = path / "model.json"
    if not spec.is_file():
        raise FileNotFoundError(f"{path}: not a model artifact (no model.json inside)")
    doc = json.loads(spec.read_text())
    if doc.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: artifact format {doc.get('format_version')} is not "
                         f"supported (this version reads format {FORMAT_VERSION})")
    with np.load(path / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return doc["model"], doc["params"], arrays, doc.get("meta", {})
