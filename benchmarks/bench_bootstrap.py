"""Time of an FVD interval: 1000 bootstrap resamples of 2048 vs 2048 videos' 400-d features (issue 18's target:
at most 20 s on the 2-core development CPU), against a plain Python loop over the existing Fréchet function.

Run: python benchmarks/bench_bootstrap.py [resamples]
Both run in this process on the same synthetic features (correlated Gaussians shaped like I3D logits). The loop
resamples the rows, streams them into FeatureStats and calls frechet_distance_from_stats (two SVD square roots of
400 x 400 per resample, as the point value does); it runs a few resamples, with BLAS's default threads and with one
BLAS thread (on a shared 2-core machine the default can be many times slower), scaled to the same count; the
speedup is against the faster of the two. The
fast path (vgbench.metrics.uncertainty.frechet_bootstrap) reads the counts of each resample, forms weighted
covariances with BLAS and solves one generalised symmetric eigenproblem per resample, a thread per core. The two
agree to rounding on the resamples both compute (the largest relative difference is printed).
Also timed: the FD∞ interval (8 nested sizes per resample) on the same sets, and the whole quickstart-sized case
(64 vs 64, rank deficient).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from vgbench.metrics import uncertainty as u
from vgbench.metrics.frechet import FeatureStats, frechet_distance_from_stats


def features(n: int, dim: int = 400, seed: int = 0, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(dim, dim)) / np.sqrt(dim) * np.linspace(3.0, 0.2, dim)[:, None]
    return rng.normal(size=(n, dim)) @ mix + shift


def loop_fd(a: np.ndarray, b: np.ndarray, ca: np.ndarray, cb: np.ndarray) -> float:
    ra, rb = np.repeat(a, ca, axis=0), np.repeat(b, cb, axis=0)
    return frechet_distance_from_stats(FeatureStats.from_features(ra), FeatureStats.from_features(rb), warn=False)


def main(resamples: int = 1000, loop_resamples: int = 5) -> dict:
    n = 2048
    a, b = features(n, seed=1), features(n, seed=2, shift=0.05)
    ca = u.resample_counts(n, resamples, 0, u.STREAM_SAMPLES)
    cb = u.resample_counts(n, resamples, 0, u.STREAM_REFERENCE)
    fa, fb = u.FeatureSet(a), u.FeatureSet(b)
    t0 = time.perf_counter()
    fast = u.frechet_bootstrap(fa, fb, ca, cb)
    fast_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = [loop_fd(a, b, ca[r], cb[r]) for r in range(loop_resamples)]
    loop_s = (time.perf_counter() - t0) / loop_resamples * resamples
    with u._one_blas_thread():  # the loop's other configuration: BLAS threads fight over 2 shared cores
        t0 = time.perf_counter()
        [loop_fd(a, b, ca[r], cb[r]) for r in range(loop_resamples)]
        loop1_s = (time.perf_counter() - t0) / loop_resamples * resamples
    diff = max(abs(x - y) / abs(y) for x, y in zip(fast[:loop_resamples], slow, strict=True))
    contrib = u.Contributions("frechet", [{"samples": a, "reference": b}])
    cfg = u.IntervalConfig(resamples=max(10, resamples // 10), curve=True)
    t0 = time.perf_counter()
    u.curve(contrib, cfg)
    curve_s = (time.perf_counter() - t0) * resamples / cfg.resamples
    small = u.Contributions("frechet", [{"samples": features(64, seed=3), "reference": features(64, seed=4)}])
    t0 = time.perf_counter()
    u.interval(small, u.IntervalConfig(resamples=resamples))
    u.curve(small, u.IntervalConfig(resamples=resamples, curve=True))
    small_s = time.perf_counter() - t0
    return {
        "resamples": resamples,
        "n": n,
        "dim": 400,
        "threads": u._workers(),
        "fast_seconds": round(fast_s, 2),
        "loop_seconds_scaled": round(loop_s, 1),
        "loop_one_blas_thread_seconds_scaled": round(loop1_s, 1),
        "loop_resamples_timed": loop_resamples,
        "speedup_vs_faster_loop": round(min(loop_s, loop1_s) / fast_s, 1),
        "max_relative_difference": diff,
        "fd_inf_interval_seconds_scaled": round(curve_s, 1),
        "quickstart_size_64_interval_and_fd_inf_seconds": round(small_s, 2),
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000), indent=1))
