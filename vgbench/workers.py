"""Interruptible worker processes and the Ctrl-C / SIGTERM contract shared by every long command.

The contract (``data prepare`` and ``eval``; ``train`` stops at a step boundary through :class:`StopFlag`):

- SIGINT and SIGTERM both end the command within seconds with exit code 130 (:data:`EXIT_INTERRUPTED`): the CLI
  runs under :func:`sigterm_as_interrupt`, so SIGTERM raises ``KeyboardInterrupt`` exactly as Ctrl-C does and one
  cleanup path serves both.
- Work that finished is kept, work in progress is removed: each writer removes its own partial files when the
  interrupt passes through it (e.g. :meth:`vgbench.datasets.store.StoreWriter.session`), and a re-run resumes.
- No process outlives the command: :class:`WorkerPool` workers ignore SIGINT (a terminal sends it to the whole
  process group, and a worker dying on its own is what made ``multiprocessing.Pool`` hang), the parent terminates
  them on any exception, and a worker whose parent has gone stops before its next task.

Why not ``multiprocessing.Pool`` or ``concurrent.futures``: ``Pool`` hangs forever when a worker dies (killed for
memory, or by the terminal's Ctrl-C), and neither can stop tasks that are already running short of reaching into
private attributes. This pool is ~100 lines with both behaviours explicit.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import pickle
import queue
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from vgbench import dist
from vgbench.errors import VgbenchError

log = logging.getLogger(__name__)

EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell convention for a command stopped by Ctrl-C
POLL_S = 0.2  # how often the parent checks that its workers are alive while it waits
TERMINATE_GRACE_S = 3.0  # SIGTERM, then SIGKILL after this long


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises ``KeyboardInterrupt`` in the main thread, as SIGINT does.

    A no-op outside the main thread (Python delivers signals only there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _worker(fn: Callable, tasks, results, initializer: Callable | None, parent: int) -> None:
    """Worker loop: run ``fn`` on tasks until the sentinel; every reply is pickled here, so a result or exception
    that cannot be pickled becomes an error message instead of a reply lost in the queue's feeder thread."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt means
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # and ends a worker with SIGTERM
    if initializer is not None:
        initializer()
    while True:
        item = tasks.get()
        if item is None or os.getppid() != parent:  # finished, or orphaned: never keep working for nobody
            return
        index, task = item
        try:
            reply = (index, True, fn(task))
        except Exception as exc:  # reported to the parent, which re-raises it
            reply = (index, False, exc)
        try:
            data = pickle.dumps(reply)
            if not reply[1]:
                pickle.loads(data)  # some exceptions pickle but cannot be rebuilt (custom __init__)
        except Exception:
            what = f"{type(reply[2]).__name__}: {reply[2]}"
            data = pickle.dumps((index, False, VgbenchError(f"in a worker process: {what}")))
        results.put(data)


class WorkerPool:
    """``fn`` over tasks in ``workers`` spawned processes; results in completion order.

    Use as a context manager: leaving the block by an exception (``KeyboardInterrupt`` included) terminates every
    worker at once (SIGTERM, then SIGKILL) and joins it; leaving normally joins them. With ``workers <= 1`` tasks
    run in this process, in order, with no process started.

    Example::

        with WorkerPool(convert_shard, workers=4) as pool:
            for result in pool.run(tasks):
                ...
    """

    def __init__(self, fn: Callable[[Any], Any], workers: int, initializer: Callable[[], None] | None = None):
        self.fn, self.workers, self.initializer = fn, int(workers), initializer
        self._procs: list = []
        self._queues: list = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(terminate=exc_type is not None)

    def run(self, tasks: Iterable) -> Iterator:
        """Results of ``fn(task)`` as they finish; a task's exception is re-raised here."""
        tasks = list(tasks)
        if self.workers <= 1 or len(tasks) <= 1:
            for task in tasks:
                yield self.fn(task)
            return
        ctx = mp.get_context("spawn")  # no fork: the parent may hold threads (tqdm, torch) and open files
        task_q, result_q = ctx.Queue(), ctx.Queue()
        self._queues = [task_q, result_q]
        n = min(self.workers, len(tasks))
        for item in enumerate(tasks):
            task_q.put(item)
        for _ in range(n):
            task_q.put(None)
        args = (self.fn, task_q, result_q, self.initializer, os.getpid())
        self._procs = [ctx.Process(target=_worker, args=args, daemon=True) for _ in range(n)]
        for p in self._procs:
            p.start()
        for _ in range(len(tasks)):
            _, ok, value = pickle.loads(self._next(result_q))  # our own worker's reply, pickled just above
            if not ok:
                raise value
            yield value

    def _next(self, result_q) -> bytes:
        while True:
            try:
                return result_q.get(timeout=POLL_S)
            except queue.Empty:
                dead = [p for p in self._procs if p.exitcode not in (None, 0)]
                if dead:
                    p = dead[0]
                    raise VgbenchError(
                        f"a worker process (pid {p.pid}) died with exit code {p.exitcode} "
                        f"({_describe_exit(p.exitcode)}); finished work is kept. Run again with fewer --workers "
                        "if it was killed for memory."
                    ) from None

    def close(self, terminate: bool = False) -> None:
        """Join the workers; with ``terminate``, stop them first (SIGTERM, SIGKILL after a grace period)."""
        procs, self._procs = self._procs, []
        if terminate:
            for p in procs:
                if p.is_alive():
                    p.terminate()
        for p in procs:
            p.join(TERMINATE_GRACE_S if terminate else None)
            if p.is_alive():
                p.kill()
                p.join()
        for q in self._queues:
            q.cancel_join_thread()  # never block exit on flushing tasks nobody will read
            q.close()
        self._queues = []
        if terminate and procs:
            log.info("stopped %d worker processes", len(procs))


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return "see the log above"


# ----------------------------------------------------------------------------------------------------------
# A loop that stops at a step boundary (training)


class StopFlag:
    """SIGINT / SIGTERM request a clean stop at the next step boundary (a second Ctrl-C stops at once)."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: no handler, Ctrl-C raises as usual
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("stop requested (signal %d): finishing the step, writing a checkpoint", signum)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False

    def agreed(self) -> bool:
        """True when any process was asked to stop (all ranks stop at the same step)."""
        flag = float(self.requested)
        if dist.rank_and_size()[1] > 1:
            flag = float(dist.all_reduce_sum([np.array([flag])])[0][0])
        return flag > 0


class Interrupted(VgbenchError):
    """Training stopped on request after writing a checkpoint (the CLI exits with 130, as for any interrupt)."""

    exit_code = EXIT_INTERRUPTED
