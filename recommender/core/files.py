"""Writing files so that a reader never sees half of one, with the usual permissions.

A temporary file or folder (``mkstemp``, ``mkdtemp``) is created private (0600, 0700); what
is renamed into place from one gets the permissions an ordinary ``open`` or ``mkdir`` would
give it under the process's umask (0644 and 0755 under the usual 022), so that reports and
saved models are readable by whoever may read the folder they sit in.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_text", "ordinary_permissions"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def ordinary_permissions(path: Path) -> None:
    """Give a file 0666 and a folder 0777, less the umask, as ``open``/``mkdir`` would."""
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~_umask())


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        ordinary_permissions(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
