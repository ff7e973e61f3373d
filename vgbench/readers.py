"""One error boundary for reading files: format and OS errors become an :class:`InputError` naming the file.

Every message says which file, what was expected of it and how to fix it. Messages never pass on a library's
unsafe advice (numpy's "set allow_pickle=True" for a file that holds pickled objects: pickles from a file are never
loaded here). :func:`load_npy` reads a ``.npy`` header itself, so a truncated, empty, random or object-dtype file
is named as such before any data is touched; :func:`reading` wraps any other reader.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vgbench.errors import InputError, VgbenchError

NPY_MAGIC = b"\x93NUMPY"


def _clean(exc: BaseException) -> str:
    """The exception's message, without advice to load pickles."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "allow_pickle" in text or "pickle" in text.lower():
        return "it holds pickled Python objects, which are never loaded from a file"
    return text


@contextlib.contextmanager
def reading(path: str | os.PathLike, what: str, fix: str = "") -> Iterator[None]:
    """Map the errors of reading ``path`` as ``what`` (e.g. "a TFRecord file") to :class:`InputError`.

    vgbench's own errors pass through unchanged; ``fix`` is appended to format errors."""
    tail = f"; {fix}" if fix else ""
    try:
        yield
    except VgbenchError:
        raise
    except PermissionError as exc:
        raise InputError(f"{path}: permission denied while reading {what}; make it readable (chmod u+r)") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{path}: is a folder; expected {what}{tail}") from exc
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file; expected {what}{tail}") from exc
    except (OSError, EOFError, ValueError, UnicodeDecodeError, zlib.error, KeyError, IndexError) as exc:
        raise InputError(f"{path}: cannot be read as {what} ({_clean(exc)}){tail}") from exc


def read_json(path: str | os.PathLike, what: str = "JSON file", fix: str = "") -> object:
    """Parse a JSON file; a missing, unreadable, empty or damaged file is an :class:`InputError`."""
    with reading(path, what, fix):
        text = Path(path).read_text(encoding="utf-8")
        if not text.strip():
            raise InputError(f"{path}: empty file; expected {what}{'; ' + fix if fix else ''}")
        return json.loads(text)


def load_npy(path: str | os.PathLike, what: str = "a .npy array", fix: str = "", mmap: bool = True) -> np.ndarray:
    """A ``.npy`` file as a read-only memory map (``mmap``) or an array, checked before any data is read.

    Raises:
        InputError: the file is missing, unreadable, empty, not a ``.npy`` file, holds Python objects, or is
            shorter than its header says (truncated); the message names the file and the problem.
    """
    path = Path(path)
    tail = f"; {fix}" if fix else ""
    with reading(path, what, fix):
        size = path.stat().st_size
        if path.is_dir():
            raise IsADirectoryError(path)
        if size == 0:
            raise InputError(f"{path}: empty file (0 bytes); expected {what}{tail}")
        with open(path, "rb") as f:
            head = f.read(len(NPY_MAGIC))
            if head != NPY_MAGIC:
                raise InputError(
                    f"{path}: not a .npy file (starts with {head!r}, not {NPY_MAGIC!r}); expected {what}{tail}"
                )
            f.seek(0)
            version = np.lib.format.read_magic(f)
            readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in readers:
                raise InputError(f"{path}: .npy format version {version} is not supported (1.0 or 2.0){tail}")
            shape, fortran, dtype = readers[version](f)
            offset = f.tell()
    if dtype.hasobject:
        raise InputError(
            f"{path}: holds Python objects (dtype {dtype}); expected {what} of plain numbers. "
            "Save it with a numeric dtype, e.g. np.save(path, x.astype(np.uint8))"
        )
    need = math.prod(shape) * dtype.itemsize
    if size - offset < need:
        raise InputError(
            f"{path}: truncated: its header declares {dtype}{tuple(shape)} = {need} bytes of data, the file holds "
            f"{size - offset}; copy or write it again{tail}"
        )
    order = "F" if fortran else "C"
    if need == 0:
        return np.empty(shape, dtype, order=order)
    with reading(path, what, fix):
        if mmap:
            return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)
        with open(path, "rb") as f:
            f.seek(offset)
            flat = np.fromfile(f, dtype=dtype, count=math.prod(shape))
        return flat.reshape(shape, order=order)
