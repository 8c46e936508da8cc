"""Download a MovieLens release from GroupLens: checksum-verified, safely extracted, atomic.

Fetching is separate from loading (:func:`recommender.data.load_movielens` reads what this
writes). A release lands in ``<data_dir>/<name>`` only once it has been fully downloaded, its
MD5 checked and its zip extracted into a temporary folder beside it, so an interrupted or
corrupt download never leaves a half-written release that a later load would trust.
"""

from __future__ import annotations

import hashlib
import re
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from recommender.core.config import data_dir as resolve_data_dir
from recommender.core.config import shown
from recommender.core.errors import DataError
from recommender.data.releases import RELEASES

__all__ = ["fetch", "ensure_release"]

_CHUNK = 1 << 20
_MD5 = re.compile(r"\b[0-9a-fA-F]{32}\b")
_DRIVE = re.compile(r"^[A-Za-z]:")  # a Windows drive letter is absolute too


def fetch(name: str, data_dir: str | Path | None = None, force: bool = False,
          progress: bool = True, url: str | None = None, timeout: float = 10.0) -> Path:
    """Download, verify and extract the release ``name`` into ``<data_dir>/<name>``.

    Args:
        name: a release name from :data:`recommender.data.RELEASES`.
        data_dir: the data folder (default: :func:`recommender.config.data_dir`).
        force: download again even if ``<data_dir>/<name>`` exists (replacing it).
        progress: show a tqdm progress bar.
        url: base URL to download from instead of GroupLens's (the zip is
            ``<url>/<name>.zip``; a local mirror, or a test server).
        timeout: seconds to wait for the connection and for each read, so that an offline
            machine fails at once.

    Returns:
        The folder holding the extracted release.

    Raises:
        DataError: unknown release, unreachable server, checksum mismatch or unsafe zip.
    """
    if name not in RELEASES:
        raise DataError(f"{name}: unknown release; known releases: {', '.join(RELEASES)}")
    release = RELEASES[name]
    base = resolve_data_dir(data_dir)
    target = base / name
    if target.exists() and not force:
        return target
    zip_name = PurePosixPath(release.url).name
    source = f"{url.rstrip('/')}/{zip_name}" if url else release.url
    base.mkdir(parents=True, exist_ok=True)
    expected = release.md5 or _published_md5(source, target, timeout)
    with tempfile.TemporaryDirectory(dir=base, prefix=f".{name}-") as tmp_name:
        tmp = Path(tmp_name)
        archive = tmp / zip_name
        digest = _download(source, archive, target, progress, timeout)
        if digest != expected.lower():
            raise DataError(f"{source}: MD5 {digest} does not match the published {expected}; "
                            "the download is corrupt or the release changed (nothing was kept)")
        staging = tmp / "extract"
        _safe_extract(archive, staging, source)
        entries = list(staging.iterdir())
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
        if target.exists():
            target.rename(tmp / "previous")  # removed with the temporary folder
        root.rename(target)
    return target


def ensure_release(name: str, data_dir: str | Path | None = None, **kwargs) -> Path:
    """The release ``name`` on disk (a folder or the zip in the data folder), fetched with
    :func:`fetch` first when it is missing: how ``make run`` works on a fresh machine.

    Raises:
        DataError: as :func:`fetch`; offline, the message says where to put the files.
    """
    base = resolve_data_dir(data_dir)
    for path in (base / name, base / f"{name}.zip"):
        if path.exists():
            return path
    return fetch(name, data_dir, **kwargs)


def _unreachable(source: str, target: Path, exc: Exception) -> DataError:
    reason = getattr(exc, "reason", None) or exc
    return DataError(f"could not download {source} ({reason}); if this machine is offline, "
                     f"download it elsewhere and unzip it into {shown(target)} (or put the zip "
                     f"at {shown(target)}.zip)")


def _download(source: str, dest: Path, target: Path, progress: bool, timeout: float) -> str:
    """Stream ``source`` into ``dest``; return the MD5 hex digest of what was written."""
    from recommender.core.progress import progress_bar

    md5 = hashlib.md5()
    try:
        with urllib.request.urlopen(source, timeout=timeout) as response, open(dest, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with progress_bar(None, progress, total=total, unit="B", unit_scale=True,
                              desc=dest.name) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    md5.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as exc:
        raise _unreachable(source, target, exc) from None
    return md5.hexdigest()


def _published_md5(source: str, target: Path, timeout: float) -> str:
    """The checksum GroupLens serves beside a zip (``<url>.md5``, ``MD5 (x.zip) = ...``)."""
    try:
        with urllib.request.urlopen(f"{source}.md5", timeout=timeout) as response:
            text = response.read(4096).decode("ascii", errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        raise _unreachable(f"{source}.md5", target, exc) from None
    found = _MD5.search(text)
    if not found:
        raise DataError(f"{source}.md5: no MD5 checksum in {text[:80]!r}")
    return found.group(0).lower()


def _safe_extract(archive: Path, dest: Path, source: str) -> None:
    """Extract ``archive`` into ``dest``, refusing absolute paths, ``..`` escapes and links."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                path = PurePosixPath(info.filename.replace("\\", "/"))
                if path.is_absolute() or ".." in path.parts or _DRIVE.match(path.as_posix()):
                    raise DataError(f"{source}: unsafe member {info.filename!r} (absolute path "
                                    "or '..' escaping the target); refusing to extract")
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise DataError(f"{source}: member {info.filename!r} is a symbolic link; "
                                    "refusing to extract")
            zf.extractall(dest)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{source}: not a valid zip file ({exc})") from None
