"""Pieces every metric engine shares: device choice, exact-math switch, trial planning, progress."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

import torch

from vgbench.errors import InputError, ProtocolError

T = TypeVar("T")
STOP_GRACE_S = 0.5  # how long a consumer that leaves early waits for the prefetch thread


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


def progress(total: int, desc: str, disable: bool):
    """A tqdm bar over videos, shown on rank 0 only (``disable``), cleared when done."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="video", disable=True if disable else None, leave=False)


def plan_chunks(
    n: int, per_trial: int | None, trials: int, role: str, name: str, allow_fewer: bool
) -> tuple[list[tuple[int, int]], list[str], bool]:
    """Video ranges for each trial: (chunks, notes, off_protocol)."""
    if per_trial is None:
        return [(0, n)] * trials, ([f"{role}: all {n} videos used in every trial"] if trials > 1 else []), False
    need = per_trial * trials
    if n >= need:
        notes = [f"{role}: first {need} of {n} videos used"] if n > need else []
        return [(i * per_trial, (i + 1) * per_trial) for i in range(trials)], notes, False
    if role == "reference" and n >= per_trial:
        return (
            [(0, per_trial)] * trials,
            [f"reference: the same {per_trial} clips reused in all {trials} trials"],
            False,
        )
    noun = "sample videos (--samples)" if role == "samples" else f"{role} videos (--{role})"
    msg = (
        f"protocol {name} needs {need} {noun}: {per_trial} per trial x {trials} trials, got {n}. "
        f"Provide more, choose another --protocol (see `vgbench list protocols`), or pass --allow-fewer "
        "(the result is then marked off-protocol)."
    )
    if not allow_fewer:
        raise ProtocolError(msg)
    k = max(1, n // per_trial)
    size = per_trial if n >= per_trial else n
    return [(i * size, (i + 1) * size) for i in range(k)], [f"off-protocol: {msg}"], True


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """``items``, produced up to ``depth`` ahead in a background thread.

    Reading, decoding and validating the next batch (file I/O, PyAV and numpy, which release the GIL) then overlaps
    the network's forward pass on the current one. An exception in the producer is raised here, in order; leaving
    the loop early stops the producer.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, done))
        except BaseException as exc:  # handed to the consumer, which raises it
            put((False, exc))

    worker = threading.Thread(target=produce, name="vgbench-prefetch", daemon=True)
    worker.start()
    finished = False
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                finished = True
                return
            yield item
    finally:
        stop.set()
        # Left early (an error, Ctrl-C, a break): the producer may be inside a long read or decode, and stops at
        # its next put; it is a daemon thread, so an interrupt never waits for it beyond this short grace.
        worker.join(timeout=10 if finished else STOP_GRACE_S)
