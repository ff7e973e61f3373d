"""Coverage of the FD∞ interval on Gaussian features whose Fréchet distance is known in closed form.

Two Gaussians in D = 8 with diagonal covariances (they commute, so tr sqrt(S1 S2) = sum sqrt(s1_i s2_i)) give
FD = ||mu1 - mu2||^2 + sum (s1_i + s2_i - 2 sqrt(s1_i s2_i)). Each repetition draws N videos' features from each,
computes the FD∞ interval (vgbench.metrics.uncertainty.curve) and notes whether it covers the true FD. The fixed-N
interval is measured beside it, against the true FD (which it is not meant to cover: FD_N is biased by about
(tr S1 + tr S2) / N and more) and against E[FD_N] (estimated by the mean over repetitions).

    python benchmarks/coverage_fd_inf.py            # 400 repetitions, 200 resamples: about 2 minutes on 2 cores

tests/test_uncertainty.py runs a reduced version and asserts the band measured here.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

DIM = 8
MU2 = np.full(DIM, 0.3)
S1 = np.linspace(0.5, 2.0, DIM)
S2 = np.linspace(1.5, 0.4, DIM)
TRUE_FD = float(MU2 @ MU2 + np.sum(S1 + S2 - 2 * np.sqrt(S1 * S2)))


def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """N features from each Gaussian: (N, D), (N, D)."""
    return rng.normal(size=(n, DIM)) * np.sqrt(S1), MU2 + rng.normal(size=(n, DIM)) * np.sqrt(S2)


def measure(reps: int = 400, resamples: int = 200, n: int = 200, seed: int = 0) -> dict:
    """Coverage of the FD∞ and fixed-N intervals over ``reps`` seeded repetitions."""
    from vgbench.metrics import uncertainty as u

    rng = np.random.default_rng(seed)
    cover_inf, fixed, infs, fixed_iv = 0, [], [], []
    for r in range(reps):
        a, b = draw(rng, n)
        contrib = u.Contributions("frechet", [{"samples": a, "reference": b}])
        cfg = u.IntervalConfig(resamples=resamples, seed=r, curve=True)
        cv = u.curve(contrib, cfg)
        iv = u.interval(contrib, cfg)
        lo, hi = cv["interval_inf"]["low"], cv["interval_inf"]["high"]
        cover_inf += lo <= TRUE_FD <= hi
        infs.append(cv["value_inf"])
        fixed.append(cv["points"][-1]["value"])
        fixed_iv.append((iv["low"], iv["high"]))
    expected_fixed = float(np.mean(fixed))
    cover_fixed = float(np.mean([lo <= expected_fixed <= hi for lo, hi in fixed_iv]))
    return {
        "reps": reps,
        "resamples": resamples,
        "n": n,
        "dim": DIM,
        "true_fd": TRUE_FD,
        "coverage_inf": cover_inf / reps,
        "coverage_fixed_of_mean_fixed": cover_fixed,
        "coverage_fixed_of_true": float(np.mean([lo <= TRUE_FD <= hi for lo, hi in fixed_iv])),
        "mean_fd_inf": float(np.mean(infs)),
        "mean_fd_n": expected_fixed,
    }


if __name__ == "__main__":
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    t0 = time.perf_counter()
    out = measure(reps)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=1))
