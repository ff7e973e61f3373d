"""Shared timing helpers for the benchmarks: best rate over repeats after one warm-up run."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_seconds(run: Callable[[], object], repeats: int = 3, warmup: bool = True) -> float:
    """Wall seconds of the fastest of ``repeats`` calls of ``run``, after one warm-up call unless ``warmup`` is
    False (a first call that is itself the thing measured)."""
    if warmup:
        run()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def best_rates(run: Callable[[], object], items: int, repeats: int) -> tuple[float, float]:
    """(items per wall second, items per CPU second of this process) of the fastest of ``repeats`` calls, after one
    warm-up call (allocators, kernel caches). CPU seconds count every thread; on a shared machine they move less
    with other people's load than wall seconds do."""
    run()
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
    return items / best[0], items / best[1]


def best_rate(run: Callable[[], object], items: int, repeats: int) -> float:
    """Items per second of ``run`` (best of ``repeats``; one warm-up call for allocators and kernel caches)."""
    return best_rates(run, items, repeats)[0]
