"""Video files (UCF-101 AVIs, TGIF GIFs) -> store shards, decoded with PyAV in parallel worker processes.

Each shard is one task: a worker decodes its videos, resizes them (shorter side to R, centre crop), writes the
shard itself (atomically) and returns nothing, so the parent never holds frames. A video that fails to
decode, or is shorter than ``min_frames``, is recorded with its reason in its shard's .json (``vgbench data info``
counts them); it is never dropped silently.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vgbench.datasets.common import Summary, resize_short_side_center_crop
from vgbench.datasets.store import StoreWriter, write_shard

log = logging.getLogger(__name__)


@dataclass
class Item:
    """One video to convert."""

    name: str  # stable name recorded in the store (relative path)
    path: Path | None  # None: listed but missing from the source
    label: int | None = None


def decode_rgb(path: Path) -> np.ndarray:
    """All frames as uint8 (T, H, W, 3) RGB. GIFs: FFmpeg composes frames (disposal, transparency index) into RGBA;
    pixels still transparent are composited over black."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        if path.suffix.lower() == ".gif":
            frames = []
            for f in container.decode(video=0):
                rgba = f.to_ndarray(format="rgba")
                alpha = rgba[..., 3:4].astype(np.uint16)
                frames.append(((rgba[..., :3].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8))
        else:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if not frames:
        raise ValueError("no decodable frames")
    return np.stack(frames)


def _convert_shard(args) -> None:
    folder, split, shard, items, size, min_frames = args
    frames, videos, failures, pos = [], [], [], 0
    for it in items:
        if it.path is None:
            failures.append({"name": it.name, "reason": "listed in the split file but missing from the source"})
            continue
        try:
            x = decode_rgb(it.path)
        except Exception as exc:  # any decoder failure is reported per video
            failures.append({"name": it.name, "reason": f"cannot decode: {type(exc).__name__}: {exc}"})
            continue
        if len(x) < min_frames:
            failures.append({"name": it.name, "reason": f"only {len(x)} frames (< clip length {min_frames}); skipped"})
            continue
        x = resize_short_side_center_crop(x, size)
        frames.append(x)
        videos.append({"name": it.name, "label": it.label, "start": pos, "length": len(x)})
        pos += len(x)
    arr = np.concatenate(frames) if frames else np.zeros((0, size, size, 3), np.uint8)
    write_shard(Path(folder), split, shard, arr, videos, failures=failures)


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # one worker process per core; never set in the parent


def convert(
    writer: StoreWriter,
    splits: dict[str, list[Item]],
    size: int,
    workers: int,
    summary: Summary,
    per_shard: int = 16,
    min_frames: int = 1,
) -> None:
    """Convert every split in shards of ``per_shard`` videos with ``workers`` processes; resumable per shard."""
    tasks = []
    for split, items in splits.items():
        for shard, i in enumerate(range(0, len(items), per_shard)):
            if writer.done(split, shard):
                summary.skipped_shards += 1
                continue
            tasks.append((str(writer.folder), split, shard, items[i : i + per_shard], size, min_frames))
    if not tasks:
        return
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc=f"{summary.dataset} shards", unit="shard", leave=False)
    if workers <= 1:
        results = map(_convert_shard, tasks)
        pool = None
    else:
        pool = mp.get_context("spawn").Pool(workers, initializer=_one_thread)
        results = pool.imap_unordered(_convert_shard, tasks)
    try:
        for _ in results:
            summary.written_shards += 1
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
