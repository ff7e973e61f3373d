"""Downloads against a real HTTP server on 127.0.0.1: normal, cut and resumed, wrong checksum, 404, pinning."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from vgbench import download
from vgbench.errors import ChecksumError, DownloadError, OfflineError

from .httpserver import FileServer

DATA = np.random.default_rng(0).integers(0, 256, 3 * (1 << 20) + 12345, dtype=np.uint8).tobytes()
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def server():
    with FileServer({"/data.bin": DATA}) as s:
        yield s


def _get(server, dest, **kw):
    return download.download(f"{server.url}/data.bin", dest, retries=3, backoff=0.0, progress=False, **kw)


def test_normal_download_is_verified_and_final(server, tmp_path):
    dest = _get(server, tmp_path / "d" / "data.bin", sha256=SHA, size=len(DATA))
    assert dest.read_bytes() == DATA and not dest.with_name("data.bin.part").exists()
    assert _get(server, dest, sha256=SHA) == dest and len(server.log) == 1  # present and verified: no request


def test_cut_connection_is_resumed_with_range(server, tmp_path):
    server.cut["/data.bin"] = 1_000_000
    dest = _get(server, tmp_path / "data.bin", sha256=SHA)
    assert dest.read_bytes() == DATA
    assert server.log == [("/data.bin", None), ("/data.bin", "bytes=1000000-")]


def test_partial_file_from_an_earlier_run_is_continued(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(DATA[:777])
    assert _get(server, tmp_path / "data.bin", sha256=SHA).read_bytes() == DATA
    assert server.log == [("/data.bin", "bytes=777-")]


def test_server_without_range_restarts_from_zero(server, tmp_path):
    server.no_range.add("/data.bin")
    (tmp_path / "data.bin.part").write_bytes(b"garbage" * 10)
    assert _get(server, tmp_path / "data.bin", sha256=SHA).read_bytes() == DATA


def test_wrong_checksum_is_refused_and_nothing_is_left(server, tmp_path):
    dest = tmp_path / "data.bin"
    with pytest.raises(ChecksumError, match=f"expected sha256 {'0' * 64} \\(published\\), got sha256 {SHA}"):
        _get(server, dest, sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ChecksumError, match="expected 5 bytes"):
        _get(server, dest, sha256=SHA, size=5)
    assert list(tmp_path.iterdir()) == []


def test_404_fails_at_once_with_a_clear_message(server, tmp_path):
    with pytest.raises(DownloadError, match=r"/missing.bin: HTTP 404 .*not available at this address"):
        download.download(f"{server.url}/missing.bin", tmp_path / "m", retries=3, backoff=0.0, progress=False)
    assert len(server.log) == 1 and list(tmp_path.iterdir()) == []


def test_unreachable_server_gives_up_after_retries_and_keeps_the_part(tmp_path):
    port = FileServer({})  # bound but never started: connections are refused or hang up
    url = f"{port.url}/x"
    port.httpd.server_close()
    with pytest.raises(DownloadError, match="gave up after 3 attempts"):
        download.download(url, tmp_path / "x", retries=2, backoff=0.0, progress=False, timeout=2)


def test_first_download_is_pinned_in_the_lock_file(server, tmp_path):
    dest = _get(server, tmp_path / "data.bin")
    pin = download.read_lock(tmp_path)["data.bin"]
    assert pin["sha256"] == SHA and pin["bytes"] == len(DATA) and pin["url"].endswith("/data.bin")
    dest.unlink()
    server.files["/data.bin"] = DATA[:-1] + b"\0"  # upstream changed under the same URL
    with pytest.raises(ChecksumError, match="lock file"):
        _get(server, dest)
    assert not dest.exists() and not dest.with_name("data.bin.part").exists()


def test_disk_space_is_checked_first(server, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 10, 1000))
    with pytest.raises(DownloadError, match=r"not enough disk space .* 0.00 GiB are free"):
        _get(server, tmp_path / "data.bin", sha256=SHA, size=len(DATA))
    assert server.log == []


def test_offline_mode_never_touches_the_network(server, tmp_path, monkeypatch):
    monkeypatch.setenv("VGBENCH_OFFLINE", "1")
    with pytest.raises(OfflineError, match="VGBENCH_OFFLINE"):
        _get(server, tmp_path / "data.bin", sha256=SHA)
    assert server.log == []


def test_an_html_page_instead_of_the_file_is_refused_and_never_pinned(tmp_path):
    # what a file host sends for a quota or consent page: status 200, an HTML body where the file should be
    page = b"\n<!DOCTYPE html><html><head><title>Quota exceeded</title></head><body>Too many users</body></html>"
    with FileServer({"/weights.npz": page}) as s:
        dest = tmp_path / "weights.npz"
        with pytest.raises(DownloadError, match=r"answered with an HTML page instead of the file.*nothing was kept"):
            download.download(f"{s.url}/weights.npz", dest, retries=0, progress=False)
    assert download.read_lock(tmp_path) == {}  # no pin recorded for the page
    assert not dest.exists() and not dest.with_name("weights.npz.part").exists()
