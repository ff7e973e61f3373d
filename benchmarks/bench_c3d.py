"""C3D (IS classifier) throughput in clips/s on 16-frame clips, channels-first (baseline) vs channels-last-3d.

Run: python benchmarks/bench_c3d.py [--batch 5] [--repeats 3]
Random Chainer-layout weights (the real ones are not redistributable; speed does not depend on the values) and
the real mean file from ../shared. Input: 64x64 clips in [-1, 1], resized to 112x112 inside the model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from c3d_random import random_c3d_arrays  # noqa: E402
from timing import best_rate  # noqa: E402

from vgbench.models.c3d import build_c3d  # noqa: E402


def clips_per_s(model, batch: int, repeats: int) -> float:
    x = torch.rand(batch, 16, 64, 64, 3) * 2 - 1
    with torch.inference_mode():
        return best_rate(lambda: model(x), batch, repeats)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--batch", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    mean = np.load(args.shared / "data/c3d/mean2.npz")["mean"]
    model = build_c3d(random_c3d_arrays(0), mean)
    base = clips_per_s(model, args.batch, args.repeats)
    model.net.to(memory_format=torch.channels_last_3d)
    cl = clips_per_s(model, args.batch, args.repeats)
    print(json.dumps({"threads": torch.get_num_threads(), "batch": args.batch,
                      "channels_first_clips_per_s": round(base, 3), "channels_last_3d_clips_per_s": round(cl, 3),
                      "ratio": round(cl / base, 2)}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
