"""Shared timing helper for the benchmarks: best rate over repeats after one warm-up run."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_rate(run: Callable[[], object], items: int, repeats: int) -> float:
    """Items per second of ``run`` (best of ``repeats``; one warm-up call for allocators and kernel caches)."""
    run()
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = max(best, items / (time.perf_counter() - t0))
    return best
