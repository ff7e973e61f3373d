"""Peak memory of FVD evaluations read from .npz is flat in N (the data path streams).

Run: python benchmarks/bench_fvd_memory.py
Each configuration runs in a fresh subprocess and reports its peak RSS (ru_maxrss):
  real I3D:    N vs N clips of 16x64x64 with the real network (N = 32, 96)
  data path:   N vs N clips of 16x64x64 through the whole engine with a stand-in extractor (N = 256, 2048),
               to reach the issue's 2048-vs-2048 size in minutes rather than the ~35 CPU-minutes of I3D.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, os, resource, sys, time
import numpy as np
n, real = int(sys.argv[1]), sys.argv[2] == "real"
folder = sys.argv[3]
a, b = os.path.join(folder, f"a{n}.npz"), os.path.join(folder, f"b{n}.npz")
if not os.path.exists(a):
    rng = np.random.default_rng(0)
    for p in (a, b):
        with open(p, "wb") as f:  # written in one piece here; the evaluation below only streams
            np.savez(f, videos=rng.integers(0, 256, (n, 16, 64, 64, 3), dtype=np.uint8))
if len(sys.argv) > 4:  # generation runs in its own process so it does not count towards the peak below
    sys.exit(0)
from vgbench import api
from vgbench.metrics import fvd
if not real:
    proj = np.random.default_rng(1).normal(size=(48, 400))
    fvd.build_extractor = lambda *a, **k: (lambda x: np.tanh(x.mean(axis=(2, 3)).reshape(len(x), -1) / 255 @ proj))
import warnings; warnings.simplefilter("ignore")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.time()
r = api.evaluate("fvd", a, b, use_cache=False)
print(json.dumps({"n": n, "real": real, "value": r.value, "seconds": round(time.time() - t0, 1),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_before_eval_mb": base / 1024}))
"""


def main() -> None:
    configs = [(256, "stand-in"), (2048, "stand-in"), (32, "real"), (96, "real")]
    if "--quick" in sys.argv:  # the data path only (about a minute)
        configs = configs[:2]
    with tempfile.TemporaryDirectory() as folder:
        rows = []
        for n, mode in configs:
            kind = "real" if mode == "real" else "fake"
            subprocess.run([sys.executable, "-c", CHILD, str(n), kind, folder, "gen"], check=True)
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(n), kind, folder], capture_output=True, text=True, check=True
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{mode:9s} N={n:5d}  peak RSS {row['peak_rss_mb']:7.1f} MB  ({row['seconds']} s)")
            for p in Path(folder).glob(f"*{n}.npz"):
                p.unlink()
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
