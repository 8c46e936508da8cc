"""Progress bars: plain-text tqdm everywhere, so a JupyterLab kernel needs no widgets.

``TQDM_DISABLE=1`` in the environment turns every bar off; the notebook runner sets it for
its kernels, so the HTML reports carry results, not bars.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(iterable: Iterable | None = None, enabled: bool = True, **kwargs: Any):
    """A ``tqdm.tqdm`` bar; ``enabled=False`` hides it (else ``TQDM_DISABLE`` decides)."""
    from tqdm import tqdm

    if not enabled:
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)
