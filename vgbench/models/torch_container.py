"""Read a ``torch.save`` file (a PyTorch Lightning checkpoint, say) without running code from it.

A ``torch.save`` file is a pickle: loading it with plain ``pickle`` or ``torch.load(weights_only=False)`` runs
whatever callables the file names. This reader resolves only an allow-list of globals and refuses every other
one with :class:`~vgbench.errors.UnsafePickleError` naming it, before anything in the file is called:

- ``collections.OrderedDict`` and ``argparse.Namespace`` (Lightning's ``hyper_parameters['args']``);
- tensor rebuilds ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_tensor`` / ``_rebuild_parameter`` /
  ``_rebuild_parameter_with_state``, replaced by this module's own functions that only view a storage (with
  bounds checks), and the storage classes ``torch.FloatStorage`` ... as inert dtype markers;
- classes under ``pytorch_lightning.callbacks`` / ``lightning.pytorch.callbacks`` as inert :class:`ClassRef`
  placeholders: Lightning keys ``checkpoint['callbacks']`` by the callback class itself (``ModelCheckpoint``), so
  the class is *referenced*; the placeholder is hashable but not callable, so instantiating one is refused too.

Storages: the zip format (torch >= 1.6: ``<name>/data.pkl`` plus one raw little-endian record per storage in
``<name>/data/<key>``) and the legacy stream format (torch < 1.6, or ``_use_new_zipfile_serialization=False``:
magic number, protocol, system info, the object pickle, the storage keys, then each storage as an int64 element
count and its bytes). The older tar format is refused with a clear message. Every storage's byte size is checked
against its element count and every tensor view against its storage's bounds.

Library decision: ``torch.load(weights_only=True)`` with ``torch.serialization.add_safe_globals`` would need the
real Lightning callback class importable (and allow-listed as itself); mapping class references to placeholders,
and rejecting with one message that names the global, needs a ``find_class`` of our own, so the ~200 lines are
written out.
"""

from __future__ import annotations

import argparse
import collections
import io
import math
import os
import pickle
import struct
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch

from vgbench.errors import InputError, UnsafePickleError, VgbenchError

# Legacy stream format constants (torch/serialization.py)
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch.<Name>Storage (pickled by name in both formats) -> element dtype
STORAGE_DTYPES = {
    "DoubleStorage": torch.float64,
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}
# Module prefixes whose classes may be referenced (never instantiated) as inert placeholders.
PLACEHOLDER_MODULES = ("pytorch_lightning.callbacks", "lightning.pytorch.callbacks")


@dataclass(frozen=True)
class ClassRef:
    """An inert stand-in for a class the file references by name (e.g. a Lightning callback used as a dict key)."""

    module: str
    name: str

    def __call__(self, *args, **kwargs):
        raise UnsafePickleError(
            f"the file instantiates {self.module}.{self.name}; vgbench accepts that class only as a reference (a key "
            "of Lightning's 'callbacks'), never as an object. Nothing was run."
        )

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class _StorageType:
    """Inert marker of ``torch.<Name>Storage``: only its element dtype is used."""

    name: str
    dtype: torch.dtype

    def __call__(self, *args, **kwargs):
        raise UnsafePickleError(f"the file constructs torch.{self.name} directly; refused (nothing was run)")


