"""Normalised mean squared error of VQ-VAE reconstructions (metrics.md §10; VideoGPT Table 3).

NMSE = mean over every pixel, channel and frame of (x_hat - x)^2, divided by a variance on the same pixel scale.
VideoGPT's code divides by the constant 0.06 on its [-0.5, 0.5] scale for every dataset (``variance=0.06``); the
paper says "the variance of the dataset", which ``variance=measured`` computes from the training split: the
population variance of every value of every frame of the split's prepared store, as evaluation clips show them (the
centre window of a store with margins), from a 256-bin histogram of the uint8 values streamed shard by shard
(:meth:`vgbench.datasets.store.Store.pixel_histogram`) and reduced with exact integer arithmetic. The trainer sets a
``recon_variance: measured`` VQ-VAE's divisor with the same function (:func:`split_variance`). Whether
reconstructions are clamped to the data range first is a protocol choice (the VideoGPT loss uses the unclamped
decoder output). Sums are accumulated in float64, so the value does not depend on the batch size.
"""

from __future__ import annotations

import numpy as np
import torch

from vgbench.metrics.accumulate import RatioAccumulator
from vgbench.metrics.runner import ClipMetric, evaluate_clips

VIDEOGPT_VARIANCE = 0.06  # VG / VGP videogpt/vqvae.py: recon_loss = mse / 0.06, x in [-0.5, 0.5]


def nmse(recon: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, variance: float) -> float:
    """mean((recon - target)^2) / variance, in float64; shapes must match exactly."""
    r = torch.as_tensor(recon, dtype=torch.float64)
    t = torch.as_tensor(target, dtype=torch.float64)
    if r.shape != t.shape:
        raise ValueError(f"reconstruction shape {tuple(r.shape)} differs from target shape {tuple(t.shape)}")
    if not variance > 0:
        raise ValueError(f"variance must be positive, got {variance}")
    return float(((r - t) ** 2).mean() / variance)


class SquaredError(RatioAccumulator):
    """NMSE: squared errors of reconstructions (float64) over the number of values, divided by ``variance``."""

    def __init__(self, n: int, variance: float = 1.0):
        super().__init__(n)
        self.scale = 1.0 / variance
        self.variance = variance

    def update(self, scored: torch.Tensor, target: torch.Tensor, at: int) -> None:
        """Reconstructions as scored (clamped or not) and their targets, (B, C, T, H, W), clips ``at ..``."""
        if scored.shape != target.shape:
            raise ValueError(f"reconstruction shape {tuple(scored.shape)} differs from target {tuple(target.shape)}")
        sq = (scored.double() - target.double()) ** 2
        self.add(at, sq.flatten(1).sum(1), target[0].numel(), float(sq.sum()), scored.numel())

    def compute(self) -> float:
        total, count = self.states["total"]
        return total / count / self.variance


class NMSEMetric(ClipMetric):
    """NMSE of the checkpoint's reconstructions: squared errors of each clip against its reconstruction."""

    def open(self, request, plan, device) -> None:
        from vgbench.metrics.derived import load_checkpoint, vqvae_of

        self.model, self.ck, plan.device = load_checkpoint(request.checkpoint, device)
        self.vq = vqvae_of(self.model)

    def accumulator(self, request, plan) -> SquaredError:
        p = request.protocol
        if p.variance == "measured":
            self.variance, self.how = measured_variance(_split_ref(request.reference, p.variance_split))
        else:
            self.variance, self.how = float(p.variance), "constant"
        return SquaredError(plan.n, self.variance)

    def update(self, acc: SquaredError, batch, at: int, plan) -> None:
        from vgbench.tensors import to_model_input

        x = to_model_input(batch, self.vq.config.in_channels, plan.device)
        recon = self.vq.decode(self.vq.encode(x))
        acc.update(recon.clamp(-0.5, 0.5) if self.clamp else recon, x, at)

    def fields(self, request, plan, acc) -> dict:
        return {
            "samples": {
                "role": request.role("samples") or "reconstructions",
                "made_from_checkpoint": self.ck.describe(),
            },
            "extractor": {"variance": self.variance, "variance_source": self.how, "clamp": self.clamp},
            "checkpoint": self.ck.describe(),
        }


