"""I3D throughput (clips/s) at 16x224x224 on this CPU, as ratios against the straightforward eager form.

Run: python benchmarks/bench_i3d.py [--threads 2] [--repeats 3]
Variants, all fp32 and all equal to the TF numerics within the parity tolerance:
  eager-unfolded  BatchNorm as a separate op after each conv, channels-first (the baseline)
  folded          BN folded into the conv weights, 1x1 stem convs fused, channels-first
  folded+cl3d     as folded, channels-last-3d activations and weights (vgbench's default), batch sweep
"""

from __future__ import annotations

import argparse
import json

import torch
from timing import best_rate

from vgbench import weights
from vgbench.models.i3d import build_i3d


def clips_per_s(model, batch: int, repeats: int) -> float:
    x = torch.rand(batch, 3, 16, 224, 224) * 2 - 1
    with torch.inference_mode():
        return best_rate(lambda: model(x), batch, repeats)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t = weights.load("i3d.kinetics400_tfhub")
    base_model = build_i3d(t, fold_bn=False, channels_last=False)
    rows = {"eager-unfolded bs=4": clips_per_s(base_model, 4, args.repeats)}
    rows["folded bs=2"] = clips_per_s(build_i3d(t, channels_last=False), 2, args.repeats)
    fast = build_i3d(t)
    for bs in (1, 2, 4, 8, 16):
        rows[f"folded+cl3d bs={bs}"] = clips_per_s(fast, bs, args.repeats)
    base = rows["eager-unfolded bs=4"]
    for name, v in rows.items():
        print(f"{name:22s} {v:6.3f} clips/s   x{v / base:5.2f} vs eager-unfolded")
    print(json.dumps({"threads": args.threads, "torch": torch.__version__, "clips_per_s": rows}))


if __name__ == "__main__":
    main()
