"""The bad-input matrix: every reader and command, fed broken or mistaken files, through the real CLI.

For each row it asserts the exit code, a message that names the file and the problem, no traceback, no
library's unsafe advice (numpy's allow_pickle), and that nothing was written or left half-written (the files
under the case's folder are the same before and after).

Adding rows: write a function ``make(work: Work) -> (argv, path)`` that builds the bad input under ``work.dir``
and returns the CLI arguments and the path the message must name; register it with ``@case(id, problem)``
where ``problem`` is a regular expression the message must match, above the runner section (the parametrised
test reads the list when this module is imported). ``unreadable=True`` marks a row whose input
is made unreadable (chmod 000). Root ignores file modes through two capabilities, so as root that row runs the
CLI in a child process that keeps uid 0 but has CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped (setpriv): file
modes then apply to it as to any user, wherever the checkout lives (a mode-700 folder under /root included).
"""

from __future__ import annotations

import functools
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from .conftest import REPO

RANDOM = np.random.default_rng(0).bytes(4096)  # "random bytes" of every row


@dataclass
class Work:
    """The folder a case builds its input in, and a prepared BAIR store to copy from."""

    dir: Path
    bair_store_root: Path

    def store(self) -> Path:
        """A fresh copy of the prepared BAIR store (the shared sample: one train and one test video) as a data
        root; returns that root."""
        root = self.dir / "data"
        shutil.copytree(self.bair_store_root, root)
        return root


@dataclass
class Case:
    id: str
    make: Callable[[Work], tuple[list[str], Path]]
    problem: str
    code: int = 1
    unreadable: bool = False


CASES: list[Case] = []


def case(id: str, problem: str, code: int = 1, unreadable: bool = False):
    """Register a row of the matrix (see the module docstring)."""

    def deco(make):
        CASES.append(Case(id, make, problem, code, unreadable))
        return make

    return deco


# ----------------------------------------------------------------------------------------------------------
# Prepared stores, read by `vgbench data info` (which checks every shard header against its .json)

SHARD = "bair/prepared/image_aux1/test/shard-00000"  # (30, 64, 64, 3) uint8: one video of 30 frames


def _store_file(work: Work, rel: str, content: bytes | np.ndarray) -> tuple[list[str], Path]:
    root = work.store()
    path = root / rel
    if isinstance(content, np.ndarray):
        np.save(path, content, allow_pickle=content.dtype.hasobject)
    else:
        path.write_bytes(content)
    return ["data", "info", "bair", "--root", str(root)], path


@case("store-manifest-truncated", r"cannot be read as a store manifest .*delete .* and run `vgbench data prepare bair`")
def _(work):
    root = work.store()
    path = root / "bair/prepared/image_aux1/manifest.json"
    path.write_bytes(path.read_bytes()[:100])
    return ["data", "info", "bair", "--root", str(root)], path


@case("store-manifest-random-bytes", r"cannot be read as a store manifest")
def _(work):
    return _store_file(work, "bair/prepared/image_aux1/manifest.json", RANDOM)


@case("store-manifest-empty", r"empty file; expected a store manifest")
def _(work):
    return _store_file(work, "bair/prepared/image_aux1/manifest.json", b"")


@case("store-shard-truncated", r"truncated: its header declares uint8\(30, 64, 64, 3\) = 368640 bytes")
def _(work):
    root = work.store()
    path = root / f"{SHARD}.npy"
    path.write_bytes(path.read_bytes()[:100_000])
    return ["data", "info", "bair", "--root", str(root)], path


@case("store-shard-random-bytes", r"not a .npy file")
def _(work):
    return _store_file(work, f"{SHARD}.npy", RANDOM)


@case("store-shard-empty", r"empty file \(0 bytes\)")
def _(work):
    return _store_file(work, f"{SHARD}.npy", b"")


@case("store-shard-wrong-dtype", r"holds float32\(30, 64, 64, 3\), but its .json records uint8\(30, 64, 64, 3\)")
def _(work):
    return _store_file(work, f"{SHARD}.npy", np.zeros((30, 64, 64, 3), np.float32))


