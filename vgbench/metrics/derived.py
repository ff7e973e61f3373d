"""Metrics of a checkpoint: the video sets a VideoGPT checkpoint makes from a reference, and the clips it scores.

- **Reconstructions** (R-FVD, FVD*, NMSE, PSNR, SSIM): each reference clip encoded and decoded by the checkpoint's
  VQ-VAE. For the FVD family they are stored like samples (metrics.md §7): clamped to [-0.5, 0.5], shifted to
  [0, 1] and truncated to uint8 (``floor(255 x)``, VideoGPT's ``(x * 255).astype(uint8)``).
- **Samples** (FVD with ``--checkpoint``, the paper's BAIR protocol, metrics.md §8): per trial, one window per
  reference video (random windows re-drawn every trial when the protocol has several trials, the fixed window
  otherwise); sample i is conditioned on the first ``conditioning_frames`` frames of real window i (regenerated,
  not pasted) with the seed ``sample_seed(protocol seed, i)``. The real windows of each trial become the reference
  set, so samples and real clips are paired per trial.

Derived sets are written once to ``<cache>/derived/<key>.npy`` (uint8 (N, T, H, W, 3)) with a ``.json`` of their
provenance, keyed by the checkpoint's sha256, the reference's identity and every parameter that changes them, so
R-FVD and FVD* of the same checkpoint share the reconstructions. Under torchrun each process makes its share.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vgbench import cache, dist
from vgbench.errors import InputError
from vgbench.tensors import to_model_input, to_rgb_uint8

log = logging.getLogger(__name__)

DERIVED_FORMAT = "vgbench-derived/1"


# ----------------------------------------------------------------------------------------------------------
# Checkpoints


def load_checkpoint(path, device: str = "auto"):
    """(network in eval mode, Checkpoint, torch device) of a vgbench checkpoint."""
    from vgbench.device import resolve_device
    from vgbench.models import checkpoint as ckpt_mod

    dev = resolve_device(device)
    model, ck = ckpt_mod.load_model(path, dev)
    return model, ck, dev


def vqvae_of(model):
    """The VQ-VAE of a checkpoint's network (a VQ-VAE itself, or the one under a prior)."""
    return getattr(model, "vqvae", model)


# ----------------------------------------------------------------------------------------------------------
# Reference clips


class ClipSource:
    """Reference clips in a fixed order: a prepared split (``bair:test``, windows chosen by the protocol) or any
    sample set vgbench reads. ``batches`` yields float32 (B, T, H, W, C) on the 0-255 scale."""

    def __init__(self, reference, frames: int, windows: str = "fixed", seed: int = 0, epoch: int = 0):
        from vgbench import datasets
        from vgbench.video import SampleSet

        self.reference, self.frames, self.windows, self.seed, self.epoch = str(reference), frames, windows, seed, epoch
        self.view = self.samples = None
        if not Path(str(reference)).exists() and datasets.parse_ref(str(reference)) is not None:
            self.view = datasets.open_split(str(reference), clip_len=frames, seed=seed, windows=windows)
            self.view.set_epoch(epoch)
            self.count = len(self.view)
        else:
            if windows != "fixed" or epoch:
                raise InputError(
                    f"{reference}: per-trial random windows need a prepared dataset split (NAME:SPLIT such as "
                    "bair:test); a file of clips has fixed clips"
                )
            self.samples = SampleSet.open(reference)
            self.count = self.samples.count

    def batches(self, batch_size: int, lo: int = 0, hi: int | None = None) -> Iterator[np.ndarray]:
        from vgbench.video import to_0_255

        hi = self.count if hi is None else hi
        if self.view is not None:
            for i in range(lo, hi, batch_size):
                yield np.stack([self.view[j]["video"].numpy() for j in range(i, min(i + batch_size, hi))]).astype(
                    np.float32
                )
            return
        for b in self.samples.iter_batches(batch_size, lo, hi, frames=self.frames, min_frames=self.frames):
            yield to_0_255(b, self.samples.value_range)

    def labels(self, lo: int, hi: int) -> list[int]:
        """Class labels of clips [lo, hi) (a labelled prepared split, e.g. UCF-101)."""
        if self.view is None:
            raise InputError(f"{self.reference}: class labels need a prepared dataset split (NAME:SPLIT)")
        out = [int(self.view[i]["label"]) for i in range(lo, hi)]
        if any(v < 0 for v in out):
            raise InputError(
                f"{self.reference}: the split has unlabelled clips; a class-conditional prior needs labels"
            )
        return out

    def identity(self) -> dict:
        """What a derived set's cache key and record need: the source and the windows drawn from it."""
        if self.view is not None:
            manifest = self.view.store.folder / "manifest.json"
            return {
                "dataset": self.reference,
                "manifest_sha256": cache.sha256_file(manifest),
                "frames": self.frames,
                "windows": self.windows,
                "seed": self.seed,
                "epoch": self.epoch,
                "count": self.count,
            }
        return {**self.samples.describe(), "frames": self.frames}  # describe() names the content by its sha256


