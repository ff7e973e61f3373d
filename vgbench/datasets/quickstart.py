"""The quickstart dataset: moving digits from the MNIST subset embedded in the package (no download).

The videos come from :class:`~vgbench.datasets.moving_mnist.MovingMNIST` (the one generator of the package) on the
2,000 embedded digits: train on digits 0-1599, test on 1600-1999, so no test digit is seen in training. Stored in the
common store format (uint8 (T, 64, 64, 1) per video) so that training, ``--reference quickstart:test`` and
``vgbench data info`` read it like any prepared dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vgbench.datasets.common import Summary, store_dir
from vgbench.datasets.moving_mnist import MovingMNIST, read_idx
from vgbench.datasets.store import StoreWriter
from vgbench.errors import InputError

EMBEDDED = Path(__file__).resolve().parent / "embedded"
IMAGES = EMBEDDED / "mnist-t10k-images-first2000-idx3-ubyte.gz"
LABELS = EMBEDDED / "mnist-t10k-labels-first2000-idx1-ubyte.gz"
DIGIT_RANGES = {"train": (0, 1600), "test": (1600, 2000)}
PER_SHARD = 256
SOURCE_LAYOUT = "nothing: the videos are made from digits embedded in vgbench (no --from)"


def embedded_digits() -> tuple[np.ndarray, np.ndarray]:
    """The embedded MNIST subset: uint8 images (2000, 28, 28) and labels (2000,)."""
    return read_idx(IMAGES), read_idx(LABELS)


def generator(split: str, count: int, frames: int = 16, size: int = 64, seed: int = 0) -> MovingMNIST:
    """The moving-digit sequences of ``split`` (its own digits and a seed offset per split)."""
    if split not in DIGIT_RANGES:
        raise InputError(f"quickstart has splits {sorted(DIGIT_RANGES)}, not {split!r}")
    images, _ = embedded_digits()
    lo, hi = DIGIT_RANGES[split]
    split_seed = seed * 2 + (0 if split == "train" else 1)
    return MovingMNIST(images[lo:hi], length=count, frames=frames, size=size, seed=split_seed)


def prepare(
    card, root=None, src: Path | None = None, counts: dict[str, int] | None = None, force: bool = False
) -> Summary:
    """Generate the splits into the store (resumable per shard of 256 videos); ``counts`` overrides the card's
    (and is then what "complete" is measured against)."""
    if src is not None:
        raise InputError("quickstart makes its data from digits embedded in vgbench; it takes no --from")
    p = card.preprocess
    counts = counts or dict(card.splits)
    folder = store_dir(card.name, p["variant"], root)
    params = {"frames": p["frames"], "size": p["size"], "seed": p["seed"], "counts": counts}
    shape = (p["size"], p["size"], 1)
    digits = {"embedded": IMAGES.name, "bytes": IMAGES.stat().st_size}  # not the path: it moves with the package
    writer = StoreWriter(folder, card.name, p["variant"], params, {"digits": digits}, shape, force)
    summary = Summary(card.name, folder)
    with writer.session():
        for split, n in counts.items():
            gen = generator(split, n, p["frames"], p["size"], p["seed"])
            for shard, lo in enumerate(range(0, n, PER_SHARD)):
                if writer.done(split, shard):
                    summary.skipped_shards += 1
                    continue
                hi = min(lo + PER_SHARD, n)
                block = np.stack([gen[i] for i in range(lo, hi)])  # (n, T, 64, 64, 1)
                t = block.shape[1]
                videos = [
                    {"name": f"{split}{i:05d}", "label": None, "start": (i - lo) * t, "length": t}
                    for i in range(lo, hi)
                ]
                writer.write_shard(split, shard, block.reshape(-1, *block.shape[2:]), videos)
                summary.written_shards += 1
    summary.record(writer.finish(counts))
    return summary
