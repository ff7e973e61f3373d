"""Where and how tensors are computed: the device choice (``--device``), the exact-math switch of parity protocols,
and training precision. One module for training, sampling and metrics alike."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys

import torch

from vgbench.errors import InputError

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@functools.cache
def steady_heap() -> bool:
    """Keep freed tensor memory in the process heap between training steps (glibc only; True when set).

    A step frees all of its activations at once; glibc then hands the top of the heap back to the kernel and the
    next step faults every page in again. On the quickstart VQ-VAE (batch 8, 2 threads) that doubled the minor
    page faults (0.55 M -> 1.1 M in 60 steps) and cost about 10 % of the step time as system time. Fixing both
    thresholds (trim at 256 MiB of free top, direct mmap only above 32 MiB, glibc's own dynamic ceiling) keeps the
    pages: 0.09 M faults. The resident size stays the step's peak; it does not grow with the number of steps.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, 256 << 20)) and bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20))


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a named device is checked to exist (cheap, so callers resolve it
    before loading any network).

    Raises:
        InputError: an unknown device name, or CUDA / MPS asked for where it is not available.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"--device {device!r} is not a device ({exc}); use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch was built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise InputError(
                f"--device {device}: CUDA is not available ({why}; torch {torch.__version__}); use --device cpu, or "
                "--device auto to take a GPU when there is one"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(
                f"--device {device}: there are {torch.cuda.device_count()} CUDA devices (cuda:0 .. "
                f"cuda:{torch.cuda.device_count() - 1})"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {device}: MPS is not available here; use --device cpu or auto")
    return dev


@contextlib.contextmanager
def exact_math(enabled: bool):
    """Disable TF32 and reduced-precision reductions (cuDNN allows TF32 by default) for parity protocols."""
    if not enabled or not torch.cuda.is_available():
        yield
        return
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction,
        torch.get_float32_matmul_precision(),
    )
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        (
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
            torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction,
        ) = saved[:3]
        torch.set_float32_matmul_precision(saved[3])


def autocast(device: torch.device, precision: str):
    """The autocast context of a training precision (bf16/fp16 on CUDA and CPU), a no-op for fp32."""
    if precision in ("bf16", "fp16") and device.type in ("cuda", "cpu"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device.type, dtype=dtype)
    return contextlib.nullcontext()


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 on CUDA, fp32 elsewhere; any other name is checked."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in ("fp32", "bf16", "fp16"):
        raise InputError(f"unknown precision {precision!r}; allowed: auto, fp32, bf16, fp16")
    return precision