def evaluate_nmse(request, device: str = "auto", batch_size: int | None = None, run: str = ""):
    """NMSE of the checkpoint's reconstructions of the ``--reference`` clips under an ``nmse`` protocol.

    ``request`` is a :class:`vgbench.metrics.contract.MetricRequest` (checkpoint, reference, NMSEProtocol).
    Reconstructions are scored as the decoder makes them (float, clamped only when the protocol says so) against
    the clips on the [-0.5, 0.5] scale; sums in float64, sharded over torchrun processes.
    """
    metric = NMSEMetric()
    metric.clamp = request.protocol.clamp
    return evaluate_clips(request, metric, device, batch_size, run)


def _split_ref(reference, split: str) -> str:
    """``bair:test`` -> ``bair:train`` (the split a measured variance is taken from)."""
    from vgbench import datasets
    from vgbench.errors import InputError

    parsed = datasets.parse_ref(str(reference))
    if parsed is None:
        raise InputError(f"variance 'measured' needs a dataset reference NAME:SPLIT, got {reference}")
    name, variant, _ = parsed
    return f"{name}{'/' + variant if variant else ''}:{split}"


def variance_from_histogram(counts: np.ndarray) -> float:
    """Population variance of uint8 values given as counts (256,), on the [-0.5, 0.5] scale (x / 255 - 0.5).

    Exact: with N values, S1 = sum k n_k and S2 = sum k^2 n_k as Python integers, var = (N S2 - S1^2) / (N^2 255^2)
    is a rational computed without rounding and converted to float once (correctly rounded). The shift by 0.5
    does not change a variance."""
    from fractions import Fraction

    counts = np.asarray(counts)
    if counts.shape != (256,) or (counts < 0).any():
        raise ValueError(f"expected 256 non-negative counts, got shape {counts.shape}")
    n = int(counts.sum())
    if n == 0:
        raise ValueError("no values were counted")
    k = range(256)
    s1 = sum(i * int(c) for i, c in zip(k, counts, strict=True))
    s2 = sum(i * i * int(c) for i, c in zip(k, counts, strict=True))
    return float(Fraction(n * s2 - s1 * s1, n * n * 255 * 255))


def split_histogram(store, split: str) -> np.ndarray:
    """Counts (256,) int64 of every value of ``split`` of a prepared store (:meth:`Store.pixel_histogram`); under
    torchrun each process counts a share of the shards and the counts are summed (float64 sums of integers below
    2^53: exact)."""
    from vgbench import dist

    rank, world = dist.rank_and_size()
    counts = store.pixel_histogram(split, part=(rank, world))
    if world > 1:
        counts = np.rint(dist.all_reduce_sum([counts.astype(np.float64)])[0]).astype(np.int64)
    return counts


def split_variance(store, split: str) -> tuple[float, dict]:
    """(variance on the [-0.5, 0.5] scale, provenance) of every value of ``split`` of a prepared store: the
    ``measured`` NMSE divisor, for the metric and for training alike."""
    counts = split_histogram(store, split)
    variance = variance_from_histogram(counts)
    how = {
        "store": str(store.folder),
        "split": split,
        "values": int(counts.sum()),
        "method": "256-bin histogram of the uint8 values (centre windows), exact",
    }
    return variance, how


def measured_variance(reference: str) -> tuple[float, str]:
    """(pixel variance, description) of the prepared dataset split ``reference`` (``bair:train``)."""
    from vgbench import datasets

    name, variant, split = datasets.parse_ref(reference)
    variance, how = split_variance(datasets.open_store(name, variant), split)
    return variance, f"measured on {reference} ({how['values']:,} values of {how['store']}, exact histogram)"