# ----------------------------------------------------------------------------------------------------------
# Derived sets


def _key(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def build_derived(
    provenance: dict, count: int, make: Callable[[int, int], np.ndarray], batch_size: int, desc: str
) -> Path:
    """``<cache>/derived/<key>.npy`` of uint8 (count, T, H, W, 3) made by ``make(lo, hi)`` batch by batch; reused
    when present. Under torchrun every process makes a contiguous share, rank 0 joins them."""
    from vgbench.metrics.planning import progress

    folder = cache.cache_dir("derived")
    key = _key(provenance)
    path, meta = folder / f"{key}.npy", folder / f"{key}.json"
    if path.exists() and meta.exists():
        log.info("%s from the cache: %s", desc, path)
        return path
    rank, world = dist.rank_and_size()
    lo, hi = dist.shard(0, count, rank, world)
    bar = progress(hi - lo, desc, disable=rank != 0)
    parts = []
    for i in range(lo, hi, batch_size):
        parts.append(make(i, min(i + batch_size, hi)))
        bar.update(len(parts[-1]))
    bar.close()
    local = np.concatenate(parts) if parts else None
    if world > 1:  # every rank's share through a file beside the result; rank 0 joins them in order
        if local is not None:
            with cache.atomic_path(folder / f".{key}.rank{rank:05d}.npy") as tmp, open(tmp, "wb") as f:
                np.save(f, local)
        dist.barrier()
        if rank == 0:
            shares = [folder / f".{key}.rank{r:05d}.npy" for r in range(world)]
            local = np.concatenate([np.load(f) for f in shares if f.exists()])
    if rank == 0:
        with cache.atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, local)
        record = json.dumps({"format": DERIVED_FORMAT, **provenance}, indent=1, sort_keys=True, default=str)
        cache.atomic_write_bytes(meta, (record + "\n").encode())
        for r in range(world):
            (folder / f".{key}.rank{r:05d}.npy").unlink(missing_ok=True)
    dist.barrier()
    return path


def reconstructions(
    checkpoint, reference, frames: int = 16, device: str = "auto", batch_size: int = 16
) -> tuple[Path, dict]:
    """The cached uint8 reconstructions of ``reference``'s fixed clips by ``checkpoint``'s VQ-VAE, and their
    provenance."""
    model, ck, dev = load_checkpoint(checkpoint, device)
    vq = vqvae_of(model)
    src = ClipSource(reference, frames)
    prov = {
        "kind": "reconstructions",
        "checkpoint": ck.describe(),
        "reference": src.identity(),
        "quantize": "clamp to [-0.5, 0.5], +0.5, floor(255 x)",
    }

    def make(lo: int, hi: int) -> np.ndarray:
        (batch,) = list(src.batches(hi - lo, lo, hi))
        with torch.no_grad():
            x = to_model_input(batch, vq.config.in_channels, dev)
            # clip by clip: the same bytes whatever the batching and the number of processes
            return np.concatenate([to_rgb_uint8(vq.decode(vq.encode(c[None]))) for c in x])

    return build_derived(prov, src.count, make, batch_size, "reconstructions"), prov


