"""torch Datasets over prepared stores: clips for the models (float CTHW in [-0.5, 0.5]) and for FVD (uint8 THWC).

Windows:
- ``random``: one window per video per item, its start drawn from (seed, epoch, index): deterministic, independent
  of worker count and order, redrawn per epoch (``set_epoch``, like DistributedSampler). BAIR training: starts
  0..14 of 30 frames.
- ``fixed``: one window per video from (seed, index) only: evaluation sets (``bair:test``).
- ``all``: every window with start step ``step`` (torchvision ``VideoClips`` semantics): UCF-101 / TGIF training.

Spatial windows and flips (training augmentation, VideoGPT-Paper's UCF-101 ``_preprocess``):
- ``crop="center"``: the store's centre window (stores with margins, UCF-101), or the whole frame: evaluation.
- ``crop="random"``: a window anywhere in the video's picture, offsets uniform over every position (VGP's
  ``np.random.randint(0, w - R + 1)``; for UCF-101's 4:3 band only the column varies); needs a store with margins.
- ``flip=True``: the clip mirrored left-right with probability 1/2 (VGP's ``torch.flip(video, [3])``).
The draws come from their own stream keyed by (seed, epoch, index), so they do not move the windows' starts, do not
depend on the worker or process count, and are redrawn per epoch. VGP draws them from Python's and numpy's
global RNGs; the distributions are the same, the particular draws are not. VGP crops the float resize before
quantising; the store quantises first (its exact resize), as for every stored frame.

Map-style, so ``DataLoader(num_workers=N)`` and ``DistributedSampler`` work unchanged; the memory maps are opened
lazily in each worker.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from vgbench.datasets.store import Store
from vgbench.errors import InputError

WINDOWS = ("random", "fixed", "all")
OUTPUTS = ("uint8_thwc", "float_cthw")
CROPS = ("center", "random")
AUGMENT_STREAM = 1  # last word of the crop/flip RNG key, so that it never equals a window key


class ClipDataset(Dataset):
    """Clips of ``clip_len`` frames (every ``stride``-th frame) from one split of a prepared store."""

    def __init__(
        self,
        store: str | Path | Store,
        split: str,
        clip_len: int = 16,
        windows: str = "random",
        step: int = 1,
        stride: int = 1,
        seed: int = 0,
        output: str = "float_cthw",
        channels: int | None = None,
        extras: tuple[str, ...] = (),
        crop: str = "center",
        flip: bool = False,
    ):
        if windows not in WINDOWS:
            raise InputError(f"unknown windows {windows!r}; allowed: {', '.join(WINDOWS)}")
        if output not in OUTPUTS:
            raise InputError(f"unknown output {output!r}; allowed: {', '.join(OUTPUTS)}")
        if crop not in CROPS:
            raise InputError(f"unknown crop {crop!r}; allowed: {', '.join(CROPS)}")
        self.store = store if isinstance(store, Store) else Store(Path(store))
        if crop == "random" and self.store.crop_size is None:
            h, w = self.store.manifest.get("frame_shape", ["?", "?"])[:2]
            raise InputError(
                f"{self.store.folder}: random crops need a store with margins around the clips, but its frames are "
                f"the clips' ({h}x{w}, centre-cropped when prepared). Prepare the dataset again (`vgbench data "
                f"prepare {self.store.manifest.get('dataset', 'NAME')} --force` writes the margins where the "
                "dataset has them), or train without random crops (training.augment: none or hflip)"
            )
        self.crop, self.flip = crop, flip
        self.split, self.clip_len, self.windows, self.step, self.stride = split, clip_len, windows, step, stride
        self.seed, self.output, self.channels, self.extras, self.epoch = seed, output, channels, extras, 0
        self.span = (clip_len - 1) * stride + 1  # frames covered by one window
        refs = self.store.videos(split)
        self.lengths = np.array([r.length for r in refs], np.int64)
        self.usable = np.flatnonzero(self.lengths >= self.span)  # shorter videos give no clip (VideoClips)
        if len(self.usable) == 0:
            raise InputError(
                f"{self.store.folder}:{split}: no video has {self.span} frames for a {clip_len}-frame clip"
            )
        if windows == "all":
            n_per = (self.lengths[self.usable] - self.span) // step + 1
            self.offsets = np.concatenate([[0], np.cumsum(n_per)])

    def set_epoch(self, epoch: int) -> None:
        """Redraw ``random`` windows for a new epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return int(self.offsets[-1]) if self.windows == "all" else len(self.usable)

    def locate(self, index: int) -> tuple[int, int]:
        """(video index in the split, first frame) of item ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        if self.windows == "all":
            k = int(np.searchsorted(self.offsets, index, side="right") - 1)
            return int(self.usable[k]), int(index - self.offsets[k]) * self.step
        video = int(self.usable[index])
        key = [self.seed, index] if self.windows == "fixed" else [self.seed, self.epoch, index]
        start = int(np.random.default_rng(key).integers(0, self.lengths[video] - self.span + 1))
        return video, start

    def spatial(self, index: int, video: int) -> tuple[tuple[int, int, int, int] | None, bool]:
        """(window (top, left, h, w) or None for the whole frame, flipped) of item ``index`` of ``video``."""
        ref = self.store.videos(self.split)[video]
        crop = self.store.crop_size
        if self.crop == "center" and not self.flip:
            return ref.window(crop), False
        rng = np.random.default_rng([self.seed, self.epoch, index, AUGMENT_STREAM])
        flipped = bool(self.flip and rng.random() < 0.5)  # drawn first: its stream does not depend on the ranges
        if self.crop == "center":
            return ref.window(crop), flipped
        top, left, h, w = ref.picture
        return ref.window(
            crop, int(rng.integers(top, top + h - crop[0] + 1)), int(rng.integers(left, left + w - crop[1] + 1))
        ), flipped

    def __getitem__(self, index: int) -> dict:
        video, start = self.locate(index)
        box, flipped = self.spatial(index, video)
        x = self.store.frames(self.split, video, start, start + self.span, self.stride, box)  # (T, H, W, C) uint8
        if flipped:
            x = np.ascontiguousarray(x[:, :, ::-1])  # left-right
        if self.channels and x.shape[-1] != self.channels:
            x = np.repeat(x, self.channels // x.shape[-1], axis=-1)
        t = torch.from_numpy(x)
        if self.output == "float_cthw":
            t = t.permute(3, 0, 1, 2).float() / 255.0 - 0.5
        label = self.store.videos(self.split)[video].label
        item = {"video": t, "label": -1 if label is None else label, "index": video, "start": start}
        if self.store.crop_size is not None or self.flip:  # every item of this dataset has the same keys
            item.update(top=box[0] if box else 0, left=box[1] if box else 0, flipped=flipped)
        for key in self.extras:
            item[key] = torch.from_numpy(
                self.store.extra(self.split, video, key)[start : start + self.span : self.stride]
            )
        return item
