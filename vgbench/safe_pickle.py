"""A restricted unpickler for third-party checkpoints that are numpy arrays in nested dicts.

Plain ``pickle.load`` runs arbitrary code named by the file. This unpickler resolves only the globals numpy
needs to rebuild arrays and refuses everything else with :class:`~vgbench.errors.UnsafePickleError`.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, BinaryIO

import numpy as np

from vgbench.errors import UnsafePickleError


def _reconstruct():
    # numpy >= 2 renamed numpy.core to numpy._core; resolve the pickled name to the real function without
    # importing the deprecated alias (which warns).
    try:
        from numpy._core.multiarray import _reconstruct as fn
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct as fn
    return fn


ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler whose ``find_class`` allows exactly numpy's array-reconstruction globals."""

    def __init__(self, file: BinaryIO, source: str = "<pickle>"):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102
        factory = ALLOWED_GLOBALS.get((module, name))
        if factory is None:
            allowed = ", ".join(f"{m}.{n}" for m, n in ALLOWED_GLOBALS)
            raise UnsafePickleError(
                f"refusing to unpickle {self.source}: it references the global '{module}.{name}', which is not "
                f"on the allow-list ({allowed}). The file is not a plain numpy checkpoint; do not load it with "
                "plain pickle. Use the published file (see `vgbench weights list`)."
            )
        return factory()

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102
        raise UnsafePickleError(f"refusing to unpickle {self.source}: it uses persistent ids ({pid!r})")


def load_numpy_pickle(path_or_bytes: str | bytes | BinaryIO, source: str | None = None) -> Any:
    """Load a pickle made only of containers and numpy arrays, refusing any other global."""
    if isinstance(path_or_bytes, bytes):
        return NumpyOnlyUnpickler(io.BytesIO(path_or_bytes), source or "<bytes>").load()
    if hasattr(path_or_bytes, "read"):
        return NumpyOnlyUnpickler(path_or_bytes, source or "<stream>").load()
    with open(path_or_bytes, "rb") as f:
        return NumpyOnlyUnpickler(f, source or str(path_or_bytes)).load()
