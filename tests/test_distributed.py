"""Sharded extraction under torchrun (2 CPU processes on gloo) equals the single-process result."""

import json
import os
import subprocess
import sys
from pathlib import Path

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
    two_iv, one_iv = lines[0]["interval"], one["interval"]  # the same up to the I3D's rounding across batches
    assert [two_iv["low"], two_iv["high"]] == pytest.approx([one_iv["low"], one_iv["high"]], rel=1e-4)
    assert {k: v for k, v in two_iv.items() if k not in ("low", "high")} == {
        k: v for k, v in one_iv.items() if k not in ("low", "high")
    }


CHILD = r"""
import json, sys, warnings
import numpy as np
from vgbench import api
from vgbench.metrics import fvd
from vgbench.metrics import uncertainty as u
proj = np.random.default_rng(123).normal(size=(27, 400))
def one_by_one(x):  # features of each video alone: the same bits whatever the batch or the process
    rows = [np.tanh(x[i : i + 1, :9].mean(axis=(2, 3)).reshape(1, -1) / 255.0 @ proj) for i in range(len(x))]
    return np.concatenate(rows)
fvd.build_extractor = lambda *a, **k: one_by_one
warnings.simplefilter("ignore")
r = api.evaluate("fvd", sys.argv[1], sys.argv[2], use_cache=False, allow_fewer=True, batch_size=int(sys.argv[3]),
                 interval=u.IntervalConfig(resamples=200))
if r is not None:
    print(json.dumps({"value": r.value, "interval": r.interval, "curve": r.curve, "world_size": r.world_size}))
"""


@pytest.mark.slow
def test_intervals_are_identical_for_one_and_two_processes_and_any_batch_size(tmp_path):
    """Per-video contributions are gathered once in canonical order, and resample indices depend only on the seed
    and N: with features that do not depend on the batch, 2 gloo processes give the very same interval as 1."""
    a, b, child = tmp_path / "a.npy", tmp_path / "b.npy", tmp_path / "child.py"
    np.save(a, random_videos(9, t=9, seed=1))
    np.save(b, random_videos(7, t=9, seed=2))
    child.write_text(CHILD)
    repo = Path(__file__).resolve().parents[1]  # the child imports this checkout's vgbench
    env = dict(os.environ, OMP_NUM_THREADS="1", VGBENCH_HOME=str(tmp_path / "home"), PYTHONPATH=str(repo))
    single = subprocess.run(
        [sys.executable, str(child), str(a), str(b), "4"], env=env, capture_output=True, text=True, check=True
    )
    multi = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29534",
         str(child), str(a), str(b), "3"],
        env=env,
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert multi.returncode == 0, multi.stderr[-2000:]
    one = json.loads(single.stdout.strip().splitlines()[-1])
    two = json.loads([x for x in multi.stdout.splitlines() if x.startswith("{")][0])
    assert one["world_size"] == 1 and two["world_size"] == 2
    assert two["value"] == one["value"] and two["interval"] == one["interval"] and two["curve"] == one["curve"]


STREAM_CHILD = r"""
import json, sys
import numpy as np
from vgbench import dist
from vgbench.metrics import fvd
proj = np.random.default_rng(7).normal(size=(27, 400))
def features(x):  # a fixed stand-in for I3D: the same bits for a video whatever the process
    return np.concatenate([np.tanh(x[i : i + 1, :9].mean(axis=(2, 3)).reshape(1, -1) / 255.0 @ proj)
                           for i in range(len(x))])
dist.maybe_init()
rank, world = dist.rank_and_size()
rng = np.random.default_rng(0)
real, fake = (rng.integers(0, 256, (8, 10, 16, 16, 3), dtype=np.uint8) for _ in range(2))
metric = fvd.FrechetVideoDistance("fvd.official", extractor=features)
lo, hi = dist.shard(0, 8, rank, world)
metric.update(real[lo:hi], real=True)
metric.update(fake[lo:hi], real=False)
out = {"rank": rank, "world": world, "value": metric.compute()}
with open(f"{sys.argv[1]}.{world}.{rank}.json", "w") as f:  # a file per process: two ranks' prints interleave
    json.dump(out, f)
"""


@pytest.mark.slow
def test_streaming_fvd_compute_syncs_across_processes(tmp_path):
    """FrechetVideoDistance under torchrun: each process adds half the videos, every process's compute() gives
    the single-process value of all of them (its statistics are all-reduced)."""
    script = tmp_path / "child.py"
    script.write_text(STREAM_CHILD)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    stem = str(tmp_path / "out")
    subprocess.run([sys.executable, str(script), stem], env=env, capture_output=True, text=True, check=True)
    multi = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29541",
         str(script), stem],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert multi.returncode == 0, multi.stderr[-2000:]
    one = json.loads(Path(f"{stem}.1.0.json").read_text())
    two = [json.loads(Path(f"{stem}.2.{r}.json").read_text()) for r in range(2)]
    assert one["world"] == 1 and sorted(r["rank"] for r in two) == [0, 1]
    assert one["value"] > 0.5  # two different random sets (measured 0.868): a distance well above zero
    for r in two:
        assert r["value"] == pytest.approx(one["value"], rel=1e-9)


CONTINUITY_CHILD = r"""
import json, sys
from vgbench import api, dist
r = api.evaluate("continuity", samples=sys.argv[1], reference=sys.argv[2], store=None, batch_size=int(sys.argv[3]))
rank, world = dist.rank_and_size()
if rank == 0:
    with open(f"{sys.argv[4]}.{world}.json", "w") as f:
        json.dump({"world": world, "value": r.value, "interval": r.interval, "notes": r.notes}, f)
"""


def test_continuity_under_two_processes_equals_one(tmp_path):
    """Continuity shards its samples over torchrun like every clip metric: 2 gloo processes, blocks of 2, give the
    value, interval and notes of 1 process in one block (rows of a block depend on their own sample only)."""
    a, b, child = tmp_path / "a.npy", tmp_path / "b.npy", tmp_path / "child.py"
    real = random_videos(7, t=9, seed=2)
    np.save(b, real)
    np.save(a, np.clip(real.astype(int) + random_videos(7, t=9, seed=3) // 4, 0, 255).astype(np.uint8))
    child.write_text(CONTINUITY_CHILD)
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", VGBENCH_HOME=str(tmp_path / "home"), PYTHONPATH=str(repo))
    out = tmp_path / "r"
    subprocess.run([sys.executable, str(child), str(a), str(b), "7", str(out)], env=env, check=True)
    multi = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29538",
         str(child), str(a), str(b), "2", str(out)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert multi.returncode == 0, multi.stderr[-2000:]
    one, two = (json.loads(Path(f"{out}.{w}.json").read_text()) for w in (1, 2))
    assert one["world"] == 1 and two["world"] == 2
    # the samples are their reference clips plus a quarter of noise: measured 0.2239, well above noise's 0
    assert two["value"] == pytest.approx(one["value"], rel=1e-12, abs=1e-15) and one["value"] > 0.05
    assert two["interval"]["low"] == pytest.approx(one["interval"]["low"], rel=1e-9)
    assert two["interval"]["high"] == pytest.approx(one["interval"]["high"], rel=1e-9)