def sampled_with_reference(
    checkpoint, reference, protocol, device: str = "auto", batch_size: int = 16
) -> tuple[Path, Path, dict, list[str]]:
    """(samples, real windows, provenance, notes) for FVD from a prior checkpoint (the paper's BAIR protocol)."""
    from vgbench.samplesdir import sample_seed

    model, ck, dev = load_checkpoint(checkpoint, device)
    if ck.vqvae is None:
        raise InputError(
            f"{checkpoint}: a VQ-VAE checkpoint ({ck.card}); samples need a prior checkpoint (prior/checkpoints/*.pt)"
        )
    notes = []
    p = protocol
    frames = p.frames or model.vqvae.config.frames
    trials = p.trials
    windows = "random" if trials > 1 else "fixed"
    sources = [ClipSource(reference, frames, windows, p.seed, epoch=t) for t in range(trials)]
    per_trial = min(sources[0].count, p.num_reference or sources[0].count)
    if p.num_samples and p.num_samples != per_trial:
        notes.append(f"samples: {per_trial} per trial, one per reference clip (the protocol names {p.num_samples})")
    need = getattr(model.prior.config, "cond_frames", 0)
    cond_frames = p.conditioning_frames if p.conditioning_frames is not None else need
    if need and cond_frames != need:
        raise InputError(
            f"protocol conditions on {cond_frames} frame(s), the prior {ck.card} on {need}; choose a matching protocol"
        )
    if not need and cond_frames:
        notes.append(f"the prior {ck.card} is unconditional: the protocol's {cond_frames} conditioning frame(s) unused")
        cond_frames = 0
    if getattr(model.prior.config, "n_classes", 0):
        raise InputError(f"{ck.card} is class-conditional; FVD with --checkpoint supports frame-conditional and "
                         "unconditional priors (sample with `vgbench sample` and pass --samples)")  # fmt: skip
    count = per_trial * trials
    base = {
        "checkpoint": ck.describe(),
        "reference": [s.identity() for s in sources],
        "per_trial": per_trial,
        "trials": trials,
        "frames": frames,
    }

    def real(lo: int, hi: int) -> np.ndarray:
        out = []
        for i in range(lo, hi):
            t, j = divmod(i, per_trial)
            (b,) = list(sources[t].batches(1, j, j + 1))
            out.append(b.astype(np.uint8))
        return np.concatenate(out)

    real_prov = {"kind": "real windows", **base}
    real_path = build_derived(real_prov, count, real, batch_size, "real windows")
    real_arr = np.load(real_path, mmap_mode="r")

    def fake(lo: int, hi: int) -> np.ndarray:
        cond = None
        if cond_frames:
            x = to_model_input(np.asarray(real_arr[lo:hi], np.float32), model.vqvae.config.in_channels, dev)
            cond = {"frames": x[:, :, :cond_frames]}
        with torch.no_grad():
            v = model.sample(cond or hi - lo, seeds=[sample_seed(p.seed, i) for i in range(lo, hi)], batch_size=hi - lo)
        v = np.asarray(v)
        return np.repeat(v, 3, axis=-1) if v.shape[-1] == 1 else v

    fake_prov = {
        "kind": "samples",
        **base,
        "conditioning_frames": cond_frames,
        "seeds": f"vgbench.samplesdir.sample_seed({p.seed}, i)",
        "temperature": 1.0,
    }
    fake_path = build_derived(fake_prov, count, fake, batch_size, "samples")
    return fake_path, real_path, {"samples": fake_prov, "real": real_prov}, notes


def compared_sets(request, device: str = "auto", batch_size: int = 16) -> tuple[Any, Any, dict]:
    """The two video sets an FVD-family request compares, as paths or dataset references: the given ones, or the
    sets its checkpoint makes (``derive``), and {"samples"/"reference": provenance, "checkpoint": ...} of the made
    ones. Samples from a checkpoint come with their paired real windows, which replace the reference set."""
    samples, reference, made = request.samples, request.reference, {}
    kind = request.derived("samples") or request.derived("reference")
    if kind is None:
        return samples, reference, made
    frames = getattr(request.protocol, "frames", None) or 16
    if request.derived("samples") == "samples":
        samples, reference, prov, notes = sampled_with_reference(
            request.checkpoint, request.reference, request.protocol, device, batch_size
        )
        made = {"samples": prov["samples"], "reference": prov["real"], "notes": notes}
    else:
        path, prov = reconstructions(request.checkpoint, request.reference, frames, device, batch_size)
        slot = "samples" if request.derived("samples") else "reference"
        made = {slot: prov, "notes": []}
        if slot == "samples":
            samples = path
        else:
            reference = path
    made["checkpoint"] = (made.get("samples") or made.get("reference"))["checkpoint"]
    return samples, reference, made
