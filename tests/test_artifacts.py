"""The artifact format: atomic, pickle-free, versioned."""

import json
from pathlib import Path

import numpy as np
import pytest

from recommender.models.artifacts import read_artifact, write_artifact


def test_round_trip(tmp_path):
    arrays = {"a": np.arange(5, dtype=np.float32), "b": np.eye(2)}
    write_artifact(tmp_path / "m", "ease", {"l2": 3.0}, arrays, {"note": "x"})
    name, params, loaded, meta = read_artifact(tmp_path / "m")
    assert (name, params, meta) == ("ease", {"l2": 3.0}, {"note": "x"})
    np.testing.assert_array_equal(loaded["a"], arrays["a"])


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


def test_unknown_format_version_is_refused(tmp_path):
    write_artifact(tmp_path / "m", "x", {}, {})
    spec = tmp_path / "m" / "model.json"
    spec.write_text(json.dumps({**json.loads(spec.read_text()), "format_version": 99}))
    with pytest.raises(ValueError, match="format 99"):
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
