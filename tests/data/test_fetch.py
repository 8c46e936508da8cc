"""fetch() against a local HTTP server: verification, safe extraction, atomicity, offline."""

from __future__ import annotations

import functools
import hashlib
import socket
import stat
import threading
import time
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


from recommender.core.errors import DataError
from recommender.data import RELEASES, Release, load_movielens
from recommender.data.fetch import ensure_release, fetch

RATINGS = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n2,1,3.0,964982224\n"
MOVIES = "movieId,title,genres\n1,Toy Story (1995),Animation\n"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path):
    """``(folder, base_url)``: an HTTP server on 127.0.0.1 serving ``folder``."""
    root = tmp_path / "served"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0),
                                functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _zip(path: Path, members: dict[str, str], link: str | None = None) -> str:
    """Write a zip of ``members`` (plus a symlink member named ``link``); return its MD5."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return hashlib.md5(path.read_bytes()).hexdigest()


def _release(root: Path, name: str = "ml-latest-small", md5_file: str | None = "auto",
             **extra: str) -> str:
    members = {f"{name}/ratings.csv": RATINGS, f"{name}/movies.csv": MOVIES, **extra}
    digest = _zip(root / f"{name}.zip", members)
    if md5_file:
        text = digest if md5_file == "auto" else md5_file
        (root / f"{name}.zip.md5").write_text(f"MD5 ({name}.zip) = {text}\n")
    return digest


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_downloads_verifies_against_md5_file_and_extracts(server, tmp_path):
    root, url = server
    _release(root)
    out = fetch("ml-latest-small", tmp_path / "data", url=url, progress=False)
    assert out == tmp_path / "data" / "ml-latest-small"
    assert sorted(p.name for p in out.iterdir()) == ["movies.csv", "ratings.csv"]
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["ml-latest-small"]  # no temp
    assert len(load_movielens(out).ratings) == 2


def test_pinned_md5_is_used(server, tmp_path, monkeypatch):
    root, url = server
    digest = _release(root, "ml-100k", md5_file=None)
    pinned = Release("ml-100k", "https://example.org/ml-100k.zip", digest, "csv", "test")
    monkeypatch.setitem(RELEASES, "ml-100k", pinned)
    assert fetch("ml-100k", tmp_path / "data", url=url, progress=False).is_dir()
    monkeypatch.setitem(RELEASES, "ml-100k", Release("ml-100k", pinned.url, "0" * 32,
                                                          "csv", "test"))
    with pytest.raises(DataError, match="does not match"):
        fetch("ml-100k", tmp_path / "other", url=url, progress=False)
    assert list((tmp_path / "other").iterdir()) == []


def test_checksum_mismatch_raises_and_leaves_nothing(server, tmp_path):
    root, url = server
    _release(root, md5_file="0123456789abcdef0123456789abcdef")
    with pytest.raises(DataError, match="does not match the published 0123456789abcdef"):
        fetch("ml-latest-small", tmp_path / "data", url=url, progress=False)
    assert list((tmp_path / "data").iterdir()) == []


@pytest.mark.parametrize("member", ["../evil.txt", "ml-latest-small/../../evil.txt",
                                    "/tmp/evil.txt"])
def test_zip_slip_member_is_rejected(server, tmp_path, member):
    root, url = server
    _release(root, **{member: "pwned"})
    with pytest.raises(DataError, match="unsafe member"):
        fetch("ml-latest-small", tmp_path / "data", url=url, progress=False)
    assert list((tmp_path / "data").iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_symlink_member_is_rejected(server, tmp_path):
    root, url = server
    name = "ml-latest-small"
    digest = _zip(root / f"{name}.zip", {f"{name}/ratings.csv": RATINGS},
                  link=f"{name}/movies.csv")
    (root / f"{name}.zip.md5").write_text(digest)
    with pytest.raises(DataError, match="symbolic link"):
        fetch(name, tmp_path / "data", url=url, progress=False)
    assert list((tmp_path / "data").iterdir()) == []


def test_existing_release_is_skipped_unless_forced(server, tmp_path):
    root, url = server
    existing = tmp_path / "data" / "ml-latest-small"
    existing.mkdir(parents=True)
    (existing / "mine.txt").write_text("keep")
    dead = f"http://127.0.0.1:{_closed_port()}"
    assert fetch("ml-latest-small", tmp_path / "data", url=dead, progress=False) == existing
    assert (existing / "mine.txt").exists()
    _release(root)
    fetch("ml-latest-small", tmp_path / "data", url=url, progress=False, force=True)
    assert sorted(p.name for p in existing.iterdir()) == ["movies.csv", "ratings.csv"]
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["ml-latest-small"]


def test_unreachable_server_fails_fast_naming_url_and_folder(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}"
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        fetch("ml-1m", tmp_path / "data", url=url, progress=False, timeout=2)
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert f"{url}/ml-1m.zip" in message
    assert str(tmp_path / "data" / "ml-1m") in message
    assert list((tmp_path / "data").iterdir()) == []


def test_unknown_release(tmp_path):
    with pytest.raises(DataError, match="unknown release.*ml-100k"):
        fetch("ml-7m", tmp_path, progress=False)


def test_ensure_release_fetches_only_what_is_missing(server, tmp_path):
    root, url = server
    _release(root)
    data_dir = tmp_path / "data"
    assert ensure_release("ml-latest-small", data_dir, url=url, progress=False) == (
        data_dir / "ml-latest-small")
    (root / "ml-latest-small.zip").unlink()  # a second call must not download again
    assert ensure_release("ml-latest-small", data_dir, url=url).is_dir()
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    (zipped / "ml-1m.zip").write_bytes(b"a zip a user put there")
    assert ensure_release("ml-1m", zipped, url=url) == zipped / "ml-1m.zip"
