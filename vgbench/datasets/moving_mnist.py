"""Moving MNIST: the standard test file split by index, and a seeded generator from the MNIST IDX files (§4).

``mnist_test_seq.npy`` is uint8 (20, N, 64, 64), time-major; it is transposed to (N, 20, 64, 64, 1) and split by
index 70/10/20 (7,000 / 1,000 / 2,000 for the real file), as VideoGPT-Paper does. The generator
(:class:`MovingMNIST`) follows the card: 2 digits, start uniform in [0, 36]^2, direction uniform in [0, 2 pi),
speed uniform in [2, 5] px/frame, reflection at the borders, rounded positions, pixel-wise maximum; sequence i
depends on (seed, i) only, so it is deterministic, order-free and unlimited.
"""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np

from vgbench.datasets.common import Summary, fetch_sources, store_dir
from vgbench.datasets.store import StoreWriter
from vgbench.errors import InputError
from vgbench.readers import load_npy, reading

SPLIT_FRACTIONS = (("train", 0.7), ("val", 0.1), ("test", 0.2))
PER_SHARD = 1000
FRAMES = 20  # frames per sequence of the standard file (the card's preprocess.frames)
SOURCE_FILE = "mnist_test_seq.npy"
SOURCE_LAYOUT = f"the file {SOURCE_FILE} (uint8 (20, N, 64, 64), time-major), or a folder holding it"


