"""HTTP(S) downloads: resumable (Range), retried with back-off, verified, finalised atomically.

A file arrives as ``NAME.part`` beside its destination and is renamed onto ``NAME`` only after its size and
hash check out, so a reader never sees half a file. Where a checksum is published it is checked; where none
is, the size and sha256 of the first complete download are recorded in a lock file (``vgbench.lock.json``)
beside the data and every later copy must match it ("trust on first use", like a package lock file).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import email.utils
import http.client
import json
import logging
import os
import shutil
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from vgbench import cache
from vgbench.errors import ChecksumError, DownloadError, OfflineError

log = logging.getLogger(__name__)

LOCK_NAME = "vgbench.lock.json"
USER_AGENT = "vgbench-downloader"
DISK_MARGIN = 256 << 20  # keep this much free beyond the file itself


@dataclass
class Pin:
    """A recorded size and sha256 of one file (from a card or from the lock file)."""

    sha256: str | None
    bytes: int | None
    source: str  # "published" or "lock file <path>" or "none"


# ----------------------------------------------------------------------------------------------------------
# Lock file: first-download pins for sources without a published checksum


def lock_path(folder: Path) -> Path:
    """The lock file that pins unpublished checksums of files in ``folder``."""
    return Path(folder) / LOCK_NAME


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive advisory lock around read-modify-write of the lock file (several processes may download)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".flock"), "a+") as f:
        try:
            import fcntl

            fcntl.flock(f, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - non-POSIX: single-process use only
            pass
        yield


def read_lock(folder: Path) -> dict:
    """The pins recorded in ``folder``'s lock file (file name -> {url, bytes, sha256, recorded})."""
    from vgbench.readers import read_json

    path = lock_path(folder)
    if not path.exists():
        return {}
    return read_json(path, "a download lock file (JSON)", "restore or delete it (re-pins on next download)")


