"""Importing optional dependencies, with the real cause when one fails.

An ``ImportError`` from ``import tensorflow_hub`` does not mean that tensorflow_hub is missing: an installed package
fails just the same when one of *its* imports fails (tensorflow_hub 0.16 imports ``pkg_resources``, which only an
installed setuptools provides). Telling the user to install a package they already have sends them in a circle, so
:func:`require` names the module that is really missing, or the error an installed module raised.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from vgbench.errors import MissingDependencyError, VgbenchError

# Modules that a pip package of another name provides (for the install hint of an indirect failure).
PROVIDED_BY = {"pkg_resources": "setuptools", "google.protobuf": "protobuf", "cv2": "opencv-python", "yaml": "pyyaml"}


class DependencyImportError(VgbenchError, ImportError):
    """An optional dependency that is installed but fails to import; the message gives the real cause."""


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` for ``purpose`` (e.g. "the tfhub backend").

    Raises:
        MissingDependencyError: ``module`` itself is not installed (with the ``pip install 'vgbench[extra]'``).
        DependencyImportError: it is installed, but importing it failed; the message names what failed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or ""
        top = module.split(".")[0]
        if isinstance(exc, ModuleNotFoundError) and missing in (module, top):
            raise MissingDependencyError(module, extra, purpose) from exc
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            spec = None
        where = f" (at {spec.origin})" if spec is not None and spec.origin else ""
        hint = ""
        if isinstance(exc, ModuleNotFoundError) and missing:
            package = PROVIDED_BY.get(missing) or PROVIDED_BY.get(missing.split(".")[0]) or missing.split(".")[0]
            hint = f". The module '{missing}' it needs is missing: install it with `pip install {package}`"
        raise DependencyImportError(
            f"{purpose} needs the Python module '{module}', which is installed{where} but fails to import: "
            f"{type(exc).__name__}: {exc}{hint}"
        ) from exc
    except Exception as exc:  # an installed module whose import raises something else (e.g. a version clash)
        raise DependencyImportError(
            f"{purpose} needs the Python module '{module}', which is installed but fails to import: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
