"""Pieces every metric engine shares: trial planning, prefetching, progress (the device choice is
:mod:`vgbench.device`)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

from vgbench.errors import ProtocolError

T = TypeVar("T")
STOP_GRACE_S = 0.5  # how long a consumer that leaves early waits for the prefetch thread


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
