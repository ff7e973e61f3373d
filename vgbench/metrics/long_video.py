"""Which frames a long-video FVD protocol reads (issue 20); the per-window drift curve is :mod:`vgbench.drift`.

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