def read_idx(path: Path) -> np.ndarray:
    """An MNIST IDX file (optionally .gz): big-endian magic 0x0000080N (N = rank), dims, then uint8 data."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with reading(path, "an MNIST IDX file", "it may be truncated: download it again"), opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise InputError(f"{path}: not an IDX file of uint8 (magic {data[:4].hex()}, expected 000008xx)")
    rank = data[3]
    if len(data) < 4 + 4 * rank:
        raise InputError(f"{path}: truncated IDX header ({len(data)} bytes for rank {rank}); download it again")
    dims = struct.unpack(f">{rank}I", data[4 : 4 + 4 * rank])
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * rank)
    if body.size != math.prod(dims):
        raise InputError(f"{path}: header says {dims} = {math.prod(dims)} values, file holds {body.size}")
    return body.reshape(dims)


def split_ranges(n: int) -> dict[str, tuple[int, int]]:
    """Index ranges of train/val/test for ``n`` sequences (70/10/20; 7000/1000/2000 for n = 10,000)."""
    out, start = {}, 0
    for i, (name, frac) in enumerate(SPLIT_FRACTIONS):
        stop = n if i == len(SPLIT_FRACTIONS) - 1 else start + int(round(n * frac))
        out[name] = (start, stop)
        start = stop
    return out


def load_sequences(path: Path, frames: int = FRAMES) -> np.ndarray:
    """The standard file as a memory map (T, N, 64, 64) uint8, its layout checked against the card's.

    Raises:
        InputError: not a readable plain .npy (truncated, empty, random bytes, objects), not uint8, or not
            (``frames``, N, 64, 64) with N > 0; the message names the file and shows the layout expected.
    """
    arr = load_npy(path, f"{SOURCE_FILE} (uint8 (T, N, 64, 64), time-major)")
    want = f"uint8 (T={frames}, N, 64, 64), time-major like {SOURCE_FILE}"
    if arr.dtype != np.uint8:
        raise InputError(f"{path}: dtype {arr.dtype}, expected {want}; convert with x.astype(np.uint8) if it is 0..255")
    if arr.ndim != 4 or arr.shape[2:] != (64, 64):
        raise InputError(f"{path}: shape {arr.shape}, expected {want}")
    if arr.shape[0] != frames:
        hint = (
            "; it looks like (N, T, 64, 64): save np.transpose(x, (1, 0, 2, 3)) to make it time-major"
            if arr.shape[1] == frames
            else ""
        )
        raise InputError(f"{path}: shape {arr.shape} has {arr.shape[0]} frames on axis 0, expected {want}{hint}")
    if arr.shape[1] == 0:
        raise InputError(f"{path}: shape {arr.shape} holds no sequences (N = 0), expected {want}")
    return arr


def _source(src: Path) -> Path:
    """The sequences file from --from: the file itself, or a folder holding it."""
    if src.is_dir():
        inside = src / SOURCE_FILE
        if not inside.is_file():
            raise InputError(f"--from {src} is a folder without {SOURCE_FILE}; moving_mnist expects {SOURCE_LAYOUT}")
        return inside
    return src


def prepare(card, root=None, src: Path | None = None, force: bool = False) -> Summary:
    """Store the standard sequences as (N, T, 64, 64, 1), split by index; resumable per 1000 sequences."""
    path = _source(Path(src)) if src else fetch_sources(card, ["sequences"], root)["sequences"]
    seq = load_sequences(path, int(card.preprocess.get("frames", FRAMES)))
    t, n = seq.shape[:2]
    folder = store_dir(card.name, "standard", root)
    ranges = split_ranges(n)
    params = {"split": {k: list(v) for k, v in ranges.items()}}
    writer = StoreWriter(folder, card.name, "standard", params, {"sequences": path}, (64, 64, 1), force)
    summary = Summary(card.name, folder)
    with writer.session():
        for split, (a, b) in ranges.items():
            for shard, lo in enumerate(range(a, b, PER_SHARD)):
                if writer.done(split, shard):
                    summary.skipped_shards += 1
                    continue
                hi = min(lo + PER_SHARD, b)
                block = np.ascontiguousarray(np.asarray(seq[:, lo:hi]).transpose(1, 0, 2, 3))  # (n, T, 64, 64)
                videos = [
                    {"name": f"seq{i:05d}", "label": None, "start": (i - lo) * t, "length": t} for i in range(lo, hi)
                ]
                writer.write_shard(split, shard, block.reshape(-1, 64, 64, 1), videos)
                summary.written_shards += 1
    summary.record(writer.finish(dict(card.splits)))
    if n != 10000:
        summary.notes.append(f"{path} holds {n} sequences, the standard file 10,000: not the standard split")
    return summary


class MovingMNIST:
    """Deterministic bouncing-digit sequences: ``gen[i]`` is uint8 (frames, size, size, 1)."""

    def __init__(
        self,
        digits: np.ndarray,
        length: int = 10000,
        frames: int = 20,
        size: int = 64,
        num_digits: int = 2,
        speed: tuple[float, float] = (2.0, 5.0),
        seed: int = 0,
    ):
        if digits.ndim != 3 or digits.dtype != np.uint8:
            raise InputError(f"digits must be uint8 (N, h, w), got {digits.dtype}{digits.shape}")
        self.digits, self.length, self.frames, self.size = digits, length, frames, size
        self.num_digits, self.speed, self.seed = num_digits, speed, seed

    def __len__(self) -> int:
        return self.length

    def trajectory(self, rng: np.random.Generator) -> np.ndarray:
        """Integer top-left positions (frames, 2) of one digit."""
        lim = self.size - self.digits.shape[1]
        pos = rng.uniform(0, lim, 2)
        theta = rng.uniform(0, 2 * np.pi)
        vel = rng.uniform(*self.speed) * np.array([np.sin(theta), np.cos(theta)])
        out = np.empty((self.frames, 2), np.int64)
        for t in range(self.frames):
            out[t] = np.rint(pos)
            pos = pos + vel
            for ax in range(2):  # reflect at the borders
                if pos[ax] < 0:
                    pos[ax], vel[ax] = -pos[ax], -vel[ax]
                elif pos[ax] > lim:
                    pos[ax], vel[ax] = 2 * lim - pos[ax], -vel[ax]
        return out

    def __getitem__(self, i: int) -> np.ndarray:
        if not 0 <= i < self.length:
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, i])
        h, w = self.digits.shape[1:]
        out = np.zeros((self.frames, self.size, self.size, 1), np.uint8)
        for _ in range(self.num_digits):
            img = self.digits[rng.integers(len(self.digits))]
            for t, (y, x) in enumerate(self.trajectory(rng)):
                np.maximum(out[t, y : y + h, x : x + w, 0], img, out=out[t, y : y + h, x : x + w, 0])
        return out
