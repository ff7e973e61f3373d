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
# The matrix: formats (how to write a valid file, or one with given content, and the command that reads it)
# crossed with corruptions (how to damage it) and, per row, what the one-line error must say.

VALID = object()  # the content a format's writer uses for a valid file


def _put(path: Path, content: bytes | str | np.ndarray) -> None:
    if isinstance(content, np.ndarray):
        np.save(path, content, allow_pickle=content.dtype.hasobject)
    else:
        path.write_bytes(content.encode() if isinstance(content, str) else content)


@dataclass(frozen=True)
class Format:
    """``write(work, content, **kw) -> (argv, path)``: ``content`` VALID writes a valid file; ``keep(size)`` is how
    many bytes a truncated copy keeps."""

    write: Callable[..., tuple[list[str], Path]]
    keep: Callable[[int], int] = lambda size: size // 2


def _truncate(path: Path, fmt: Format) -> None:
    path.write_bytes(path.read_bytes()[: fmt.keep(path.stat().st_size)])


DAMAGES: dict[str, Callable[[Path, Format], None]] = {  # applied to the path a valid file's writer returns
    "truncated": _truncate,
    "random-bytes": lambda path, fmt: path.write_bytes(RANDOM),
    "empty": lambda path, fmt: path.write_bytes(b""),
    "empty-file": lambda path, fmt: path.write_bytes(b""),
    "permission-denied": lambda path, fmt: path.chmod(0),
}


@dataclass(frozen=True)
class Row:
    """One cell: a damage from DAMAGES applied to a valid file, or (``content`` given) a file written with that
    content (a callable is called first). Exceptions per row: ``kw`` for the writer, ``names`` for the path the
    message must name (default: the file)."""

    problem: str
    content: object = VALID
    kw: dict | None = None
    names: Callable[[Path], Path] | None = None


def _matrix_case(id: str, fmt: Format, corruption: str, row: Row) -> Case:
    def make(work: Work) -> tuple[list[str], Path]:
        content = row.content() if callable(row.content) else row.content
        argv, path = fmt.write(work, content, **(row.kw or {}))
        if row.content is VALID:
            DAMAGES[corruption](path, fmt)
        return argv, row.names(path) if row.names else path

    return Case(id, make, row.problem, unreadable=row.content is VALID and corruption == "permission-denied")


# Prepared stores, read by `vgbench data info` (which checks every shard header against its .json)

SHARD = "bair/prepared/image_aux1/test/shard-00000"  # (30, 64, 64, 3) uint8: one video of 30 frames


def _store_file(rel: str) -> Callable[..., tuple[list[str], Path]]:
    def write(work: Work, content) -> tuple[list[str], Path]:
        root = work.store()
        path = root / rel
        if content is not VALID:
            _put(path, content)
        return ["data", "info", "bair", "--root", str(root)], path

    return write


# Dataset sources, read by `vgbench data prepare NAME --from ...` (refused before anything is written)


def _prepare(work: Work, name: str, src: Path) -> list[str]:
    return ["data", "prepare", name, "--from", str(src), "--root", str(work.dir / "data")]


def _mnist(work: Work, content) -> tuple[list[str], Path]:
    path = work.dir / "mnist_test_seq.npy"
    _put(path, np.zeros((20, 4, 64, 64), np.uint8) if content is VALID else content)
    return _prepare(work, "moving_mnist", path), path


def _real_tfrecord() -> bytes:
    shared = Path(os.environ.get("VGBENCH_SHARED_DIR") or REPO.parent / "shared")
    return next((shared / "data/bair").rglob("test/*.tfrecords")).read_bytes()


def _tfrecords(work: Work, content) -> tuple[list[str], Path]:
    path = work.dir / "softmotion30_44k/test/traj_0_to_255.tfrecords"
    path.parent.mkdir(parents=True)
    path.write_bytes(_real_tfrecord() if content is VALID else content)
    return _prepare(work, "bair", work.dir / "softmotion30_44k"), path


# Sample sets, read by `vgbench doctor` (the same readers and checks as `vgbench eval --samples/--reference`)


