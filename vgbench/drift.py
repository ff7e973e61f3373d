"""The drift curve of long samples: FVD of each window of frames against real clips of the window's length, scored
by the FVD engine (``vgbench eval``'s path), and its plot. Clip selection itself is :mod:`vgbench.metrics.long_video`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vgbench import cache
from vgbench.errors import InputError
from vgbench.metrics.contract import build_request
from vgbench.metrics.fvd import evaluate_fvd
from vgbench.metrics.long_video import window_bounds
from vgbench.plots import save_png
from vgbench.video import SampleSet


def window_curve(samples, reference, out, window: int = 16, step: int | None = None, protocol: str = "official",
                 **options) -> list[dict]:  # fmt: skip
    """FVD of window k of long samples against real ``window``-frame clips, k = 0, 1, ...: drift over time as a curve.

    Window k holds frames [k·step, k·step + window) of every sample (``step`` default ``window``: back to back); it
    is written to ``out/window-KK.npy`` and scored by the FVD engine (``vgbench eval``'s path) under ``protocol``
    against ``reference`` (a prepared split such as ``quickstart:test``, or a file of real clips), whose statistics
    come from the cache after the first window. ``options`` go to the FVD engine (device, batch size, ...); no
    interval is computed per window.
    Returns one dict per window: k, first and last frame, FVD, the counts and the protocol.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parts: dict[int, list[np.ndarray]] = {}
    bounds = None
    for batch in SampleSet.open(samples).iter_batches(16):  # (B, T, H, W, C); one pass over the samples
        if bounds is None:
            if batch.shape[1] < window:
                raise InputError(f"{samples}: samples of {batch.shape[1]} frames are shorter than one window of "
                                 f"{window}; give longer samples or a shorter window")  # fmt: skip
            bounds = window_bounds(batch.shape[1], window, step)
        for k, (a, b) in enumerate(bounds):
            parts.setdefault(k, []).append(np.ascontiguousarray(batch[:, a:b]))
    rows = []
    for k, (a, b) in enumerate(bounds or []):
        path = out / f"window-{k:02d}.npy"
        with cache.atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, np.concatenate(parts.pop(k)))  # (N, window, H, W, C)
        r = evaluate_fvd(build_request("fvd", protocol, samples=path, reference=reference), **options)
        rows.append({"window": k, "frames": [a, b - 1], "value": r.value, "n_samples": r.n_samples,
                     "n_reference": r.n_reference, "protocol": f"fvd.{r.protocol}"})  # fmt: skip
    return rows


def plot_curve(rows: list[dict], dest, title: str = "FVD of window k (frames 16k..16k+15) vs real 16-frame clips"):
    """The drift curve as a PNG (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 3.0))
    ks = [r["window"] for r in rows]
    ax.plot(ks, [r["value"] for r in rows], marker="o")
    ax.set_xticks(ks)
    ax.set_xlabel("window k")
    ax.set_ylabel("FVD")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    return save_png(fig, dest)
