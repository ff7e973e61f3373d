"""`vgbench train`'s whole loop with the steady heap (the default) against glibc's own trimming (issue 17).

Each run is a child process that trains ``vqvae.quickstart`` for ``--steps`` steps (batch 8, validation off) on the
quickstart data made in a temporary folder; the two settings alternate for ``--pairs`` pairs and the table gives the
median wall time of the loop, the children's system seconds and minor page faults, and the ratio default/glibc.
The baseline child replaces :func:`vgbench.device.steady_heap` by a no-op, so both run the same code otherwise.

Run: ``python benchmarks/bench_trainer_heap.py [--steps 60] [--pairs 3]`` (about 2 minutes on 2 cores). Prints a
table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = """
import os, sys, time
import vgbench.device, vgbench.train
if sys.argv[1] == "glibc":
    vgbench.device.steady_heap = lambda: False
t0 = time.perf_counter()
vgbench.train.train(model="vqvae.quickstart", out=sys.argv[2], steps=int(sys.argv[3]), batch_size=8, val_every=0,
                    ckpt_every=10**6, device="cpu", progress=False)
print(time.perf_counter() - t0)
"""


def run_child(mode: str, out: str, steps: int, env: dict) -> dict:
    """One training child: loop seconds, and the system seconds and minor faults it cost."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, mode, out, str(steps)], env=env, capture_output=True, text=True, check=True
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "wall_s": float(proc.stdout.strip().splitlines()[-1]),
        "sys_s": after.ru_stime - before.ru_stime,
        "minor_faults": after.ru_minflt - before.ru_minflt,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--pairs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "VGBENCH_DATA": os.path.join(tmp, "data")}
        subprocess.run([sys.executable, "-m", "vgbench", "data", "prepare", "quickstart"], env=env, check=True,
                       capture_output=True)  # fmt: skip
        runs: dict[str, list[dict]] = {"steady": [], "glibc": []}
        t0 = time.time()
        for i in range(args.pairs):
            for mode in ("steady", "glibc") if i % 2 == 0 else ("glibc", "steady"):
                runs[mode].append(run_child(mode, os.path.join(tmp, f"run-{mode}-{i}"), args.steps, env))
    summary = {
        mode: {key: statistics.median(r[key] for r in rs) for key in ("wall_s", "sys_s", "minor_faults")}
        for mode, rs in runs.items()
    }
    ratio = summary["steady"]["wall_s"] / summary["glibc"]["wall_s"]
    print(f"vqvae.quickstart, {args.steps} steps of batch 8, {args.pairs} pairs, {time.time() - t0:.0f} s in all")
    print(f"{'heap':<8}{'loop s (median)':>17}{'sys s':>8}{'minor faults':>14}")
    for mode, s in summary.items():
        print(f"{mode:<8}{s['wall_s']:>17.2f}{s['sys_s']:>8.2f}{s['minor_faults']:>14,.0f}")
    print(f"steady / glibc loop time: {ratio:.3f}")
    print(json.dumps({"bench": "trainer_heap", "steps": args.steps, "pairs": args.pairs, "runs": runs,
                      "median": summary, "ratio_wall": round(ratio, 4)}))  # fmt: skip


if __name__ == "__main__":
    main()