@case("store-shard-wrong-layout", r"holds uint8\(30, 3, 64, 64\), but its .json records uint8\(30, 64, 64, 3\)")
def _(work):
    return _store_file(work, f"{SHARD}.npy", np.zeros((30, 3, 64, 64), np.uint8))


@case("store-shard-zero-size", r"holds uint8\(0, 64, 64, 3\), but its .json records uint8\(30, 64, 64, 3\)")
def _(work):
    return _store_file(work, f"{SHARD}.npy", np.zeros((0, 64, 64, 3), np.uint8))


@case("store-shard-object-dtype", r"holds Python objects \(dtype object\)")
def _(work):
    return _store_file(work, f"{SHARD}.npy", np.array([{"a": 1}] * 30, dtype=object))


@case("store-shard-index-random-bytes", r"cannot be read as a shard index")
def _(work):
    return _store_file(work, f"{SHARD}.json", RANDOM)


@case("store-shard-permission-denied", r"permission denied", unreadable=True)
def _(work):
    argv, path = _store_file(work, f"{SHARD}.npy", np.zeros((30, 64, 64, 3), np.uint8))
    path.chmod(0)
    return argv, path


# ----------------------------------------------------------------------------------------------------------
# Dataset sources, read by `vgbench data prepare NAME --from ...` (refused before anything is written)


def _prepare(work: Work, name: str, src: Path) -> list[str]:
    return ["data", "prepare", name, "--from", str(src), "--root", str(work.dir / "data")]


def _mnist(work: Work, content: bytes | np.ndarray) -> tuple[list[str], Path]:
    path = work.dir / "mnist_test_seq.npy"
    if isinstance(content, np.ndarray):
        np.save(path, content, allow_pickle=content.dtype.hasobject)
    else:
        path.write_bytes(content)
    return _prepare(work, "moving_mnist", path), path


@case("moving_mnist-truncated", r"truncated: its header declares uint8\(20, 4, 64, 64\)")
def _(work):
    argv, path = _mnist(work, np.zeros((20, 4, 64, 64), np.uint8))
    path.write_bytes(path.read_bytes()[:50_000])
    return argv, path


@case("moving_mnist-random-bytes", r"not a .npy file")
def _(work):
    return _mnist(work, RANDOM)


@case("moving_mnist-empty", r"empty file \(0 bytes\); expected mnist_test_seq.npy")
def _(work):
    return _mnist(work, b"")


@case("moving_mnist-wrong-dtype", r"dtype float32, expected uint8 \(T=20, N, 64, 64\)")
def _(work):
    return _mnist(work, np.zeros((20, 4, 64, 64), np.float32))


# the case: (100, 20, 64, 64) was read as 20 videos of 100 frames
@case(
    "moving_mnist-wrong-layout",
    r"shape \(100, 20, 64, 64\) has 100 frames on axis 0.*np.transpose\(x, \(1, 0, 2, 3\)\)",
)
def _(work):
    return _mnist(work, np.zeros((100, 20, 64, 64), np.uint8))


@case("moving_mnist-zero-size", r"shape \(20, 0, 64, 64\) holds no sequences")
def _(work):
    return _mnist(work, np.zeros((20, 0, 64, 64), np.uint8))


@case("moving_mnist-object-dtype", r"holds Python objects")
def _(work):
    return _mnist(work, np.array([None] * 20, dtype=object))


@case("moving_mnist-permission-denied", r"permission denied", unreadable=True)
def _(work):
    argv, path = _mnist(work, np.zeros((20, 4, 64, 64), np.uint8))
    path.chmod(0)
    return argv, path


# the case: a folder ended in IsADirectoryError
@case("moving_mnist-folder-without-the-file", r"is a folder without mnist_test_seq.npy; moving_mnist expects the file")
def _(work):
    folder = work.dir / "downloads"
    folder.mkdir()
    return _prepare(work, "moving_mnist", folder), folder


