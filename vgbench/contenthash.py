"""Content hashes of input files: what a cache key and a result record name an input by.

A path, size and modification time do not identify content: a file rewritten with other data of the same size,
and its modification time set back (by a copy tool, ``rsync --times``, a restore, ``os.utime``), looked unchanged
to the former reference-statistics cache, which then returned the old FVD. Every input is therefore named by the
sha256 of its full content, read in 1 MiB chunks (streamed: memory does not grow with the file).

Hashing a large set on every run would cost a full read, so a digest is remembered per file in an SQLite table
(``<cache>/hashes.sqlite``) keyed by path, size, modification and change time, inode and device. It is only an
accelerator, re-validated on every use:

- the file is stat'ed again and every field must match, the change time (ctime) included: the kernel sets it on
  every write and every ``utime``, and no user call can set it back;
- an entry recorded less than :data:`RACY_NS` after the file last changed is not trusted (a second write within
  the same timestamp tick would leave every field equal; the "racy" rule of git's index), so such a file is
  hashed again until it has been still for that long;
- a file that changes while it is hashed gets no entry.

Why sha256 and not a faster non-cryptographic hash (xxHash): a cache key must not collide, the package names
weights and shards by sha256 already, and hashlib's sha256 needs no new dependency. Measured here: 0.58 GB/s on a
shared 2-core machine (BLAKE2b: 0.23 GB/s), paid once per file thanks to the accelerator.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from vgbench import cache

log = logging.getLogger(__name__)

RACY_NS = 2_000_000_000  # an entry is trusted only if the file had not changed for this long when it was recorded
DB_NAME = "hashes.sqlite"
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER, "
    "ino INTEGER, dev INTEGER, recorded_ns INTEGER, sha256 TEXT)"
)


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


@contextlib.contextmanager
def _db() -> Iterator[sqlite3.Connection | None]:
    """The accelerator table, or None when it cannot be used (read-only cache, locked, damaged): hashing then
    simply happens every time, which is slower but never wrong."""
    path = cache.cache_root() / DB_NAME
    con = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=10)
        con.execute(SCHEMA)
    except (sqlite3.Error, OSError) as exc:
        log.debug("content-hash accelerator unavailable (%s): hashing every file", exc)
        if con is not None:
            con.close()
        con = None
    try:
        yield con
    finally:
        if con is not None:
            con.close()


def _lookup(con: sqlite3.Connection | None, key: str, st: os.stat_result) -> str | None:
    if con is None:
        return None
    try:
        row = con.execute(
            "SELECT size, mtime_ns, ctime_ns, ino, dev, recorded_ns, sha256 FROM files WHERE path = ?", (key,)
        ).fetchone()
    except sqlite3.Error:
        return None
    if row is None or tuple(row[:5]) != _stat_key(st):
        return None
    if row[5] - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_NS:
        return None  # recorded too soon after the last change to be sure: hash again
    return row[6]


def _record(con: sqlite3.Connection | None, key: str, st: os.stat_result, digest: str) -> None:
    if con is None:
        return
    try:
        with con:
            con.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, *_stat_key(st), time.time_ns(), digest),
            )
    except sqlite3.Error as exc:
        log.debug("content-hash accelerator not updated (%s)", exc)


def file_sha256s(paths: Iterable[str | os.PathLike]) -> list[str]:
    """The sha256 of each file's full content, in order (see the module docstring for the accelerator)."""
    out = []
    with _db() as con:
        for p in paths:
            path = Path(p).resolve()
            st = path.stat()
            key = str(path)
            digest = _lookup(con, key, st)
            if digest is None:
                digest = cache.sha256_file(path)
                if _stat_key(path.stat()) == _stat_key(st):  # unchanged while it was read
                    _record(con, key, st, digest)
            out.append(digest)
    return out


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of one file's full content."""
    return file_sha256s([path])[0]


def combine(entries: Iterable[tuple[str, str]]) -> str:
    """One sha256 for a set of files: over their (name, sha256) pairs in the given order, so renaming, adding,
    removing or reordering a file changes it as changing a byte does."""
    h = hashlib.sha256()
    for name, digest in entries:
        h.update(f"{name}\0{digest}\n".encode())
    return h.hexdigest()
