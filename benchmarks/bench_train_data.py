"""Training data: the measured NMSE variance of a split and the augmented UCF-101 loader.

- ``pixel_histogram``: values/s of the store's streamed histogram (uint16-pair counting) against numpy's bincount
  of the same bytes held in memory, and the process's resident memory before, during (peak) and after;
- ``ClipDataset``: clips/s of UCF-101-shaped training clips (16x64x64 from a 64x86 band, float CTHW) with the
  centre crop, and with VideoGPT-Paper's random crop + flip, single process.

The store is synthetic (random bytes in the UCF-101 layout: 64 videos of 120 frames, 64x86x3, shards of 16), so
the figures are about the code, not the disk. Prints a table and one JSON line. Run:
python benchmarks/bench_train_data.py (under a minute).
"""

from __future__ import annotations

import json
import resource
import tempfile
from pathlib import Path

import numpy as np
from timing import best_seconds

VIDEOS, FRAMES, H, W, R = 64, 120, 64, 86, 64


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _make_store(folder: Path):
    from vgbench.datasets.store import Store, StoreWriter

    writer = StoreWriter(folder, "ucf101", "bench", {}, {"src": {"name": "synthetic"}}, (H, W, 3), crop_size=(R, R))
    rng = np.random.default_rng(0)
    for shard in range(VIDEOS // 16):  # one shard in memory at a time
        frames = rng.integers(0, 256, (16 * FRAMES, H, W, 3), dtype=np.uint8)
        videos = [
            {"name": f"v{shard}_{i}", "label": 0, "start": i * FRAMES, "length": FRAMES, "picture": [0, 0, H, W],
             "center": [0, (W - R) // 2]}
            for i in range(16)
        ]  # fmt: skip
        writer.write_shard("train", shard, frames, videos)
    return Store(folder)


def main() -> None:
    import torch

    from vgbench.datasets.loader import ClipDataset
    from vgbench.metrics.nmse import variance_from_histogram

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        store = _make_store(Path(tmp) / "store")
        values = VIDEOS * FRAMES * R * R * 3
        rss_before = _rss_mb()
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t_hist = best_seconds(lambda: store.pixel_histogram("train"))
        rss_after = _rss_mb()
        peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        counts = store.pixel_histogram("train")
        # baseline: numpy's bincount of the same centre windows, already in memory
        centre = np.concatenate([store.frames("train", i, box=(0, (W - R) // 2, R, R)) for i in range(VIDEOS)])
        t_np = best_seconds(lambda c=centre: np.bincount(c.reshape(-1), minlength=256))
        assert np.array_equal(counts, np.bincount(centre.reshape(-1), minlength=256))
        variance = variance_from_histogram(counts)
        t_var = best_seconds(lambda c=counts: variance_from_histogram(c))
        centre = None

        rates = {}
        for name, kw in (("centre", {}), ("random_crop_flip", {"crop": "random", "flip": True})):
            view = ClipDataset(store, "train", clip_len=16, windows="random", **kw)
            rates[name] = len(view) * 4 / best_seconds(lambda v=view: [v[i % len(v)] for i in range(len(v) * 4)], 2)

    out = {
        "histogram_Mvalues_per_s": round(values / t_hist / 1e6, 1),
        "numpy_bincount_in_memory_Mvalues_per_s": round(values / t_np / 1e6, 1),
        "variance_from_histogram_ms": round(t_var * 1e3, 3),
        "values": values,
        "store_MB": round(VIDEOS * FRAMES * H * W * 3 / 1e6, 1),
        "rss_MB_before_after": [round(rss_before, 1), round(rss_after, 1)],
        "peak_rss_growth_MB": round(peak_after - peak_before, 1),
        "variance": variance,
        "loader_clips_per_s": {k: round(v, 1) for k, v in rates.items()},
    }
    print(f"histogram of {values / 1e6:.0f} M values ({out['store_MB']} MB store): "
          f"{out['histogram_Mvalues_per_s']} M/s streamed vs {out['numpy_bincount_in_memory_Mvalues_per_s']} M/s "
          f"numpy bincount in memory; variance from the counts {out['variance_from_histogram_ms']} ms")  # fmt: skip
    print(f"resident memory {rss_before:.0f} MB before, {rss_after:.0f} MB after; peak growth "
          f"{out['peak_rss_growth_MB']} MB")  # fmt: skip
    print(f"loader (1 process): centre {rates['centre']:.0f} clips/s, random crop + flip "
          f"{rates['random_crop_flip']:.0f} clips/s")  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    main()