def _tfrecords(work: Work, content: bytes) -> tuple[list[str], Path]:
    path = work.dir / "softmotion30_44k/test/traj_0_to_255.tfrecords"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    return _prepare(work, "bair", work.dir / "softmotion30_44k"), path


def _real_tfrecord() -> bytes:
    shared = Path(os.environ.get("VGBENCH_SHARED_DIR") or REPO.parent / "shared")
    return next((shared / "data/bair").rglob("test/*.tfrecords")).read_bytes()


@case("bair-truncated", r"truncated record at byte 0 \(\d+ payload bytes declared\)")
def _(work):
    return _tfrecords(work, _real_tfrecord()[:20_000])


@case("bair-random-bytes", r"not a complete TFRecord file: length CRC mismatch at byte 0. bair expects")
def _(work):
    return _tfrecords(work, RANDOM)


@case("bair-empty", r"every .tfrecords file in it is empty")
def _(work):
    argv, path = _tfrecords(work, b"")
    return argv, path.parents[1]  # the message is about the input, not one file


@case("bair-tar-random-bytes", r"not a readable tar archive")
def _(work):
    path = work.dir / "bair_robot_pushing_dataset_v0.tar"
    path.write_bytes(RANDOM)
    return _prepare(work, "bair", path), path


@case("bair-permission-denied", r"permission denied", unreadable=True)
def _(work):
    argv, path = _tfrecords(work, _real_tfrecord())
    path.chmod(0)
    return argv, path


@case("ucf101-random-bytes-zip", r"not a complete zip archive")
def _(work):
    path = work.dir / "UCF101_videos.zip"
    path.write_bytes(RANDOM)
    return _prepare(work, "ucf101", path), path


@case("ucf101-wrong-kind", r"unsupported archive type '.npy'; ucf101 expects UCF101.rar or UCF101_videos.zip")
def _(work):
    path = work.dir / "videos.npy"
    np.save(path, np.zeros((2, 2), np.uint8))
    return _prepare(work, "ucf101", path), path


@case("tgif-file-instead-of-folder", r"is not a folder; tgif expects a folder holding \{train,val,test\}")
def _(work):
    path = work.dir / "gifs.zip"
    path.write_bytes(RANDOM)
    return _prepare(work, "tgif", path), path


@case("tgif-folder-without-gifs", r"no GIFs of the TGIF splits found; tgif expects a folder holding")
def _(work):
    folder = work.dir / "gifs"
    (folder / "test").mkdir(parents=True)
    (folder / "test/readme.txt").write_text("no gifs here")
    return _prepare(work, "tgif", folder), folder


@case("quickstart-with-from", r"quickstart makes its data from digits embedded in vgbench; it takes no --from")
def _(work):
    return _prepare(work, "quickstart", work.dir), Path("quickstart")


# ----------------------------------------------------------------------------------------------------------
# Sample sets, read by `vgbench doctor` (the same readers and checks as `vgbench eval --samples/--reference`)


def _good_videos(n: int = 2, t: int = 9) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (n, t, 8, 8, 3), dtype=np.uint8)


def _doctor(path: Path, *extra: str) -> list[str]:
    return ["doctor", str(path), *extra]


def _npy(work: Work, content: bytes | np.ndarray, name: str = "samples.npy") -> tuple[list[str], Path]:
    path = work.dir / name
    if isinstance(content, np.ndarray):
        np.save(path, content, allow_pickle=content.dtype.hasobject)
    else:
        path.write_bytes(content)
    return _doctor(path), path


# the cases: a truncated .npy, random bytes, an object-dtype array and a zero-frame array
@case("samples-npy-truncated", r"truncated: its header declares uint8\(2, 9, 8, 8, 3\) = 3456 bytes")
def _(work):
    argv, path = _npy(work, _good_videos())
    path.write_bytes(path.read_bytes()[:1000])
    return argv, path


@case("samples-npy-random-bytes", r"not a .npy file .*expected a .npy array of videos")
def _(work):
    return _npy(work, RANDOM)


