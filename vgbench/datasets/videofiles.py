"""Video files (UCF-101 AVIs, TGIF GIFs) -> store shards, decoded in parallel worker processes.

Each shard is one task: a worker decodes its videos with the package's one decoder
(:func:`vgbench.video.decode_video`, the same pixels ``vgbench eval`` reads), resizes them exactly (integer
arithmetic: the bytes do not depend on the number of workers or threads), writes the shard itself (atomically)
and returns nothing, so the parent never holds frames. A video that fails to decode, is truncated (fewer frames
than its header declares), or is shorter than ``min_frames`` is recorded with its reason in its shard's .json
(``vgbench data info`` counts them); it is never dropped silently. Workers run in a
:class:`vgbench.workers.WorkerPool`: Ctrl-C or SIGTERM stops them all, finished shards are kept, partial files
removed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vgbench.datasets.common import Summary, resize_short_side_band, resize_short_side_center_crop
from vgbench.datasets.store import StoreWriter, write_shard
from vgbench.video import VideoDecodeError, decode_video
from vgbench.workers import WorkerPool

log = logging.getLogger(__name__)


@dataclass
class Item:
    """One video to convert."""

    name: str  # stable name recorded in the store (relative path)
    path: Path | None  # None: listed but missing from the source
    label: int | None = None


def _failure(item: Item, kind: str, reason: str) -> dict:
    return {"name": item.name, "kind": kind, "reason": reason}


def convert_shard(args) -> None:
    """Decode, resize and write one shard (runs in a worker process): centre-cropped size x size frames, or with
    ``long_side`` a band of size x long_side frames and each video's picture and centre windows."""
    folder, split, shard, items, size, min_frames, long_side = args
    frames, videos, failures, pos = [], [], [], 0
    for it in items:
        if it.path is None:
            failures.append(_failure(it, "missing", "listed in the split file but missing from the source"))
            continue
        try:
            x = decode_video(it.path)
        except VideoDecodeError as exc:  # every decoder failure, truncation included, is reported per video
            kind = "truncated" if 0 < exc.decoded < exc.declared else "decode"
            reason = str(exc).removeprefix(f"{it.path}: ")  # the record names the video already
            failures.append({**_failure(it, kind, reason), "frames_decoded": exc.decoded})
            continue
        if len(x) < min_frames:
            failures.append(_failure(it, "too_short", f"only {len(x)} frames (< clip length {min_frames}); skipped"))
            continue
        entry = {"name": it.name, "label": it.label, "start": pos, "length": len(x)}
        if long_side is None:
            x = resize_short_side_center_crop(x, size)
        else:
            x, band = resize_short_side_band(x, size, long_side)
            entry.update(picture=list(band.picture), center=list(band.center))
        frames.append(x)
        videos.append(entry)
        pos += len(x)
    shape = [size, long_side or size, 3]
    arr = np.concatenate(frames) if frames else np.zeros((0, *shape), np.uint8)
    write_shard(Path(folder), split, shard, arr, videos, failures=failures, frame_shape=shape)


def convert(
    writer: StoreWriter,
    splits: dict[str, list[Item]],
    size: int,
    workers: int,
    summary: Summary,
    per_shard: int = 16,
    min_frames: int = 1,
    long_side: int | None = None,
) -> None:
    """Convert every split in shards of ``per_shard`` videos with ``workers`` processes; resumable per shard.

    ``long_side``: store bands of size x long_side frames (the writer's ``crop_size`` is size x size) instead of
    centre crops."""
    tasks = []
    for split, items in splits.items():
        for shard, i in enumerate(range(0, len(items), per_shard)):
            if writer.done(split, shard):
                summary.skipped_shards += 1
                continue
            tasks.append((str(writer.folder), split, shard, items[i : i + per_shard], size, min_frames, long_side))
    if not tasks:
        return
    from tqdm import tqdm

    with (
        writer.session(),
        tqdm(total=len(tasks), desc=f"{summary.dataset} shards", unit="shard", leave=False) as bar,
        WorkerPool(convert_shard, workers) as pool,
    ):
        for _ in pool.run(tasks):
            summary.written_shards += 1
            bar.update(1)
