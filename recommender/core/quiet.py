"""TensorFlow without its start-up chatter: the C++ log lines it prints on import go nowhere.

TensorFlow 2.21 writes an absl banner, a oneDNN notice, "could not find cuda drivers" (twice)
and a cuInit error straight to file descriptor 2 while it loads, whatever
``TF_CPP_MIN_LOG_LEVEL`` says. :func:`install` (run when ``recommender`` is imported) puts a
hook on ``import tensorflow`` wherever it happens (a model module, a notebook cell, a test):
the import and the device discovery run with descriptor 2 captured, the known start-up lines
are dropped and anything else (a real warning or error) is written back to stderr. Nothing
is imported until something asks for TensorFlow.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import os
import re
import sys
import tempfile
from collections.abc import Iterator

__all__ = ["install", "captured_stderr", "is_startup_noise", "STARTUP_NOISE"]

# Log lines TensorFlow and XLA print while loading and probing devices: facts about the
# build and the machine, never about the user's work.
STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|^[IWE]\d{4} [\d:.]+\s+\d+ (port|cudart_stub|cuda_platform|cpu_feature_guard|"
    r"cuda_dnn|cuda_fft|cuda_blas|computation_placer|cuda_executor|cuda_diagnostics|"
    r"gpu_device|dso_loader)\.cc:\d+\]"
    r"|^To enable the following instructions: .*rebuild TensorFlow"
    r"|TF-TRT Warning: Could not find TensorRT")


def is_startup_noise(line: str) -> bool:
    """Whether ``line`` is one of TensorFlow's start-up log lines."""
    return bool(STARTUP_NOISE.search(line))


@contextlib.contextmanager
def captured_stderr() -> Iterator[None]:
    """Run the block with file descriptor 2 captured; then write back what is not noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace")
            kept = [line for line in text.splitlines(keepends=True)
                    if not is_startup_noise(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietLoader:
    """Wraps TensorFlow's loader: import and device discovery inside :func:`captured_stderr`."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        with captured_stderr():
            self._loader.exec_module(module)
            module.config.list_physical_devices()  # CUDA probing logs here, not at first use


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` like the other finders would, with a :class:`_QuietLoader`."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "tensorflow":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Quiet the next ``import tensorflow`` of this process (once; a no-op if it happened)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ info and warnings; errors show
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietFinder())
