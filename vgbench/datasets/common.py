"""What every dataset shares: folders, downloads from a card, the spatial preprocessing, progress."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vgbench import cards, download, hub
from vgbench.errors import DownloadError

log = logging.getLogger(__name__)


def dataset_dir(name: str, root=None) -> Path:
    """``<data root>/<name>``."""
    return hub.data_root(root) / name


def downloads_dir(name: str, root=None) -> Path:
    """Where a dataset's downloaded files (and their lock file) live."""
    return dataset_dir(name, root) / "downloads"


def store_dir(name: str, variant: str, root=None) -> Path:
    """Where a prepared variant of a dataset lives."""
    return dataset_dir(name, root) / "prepared" / variant


def fetch_sources(card: cards.DatasetCard, keys: list[str], root=None) -> dict[str, Path]:
    """Download (or verify) the card's sources ``keys``; a manual-only source raises with the exact steps."""
    out = {}
    folder = downloads_dir(card.name, root)
    for key in keys:
        src = card.sources[key]
        dest = folder / src.file
        if not src.url:
            if dest.exists():
                out[key] = dest
                continue
            raise DownloadError(manual_message(card, key, dest))
        try:
            out[key] = download.download(src.url, dest, src.sha256, src.bytes)
        except DownloadError as exc:
            raise DownloadError(f"{exc}\n{manual_message(card, key, dest)}") from exc
    return out


def manual_message(card: cards.DatasetCard, key: str, dest: Path) -> str:
    """Exactly what to fetch, where to put it, and how to continue."""
    src = card.sources[key]
    check = f" (sha256 {src.sha256})" if src.sha256 else " (no published checksum: pinned on first use)"
    where = f" from {src.url}" if src.url else ""
    return (
        f"Get {src.file}{where}{check} by hand{': ' + src.manual if src.manual else ''}. Put it at {dest}, or pass it "
        f"with `vgbench data prepare {card.name} --from PATH`; then run `vgbench data prepare {card.name}` again."
    )


def resize_short_side_center_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 (T, H, W, C) -> uint8 (T, size, size, C): shorter side to ``size`` (bilinear, half-pixel, long side
    ceil, like VideoGPT's ``resize_crop``), centre crop, rounded to the nearest level."""
    import torch
    import torch.nn.functional as F

    t, h, w, c = frames.shape
    scale = size / min(h, w)
    nh, nw = max(size, math.ceil(h * scale)), max(size, math.ceil(w * scale))
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    x = x[:, :, top : top + size, left : left + size]
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


@dataclass
class Summary:
    """What a preparation did, printed at the end and returned by the API."""

    dataset: str
    store: Path
    counts: dict = field(default_factory=dict)
    expected: dict = field(default_factory=dict)
    skipped_shards: int = 0
    written_shards: int = 0
    failures: int = 0
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        """A human summary: counts against the card's, failures, resumed shards."""
        lines = [f"{self.dataset}: prepared store {self.store}"]
        for split, n in sorted(self.counts.items()):
            exp = self.expected.get(split)
            tag = "" if exp is None else (" (as expected)" if exp == n else f" (card expects {exp}: INCOMPLETE)")
            lines.append(f"  {split}: {n} videos{tag}")
        lines.append(f"  shards written {self.written_shards}, already done {self.skipped_shards}")
        if self.failures:
            lines.append(f"  {self.failures} videos could not be used: see {self.store / 'failures.jsonl'}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)
