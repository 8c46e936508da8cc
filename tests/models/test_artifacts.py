"""The artifact format: atomic, pickle-free, versioned. (That every model saves and loads to
the same answers is in tests/models/test_contract.py.)"""

import json
from pathlib import Path

import numpy as np
import pytest

from recommender.core.errors import DataError
from recommender.models.artifacts import read_artifact, write_artifact


def test_object_arrays_are_refused_on_read(tmp_path):
    write_artifact(tmp_path / "m", "x", {}, {"ok": np.zeros(1)})
    np.savez(tmp_path / "m" / "arrays.npz", bad=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError):
        read_artifact(tmp_path / "m")


def test_failed_write_leaves_previous_artifact_untouched(tmp_path):
    write_artifact(tmp_path / "m", "x", {"v": 1}, {"a": np.zeros(1)})

    class Boom:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_artifact(tmp_path / "m", "x", {"v": 2}, {"a": Boom()})
    assert read_artifact(tmp_path / "m")[1] == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


@pytest.mark.parametrize("version", [1, 99])  # 1: untyped "params", before typed settings
def test_other_format_versions_are_refused(tmp_path, version):
    write_artifact(tmp_path / "m", "x", {}, {})
    spec = tmp_path / "m" / "model.json"
    spec.write_text(json.dumps({**json.loads(spec.read_text()), "format_version": version}))
    with pytest.raises(DataError, match=f"format {version} is not supported"):
        read_artifact(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="not a model artifact"):
        read_artifact(tmp_path)


def test_object_arrays_are_refused_on_write(tmp_path):
    with pytest.raises(ValueError, match="object arrays \\(bad\\)"):
        write_artifact(tmp_path / "m", "x", {}, {"ok": np.zeros(1),
                                                "bad": np.array([{"a": 1}], dtype=object)})
    assert list(tmp_path.iterdir()) == []


def test_a_crash_while_swapping_keeps_a_whole_artifact(tmp_path, monkeypatch):
    """The old artifact is renamed away, not deleted, until the new one is in place."""
    import recommender.models.artifacts as artifacts

    write_artifact(tmp_path / "m", "x", {"v": 1}, {"a": np.zeros(1)})
    real_replace = artifacts.os.replace

    def failing_replace(src, dst):  # the moment the new artifact would move in
        if Path(dst) == tmp_path / "m" and '"v": 2' in (Path(src) / "model.json").read_text():
            raise OSError("power cut")
        real_replace(src, dst)

    monkeypatch.setattr(artifacts.os, "replace", failing_replace)
    with pytest.raises(OSError, match="power cut"):
        write_artifact(tmp_path / "m", "x", {"v": 2}, {"a": np.ones(1)})
    assert read_artifact(tmp_path / "m")[1] == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m"]

    monkeypatch.setattr(artifacts.os, "replace", real_replace)
    write_artifact(tmp_path / "m", "x", {"v": 2}, {"a": np.ones(1)})
    assert read_artifact(tmp_path / "m")[1] == {"v": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
