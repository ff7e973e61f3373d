"""What every dataset shares: folders, downloads from a card, the spatial preprocessing, the summary."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vgbench import cache, cards, download
from vgbench.errors import DownloadError

log = logging.getLogger(__name__)

RESIZE = "short_side_bilinear_half_pixel_center_crop_exact"  # recorded in stores: a float resize gave other bytes
RESIZE_BAND = "short_side_bilinear_half_pixel_band_exact"  # the same resize, a band of the long side kept


def dataset_dir(name: str, root=None) -> Path:
    """``<data root>/<name>``."""
    return cache.data_root(root) / name


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


def _bilinear_taps(n_in: int, n_out: int, idx: np.ndarray) -> tuple:
    """Half-pixel bilinear taps of output positions ``idx`` as exact integers: source rows (i0, i1) and weights
    (w0, w1) over the common denominator ``den``.

    The source coordinate of output x is (x + 1/2) * n_in / n_out - 1/2 (PyTorch ``align_corners=False``), clamped
    at 0 like PyTorch; times den = 2 * n_out it is the integer (2x + 1) * n_in - n_out."""
    if n_in == n_out:
        return idx, idx, np.ones_like(idx), np.zeros_like(idx), 1
    num = np.maximum((2 * idx + 1) * n_in - n_out, 0)
    den = 2 * n_out
    i0 = num // den
    w1 = num - i0 * den
    return i0, np.minimum(i0 + 1, n_in - 1), den - w1, w1, den


def _resized_size(h: int, w: int, size: int) -> tuple[int, int]:
    """(H, W) after scaling the shorter side to ``size`` (long side ceil, as VideoGPT's ``resize_crop``)."""
    scale = size / min(h, w)
    return max(size, math.ceil(h * scale)), max(size, math.ceil(w * scale))


def _resize_window(frames: np.ndarray, nh: int, nw: int, top: int, left: int, out_h: int, out_w: int) -> np.ndarray:
    """Rows [top, top + out_h) and columns [left, left + out_w) of ``frames`` resized to (nh, nw), computed exactly.

    Each output pixel depends only on its own position (its taps), so any window of the resize holds the same
    bytes as the same pixels of a larger window: a centre crop of a stored band equals the centre crop computed
    directly."""
    _, h, w, _ = frames.shape
    if (nh, nw) == (h, w):
        return np.ascontiguousarray(frames[:, top : top + out_h, left : left + out_w])
    y0, y1, a0, a1, dy = _bilinear_taps(h, nh, np.arange(top, top + out_h))
    x0, x1, b0, b1, dx = _bilinear_taps(w, nw, np.arange(left, left + out_w))
    den = dy * dx
    acc = np.int32 if 255 * den < 2**31 else np.int64  # the largest numerator is 255 * den
    a0, a1, b0, b1 = (v.astype(acc) for v in (a0, a1, b0, b1))
    # np.take: several times faster than fancy indexing on these shapes
    rows = np.take(frames, y0, axis=1).astype(acc) * a0[:, None, None]  # (T, out_h, W, C)
    if dy > 1:
        rows += np.take(frames, y1, axis=1).astype(acc) * a1[:, None, None]
    num = np.take(rows, x0, axis=2) * b0[:, None]  # (T, out_h, out_w, C), the value times den
    if dx > 1:
        num += np.take(rows, x1, axis=2) * b1[:, None]
    # num / den in float64 is the correctly rounded quotient of two integers below 2^53: an exact tie comes out as
    # exactly k + 0.5, any other value at least 1 / (2 den) away from one, so rint (half to even, like
    # torch.round) rounds the exact rational value
    return np.rint(num / den).astype(np.uint8)


def resize_short_side_center_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 (T, H, W, C) -> uint8 (T, size, size, C): shorter side to ``size`` (bilinear, half-pixel, long side
    ceil, like VideoGPT's ``resize_crop``), centre crop, rounded half to even.

    Computed in exact integer arithmetic (the weights are rationals over 2 * n_out), so the bytes do not depend on
    thread count, worker count, CPU or library version; a float resize (PyTorch's) differs with the thread count
    (measured: 9 of 1.7 M values of one UCF-101 video off by one between 1 and 2 threads). Against PyTorch's
    float32 ``interpolate`` + ``round`` it differs by one level where the exact value is a tie or within float
    error of one (423 of 1,732,608 values of ``v_Basketball_g01_c01.avi`` at 64x64), never by more.
    Only the cropped window is computed; on one thread it is as fast as PyTorch's (that video: 0.17 s vs 0.27 s
    at 64x64, 0.45 s vs 0.50 s at 128x128, measured on a shared machine)."""
    _, h, w, _ = frames.shape
    nh, nw = _resized_size(h, w, size)
    return _resize_window(frames, nh, nw, (nh - size) // 2, (nw - size) // 2, size, size)


@dataclass(frozen=True)
class Band:
    """Where a video lies in a band of ``size`` x ``long_side`` stored frames (see :func:`resize_short_side_band`)."""

    picture: tuple[int, int, int, int]  # (top, left, height, width) of the resized video; outside it is padding
    center: tuple[int, int]  # (top, left) of the size x size centre crop of the whole resized video


def resize_short_side_band(frames: np.ndarray, size: int, long_side: int) -> tuple[np.ndarray, Band]:
    """uint8 (T, H, W, C) -> uint8 (T, size, long_side, C): the shorter side scaled to ``size`` as
    :func:`resize_short_side_center_crop` does, keeping up to ``long_side`` columns around the centre, so that a
    training crop can be taken anywhere in them (VideoGPT-Paper's random crop) and the evaluation crop is exactly
    :func:`resize_short_side_center_crop`'s (same bytes: the same exact resize, windowed).

    A video whose resized width exceeds ``long_side`` keeps its centre ``long_side`` columns; a narrower one (a
    portrait or near-square video) keeps its centre ``size`` rows and is placed in the middle of the band with zero
    padding around it, which its :class:`Band` marks as outside the picture. Returns the band and that record."""
    _, h, w, _ = frames.shape
    nh, nw = _resized_size(h, w, size)
    kept = min(nw, long_side)
    top, left = (nh - size) // 2, (nw - kept) // 2  # the window of the resize that is stored
    window = _resize_window(frames, nh, nw, top, left, size, kept)  # (T, size, kept, C)
    pad = (long_side - kept) // 2
    if kept < long_side:
        band = np.zeros((*window.shape[:2], long_side, window.shape[3]), np.uint8)
        band[:, :, pad : pad + kept] = window
    else:
        band = window
    center = (0, pad + (nw - size) // 2 - left)  # the centre crop of the whole resize, in band coordinates
    return band, Band((0, pad, size, kept), center)


def band_width(size: int, aspect: tuple[int, int]) -> int:
    """Columns of a band that holds a whole video of ``aspect`` (width, height) scaled to height ``size``:
    ceil(size * width / height), exactly (UCF-101's 320x240 at 64: 86, at 128: 171)."""
    w, h = aspect
    return -(-size * w // h)


@dataclass
class Summary:
    """What a preparation did, printed at the end and returned by the API."""

    dataset: str
    store: Path
    counts: dict = field(default_factory=dict)
    expected: dict = field(default_factory=dict)
    missing: dict = field(default_factory=dict)
    complete: bool = False
    skipped_shards: int = 0
    written_shards: int = 0
    failures: int = 0
    failure_kinds: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def record(self, manifest: dict) -> None:
        """Take the counts, completeness and failures from the manifest :meth:`StoreWriter.finish` wrote."""
        self.counts, self.expected, self.missing = manifest["counts"], manifest["expected"], manifest["missing"]
        self.complete, self.failures = manifest["complete"], manifest["failures"]
        self.failure_kinds = manifest["failure_kinds"]

    def text(self) -> str:
        """A human summary: counts against the card's, completeness, failures, resumed shards."""
        lines = [f"{self.dataset}: prepared store {self.store}"]
        for split in sorted(set(self.counts) | set(self.expected)):
            n, exp = self.counts.get(split, 0), self.expected.get(split)
            if exp is None:
                tag = " (not a split of the card)"
            elif exp == n:
                tag = " (as the card expects)"
            else:
                tag = f" (the card expects {exp:,}: {exp - n:,} missing)" if n < exp else f" (card: {exp:,})"
            lines.append(f"  {split}: {n:,} videos{tag}")
        lines.append(f"  shards written {self.written_shards}, already done {self.skipped_shards}")
        if self.complete:
            lines.append("  complete: every split holds the card's count")
        else:
            short = sum(self.missing.values())
            lines.append(
                f"  INCOMPLETE: {short:,} of the card's {sum(self.expected.values()):,} videos missing"
                if short
                else "  INCOMPLETE: the counts differ from the card's"
            )
        if self.failures:
            kinds = ", ".join(f"{k} {v:,}" for k, v in self.failure_kinds.items())
            report = self.store / "failures.jsonl"
            where = f"listed in {report}" if report.exists() else f"see `vgbench data info {self.dataset}`"
            lines.append(f"  {self.failures:,} videos could not be used ({kinds}): {where}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)