def _good_videos(n: int = 2, t: int = 9) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (n, t, 8, 8, 3), dtype=np.uint8)


def _doctor(path: Path, *extra: str) -> list[str]:
    return ["doctor", str(path), *extra]


def _npy(work: Work, content) -> tuple[list[str], Path]:
    path = work.dir / "samples.npy"
    _put(path, _good_videos() if content is VALID else content)
    return _doctor(path), path


def _npz(work: Work, content) -> tuple[list[str], Path]:
    path = work.dir / "samples.npz"
    content = _good_videos() if content is VALID else content
    if isinstance(content, np.ndarray):
        np.savez(path, videos=content, allow_pickle=content.dtype.hasobject)
    else:
        path.write_bytes(content)
    return _doctor(path), path


def _h5(work: Work, content) -> tuple[list[str], Path]:
    import h5py

    path = work.dir / "samples.h5"
    content = _good_videos() if content is VALID else content
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        with h5py.File(path, "w") as f:
            f["videos"] = content
    return _doctor(path), path


def _h5_strings() -> np.ndarray:
    import h5py

    return np.array([b"ab", b"cd"], dtype=h5py.string_dtype())


def _video_folder(work: Work, content=VALID) -> tuple[list[str], Path]:
    """A folder of two MP4 videos; ``content`` (bytes) replaces the second one's."""
    from .conftest import write_video

    folder = work.dir / "videos"
    folder.mkdir()
    for i, v in enumerate(_good_videos(t=9)):
        write_video(folder / f"{i}.mp4", np.kron(v, np.ones((1, 2, 2, 1), np.uint8)))  # 16x16: even sizes for x264
    path = folder / "1.mp4"
    if content is not VALID:
        path.write_bytes(content)
    return _doctor(folder), path


def _png(path: Path, img: np.ndarray) -> None:
    import av

    with av.open(str(path), "w", format="image2") as c:
        st = c.add_stream("png")
        st.width, st.height, st.pix_fmt = img.shape[1], img.shape[0], "rgb24"
        for p in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            c.mux(p)


def _frame_folders(work: Work, content=VALID) -> tuple[list[str], Path]:
    """Two videos as folders of PNG frames; ``content`` (bytes) replaces the last frame of the second one."""
    root = work.dir / "frames"
    for i, v in enumerate(_good_videos(t=9)):
        (root / f"video{i}").mkdir(parents=True)
        for t, img in enumerate(v):
            _png(root / f"video{i}" / f"{t:03d}.png", img)
    path = root / "video1" / "008.png"
    if content is not VALID:
        path.write_bytes(content)
    return _doctor(root), path


# eval: stats files as --reference, options checked before any network is built


def _eval(work: Work, reference: Path, *extra: str) -> list[str]:
    samples = work.dir / "samples.npy"
    np.save(samples, _good_videos(4))
    store = work.dir / "results.jsonl"
    return ["eval", "--samples", str(samples), "--reference", str(reference), "--results", str(store), *extra]


def _stats(work: Work, content) -> tuple[list[str], Path]:
    """``content``: the arrays beside the format tag (VALID: meta, n and a 400-wide sum)."""
    from vgbench.metrics.fvd import STATS_FORMAT

    if content is VALID:
        content = {"meta": np.array("{}"), "n": np.array([2]), "sum": np.zeros((1, 400))}
    path = work.dir / "real_stats.npz"
    np.savez(path, **{"format": np.array(STATS_FORMAT), **content})
    return _eval(work, path, "--save-stats", str(work.dir / "samples_stats.npz")), path


# check and table files

CHECKS = "checks:\n  - {metric: fvd, protocol: official, expected: 100.0, tolerance: {rel: 0.01}}\n"
RECORD = '{"metric": "fvd", "protocol": "official", "value": 100.0, "protocol_hash": "x", "dataset": "bair"}\n'


