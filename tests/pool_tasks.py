"""Tasks for WorkerPool tests, in a module that imports nothing heavy (spawned workers import it)."""

from __future__ import annotations

import os


def fail_on_three(x: int) -> int:
    """x squared; 3 raises."""
    if x == 3:
        raise ValueError("three is not allowed")
    return x * x


def die_on_two(x: int) -> int:
    """x; 2 ends the process at once with exit code 9 (as a worker killed for memory)."""
    if x == 2:
        os._exit(9)
    return x
