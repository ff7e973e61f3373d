"""The bad-input matrix: every reader and command, fed broken or mistaken files, through the real CLI.

For each row it asserts the exit code, a message that names the file and the problem, no traceback, no
library's unsafe advice (numpy's allow_pickle), and that nothing was written or left half-written (the files
under the case's folder are the same before and after).

Adding rows: write a function ``make(work: Work) -> (argv, path)`` that builds the bad input under ``work.dir``
and returns the CLI arguments and the path the message must name; register it with ``@case(id, problem)``
where ``problem`` is a regular expression the message must match, above the runner section (the parametrised
test reads the list when this module is imported). ``unreadable=True`` marks a row whose input
is made unreadable (chmod 000): as root, which ignores file modes, that row runs the CLI as user nobody.
"""

from __future__ import annotations

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

NOBODY = 65534
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
    """A world-readable folder (user nobody must reach it for the permission rows), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="vgbench-bad-input-"))
    folder.chmod(0o755)
    monkeypatch.setenv("VGBENCH_HOME", str(folder / "home"))
    monkeypatch.setenv("VGBENCH_OFFLINE", "1")  # no row may reach the network
    yield Work(folder, bair_store_root)
    for p in folder.rglob("*"):  # the unreadable rows leave mode-0 files behind
        p.chmod(0o755 if p.is_dir() else 0o644)
    shutil.rmtree(folder)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(argv: list[str], as_nobody: bool = False) -> tuple[int, str]:
    """(exit code, stdout + stderr) of ``vgbench ARGV``: in this process, or as user nobody in a child process.

    In this process an exception other than SystemExit propagates: the test then fails with it (a traceback)."""
    if as_nobody:
        # setpriv (util-linux) drops root's uid, groups and capabilities at exec; Python's own setuid in a
        # preexec_fn would lose the right to exec an interpreter that lives under /root.
        setpriv = shutil.which("setpriv")
        assert setpriv, "running as root: the permission rows need setpriv (util-linux) to run as user nobody"
        drop = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        res = subprocess.run([*drop, sys.executable, "-m", "vgbench", *argv], env=env, capture_output=True, timeout=120)
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
    code, text = run_cli(argv, as_nobody=row.unreadable and os.geteuid() == 0)
    assert code == row.code, text
    assert "Traceback" not in text and "allow_pickle" not in text, text
    assert str(path) in text, f"the message does not name {path}:\n{text}"
    assert re.search(row.problem, text), f"expected /{row.problem}/ in:\n{text}"
    assert text.startswith("error: ") and text.count("\n") == 1, f"one line, 'error: ...':\n{text}"
    assert _snapshot(work.dir) == before, "files were written, changed or left half-written"


def test_every_row_has_a_distinct_id():
    assert len({c.id for c in CASES}) == len(CASES) >= 31