def _check(work: Work, expected: str | bytes = CHECKS, results: str | bytes | None = RECORD) -> list[str]:
    path, store = work.dir / "expected.yaml", work.dir / "results.jsonl"
    _put(path, expected)
    if results is not None:
        _put(store, results)
    reports = ["--junit", str(work.dir / "report.xml"), "--json", str(work.dir / "report.json")]
    return ["check", str(path), "--results", str(store), *reports]


def _check_file(work: Work, content) -> tuple[list[str], Path]:
    return _check(work, CHECKS if content is VALID else content), work.dir / "expected.yaml"


def _check_results(work: Work, content) -> tuple[list[str], Path]:
    return _check(work, results=RECORD if content is VALID else content), work.dir / "results.jsonl"


def _table(work: Work, content, fmt: str = "md") -> tuple[list[str], Path]:
    """``content`` None: no results file at all."""
    store = work.dir / "results.jsonl"
    if content is not None:
        _put(store, RECORD if content is VALID else content)
    return ["table", "1", "--format", fmt, "--results", str(store)], store


# vgbench compare and its features files (eval --save-features)


def _features_file(work: Work, name: str = "a_feats.npz") -> Path:
    from vgbench.metrics import featurefile
    from vgbench.metrics.uncertainty import Contributions

    rng = np.random.default_rng(0)
    trials = [{"samples": rng.normal(size=(6, 4)), "reference": rng.normal(size=(5, 4))}]
    path = work.dir / name
    featurefile.write(path, Contributions("frechet", trials), {"metric": "fvd", "protocol": "official", "value": 1.0})
    return path


def _features(work: Work, content, name: str = "a_feats.npz") -> tuple[list[str], Path]:
    assert content is VALID, "features rows damage a valid file"
    path = _features_file(work, name)
    return ["compare", "--features", str(path), "--features", str(path)], path


FORMATS: dict[str, Format] = {
    "store-manifest": Format(_store_file("bair/prepared/image_aux1/manifest.json"), keep=lambda size: 100),
    "store-shard": Format(_store_file(f"{SHARD}.npy"), keep=lambda size: 100_000),
    "store-shard-index": Format(_store_file(f"{SHARD}.json")),
    "moving_mnist": Format(_mnist, keep=lambda size: 50_000),
    "bair": Format(_tfrecords, keep=lambda size: 20_000),
    "samples-npy": Format(_npy, keep=lambda size: 1000),
    "samples-npz": Format(_npz, keep=lambda size: 2000),
    "samples-h5": Format(_h5, keep=lambda size: 1500),
    "videos": Format(_video_folder),  # a truncated copy keeps half the file
    "frames": Format(_frame_folders, keep=lambda size: 40),
    "stats-file": Format(_stats, keep=lambda size: 3000),
    "check-file": Format(_check_file),
    "check-results": Format(_check_results),
    "table-results": Format(_table),
    "compare-features": Format(_features, keep=lambda size: 300),
}

DENIED = r"permission denied"
OBJECTS = r"holds Python objects \(dtype object\)"

