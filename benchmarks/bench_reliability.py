"""What issue 10's safety checks cost before the network runs: content hashing and the pre-scan of a set.

- content hash: sha256 of a whole ``.npy`` (page-cached), the first time and when the accelerator serves it;
- pre-scan (``validation.check``): clip shapes, finiteness and value range of every video, uint8 and float32;
- for scale: the I3D forward's rate (~3 clips/s of 16x224x224 on this machine kind, CHANGELOG), so the share of
  a first evaluation (hash and pre-scan; the hash is cached afterwards) is their time over that plus the network's.

Prints a table and one JSON line. Run: python benchmarks/bench_reliability.py (about a minute).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from timing import best_seconds

N, T, S = 256, 16, 64  # 256 clips of 16x64x64: 50 MB as uint8, 200 MB as float32
I3D_CLIPS_PER_S = 3.0  # the forward alone at 16x224x224 on this machine kind (CHANGELOG, issue 9)


def main() -> None:
    from vgbench import cache, contenthash, validation
    from vgbench.video import SampleSet

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["VGBENCH_HOME"] = str(Path(tmp) / "home")
        rng = np.random.default_rng(0)
        u8 = rng.integers(0, 256, (N, T, S, S, 3), dtype=np.uint8)
        np.save(Path(tmp) / "u8.npy", u8)
        np.save(Path(tmp) / "f32.npy", u8.astype(np.float32) / np.float32(255.0))
        out = {}
        for name in ("u8", "f32"):
            path = Path(tmp) / f"{name}.npy"
            mb = path.stat().st_size / 1e6
            path.read_bytes()  # page cache warm, as on a second run
            # what a miss of the accelerator costs
            cold = best_seconds(lambda p=path: cache.sha256_file(p), warmup=False)
            saved = contenthash.RACY_NS
            contenthash.RACY_NS = 0  # as for a file that has been still for a while
            contenthash.file_sha256(path)
            warm = best_seconds(lambda p=path: contenthash.file_sha256(p), warmup=False)
            contenthash.RACY_NS = saved
            need = validation.Need("bench", min_frames=9)
            rng_arg = None if name == "u8" else "0-1"
            scan = best_seconds(
                lambda p=path, r=rng_arg, n=need: validation.check(SampleSet.open(p, r), n), warmup=False
            )
            network = N / I3D_CLIPS_PER_S
            out[name] = {
                "MB": round(mb, 1),
                "hash_MB_per_s": round(mb / cold, 1),
                "hash_accelerated_ms": round(warm * 1e3, 2),
                "prescan_MB_per_s": round(mb / scan, 1),
                "prescan_s": round(scan, 3),
                "first_run_share_of_eval": round((cold + scan) / (cold + scan + network), 4),  # hash + pre-scan
            }
    print(f"{'set':6} {'MB':>7} {'hash MB/s':>10} {'hash, cached':>13} {'pre-scan MB/s':>14} {'first-run share':>16}")
    for name, r in out.items():
        print(
            f"{name:6} {r['MB']:7.1f} {r['hash_MB_per_s']:10.1f} {r['hash_accelerated_ms']:11.2f}ms "
            f"{r['prescan_MB_per_s']:14.1f} {100 * r['first_run_share_of_eval']:15.2f}%"
        )
    print(json.dumps({"bench": "reliability", "clips": N, "shape": [T, S, S], **out}))


if __name__ == "__main__":
    main()
