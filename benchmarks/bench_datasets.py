"""Dataset throughput on this machine, as ratios against a baseline run in the same process.

Run: python benchmarks/bench_datasets.py [--shared ../shared] [--videos 32] [--records 64]
- UCF-101 decode + resize + store: 16-frame clips/s with 1 and 2 worker processes (the real 141-frame AVI of
  ../shared, repeated), at R = 64;
- TFRecord parsing (BAIR): records/s of vgbench's reader with google_crc32c, with the pure-Python CRC, and
  TensorFlow's TFRecordDataset + Example parsing when TensorFlow is installed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from vgbench.datasets import bair, tfrecord
from vgbench.datasets.common import Summary
from vgbench.datasets.store import StoreWriter
from vgbench.datasets.videofiles import Item, convert


def bench_ucf(shared: Path, n_videos: int, workers: int) -> dict:
    avi = shared / "data/ucf101/UCF-101/Basketball/v_Basketball_g01_c01.avi"
    with tempfile.TemporaryDirectory() as tmp:
        items = [Item(f"v{i}.avi", avi) for i in range(n_videos)]
        writer = StoreWriter(Path(tmp) / "s", "ucf101", "bench", {"w": workers}, {})
        t0 = time.perf_counter()
        convert(writer, {"train": items}, 64, workers, Summary("ucf101", Path(tmp)), per_shard=2)
        dt = time.perf_counter() - t0
    frames = 141 * n_videos
    return {
        "workers": workers,
        "videos": n_videos,
        "seconds": round(dt, 2),
        "clips_per_s": round(frames / 16 / dt, 2),
        "frames_per_s": round(frames / dt, 1),
    }


def bench_tfrecord(shared: Path, n_records: int) -> list[dict]:
    src = next((shared / "data/bair").rglob("test/*.tfrecords")).read_bytes()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "traj_0_to_255.tfrecords"
        path.write_bytes(src * n_records)
        for impl in ("google_crc32c", "python"):
            saved = tfrecord.crc32c
            if impl == "python":
                tfrecord.crc32c = tfrecord.crc32c_python
            try:
                t0 = time.perf_counter()
                with open(path, "rb") as f:
                    n = sum(1 for _ in bair.read_file(f, path.name))
                dt = time.perf_counter() - t0
            finally:
                tfrecord.crc32c = saved
            rows.append({"reader": f"vgbench ({impl} CRC)", "records": n, "records_per_s": round(n / dt, 1)})
        try:
            import tensorflow as tf
        except ImportError:
            return rows
        t0 = time.perf_counter()
        n = 0
        for raw in tf.data.TFRecordDataset(str(path)):
            feat = tf.train.Example.FromString(raw.numpy()).features.feature
            np.stack([np.frombuffer(feat[f"{t}/image_aux1/encoded"].bytes_list.value[0], np.uint8) for t in range(30)])
            n += 1
        rows.append(
            {
                "reader": "tensorflow TFRecordDataset + Example",
                "records": n,
                "records_per_s": round(n / (time.perf_counter() - t0), 1),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--videos", type=int, default=32)
    ap.add_argument("--records", type=int, default=64)
    args = ap.parse_args()
    ucf = [bench_ucf(args.shared, args.videos, w) for w in (1, 2)]
    ucf[1]["speedup_vs_1_worker"] = round(ucf[1]["clips_per_s"] / ucf[0]["clips_per_s"], 2)
    rec = bench_tfrecord(args.shared, args.records)
    for r in rec:
        r["ratio_vs_python_crc"] = round(r["records_per_s"] / rec[1]["records_per_s"], 2)
    print(json.dumps({"ucf101_decode_resize": ucf, "tfrecord": rec}, indent=1))


if __name__ == "__main__":
    main()