# format -> corruption (a DAMAGES key, or a row's own name when it gives content) -> the row
MATRIX: dict[str, dict[str, str | Row]] = {
    "store-manifest": {
        "truncated": r"cannot be read as a store manifest .*delete .* and run `vgbench data prepare bair`",
        "random-bytes": r"cannot be read as a store manifest",
        "empty": r"empty file; expected a store manifest",
    },
    "store-shard": {
        "truncated": r"truncated: its header declares uint8\(30, 64, 64, 3\) = 368640 bytes",
        "random-bytes": r"not a .npy file",
        "empty": r"empty file \(0 bytes\)",
        "permission-denied": DENIED,
        "wrong-dtype": Row(r"holds float32\(30, 64, 64, 3\), but its .json records uint8\(30, 64, 64, 3\)",
                           content=lambda: np.zeros((30, 64, 64, 3), np.float32)),
        "wrong-layout": Row(r"holds uint8\(30, 3, 64, 64\), but its .json records uint8\(30, 64, 64, 3\)",
                            content=lambda: np.zeros((30, 3, 64, 64), np.uint8)),
        "zero-size": Row(r"holds uint8\(0, 64, 64, 3\), but its .json records uint8\(30, 64, 64, 3\)",
                         content=lambda: np.zeros((0, 64, 64, 3), np.uint8)),
        "object-dtype": Row(OBJECTS, content=lambda: np.array([{"a": 1}] * 30, dtype=object)),
    },
    "store-shard-index": {"random-bytes": r"cannot be read as a shard index"},
    "moving_mnist": {
        "truncated": r"truncated: its header declares uint8\(20, 4, 64, 64\)",
        "random-bytes": r"not a .npy file",
        "empty": r"empty file \(0 bytes\); expected mnist_test_seq.npy",
        "permission-denied": DENIED,
        "wrong-dtype": Row(r"dtype float32, expected uint8 \(T=20, N, 64, 64\)",
                           content=lambda: np.zeros((20, 4, 64, 64), np.float32)),
        # the case: (100, 20, 64, 64) was read as 20 videos of 100 frames
        "wrong-layout": Row(r"shape \(100, 20, 64, 64\) has 100 frames on axis 0.*np.transpose\(x, \(1, 0, 2, 3\)\)",
                            content=lambda: np.zeros((100, 20, 64, 64), np.uint8)),
        "zero-size": Row(r"shape \(20, 0, 64, 64\) holds no sequences",
                         content=lambda: np.zeros((20, 0, 64, 64), np.uint8)),
        "object-dtype": Row(r"holds Python objects", content=lambda: np.array([None] * 20, dtype=object)),
    },
    "bair": {
        "truncated": r"truncated record at byte 0 \(\d+ payload bytes declared\)",
        "random-bytes": r"not a complete TFRecord file: length CRC mismatch at byte 0. bair expects",
        # exception: the message is about the input folder, not one file
        "empty": Row(r"every .tfrecords file in it is empty", names=lambda path: path.parents[1]),
        "permission-denied": DENIED,
    },
    # the cases: a truncated .npy, random bytes, an object-dtype array and a zero-frame array
    "samples-npy": {
        "truncated": r"truncated: its header declares uint8\(2, 9, 8, 8, 3\) = 3456 bytes",
        "random-bytes": r"not a .npy file .*expected a .npy array of videos",
        "empty": r"empty file \(0 bytes\); expected a .npy array of videos",
        "permission-denied": DENIED,
        "object-dtype": Row(OBJECTS, content=lambda: np.array([{"video": 1}] * 2, dtype=object)),
        "wrong-dtype": Row(r"unsupported dtype complex64; use uint8 or float",
                           content=lambda: np.zeros((2, 9, 8, 8, 3), np.complex64)),
        "wrong-layout": Row(r"expected 3 RGB channels in the last axis, got shape \(2, 9, 3, 8, 8\)",
                            content=lambda: np.zeros((2, 9, 3, 8, 8), np.uint8)),
        "zero-frames": Row(r"shape \(2, 0, 8, 8, 3\) holds 2 videos of no frames or pixels",
                           content=lambda: np.zeros((2, 0, 8, 8, 3), np.uint8)),
        "zero-videos": Row(r"the sample set is empty", content=lambda: np.zeros((0, 9, 8, 8, 3), np.uint8)),
    },
    "samples-npz": {
        "truncated": r"not a .npz file .*damaged, truncated or another format",
        "random-bytes": r"not a .npz file \(File is not a zip file",
        "empty": r"not a .npz file",
        "permission-denied": DENIED,
        "object-dtype": Row(r"samples.npz:videos: " + OBJECTS,
                            content=lambda: np.array([{"video": 1}] * 2, dtype=object)),
        "wrong-layout": Row(r"expected an array of rank 5 \(N, T, H, W, C\), got shape \(9, 8, 8, 3\)",
                            content=lambda: _good_videos()[0]),
        "zero-size": Row(r"the sample set is empty", content=lambda: np.zeros((0, 9, 8, 8, 3), np.uint8)),
    },
    "samples-h5": {
        "truncated": r"cannot be read as an HDF5 file of videos",
        "random-bytes": r"cannot be read as an HDF5 file of videos .*file signature not found",
        "empty": r"cannot be read as an HDF5 file of videos",
        "permission-denied": DENIED,
        "wrong-dtype": Row(r"expected an array of rank 5 .*got shape \(2,\)", content=_h5_strings),
        "wrong-layout": Row(r"expected 3 RGB channels in the last axis, got shape \(2, 3, 9, 8, 8\)",
                            content=lambda: np.zeros((2, 3, 9, 8, 8), np.uint8)),
        "zero-frames": Row(r"holds 2 videos of no frames or pixels",
                           content=lambda: np.zeros((2, 0, 8, 8, 3), np.uint8)),
    },
    "videos": {
        "truncated": r"1.mp4: (cannot decode video|truncated or damaged|the video has no decodable frames)",
        "random-bytes": r"cannot decode video",
        "empty-file": r"cannot decode video",
        "permission-denied": r"(?i)permission denied",
    },
    "frames": {
        "truncated": r"008.png: cannot decode image",
        "random-bytes": r"008.png: cannot decode image",
        "empty-file": r"008.png: cannot decode image",
        "permission-denied": r"(?i)permission denied",
    },
    "stats-file": {
        "truncated": r"real_stats.npz: not a .npz file",
        "random-bytes": r"real_stats.npz: not a .npz file",
        "empty": r"real_stats.npz: not a .npz file",
        "permission-denied": DENIED,
        "missing-arrays": Row(r"a stats file without n, sum, sum_outer; write it again with --save-stats",
                              content=lambda: {"meta": np.array("{}")}),
        "wrong-layout": Row(r"damaged stats file: n \(1,\), sum \(1, 10\), sum_outer \(1, 10, 10\); expected",
                            content=lambda: {"meta": np.array("{}"), "n": np.array([2]), "sum": np.zeros((1, 10)),
                                             "sum_outer": np.zeros((1, 10, 10))}),
    },
    "check-file": {
        "random-bytes": r"expected.yaml: cannot be read as a check file",
        "empty": r"expected.yaml: field '<file>': empty file; expected a mapping with a list of 'checks'",
        "permission-denied": DENIED,
        # the case: malformed YAML
        "malformed-yaml": Row(r"expected.yaml: field '<file>': not valid YAML at line 3, column 4",
                              content="checks:\n  - metric: fvd\n   protocol: [official\n"),
        "wrong-layout": Row(r"expected.yaml: field 'checks\[0\]': wrong type", content="checks: [fvd, is]\n"),
    },
    "check-results": {
        # the case: a results file that does not exist was reported as "missing metric"
        "missing": Row(r"results.jsonl: no such results store", content=None),
        "random-bytes": r"results.jsonl: cannot be read as a results store",
    },
    "table-results": {
        # the case: `table --results` with a missing file printed "no measured rows"
        "missing": Row(r"results.jsonl: no such results store", content=None),
        "random-bytes": Row(r"results.jsonl: cannot be read as a results store", kw={"fmt": "csv"}),
        # exception: a JSONL store is truncated by content (its second record cut), not by bytes of a valid file
        "truncated": Row(r"results.jsonl:2: not a JSON record", content=RECORD + RECORD[:30], kw={"fmt": "latex"}),
        "wrong-layout": Row(r"results.jsonl:1: not a vgbench result record \(no value\)",
                            content='{"metric": "fvd", "protocol": "official"}\n', kw={"fmt": "html"}),
        "wrong-dtype": Row(r"results.jsonl:1: the record's value '99.5' is not a number",
                           content=RECORD.replace("100.0", '"99.5"')),
        "permission-denied": DENIED,
    },
    "compare-features": {
        "truncated": r"cannot be read as a vgbench features file",
        "random-bytes": Row(r"not a .npz archive \(4096 bytes; damaged, truncated or another format\)",
                            kw={"name": "f.npz"}),
    },
}

