"""``vgbench demo``: FVD of two generated video sets with the real I3D weights, end to end.

The sets are made here, deterministically: squares bouncing at slow vs fast speeds, 16 frames of 64x64. The
expected outcome: FVD(slow, slow') is small (two draws of the same process), FVD(slow, fast) is larger.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vgbench import cache


def bouncing_squares(n: int, speed: tuple[float, float], seed: int, frames: int = 16, size: int = 64) -> np.ndarray:
    """uint8 (n, frames, size, size, 3): one coloured square per video bouncing off the walls."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, frames, size, size, 3), np.uint8)
    side = size // 5
    for i in range(n):
        color = rng.integers(64, 256, 3)
        pos = rng.uniform(0, size - side, 2)
        angle = rng.uniform(0, 2 * np.pi)
        vel = rng.uniform(*speed) * np.array([np.cos(angle), np.sin(angle)])
        bg = rng.integers(0, 48)
        out[i] = bg
        for t in range(frames):
            y, x = pos.astype(int)
            out[i, t, y : y + side, x : x + side] = color
            pos += vel
            for a in range(2):  # reflect at the walls
                if pos[a] < 0 or pos[a] > size - side:
                    vel[a] = -vel[a]
                    pos[a] = np.clip(pos[a], 0, size - side)
    return out


def make_sets(folder: Path, n: int = 32) -> dict[str, Path]:
    """Write the demo sets as .npz files in ``folder`` (atomically) and return their paths."""
    sets = {"slow_a": ((0.5, 1.5), 1), "slow_b": ((0.5, 1.5), 2), "fast": ((4.0, 6.0), 3)}
    paths = {}
    for name, (speed, seed) in sets.items():
        path = folder / f"{name}.npz"
        if not path.exists():
            with cache.atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.savez(f, videos=bouncing_squares(n, speed, seed))
        paths[name] = path
    return paths


def summary(results: list, store=True) -> str:
    """What the two demo numbers mean and where the files went (the sentence ``vgbench demo`` ends with)."""
    from vgbench import results as results_mod

    same, other = results
    where = "not stored (--no-store)"
    if store:
        where = f"appended to {results_mod.default_store() if store is True else store}"
    return (
        f"FVD(slow, slow') = {same.value:.2f}: two draws of the same motion, so small. FVD(fast, slow) = "
        f"{other.value:.2f}: different motion, so larger (lower is better). With {same.n_samples} videos per set "
        f"(protocols use 256 or more) these two numbers compare only with each other. The video sets are in "
        f"{cache.cache_dir('demo')}; the two records above were {where}."
    )


def run(n: int = 32, store=True) -> list:
    """Make the sets under ``<cache>/demo`` and evaluate FVD(slow_a, slow_b) and FVD(slow_a, fast)."""
    from vgbench import api

    paths = make_sets(cache.cache_dir("demo"), n)
    return [
        api.evaluate("fvd", paths["slow_b"], paths["slow_a"], store=store, run="demo: slow vs slow"),
        api.evaluate("fvd", paths["fast"], paths["slow_a"], store=store, run="demo: fast vs slow"),
    ]