class _Storage:
    """One storage: a flat tensor of its dtype (filled at once for zip files, after the pickle for legacy ones)."""

    def __init__(self, flat: torch.Tensor, key: str):
        self.flat, self.key = flat, key

    def view(self, offset: int, size, stride) -> torch.Tensor:
        if not (isinstance(offset, int) and offset >= 0):
            raise InputError(f"storage {self.key}: bad tensor offset {offset!r}")
        size, stride = tuple(size), tuple(stride)
        if len(size) != len(stride) or not all(isinstance(v, int) and v >= 0 for v in size + stride):
            raise InputError(f"storage {self.key}: bad tensor size {size!r} / stride {stride!r}")
        if math.prod(size) > 0:
            last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
            if last >= self.flat.numel():
                raise InputError(
                    f"storage {self.key}: a tensor of size {size} (stride {stride}, offset {offset}) reaches element "
                    f"{last}, beyond the storage's {self.flat.numel()}; the file is damaged"
                )
        return self.flat.as_strided(size, stride, offset)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """Allow-listed stand-in of ``torch._utils._rebuild_tensor_v2``: a view of the storage, nothing else."""
    if not isinstance(storage, _Storage):
        raise InputError(f"tensor rebuild got {type(storage).__name__} instead of a storage; the file is damaged")
    if backward_hooks:
        raise UnsafePickleError("a tensor in the file carries backward hooks; refused (nothing was run)")
    return storage.view(storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    """Allow-listed stand-in of the older ``torch._utils._rebuild_tensor``."""
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    """Allow-listed stand-in of ``torch._utils._rebuild_parameter[_with_state]``: the plain tensor."""
    if not isinstance(data, torch.Tensor):
        raise InputError(f"parameter rebuild got {type(data).__name__} instead of a tensor; the file is damaged")
    if backward_hooks or state:
        raise UnsafePickleError("a parameter in the file carries hooks or extra state; refused (nothing was run)")
    return data


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("argparse", "Namespace"): argparse.Namespace,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    **{("torch", name): _StorageType(name, dtype) for name, dtype in STORAGE_DTYPES.items()},
}


def _describe_allowed() -> str:
    plain = sorted({f"{m}.{n}" for m, n in ALLOWED_GLOBALS if m != "torch"})
    return ", ".join(plain) + ", torch.<Type>Storage, classes under " + " / ".join(PLACEHOLDER_MODULES) + " (as refs)"


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, source: str, storage_for=None):
        super().__init__(file)
        self.source = source
        self.storage_for = storage_for

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102
        found = ALLOWED_GLOBALS.get((module, name))
        if found is not None:
            return found
        if any(module == p or module.startswith(p + ".") for p in PLACEHOLDER_MODULES):
            return ClassRef(module, name)
        shown = f"{module}.{name}" if module != "__builtin__" else f"builtins.{name}"  # protocol-2 spelling
        raise UnsafePickleError(
            f"refusing to load {self.source}: it references the global '{shown}', which is not on the "
            f"allow-list ({_describe_allowed()}). Nothing in the file was run. A VideoGPT Lightning checkpoint holds "
            "only tensors, plain values, argparse.Namespace hyperparameters and Lightning callback class references; "
            "do not open this file with plain pickle or torch.load(weights_only=False)."
        )

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102
        if self.storage_for is None:
            raise InputError(f"{self.source}: not a torch.save file (a persistent id where none belongs)")
        return self.storage_for(pid)


def _storage_dtype(storage_type: Any, source: str) -> torch.dtype:
    if not isinstance(storage_type, _StorageType):
        raise InputError(f"{source}: storage of unknown type {storage_type!r}; the file is damaged or not torch's")
    return storage_type.dtype