for _fmt, _rows in MATRIX.items():
    for _corruption, _row in _rows.items():
        _row = _row if isinstance(_row, Row) else Row(_row)
        CASES.append(_matrix_case(f"{_fmt}-{_corruption}", FORMATS[_fmt], _corruption, _row))


# Rows outside the matrix: one of a kind


# the case: a folder ended in IsADirectoryError
@case("moving_mnist-folder-without-the-file", r"is a folder without mnist_test_seq.npy; moving_mnist expects the file")
def _(work):
    folder = work.dir / "downloads"
    folder.mkdir()
    return _prepare(work, "moving_mnist", folder), folder


def _random_source(work, name: str, dataset: str):
    """``data prepare DATASET --from NAME`` where NAME holds random bytes."""
    path = work.dir / name
    path.write_bytes(RANDOM)
    return _prepare(work, dataset, path), path


for _id, _name, _dataset, _problem in [
    ("bair-tar-random-bytes", "bair_robot_pushing_dataset_v0.tar", "bair", r"not a readable tar archive"),
    ("ucf101-random-bytes-zip", "UCF101_videos.zip", "ucf101", r"not a complete zip archive"),
    ("tgif-file-instead-of-folder", "gifs.zip", "tgif",
     r"is not a folder; tgif expects a folder holding \{train,val,test\}"),
]:  # fmt: skip
    case(_id, _problem)(functools.partial(_random_source, name=_name, dataset=_dataset))