@case("samples-npy-empty", r"empty file \(0 bytes\); expected a .npy array of videos")
def _(work):
    return _npy(work, b"")


@case("samples-npy-object-dtype", r"holds Python objects \(dtype object\)")
def _(work):
    return _npy(work, np.array([{"video": 1}] * 2, dtype=object))


@case("samples-npy-wrong-dtype", r"unsupported dtype complex64; use uint8 or float")
def _(work):
    return _npy(work, np.zeros((2, 9, 8, 8, 3), np.complex64))


@case("samples-npy-wrong-layout", r"expected 3 RGB channels in the last axis, got shape \(2, 9, 3, 8, 8\)")
def _(work):
    return _npy(work, np.zeros((2, 9, 3, 8, 8), np.uint8))


@case("samples-npy-zero-frames", r"shape \(2, 0, 8, 8, 3\) holds 2 videos of no frames or pixels")
def _(work):
    return _npy(work, np.zeros((2, 0, 8, 8, 3), np.uint8))


@case("samples-npy-zero-videos", r"the sample set is empty")
def _(work):
    return _npy(work, np.zeros((0, 9, 8, 8, 3), np.uint8))


@case("samples-npy-permission-denied", r"permission denied", unreadable=True)
def _(work):
    argv, path = _npy(work, _good_videos())
    path.chmod(0)
    return argv, path


def _npz(work: Work, content: bytes | np.ndarray) -> tuple[list[str], Path]:
    path = work.dir / "samples.npz"
    if isinstance(content, np.ndarray):
        np.savez(path, videos=content, allow_pickle=content.dtype.hasobject)
    else:
        path.write_bytes(content)
    return _doctor(path), path


@case("samples-npz-random-bytes", r"not a .npz file \(File is not a zip file")
def _(work):
    return _npz(work, RANDOM)


@case("samples-npz-truncated", r"not a .npz file .*damaged, truncated or another format")
def _(work):
    argv, path = _npz(work, _good_videos())
    path.write_bytes(path.read_bytes()[:2000])
    return argv, path


@case("samples-npz-empty", r"not a .npz file")
def _(work):
    return _npz(work, b"")


@case("samples-npz-object-dtype", r"samples.npz:videos: holds Python objects \(dtype object\)")
def _(work):
    return _npz(work, np.array([{"video": 1}] * 2, dtype=object))


@case("samples-npz-wrong-layout", r"expected an array of rank 5 \(N, T, H, W, C\), got shape \(9, 8, 8, 3\)")
def _(work):
    return _npz(work, _good_videos()[0])


@case("samples-npz-zero-size", r"the sample set is empty")
def _(work):
    return _npz(work, np.zeros((0, 9, 8, 8, 3), np.uint8))


@case("samples-npz-permission-denied", r"permission denied", unreadable=True)
def _(work):
    argv, path = _npz(work, _good_videos())
    path.chmod(0)
    return argv, path


def _h5(work: Work, data: np.ndarray | None = None, raw: bytes | None = None) -> tuple[list[str], Path]:
    import h5py

    path = work.dir / "samples.h5"
    if raw is not None:
        path.write_bytes(raw)
    else:
        with h5py.File(path, "w") as f:
            f["videos"] = data
    return _doctor(path), path


@case("samples-h5-random-bytes", r"cannot be read as an HDF5 file of videos .*file signature not found")
def _(work):
    return _h5(work, raw=RANDOM)


@case("samples-h5-truncated", r"cannot be read as an HDF5 file of videos")
def _(work):
    argv, path = _h5(work, _good_videos())
    path.write_bytes(path.read_bytes()[:1500])
    return argv, path


@case("samples-h5-empty", r"cannot be read as an HDF5 file of videos")
def _(work):
    return _h5(work, raw=b"")


@case("samples-h5-wrong-dtype", r"expected an array of rank 5 .*got shape \(2,\)")
def _(work):
    import h5py

    return _h5(work, np.array([b"ab", b"cd"], dtype=h5py.string_dtype()))