def _load_zip(zf: zipfile.ZipFile, source: str) -> Any:
    pkls = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pkls) != 1:
        raise InputError(f"{source}: a zip file, but not a torch.save archive (no single <name>/data.pkl record)")
    prefix = pkls[0][: -len("data.pkl")]
    names = set(zf.namelist())
    if prefix + "byteorder" in names and zf.read(prefix + "byteorder").strip() != b"little":
        raise InputError(f"{source}: stored big-endian; only little-endian files are read")
    storages: dict[str, _Storage] = {}

    def storage_for(pid) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise InputError(f"{source}: unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        dtype = _storage_dtype(storage_type, source)
        key = str(key)
        if key in storages:
            if storages[key].flat.dtype != dtype:
                raise InputError(f"{source}: storage {key} is referenced with two dtypes")
            return storages[key]
        record = f"{prefix}data/{key}"
        if record not in names:
            raise InputError(f"{source}: the archive lacks the tensor record {record}; the file is truncated")
        raw = zf.read(record)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if not isinstance(numel, int) or len(raw) != numel * itemsize:
            raise InputError(
                f"{source}: tensor record {record} holds {len(raw)} bytes, but {numel!r} elements of {dtype} need "
                f"{numel * itemsize if isinstance(numel, int) else '?'}; the file is damaged"
            )
        flat = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        storages[key] = _Storage(flat, key)
        return storages[key]

    return _RestrictedUnpickler(io.BytesIO(zf.read(pkls[0])), source, storage_for).load()


def _load_legacy(f: BinaryIO, source: str) -> Any:
    def plain(what: str) -> Any:
        try:
            return _RestrictedUnpickler(f, source).load()
        except (pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise InputError(f"{source}: not a torch.save file ({what} unreadable: {exc})") from exc

    if plain("magic number") != LEGACY_MAGIC:
        raise InputError(f"{source}: not a torch.save file (neither a zip archive nor the legacy format)")
    if plain("protocol version") != LEGACY_PROTOCOL:
        raise InputError(f"{source}: legacy torch.save protocol other than {LEGACY_PROTOCOL}; not supported")
    info = plain("system info")
    if isinstance(info, dict) and info.get("little_endian") is False:
        raise InputError(f"{source}: stored big-endian; only little-endian files are read")
    roots: dict[str, _Storage] = {}

    def storage_for(pid) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise InputError(f"{source}: unexpected persistent id {pid!r} (legacy format)")
        _, storage_type, key, _location, numel, view = pid
        dtype = _storage_dtype(storage_type, source)
        key = str(key)
        if key not in roots:
            if not isinstance(numel, int) or numel < 0:
                raise InputError(f"{source}: storage {key} has a bad element count {numel!r}")
            roots[key] = _Storage(torch.empty(numel, dtype=dtype), key)  # filled after the object pickle
        root = roots[key]
        if view is None:
            return root
        _, offset, size = view  # a storage view (torch < 1.6): a flat slice of the root storage
        return _Storage(root.view(offset, (size,), (1,)), f"{key}[{offset}:{offset + size}]")

    obj = _RestrictedUnpickler(f, source, storage_for).load()
    keys = plain("storage key list")
    if not isinstance(keys, list) or set(map(str, keys)) != set(roots):
        raise InputError(f"{source}: its storage list does not match the storages its tensors use; damaged file")
    for key in keys:
        storage = roots[str(key)]
        head = f.read(8)
        if len(head) != 8:
            raise InputError(f"{source}: truncated before storage {key}")
        (numel,) = struct.unpack("<q", head)
        raw = f.read(numel * storage.flat.element_size())
        if numel != storage.flat.numel() or len(raw) != numel * storage.flat.element_size():
            raise InputError(f"{source}: storage {key} is truncated or its size disagrees with the pickle")
        if numel:
            storage.flat.copy_(torch.frombuffer(bytearray(raw), dtype=storage.flat.dtype))
    return obj


def load(path: str | os.PathLike) -> Any:
    """The object in a ``torch.save`` file, with tensors on the CPU; code is never run (see the module docstring).

    Raises:
        UnsafePickleError: the file names a global outside the allow-list (the message names it).
        InputError: not a torch.save file, a damaged one, or an unsupported variant of the format.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise InputError(f"{source}: no such file")
    with open(path, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"  # as torch decides: by the leading magic, not by a zip found inside
    if is_zip and not zipfile.is_zipfile(path):
        raise InputError(f"{source}: a damaged or truncated zip archive (torch.save format); copy the file again")
    try:
        if is_zip:
            with zipfile.ZipFile(path) as zf:
                return _load_zip(zf, source)
        if tarfile.is_tarfile(path):
            raise InputError(f"{source}: the tar format of torch < 0.4 is not supported; re-save it with a newer torch")
        with open(path, "rb") as f:
            return _load_legacy(f, source)
    except VgbenchError:
        raise
    except Exception as exc:  # a malformed pickle can fail in many ways; none of them ran code from the file
        if "ClassRef" in str(exc) or "isn't a type object" in str(exc):  # NEWOBJ on a placeholder: an instance
            raise UnsafePickleError(
                f"refusing to load {source}: it instantiates an object of a class it may only reference (Lightning "
                "callback classes are accepted as dict keys, never as objects). Nothing in the file was run."
            ) from exc
        raise InputError(f"{source}: not a readable torch.save file ({type(exc).__name__}: {exc})") from exc


__all__ = ["ALLOWED_GLOBALS", "ClassRef", "PLACEHOLDER_MODULES", "load"]
