"""Sharded extraction under torchrun (2 CPU processes on gloo) equals the single-process result."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from .conftest import random_videos


@pytest.mark.slow
def test_torchrun_two_processes_equal_single_process(tmp_path, i3d_tensors):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, random_videos(5, t=9, h=32, w=24, seed=1))
    np.save(b, random_videos(6, t=9, h=32, w=24, seed=2))
    env = dict(os.environ, OMP_NUM_THREADS="1")  # the weights come from the user's cache; nothing is written
    args = ["-q", "eval", "--samples", str(a), "--reference", str(b), "--no-cache", "--no-store"]
    single = subprocess.run(
        [sys.executable, "-m", "vgbench", *args], env=env, capture_output=True, text=True, check=True
    )
    multi = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            "29533",
            "-m",
            "vgbench",
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert multi.returncode == 0, multi.stderr[-2000:]
    lines = [json.loads(x) for x in multi.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1  # only rank 0 prints
    one = json.loads(single.stdout)
    assert lines[0]["world_size"] == 2 and one["world_size"] == 1
    assert lines[0]["n_samples"] == 5 and lines[0]["n_reference"] == 6
    assert lines[0]["value"] == pytest.approx(one["value"], rel=1e-5)