def record_pin(folder: Path, name: str, url: str, size: int, sha256: str) -> None:
    """Record the first download of ``name`` in the lock file (atomic rewrite under a file lock)."""
    path = lock_path(folder)
    with _locked(path):
        pins = read_lock(folder)
        pins[name] = {
            "url": url,
            "bytes": size,
            "sha256": sha256,
            "recorded": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        cache.atomic_write_bytes(path, (json.dumps(pins, indent=2, sort_keys=True) + "\n").encode())


def expected_pin(dest: Path, sha256: str | None, size: int | None) -> Pin:
    """What ``dest`` must match: the published checksum, else the lock file's pin, else nothing yet."""
    if sha256:
        return Pin(sha256, size, "published")
    pinned = read_lock(dest.parent).get(dest.name)
    if pinned:
        return Pin(pinned["sha256"], pinned["bytes"], f"lock file {lock_path(dest.parent)}")
    return Pin(None, size, "none")


def verify_or_pin(path: Path, dest: Path, url: str, pin: Pin) -> str:
    """Check ``path`` (to become ``dest``) against ``pin``; with no pin, record one. Returns the sha256."""
    size = path.stat().st_size
    if pin.bytes is not None and size != pin.bytes:
        raise ChecksumError(dest, f"{pin.bytes} bytes ({pin.source})", f"{size} bytes", _REMEDY)
    digest = cache.sha256_file(path)
    if pin.sha256 is not None and digest != pin.sha256:
        raise ChecksumError(dest, f"sha256 {pin.sha256} ({pin.source})", f"sha256 {digest}", _REMEDY)
    if pin.sha256 is None:
        record_pin(dest.parent, dest.name, url, size, digest)
        log.info(
            "no published checksum for %s: pinned sha256 %s (%d bytes) in %s",
            dest.name,
            digest,
            size,
            lock_path(dest.parent),
        )
    return digest


_REMEDY = (
    "The server sent other content than expected; nothing was kept. Retry later, or fetch the file by hand and "
    "pass it with --from. If the upstream file really changed, delete its entry from the lock file."
)


# ----------------------------------------------------------------------------------------------------------
# HTTP


def check_disk_space(folder: Path, need: int) -> None:
    """Refuse to start a download that cannot fit, with the numbers."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if need + DISK_MARGIN > free:
        raise DownloadError(
            f"not enough disk space in {folder}: the download needs {need / 2**30:.2f} GiB plus "
            f"{DISK_MARGIN >> 20} MiB margin, {free / 2**30:.2f} GiB are free. Free space or choose another "
            "--root (or VGBENCH_DATA)."
        )


def _retry_after(headers) -> float | None:
    value = headers.get("Retry-After") if headers else None
    if not value:
        return None
    if value.isdigit():
        return float(value)
    when = email.utils.parsedate_to_datetime(value)
    return max(0.0, when.timestamp() - time.time()) if when else None


def _transfer(url: str, part: Path, timeout: float, progress) -> None:
    """One attempt: continue ``part`` from its current size; a short transfer raises :class:`_Retry`."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # our .part is already complete (or longer than the file)
            total = exc.headers.get("Content-Range", "").rpartition("/")[2]
            if total.isdigit() and int(total) == have:
                return
            part.unlink()
            raise _Retry(f"server refused to resume at byte {have}; restarting", None) from exc
        raise
    with resp:
        mode = "ab"
        total = None
        if have and resp.status == 206:
            start = int(resp.headers.get("Content-Range", "bytes 0-").split()[1].split("-")[0])
            if start != have:
                raise _Retry(f"server resumed at byte {start}, not {have}; restarting", None)
            total_s = resp.headers.get("Content-Range", "").rpartition("/")[2]
            total = int(total_s) if total_s.isdigit() else None
        else:
            if have:
                log.info("%s: server does not support resuming; starting again from byte 0", url)
            mode, have = "wb", 0
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if progress is not None:
            progress.reset(total=total)
            progress.update(have)
        with open(part, mode) as f:
            while True:
                block = resp.read(cache.CHUNK)
                if not block:
                    break
                f.write(block)
                if progress is not None:
                    progress.update(len(block))
        got = part.stat().st_size
        if total is not None and got < total:
            raise _Retry(f"connection closed after {got} of {total} bytes", None)


def refuse_html_page(path: Path, url: str) -> None:
    """Refuse (and delete) a download that is an HTML page, not the file: file hosts answer a direct link with a
    quota, consent or sign-in page and status 200. Such a page must never be pinned as the "first download"."""
    with open(path, "rb") as f:
        head = f.read(1024).lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<!doctype html", b"<html")):
        path.unlink(missing_ok=True)
        raise DownloadError(
            f"{url} answered with an HTML page instead of the file (a quota, consent or sign-in page, as file hosts "
            "send); nothing was kept or pinned. Open the address in a browser, fetch the file by hand and pass it "
            "with --from (datasets) or `vgbench weights import` (weights), or retry later."
        )


class _Retry(Exception):
    def __init__(self, msg: str, wait: float | None):
        super().__init__(msg)
        self.wait = wait


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    size: int | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` (resuming a ``.part``), verify it and return ``dest``.

    ``sha256``/``size`` are the published values, if any; otherwise the lock file pins the first download.
    A file already at ``dest`` is verified, not fetched again. 4xx answers fail at once with the status;
    network errors, 5xx and short reads are retried ``retries`` times with exponential back-off.
    """
    dest = Path(dest)
    pin = expected_pin(dest, sha256, size)
    if dest.exists():
        verify_or_pin(dest, dest, url, pin)
        return dest
    if cache.offline():
        raise OfflineError(f"{dest} is missing and VGBENCH_OFFLINE forbids downloading {url}")
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if pin.bytes:
        check_disk_space(dest.parent, max(pin.bytes - have, 0))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc=dest.name, unit="B", unit_scale=True, unit_divisor=1024, leave=False)
    try:
        for attempt in range(retries + 1):
            try:
                _transfer(url, part, timeout, bar)
                break
            except urllib.error.HTTPError as exc:
                if exc.code < 500 and exc.code != 429:
                    raise DownloadError(
                        f"{url}: HTTP {exc.code} {exc.reason}. The file is not available at this address; check the "
                        "URL in the card, or fetch it by hand and pass it with --from."
                    ) from exc
                reason, wait = f"HTTP {exc.code} {exc.reason}", _retry_after(exc.headers)
            except _Retry as exc:
                reason, wait = str(exc), exc.wait
            except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as exc:
                reason, wait = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}", None
            if attempt == retries:
                raise DownloadError(
                    f"{url}: gave up after {retries + 1} attempts ({reason}). The partial file {part} is kept; run "
                    "the same command again to resume."
                )
            wait = wait if wait is not None else backoff * 2**attempt
            log.warning("%s: %s; retry %d/%d in %.1f s", url, reason, attempt + 1, retries, wait)
            time.sleep(wait)
    finally:
        if bar is not None:
            bar.close()
    refuse_html_page(part, url)
    try:
        verify_or_pin(part, dest, url, pin)
    except ChecksumError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest
