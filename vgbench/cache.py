"""Cache directories, hashing, atomic writes and offline mode.

Lookup order for the cache root: explicit argument > ``VGBENCH_HOME`` > ``$XDG_CACHE_HOME/vgbench`` >
``~/.cache/vgbench``. Subfolders: ``weights/``, ``stats/``, ``downloads/``, ``results/``. Nothing is ever
written into the installed package, the current directory or ``/tmp``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vgbench.errors import ChecksumError

CHUNK = 1 << 20


def cache_root(root: str | os.PathLike | None = None) -> Path:
    """The cache root directory (created on demand by the writers, not here)."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("VGBENCH_HOME"):
        return Path(os.environ["VGBENCH_HOME"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "vgbench"


def cache_dir(sub: str, root: str | os.PathLike | None = None) -> Path:
    """A subfolder of the cache root: ``weights``, ``stats``, ``downloads`` or ``results``."""
    return cache_root(root) / sub


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where datasets live: ``--root`` > ``VGBENCH_DATA`` > ``$XDG_DATA_HOME/vgbench`` > ``~/.local/share/vgbench``."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("VGBENCH_DATA"):
        return Path(os.environ["VGBENCH_DATA"]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg).expanduser() / "vgbench"


def offline() -> bool:
    """True when ``VGBENCH_OFFLINE`` is set to a true value: never touch the network."""
    return os.environ.get("VGBENCH_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def sha256_file(path: str | os.PathLike) -> str:
    """Full sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def tensors_sha256(tensors) -> str:
    """sha256 over every tensor's name, dtype, shape and C-order little-endian bytes, in sorted name order.

    The one content hash of named tensors (numpy arrays or torch tensors; a torch tensor hashes as its numpy
    array, so the same weights give the same hash from either library): the pinned ``content_sha256`` of
    converted weights, and a checkpoint's ``weights_sha256`` (equal weights, equal hash, whatever the file around
    them). bfloat16, which numpy lacks, hashes its raw 2-byte values under the dtype name ``bfloat16``."""
    import numpy as np

    h = hashlib.sha256()
    for name in sorted(tensors):
        t, dtype = tensors[name], None
        if hasattr(t, "detach"):  # a torch tensor
            t = t.detach().cpu().contiguous()
            if str(t.dtype) == "torch.bfloat16":
                import torch

                t, dtype = t.view(torch.int16), "bfloat16"  # the same bits
            t = t.numpy()
        a = np.ascontiguousarray(t)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        h.update(f"{name}\0{dtype or a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def verify_file(path: str | os.PathLike, sha256: str, size: int | None = None, remedy: str = "") -> None:
    """Raise :class:`ChecksumError` unless ``path`` has the given size and sha256."""
    path = Path(path)
    if size is not None and path.stat().st_size != size:
        raise ChecksumError(path, f"{size} bytes", f"{path.stat().st_size} bytes", remedy)
    got = sha256_file(path)
    if got != sha256:
        raise ChecksumError(path, f"sha256 {sha256}", f"sha256 {got}", remedy)


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (os.umask would, briefly, for all threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``dest``; on success it is renamed onto ``dest``, on failure removed.

    The rename is atomic on one filesystem, so readers see either the old file or the complete new one. The file
    gets the mode a plain ``open`` would give (0666 less the umask), not mkstemp's private 0600, so a cache or data
    root shared by a group stays readable by it.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(dest: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def append_line(dest: str | os.PathLike, line: str) -> None:
    """Append one line to a text file with a single write (safe for JSONL stores)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "a", encoding="utf-8") as f:
        f.write(line.rstrip("\n") + "\n")
        f.flush()
        os.fsync(f.fileno())
