"""How much the VideoGPT-paper switches move FVD on typical inputs: BN eps 1e-5 and the half-pixel resize.

Run: python benchmarks/bench_protocols.py [-n 48]
Inputs: the demo's bouncing-square sets (64x64, 16 frames), slow vs fast motion. Each switch is applied alone on
top of the official protocol, then both together (which is the feature side of fvd.videogpt_paper).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import warnings

from vgbench import cards, demo, weights
from vgbench.metrics.frechet import frechet_distance_from_stats
from vgbench.metrics.fvd import build_extractor, extract_stats
from vgbench.video import SampleSet


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=48)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp())
    paths = demo.make_sets(folder, args.n)
    t = weights.load("i3d.kinetics400_tfhub")
    _, _, official = cards.resolve_protocol("fvd.official")
    variants = {
        "official": official,
        "eps 1e-5": dataclasses.replace(official, bn_eps=1e-5),
        "half-pixel": dataclasses.replace(official, resize="torch_half_pixel"),
        "both": dataclasses.replace(official, bn_eps=1e-5, resize="torch_half_pixel"),
    }
    a, b = SampleSet.open(paths["fast"]), SampleSet.open(paths["slow_a"])
    out = {}
    for name, p in variants.items():
        ext = build_extractor("i3d.kinetics400_tfhub", p, tensors=t)
        sa = extract_stats(a, ext, p, [(0, a.count)], 16)[0]
        sb = extract_stats(b, ext, p, [(0, b.count)], 16)[0]
        out[name] = frechet_distance_from_stats(sa, sb, warn=False)
    for name, v in out.items():
        print(f"{name:11s} FVD {v:9.3f}   {100 * (v / out['official'] - 1):+6.2f}% vs official")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
