"""Inspect a sample set before evaluating it: counts, shapes, dtype, value range and likely mistakes."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from vgbench.models.i3d import FEATURE_DIM, MIN_FRAMES
from vgbench.video import SampleSet

SMALL_N = 256  # below this FVD is strongly biased and unstable (metrics.md §13)


@dataclass
class Report:
    """What ``vgbench doctor`` prints."""

    path: str
    kind: str
    count: int
    dtype: str
    range: str
    range_source: str
    frames: dict
    sizes: dict
    min: float
    max: float
    mean: float
    warnings: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The human report ``vgbench doctor`` prints."""
        lines = [
            f"{self.path}: {self.count} videos ({self.kind}), dtype {self.dtype}, "
            f"range {self.range} ({self.range_source})",
            f"  frames: {self.frames}",
            f"  sizes (HxWxC): {self.sizes}",
            f"  values: min {self.min:.4g}, max {self.max:.4g}, mean {self.mean:.4g}",
        ]
        lines += [f"  warning: {w}" for w in self.warnings] or ["  no warnings"]
        return "\n".join(lines)

    def to_json(self) -> str:
        """The report as one JSON object."""
        return json.dumps(asdict(self))


def inspect(path: str, value_range: str | None = None, limit: int | None = None) -> Report:
    """Scan a sample set (every video, or the first ``limit``) and collect warnings."""
    s = SampleSet.open(path, value_range)
    stop = s.count if limit is None else min(limit, s.count)
    frames, sizes = Counter(), Counter()
    lo, hi, total, n_vals, constant = np.inf, -np.inf, 0.0, 0, 0
    for batch in s.raw_videos(0, stop):
        frames.update([batch.shape[1]] * batch.shape[0])
        sizes.update([f"{batch.shape[2]}x{batch.shape[3]}x{batch.shape[4]}"] * batch.shape[0])
        b = batch.astype(np.float64)
        lo, hi = min(lo, float(b.min())), max(hi, float(b.max()))
        total += float(b.sum())
        n_vals += b.size
        flat = b.reshape(b.shape[0], -1)
        constant += int((flat.max(axis=1) == flat.min(axis=1)).sum())
    w = []
    if min(frames) < MIN_FRAMES:
        w.append(
            f"{sum(c for f, c in frames.items() if f < MIN_FRAMES)} videos have fewer than {MIN_FRAMES} frames; "
            "I3D (FVD) cannot score them"
        )
    if len(frames) > 1 or len(sizes) > 1:
        w.append(
            f"mixed frame counts {dict(frames)} or sizes {dict(sizes)}; a set must be uniform "
            "(or use a protocol with a fixed clip length)"
        )
    if s.count <= FEATURE_DIM:
        w.append(
            f"N = {s.count} <= {FEATURE_DIM}: I3D covariances are singular; FVD is biased upwards and only "
            "comparable at equal N"
        )
    elif s.count < SMALL_N:
        w.append(f"N = {s.count} is small; FVD varies strongly between sample sets at this size")
    if s.dtype == "uint8" and hi <= 1:
        w.append("uint8 data with maximum <= 1: probably [0, 1] floats cast to uint8 (everything is black)")
    if s.range_source == "detected":
        w.append(f"float range {s.value_range} was detected, not declared; pass --range to be sure")
    if s.value_range == "0-255" and s.dtype != "uint8" and hi <= 1:
        w.append("declared 0-255 but all values <= 1: probably [0, 1] data")
    if constant:
        w.append(f"{constant} videos are constant (a single value)")
    sizes_hw = {k.rsplit("x", 1)[0] for k in sizes}
    if any(k != "224x224" for k in sizes_hw):
        w.append(f"frames are resized to 224x224 for I3D (from {', '.join(sorted(sizes_hw))}); the protocol fixes how")
    return Report(
        str(s.path),
        s.kind,
        s.count,
        s.dtype,
        s.value_range,
        s.range_source,
        dict(sorted(frames.items())),
        dict(sorted(sizes.items())),
        lo,
        hi,
        total / max(n_vals, 1),
        w,
    )
