"""The device module: the steady heap keeps a step's freed memory in the process (glibc)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

CHURN = """
import resource, sys, torch
import vgbench.device as d
steady = d.steady_heap() if sys.argv[1] == "steady" else False
def step():
    xs = [torch.ones(1 << 18) for _ in range(64)]  # 64 x 1 MiB, freed together like a step's activations
    del xs
step(); step()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(steady, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def _faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True)
    steady, faults = out.stdout.split()
    return steady, int(faults)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt's thresholds are glibc's")
def test_steady_heap_keeps_the_pages_of_freed_steps():
    """20 steps of 64 MiB freed together would fault 16,384 pages each if the heap were handed back. With glibc's
    defaults the count depends on the heap's layout (measured 256 or 16,354 in alternate fresh processes, so it is
    not asserted); with the steady heap it was 0 or 256 in every run."""
    steady, faults = _faults("steady")
    assert steady == "True"
    assert faults < 2048
