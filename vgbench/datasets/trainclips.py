"""The clips a training run reads, and their order: a pure function of (seed, step), whatever the world size.

Global batch ``s`` is slice ``s`` of a per-epoch permutation seeded with (seed, epoch); rank r of W takes the r-th
contiguous part, split into ``accum`` micro-batches, so 1 process and W processes see the same global batch and a
resumed run continues at the same clip. Clip windows are redrawn per epoch by
:class:`vgbench.datasets.loader.ClipDataset` from (seed, epoch, index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vgbench import cache, cards, datasets
from vgbench.datasets.loader import ClipDataset
from vgbench.errors import InputError


class GlobalBatches:
    """Index lists of this process's micro-batches for each step: a pure function of (seed, step).

    Global batch ``s`` is ``perm_e[k*B:(k+1)*B]`` with ``e, k = divmod(s, n // B)`` and ``perm_e`` a permutation of
    the ``n`` items seeded with (seed, e) (the incomplete tail of an epoch is dropped). Items are encoded as
    ``e * n + i`` so that the dataset can redraw random windows per epoch inside DataLoader workers.
    """

    def __init__(self, n: int, batch: int, seed: int, rank: int, world: int, accum: int):
        if batch % (world * accum):
            raise InputError(
                f"global batch {batch} is not divisible by processes x accumulation = {world} x {accum}; "
                "choose --batch-size or --accum so that it is"
            )
        if n < batch:
            raise InputError(f"the training split has {n} clips, fewer than one global batch of {batch}")
        self.n, self.batch, self.seed, self.rank, self.world, self.accum = n, batch, seed, rank, world, accum
        self.per_epoch = n // batch
        self._perm: tuple[int, np.ndarray] | None = None

    def micro_batches(self, step: int) -> list[list[int]]:
        """This rank's ``accum`` micro-batches of global batch ``step`` (encoded indices)."""
        epoch, k = divmod(step, self.per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n))
        glob = self._perm[1][k * self.batch : (k + 1) * self.batch]
        local = np.array_split(glob, self.world)[self.rank]
        return [[int(epoch * self.n + i) for i in part] for part in np.array_split(local, self.accum)]


class EpochClips(torch.utils.data.Dataset):
    """A ClipDataset read with encoded ``epoch * n + index`` items (random windows redrawn per epoch)."""

    def __init__(self, clips):
        self.clips = clips
        self.n = len(clips)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, code: int) -> dict:
        epoch, index = divmod(int(code), self.n)
        self.clips.set_epoch(epoch)
        return self.clips[index]


@dataclass
class TrainData:
    """Training and validation clips (float CTHW in [-0.5, 0.5]) and their provenance."""

    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset | None
    describe: dict


AUGMENT = {  # training.augment -> ClipDataset (crop, flip); evaluation clips are always the centre, unflipped
    "none": ("center", False),
    "hflip": ("center", True),
    "random_crop_flip": ("random", True),
}


def store_data(spec: cards.TrainingSpec, channels: int, seed: int, root=None, variant: str | None = None) -> TrainData:
    """Clips of a prepared store, as the card's training spec says; a missing or broken store is a clear error.

    The store is the dataset's variant for the spec's split and resolution (UCF-101 ``fold1/train`` at 128:
    ``fold1_128``, split ``train``) unless ``variant`` names one. Training clips are augmented as
    ``spec.augment`` says (:data:`AUGMENT`), validation clips never."""

    mapped, split = datasets.store_split(spec.dataset, spec.split, spec.resolution)
    val_split = datasets.store_split(spec.dataset, spec.val_split, spec.resolution)[1] if spec.val_split else ""
    try:
        store = datasets.open_store(spec.dataset, variant or mapped, root)
    except InputError as exc:
        raise InputError(f"{exc} (training reads its clips from the prepared store)") from exc
    store.require_splits([split, val_split])
    clip_hw = store.crop_size or tuple(store.manifest.get("frame_shape") or (None, None))[:2]
    if clip_hw[0] is not None and tuple(clip_hw) != (spec.resolution, spec.resolution):
        raise InputError(
            f"{store.folder}: clips of {clip_hw[0]}x{clip_hw[1]}, but the card trains at {spec.resolution}x"
            f"{spec.resolution} (training.resolution); prepare that size (`vgbench data prepare {spec.dataset} "
            f"--resolution {spec.resolution}`) or train another card"
        )
    extras = ()
    crop, flip = AUGMENT[spec.augment]
    common = {"clip_len": spec.clip_len, "output": "float_cthw", "channels": channels, "seed": seed}
    train = ClipDataset(store, split, windows=spec.windows, extras=extras, crop=crop, flip=flip, **common)
    val = ClipDataset(store, val_split, windows="fixed", **common) if val_split else None
    manifest = store.folder / "manifest.json"
    return TrainData(
        train,
        val,
        {
            "dataset": spec.dataset,
            "store": str(store.folder),
            "manifest_sha256": cache.sha256_file(manifest),
            "split": spec.split,
            "val_split": spec.val_split,
            "train_clips": len(train),
            "val_clips": len(val) if val is not None else 0,
            "windows": spec.windows,
            "clip_len": spec.clip_len,
            "augment": spec.augment,
        },
    )
