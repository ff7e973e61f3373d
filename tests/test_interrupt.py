"""Ctrl-C and SIGTERM during `vgbench data prepare --workers 2`; stores identical for any number of workers.

A UCF-101-shaped source is built from the real UCF-101 video of ../shared (its first 24 frames re-encoded, so a
shard of 16 videos takes about a second) with short split lists, so a run has several shards to interrupt.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from vgbench import datasets
from vgbench.video import decode_video
from vgbench.workers import EXIT_INTERRUPTED, WorkerPool

from .conftest import REPO, write_video
from .pool_tasks import die_on_two, fail_on_three

AVI = "data/ucf101/UCF-101/Basketball/v_Basketball_g01_c01.avi"
CLASSES = ("ApplyEyeMakeup", "Basketball", "Biking", "Diving")  # real class names of classInd.txt


def make_ucf_source(shared_dir: Path, folder: Path, n_train: int, n_test: int) -> Path:
    """A UCF-101 layout (UCF-101/<Class>/*.avi + ucfTrainTestlist/) of n_train + n_test links to one short AVI."""
    clip = folder / "clip.avi"
    folder.mkdir(parents=True, exist_ok=True)
    write_video(clip, decode_video(shared_dir / AVI)[:24], codec="mpeg4", fps=25)
    lists = folder / "ucfTrainTestlist"
    lists.mkdir()
    shutil.copy(shared_dir / "data/ucf101/ucfTrainTestlist/classInd.txt", lists / "classInd.txt")
    names = {"train": [], "test": []}
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            cls = CLASSES[i % len(CLASSES)]
            rel = f"{cls}/v_{cls}_g{(1 if split == 'test' else 8):02d}_c{i:03d}.avi"
            (folder / "UCF-101" / cls).mkdir(parents=True, exist_ok=True)
            os.symlink(clip, folder / "UCF-101" / rel)
            names[split].append(rel)
    for k in (1, 2, 3):
        (lists / f"trainlist0{k}.txt").write_text("".join(f"{r} 1\r\n" for r in names["train"]))
        (lists / f"testlist0{k}.txt").write_text("".join(f"{r}\r\n" for r in names["test"]))
    return folder


def store_files(store: Path) -> dict[str, bytes]:
    """Every file of a store except the manifest (which holds timestamps), by relative path."""
    return {
        p.relative_to(store).as_posix(): p.read_bytes()
        for p in sorted(store.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


def processes_with(marker: str) -> list[int]:
    """Pids of live processes whose environment holds ``marker`` (the CLI and every worker it started)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if marker.encode() in (d / "environ").read_bytes():
                stat = (d / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":  # a zombie is already dead
                    pids.append(int(d.name))
        except OSError:
            continue
    return pids


def test_stores_are_bit_identical_with_1_and_2_workers(shared_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("VGBENCH_OFFLINE", raising=False)
    src = make_ucf_source(shared_dir, tmp_path / "src", n_train=18, n_test=6)  # shards of 16: 2 train + 1 test
    one = datasets.prepare("ucf101", root=tmp_path / "w1", src=src, resolution=32, workers=1)
    two = datasets.prepare("ucf101", root=tmp_path / "w2", src=src, resolution=32, workers=2)
    assert one.written_shards == two.written_shards == 3 and one.counts == two.counts == {"train": 18, "test": 6}
    a, b = store_files(one.store), store_files(two.store)
    assert sorted(a) == sorted(b) and all(a[k] == b[k] for k in a)
    # the frames are the resized real video, not something trivially equal (e.g. empty)
    frames = np.load(one.store / "train/shard-00000.npy")
    assert frames.shape == (16 * 24, 32, 43, 3) and frames.std() > 10  # 32 x ceil(320 * 32 / 240): UCF's margins


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGINT to the process group (Ctrl-C)", "SIGTERM to the CLI"])
def test_interrupted_prepare_stops_within_seconds_and_resumes_bit_identical(shared_dir, tmp_path, how):
    src = make_ucf_source(shared_dir, tmp_path / "src", n_train=96, n_test=32)  # 8 shards of 16 videos
    marker = f"VGBENCH_TEST_RUN={uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": str(REPO), marker.split("=")[0]: marker.split("=")[1]}
    env.pop("VGBENCH_OFFLINE", None)
    cmd = [sys.executable, "-m", "vgbench", "data", "prepare", "ucf101", "--from", str(src), "--resolution", "32"]
    root = tmp_path / "interrupted"
    proc = subprocess.Popen(
        [*cmd, "--workers", "2", "--root", str(root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    store = root / "ucf101/prepared/fold1_32"
    deadline = time.monotonic() + 60
    while not list(store.glob("*/shard-*.json")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no shard finished within 60 s"
        time.sleep(0.05)
    sent = time.monotonic()
    if how.startswith("SIGINT"):
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: every process of the group gets it
    else:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    err = err.decode()
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert took < 10, f"took {took:.1f} s to stop"
    assert "interrupted" in err and "Traceback" not in err
    assert "Run the same command again to resume" in err
    time.sleep(0.5)  # let the kernel reap what was killed
    assert processes_with(marker) == []  # no stray worker
    done = sorted(p.stem for p in store.glob("*/shard-*.json"))
    assert 1 <= len(done) < 8, "the run should have stopped midway"
    assert not list(store.rglob("*.part"))  # no temporary file left
    for npy in store.glob("*/shard-*.npy"):  # every .npy left belongs to a finished shard
        assert (npy.parent / f"{npy.name.split('.')[0]}.json").exists()
    # resume: finishes the rest, and ends bit-identical to an uninterrupted run
    res = subprocess.run([*cmd, "--workers", "2", "--root", str(root)], env=env, capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr.decode()
    assert f"already done {len(done)}" in res.stdout.decode()
    full = datasets.prepare("ucf101", root=tmp_path / "uninterrupted", src=src, resolution=32, workers=2)
    a, b = store_files(store), store_files(full.store)
    assert sorted(a) == sorted(b) and all(a[k] == b[k] for k in a) and len(a) == 2 * 8  # .npy + .json per shard


def test_worker_pool_results_errors_and_dead_workers():
    with WorkerPool(fail_on_three, workers=2) as pool:
        assert sorted(pool.run([0, 1, 2])) == [0, 1, 4]
    with pytest.raises(ValueError, match="three is not allowed"), WorkerPool(fail_on_three, workers=2) as pool:
        list(pool.run([1, 2, 3, 4]))
    assert pool._procs == []  # joined
    # A worker that dies (as when killed for memory) is an error, not a hang (multiprocessing.Pool waits forever).
    from vgbench.errors import VgbenchError

    with pytest.raises(VgbenchError, match="died with exit code 9"), WorkerPool(die_on_two, workers=2) as pool:
        list(pool.run([1, 2, 3]))
    # one worker or one task: in this process, in order
    assert list(WorkerPool(fail_on_three, workers=1).run([2, 1, 0])) == [4, 1, 0]