@case("ucf101-wrong-kind", r"unsupported archive type '.npy'; ucf101 expects UCF101.rar or UCF101_videos.zip")
def _(work):
    path = work.dir / "videos.npy"
    np.save(path, np.zeros((2, 2), np.uint8))
    return _prepare(work, "ucf101", path), path


@case("tgif-folder-without-gifs", r"no GIFs of the TGIF splits found; tgif expects a folder holding")
def _(work):
    folder = work.dir / "gifs"
    (folder / "test").mkdir(parents=True)
    (folder / "test/readme.txt").write_text("no gifs here")
    return _prepare(work, "tgif", folder), folder


@case("quickstart-with-from", r"quickstart makes its data from digits embedded in vgbench; it takes no --from")
def _(work):
    return _prepare(work, "quickstart", work.dir), Path("quickstart")


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


@case("frames-mixed-sizes", r"video1: frames of different sizes \[\(8, 8, 3\), \(16, 16, 3\)\]")
def _(work):
    argv, path = _frame_folders(work)
    _png(path, np.zeros((16, 16, 3), np.uint8))  # one frame of another size
    return argv, path.parent


@case("eval-device-without-cuda", r"--device cuda\S*: (CUDA is not available|there are \d+ CUDA devices)")
def _(work):
    import torch

    device = "cuda" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"
    return _eval(work, work.dir / "samples.npy", "--device", device), Path(f"--device {device}")


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


@case("compare-features-trial-sizes", r"damaged features file: samples has 6 rows but samples_trial_sizes \[4\]")
def _(work):
    path = _features_file(work)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["samples_trial_sizes"] = np.array([4])
    np.savez(path, **arrays)
    return ["compare", "--features", str(path), "--features", str(path)], path


# Prior checkpoints, read by `vgbench sample`: torch reads a non-zip file as a legacy pickle, and its own error
# advises weights_only=False; the message names the file as damaged or foreign instead.
@case("sample-checkpoint-random-bytes", r"not a readable checkpoint \(4096 bytes; torch cannot open it")
def _(work):
    path = work.dir / "prior.pt"
    path.write_bytes(RANDOM)
    return ["sample", str(path), "--n", "2", "--out", str(work.dir / "out")], path


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
    assert "Traceback" not in text and "allow_pickle" not in text and "weights_only" not in text, text
    assert str(path) in text, f"the message does not name {path}:\n{text}"
    assert re.search(row.problem, text), f"expected /{row.problem}/ in:\n{text}"
    assert text.startswith("error: ") and text.count("\n") == 1, f"one line, 'error: ...':\n{text}"
    assert _snapshot(work.dir) == before, "files were written, changed or left half-written"


def test_every_row_has_a_distinct_id():
    assert len({c.id for c in CASES}) == len(CASES) >= 31
