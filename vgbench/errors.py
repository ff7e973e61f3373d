"""Error hierarchy: every failure says what went wrong, the value seen, what is allowed and how to fix it."""

from __future__ import annotations


class VgbenchError(Exception):
    """Base class of every error vgbench raises on purpose (the CLI maps it to exit code 1)."""


class UnknownNameError(VgbenchError, KeyError):
    """A registry or card name that does not exist."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class CardError(VgbenchError, ValueError):
    """A card file that fails validation; names the file and the field."""

    def __init__(self, path, field: str, problem: str, expected: str | None = None, got=None):
        self.path, self.field = path, field
        msg = f"{path}: field '{field}': {problem}"
        if expected is not None:
            msg += f"; expected {expected}"
        if got is not None:
            msg += f", got {got!r}"
        super().__init__(msg)


class WeightsError(VgbenchError, KeyError):
    """A weight file whose tensors do not fit the network (a missing, extra or misnamed tensor)."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ChecksumError(VgbenchError):
    """A file whose size or hash differs from the recorded one."""

    def __init__(self, what, expected: str, got: str, remedy: str = ""):
        self.expected, self.got = expected, got
        msg = f"checksum mismatch for {what}: expected {expected}, got {got}"
        if remedy:
            msg += f". {remedy}"
        super().__init__(msg)


class DownloadError(VgbenchError):
    """A download or fetch that failed; the message carries the manual steps."""


class OfflineError(DownloadError):
    """A file is missing and VGBENCH_OFFLINE forbids fetching it."""


class MissingDependencyError(VgbenchError, ImportError):
    """An optional dependency is needed; the message gives the exact install command."""

    def __init__(self, module: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the Python module '{module}', which is not installed. "
            f"Install it with: pip install 'vgbench[{extra}]'"
        )


class ProtocolError(VgbenchError, ValueError):
    """Inputs that do not fit the chosen protocol (counts, frames, resolution)."""


class InputError(VgbenchError, ValueError):
    """Sample or reference data that cannot be used as given (shape, range, decode failure)."""


class UnsafePickleError(VgbenchError):
    """A pickle that references a global outside the allow-list."""
