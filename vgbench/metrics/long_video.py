"""Which frames a long-video FVD protocol reads (issue 20), and the per-window drift curve of long samples.

StyleGAN-V's long-video FVDs (universome/stylegan-v ``src/metrics/metric_main.py``; its dataset's
``load_n_consecutive``, ``subsample_factor``, ``discard_short_videos``; metrics.md) read from each video a clip of
``frames`` frames, every ``subsample``-th frame:

- generated videos from their first frame: frames 0, s, 2s, ..., (n-1)s;
- real videos from a random start o drawn uniformly from 0 .. L - n·s + s - 1 (L the video's length; the last
  frame read, o + (n-1)s, is then at most L - 1), one start per video.

vgbench draws o from ``numpy.random.default_rng([seed, index])`` so a protocol's reference statistics are
reproducible and do not depend on the batch or process layout (StyleGAN-V uses Python's unseeded global
``random``: its real statistics differ from run to run). The functions here are pure (numpy only).
"""

from __future__ import annotations

import numpy as np


def clip_indices(offset: int, frames: int, subsample: int = 1) -> np.ndarray:
    """Frame indices of one clip: offset, offset + s, ..., offset + (frames - 1) s."""
    return offset + np.arange(frames) * subsample


def random_offset(seed: int, index: int, length: int, frames: int, subsample: int = 1) -> int:
    """The start of video ``index``'s real clip: uniform on 0 .. length - frames·s + s - 1 (inclusive)."""
    if length < frames * subsample:  # StyleGAN-V's discard_short_videos threshold (L >= n·s), refused here
        raise ValueError(f"video {index}: {length} frames; the protocol reads videos of at least "
                         f"{frames} x {subsample} = {frames * subsample}")  # fmt: skip
    hi = length - frames * subsample + subsample  # exclusive bound
    return int(np.random.default_rng([seed, index]).integers(0, hi))


def select(batch: np.ndarray, first_index: int, protocol, role: str) -> np.ndarray:
    """The clips (B, frames, H, W, C) a protocol reads from a batch of videos (B, T, H, W, C) whose first video has
    index ``first_index`` in its set (generated videos: from their first frame)."""
    s = protocol.subsample or 1
    if protocol.frames is None:
        return batch
    if role == "reference" and protocol.reference_start == "random":
        t = batch.shape[1]
        idx = np.stack([clip_indices(random_offset(protocol.seed, first_index + j, t, protocol.frames, s),
                                     protocol.frames, s) for j in range(len(batch))])  # fmt: skip  # (B, n)
        return np.take_along_axis(batch, idx[:, :, None, None, None], axis=1)
    return batch[:, : protocol.frames * s : s]


def window_bounds(length: int, window: int, step: int | None = None) -> list[tuple[int, int]]:
    """Frame ranges [a, b) of the windows of a long video for the drift curve: window k starts at k·step (default
    step = window: back to back) and every window lies inside the video."""
    step = step or window
    return [(a, a + window) for a in range(0, length - window + 1, step)]


def window_curve(samples, reference, out, window: int = 16, step: int | None = None, protocol: str = "official",
                 **options) -> list[dict]:  # fmt: skip
    """FVD of window k of long samples against real ``window``-frame clips, k = 0, 1, ...: drift over time as a curve.

    Window k holds frames [k·step, k·step + window) of every sample (``step`` default ``window``: back to back); it
    is written to ``out/window-KK.npy`` and scored by the FVD engine (``vgbench eval``'s path) under ``protocol``
    against ``reference`` (a prepared split such as ``quickstart:test``, or a file of real clips), whose statistics
    come from the cache after the first window. ``options`` go to :func:`vgbench.api.evaluate` (device, store, ...).
    Returns one dict per window: k, first and last frame, FVD, the counts and the protocol.
    """
    from pathlib import Path

    from vgbench import api, cache
    from vgbench.errors import InputError
    from vgbench.video import SampleSet

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
        r = api.evaluate("fvd", samples=path, reference=reference, protocol=protocol, **options)
        rows.append({"window": k, "frames": [a, b - 1], "value": r.value, "n_samples": r.n_samples,
                     "n_reference": r.n_reference, "protocol": f"fvd.{r.protocol}"})  # fmt: skip
    return rows


def plot_curve(rows: list[dict], dest, title: str = "FVD of window k (frames 16k..16k+15) vs real 16-frame clips"):
    """The drift curve as a PNG (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vgbench import cache

    fig, ax = plt.subplots(figsize=(5.0, 3.0))
    ks = [r["window"] for r in rows]
    ax.plot(ks, [r["value"] for r in rows], marker="o")
    ax.set_xticks(ks)
    ax.set_xlabel("window k")
    ax.set_ylabel("FVD")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with cache.atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return dest