@case("samples-h5-wrong-layout", r"expected 3 RGB channels in the last axis, got shape \(2, 3, 9, 8, 8\)")
def _(work):
    return _h5(work, np.zeros((2, 3, 9, 8, 8), np.uint8))


@case("samples-h5-zero-frames", r"holds 2 videos of no frames or pixels")
def _(work):
    return _h5(work, np.zeros((2, 0, 8, 8, 3), np.uint8))


@case("samples-h5-permission-denied", r"permission denied", unreadable=True)
def _(work):
    argv, path = _h5(work, _good_videos())
    path.chmod(0)
    return argv, path


def _video_folder(work: Work, bad: bytes | None = None) -> tuple[list[str], Path]:
    """A folder of two MP4 videos; ``bad`` replaces the second one's bytes."""
    from .conftest import write_video

    folder = work.dir / "videos"
    folder.mkdir()
    for i, v in enumerate(_good_videos(t=9)):
        write_video(folder / f"{i}.mp4", np.kron(v, np.ones((1, 2, 2, 1), np.uint8)))  # 16x16: even sizes for x264
    path = folder / "1.mp4"
    if bad is not None:
        path.write_bytes(bad)
    return _doctor(folder), path


@case("videos-random-bytes", r"cannot decode video")
def _(work):
    return _video_folder(work, RANDOM)


@case("videos-truncated", r"1.mp4: (cannot decode video|truncated or damaged|the video has no decodable frames)")
def _(work):
    argv, path = _video_folder(work)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return argv, path


@case("videos-empty-file", r"cannot decode video")
def _(work):
    return _video_folder(work, b"")


@case("videos-permission-denied", r"(?i)permission denied", unreadable=True)
def _(work):
    argv, path = _video_folder(work)
    path.chmod(0)
    return argv, path


@case("videos-empty-folder", r"no videos .* and no folders of frames .* found; the directory is empty")
def _(work):
    folder = work.dir / "videos"
    folder.mkdir()
    return _doctor(folder), folder


@case("videos-folder-permission-denied", r"permission denied while reading a folder of videos", unreadable=True)
def _(work):
    argv, path = _video_folder(work)
    path.parent.chmod(0)
    return argv, path.parent


def _frame_folders(work: Work, bad: bytes | None = None) -> tuple[list[str], Path]:
    """Two videos as folders of PNG frames; ``bad`` replaces the last frame of the second one."""
    import av

    root = work.dir / "frames"
    for i, v in enumerate(_good_videos(t=9)):
        (root / f"video{i}").mkdir(parents=True)
        for t, img in enumerate(v):
            with av.open(str(root / f"video{i}" / f"{t:03d}.png"), "w", format="image2") as c:
                st = c.add_stream("png")
                st.width, st.height, st.pix_fmt = 8, 8, "rgb24"
                for p in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    c.mux(p)
    path = root / "video1" / "008.png"
    if bad is not None:
        path.write_bytes(bad)
    return _doctor(root), path


@case("frames-random-bytes", r"008.png: cannot decode image")
def _(work):
    return _frame_folders(work, RANDOM)


@case("frames-empty-file", r"008.png: cannot decode image")
def _(work):
    return _frame_folders(work, b"")


@case("frames-truncated", r"008.png: cannot decode image")
def _(work):
    argv, path = _frame_folders(work)
    path.write_bytes(path.read_bytes()[:40])
    return argv, path


@case("frames-permission-denied", r"(?i)permission denied", unreadable=True)
def _(work):
    argv, path = _frame_folders(work)
    path.chmod(0)
    return argv, path


@case("frames-mixed-sizes", r"video1: frames of different sizes \[\(8, 8, 3\), \(16, 16, 3\)\]")
def _(work):
    argv, path = _frame_folders(work)
    import av

    with av.open(str(path), "w", format="image2") as c:  # one frame of another size
        st = c.add_stream("png")
        st.width, st.height, st.pix_fmt = 16, 16, "rgb24"
        for p in st.encode(av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")):
            c.mux(p)
    return argv, path.parent


# ----------------------------------------------------------------------------------------------------------
# eval: stats files as --reference, options checked before any network is built


def _eval(work: Work, reference: Path, *extra: str) -> list[str]:
    samples = work.dir / "samples.npy"
    np.save(samples, _good_videos(4))
    store = work.dir / "results.jsonl"
    return ["eval", "--samples", str(samples), "--reference", str(reference), "--results", str(store), *extra]


def _stats(work: Work, **arrays) -> tuple[list[str], Path]:
    from vgbench.metrics.fvd import STATS_FORMAT

    path = work.dir / "real_stats.npz"
    np.savez(path, **{"format": np.array(STATS_FORMAT), **arrays})
    return _eval(work, path, "--save-stats", str(work.dir / "samples_stats.npz")), path


@case("stats-file-truncated", r"real_stats.npz: not a .npz file")
def _(work):
    argv, path = _stats(work, meta=np.array("{}"), n=np.array([2]), sum=np.zeros((1, 400)))
    path.write_bytes(path.read_bytes()[:3000])
    return argv, path


@case("stats-file-random-bytes", r"real_stats.npz: not a .npz file")
def _(work):
    argv, path = _stats(work)
    path.write_bytes(RANDOM)
    return argv, path


@case("stats-file-empty", r"real_stats.npz: not a .npz file")
def _(work):
    argv, path = _stats(work)
    path.write_bytes(b"")
    return argv, path


@case("stats-file-missing-arrays", r"a stats file without n, sum, sum_outer; write it again with --save-stats")
def _(work):
    return _stats(work, meta=np.array("{}"))


@case("stats-file-wrong-layout", r"damaged stats file: n \(1,\), sum \(1, 10\), sum_outer \(1, 10, 10\); expected")
def _(work):
    return _stats(work, meta=np.array("{}"), n=np.array([2]), sum=np.zeros((1, 10)), sum_outer=np.zeros((1, 10, 10)))


@case("stats-file-permission-denied", r"permission denied", unreadable=True)
def _(work):
    argv, path = _stats(work, meta=np.array("{}"))
    path.chmod(0)
    return argv, path


@case("eval-device-without-cuda", r"--device cuda\S*: (CUDA is not available|there are \d+ CUDA devices)")
def _(work):
    import torch

    device = "cuda" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"
    return _eval(work, work.dir / "samples.npy", "--device", device), Path(f"--device {device}")


# ----------------------------------------------------------------------------------------------------------
# check and table files


CHECKS = "checks:\n  - {metric: fvd, protocol: official, expected: 100.0, tolerance: {rel: 0.01}}\n"
RECORD = '{"metric": "fvd", "protocol": "official", "value": 100.0, "protocol_hash": "x", "dataset": "bair"}\n'


def _check(work: Work, expected: str | bytes = CHECKS, results: str | bytes | None = RECORD) -> list[str]:
    path, store = work.dir / "expected.yaml", work.dir / "results.jsonl"
    path.write_bytes(expected.encode() if isinstance(expected, str) else expected)
    if results is not None:
        store.write_bytes(results.encode() if isinstance(results, str) else results)
    reports = ["--junit", str(work.dir / "report.xml"), "--json", str(work.dir / "report.json")]
    return ["check", str(path), "--results", str(store), *reports]


# the case: malformed YAML
@case("check-file-malformed-yaml", r"expected.yaml: field '<file>': not valid YAML at line 3, column 4")
def _(work):
    return _check(work, "checks:\n  - metric: fvd\n   protocol: [official\n"), work.dir / "expected.yaml"


@case("check-file-random-bytes", r"expected.yaml: cannot be read as a check file")
def _(work):
    return _check(work, RANDOM), work.dir / "expected.yaml"


@case("check-file-empty", r"expected.yaml: field '<file>': empty file; expected a mapping with a list of 'checks'")
def _(work):
    return _check(work, ""), work.dir / "expected.yaml"


@case("check-file-wrong-layout", r"expected.yaml: field 'checks\[0\]': wrong type")
def _(work):
    return _check(work, "checks: [fvd, is]\n"), work.dir / "expected.yaml"


@case("check-file-permission-denied", r"permission denied", unreadable=True)
def _(work):
    argv = _check(work)
    (work.dir / "expected.yaml").chmod(0)
    return argv, work.dir / "expected.yaml"


# the case: a results file that does not exist was reported as "missing metric"
@case("check-results-missing", r"results.jsonl: no such results store")
def _(work):
    return _check(work, results=None), work.dir / "results.jsonl"


@case("check-results-random-bytes", r"results.jsonl: cannot be read as a results store")
def _(work):
    return _check(work, results=RANDOM), work.dir / "results.jsonl"


def _table(work: Work, results: str | bytes | None, fmt: str = "md") -> tuple[list[str], Path]:
    store = work.dir / "results.jsonl"
    if results is not None:
        store.write_bytes(results.encode() if isinstance(results, str) else results)
    return ["table", "1", "--format", fmt, "--results", str(store)], store


# the case: `table --results` with a missing file printed "no measured rows"
@case("table-results-missing", r"results.jsonl: no such results store")
def _(work):
    return _table(work, None)


@case("table-results-random-bytes", r"results.jsonl: cannot be read as a results store")
def _(work):
    return _table(work, RANDOM, "csv")


@case("table-results-truncated", r"results.jsonl:2: not a JSON record")
def _(work):
    return _table(work, RECORD + RECORD[:30], "latex")


@case("table-results-wrong-layout", r"results.jsonl:1: not a vgbench result record \(no value\)")
def _(work):
    return _table(work, '{"metric": "fvd", "protocol": "official"}\n', "html")


@case("table-results-wrong-dtype", r"results.jsonl:1: the record's value '99.5' is not a number")
def _(work):
    return _table(work, RECORD.replace("100.0", '"99.5"'))


@case("table-results-permission-denied", r"permission denied", unreadable=True)
def _(work):
    argv, path = _table(work, RECORD)
    path.chmod(0)
    return argv, path


# ----------------------------------------------------------------------------------------------------------
# vgbench compare and its features files (eval --save-features)


def _features_file(work: Work, name: str = "a_feats.npz") -> Path:
    from vgbench.metrics import featurefile
    from vgbench.metrics.uncertainty import Contributions

    rng = np.random.default_rng(0)
    trials = [{"samples": rng.normal(size=(6, 4)), "reference": rng.normal(size=(5, 4))}]
    path = work.dir / name
    featurefile.write(path, Contributions("frechet", trials), {"metric": "fvd", "protocol": "official", "value": 1.0})
    return path


@case("compare-samples-once", r"compare needs exactly two sets, A and B: --samples was given 1 time\(s\)")
def _(work):
    path = work.dir / "a.npy"
    np.save(path, np.zeros((2, 4, 8, 8, 3), np.uint8))
    return ["compare", "--metric", "fvd", "--samples", str(path), "--reference", str(path)], path


@case("compare-features-wrong-layout", r"not a vgbench features file \(vgbench-feature-stats/1; expected vgbench-f")
def _(work):
    path = work.dir / "stats.npz"
    np.savez(path, format=np.array("vgbench-feature-stats/1"), n=np.array([2]))
    return ["compare", "--features", str(path), "--features", str(path)], path


@case("compare-features-truncated", r"cannot be read as a vgbench features file")
def _(work):
    path = _features_file(work)
    path.write_bytes(path.read_bytes()[:300])
    return ["compare", "--features", str(path), "--features", str(path)], path


@case("compare-features-random-bytes", r"cannot be read as a vgbench features file")
def _(work):
    path = work.dir / "f.npz"
    path.write_bytes(RANDOM)
    return ["compare", "--features", str(path), "--features", str(path)], path


@case("compare-features-trial-sizes", r"damaged features file: samples has 6 rows but samples_trial_sizes \[4\]")
def _(work):
    path = _features_file(work)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["samples_trial_sizes"] = np.array([4])
    np.savez(path, **arrays)
    return ["compare", "--features", str(path), "--features", str(path)], path


# ----------------------------------------------------------------------------------------------------------
# The runner


@pytest.fixture(scope="module")
def bair_store_root(shared_dir, tmp_path_factory) -> Path:
    """A data root holding BAIR prepared from the shared sample (copied by each case)."""
    from vgbench import datasets

    root = tmp_path_factory.mktemp("bair_store") / "data"
    datasets.prepare("bair", root=root, src=shared_dir / "data/bair")
    return root


@pytest.fixture
def work(bair_store_root, monkeypatch) -> Work:
    """A fresh folder for one row's input, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="vgbench-bad-input-"))
    monkeypatch.setenv("VGBENCH_HOME", str(folder / "home"))
    monkeypatch.setenv("VGBENCH_OFFLINE", "1")  # no row may reach the network
    yield Work(folder, bair_store_root)
    for p in folder.rglob("*"):  # the unreadable rows leave mode-0 files behind
        p.chmod(0o755 if p.is_dir() else 0o644)
    shutil.rmtree(folder)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


# The capabilities that let root read, write and search regardless of file modes.
DAC_CAPS = "-dac_override,-dac_read_search"


@functools.cache
def file_modes_enforced_prefix() -> tuple[str, ...]:
    """argv prefix that runs a command as root with file modes enforced: uid 0 kept (so the checkout, the venv and
    the cache stay reachable wherever they are), the DAC-override capabilities dropped from the bounding and
    inheritable sets before exec. Probed once on a chmod-000 file; a clear failure if this machine cannot do it."""
    setpriv = shutil.which("setpriv")
    assert setpriv, "running as root: the permission rows need setpriv (util-linux) to drop CAP_DAC_OVERRIDE"
    prefix = (setpriv, f"--inh-caps={DAC_CAPS}", f"--bounding-set={DAC_CAPS}")
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe"
        probe.write_text("x")
        probe.chmod(0)
        res = subprocess.run([*prefix, sys.executable, "-c", f"open({str(probe)!r}).read()"], capture_output=True)
    if res.returncode == 0 or b"PermissionError" not in res.stderr:
        pytest.fail(f"root could still read a chmod-000 file after {' '.join(prefix)} (or setpriv failed: "
                    f"{res.stderr.decode(errors='replace').strip()[-300:]}); the permission rows cannot be checked")
    return prefix


def run_cli(argv: list[str], modes_enforced: bool = False) -> tuple[int, str]:
    """(exit code, stdout + stderr) of ``vgbench ARGV``: in this process, or (as root, for the permission rows) in a
    child process for which file modes apply.

    In this process an exception other than SystemExit propagates: the test then fails with it (a traceback)."""
    if modes_enforced:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        cmd = [*file_modes_enforced_prefix(), sys.executable, "-m", "vgbench", *argv]
        res = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
        return res.returncode, res.stdout.decode() + res.stderr.decode()
    from vgbench.cli import main

    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out), pytest.raises(SystemExit) as exit_info:
        main(argv)
    return int(exit_info.value.code or 0), out.getvalue()


@pytest.mark.parametrize("row", CASES, ids=[c.id for c in CASES])
def test_bad_input(row: Case, work: Work):
    argv, path = row.make(work)
    before = _snapshot(work.dir)
    code, text = run_cli(argv, modes_enforced=row.unreadable and os.geteuid() == 0)
    assert code == row.code, text
    assert "Traceback" not in text and "allow_pickle" not in text, text
    assert str(path) in text, f"the message does not name {path}:\n{text}"
    assert re.search(row.problem, text), f"expected /{row.problem}/ in:\n{text}"
    assert text.startswith("error: ") and text.count("\n") == 1, f"one line, 'error: ...':\n{text}"
    assert _snapshot(work.dir) == before, "files were written, changed or left half-written"


def test_every_row_has_a_distinct_id():
    assert len({c.id for c in CASES}) == len(CASES) >= 31
