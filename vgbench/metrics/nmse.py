"""Normalised mean squared error of VQ-VAE reconstructions (metrics.md §10; VideoGPT Table 3).

NMSE = mean over every pixel, channel and frame of (x_hat - x)^2, divided by a variance on the same pixel scale.
VideoGPT's code divides by the constant 0.06 on its [-0.5, 0.5] scale for every dataset (``variance=0.06``); the
paper says "the variance of the dataset", which ``variance=measured`` computes from the training split. Whether
reconstructions are clamped to the data range first is a protocol choice (the VideoGPT loss uses the unclamped
decoder output). Sums are accumulated in float64, so the value does not depend on the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

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


@dataclass
class SquaredErrorSum:
    """Streaming sum of squared errors (float64) and the number of values; ``update`` per batch."""

    total: float = 0.0
    count: int = 0

    def update(self, recon: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch (any matching shapes)."""
        if recon.shape != target.shape:
            raise ValueError(f"reconstruction shape {tuple(recon.shape)} differs from target {tuple(target.shape)}")
        self.total += float(((recon.double() - target.double()) ** 2).sum())
        self.count += recon.numel()

    def compute(self, variance: float) -> float:
        """The NMSE of everything added so far."""
        if self.count == 0:
            raise ValueError("no values were added")
        return self.total / self.count / variance


@dataclass
class PixelMoments:
    """Streaming mean and variance of pixel values (float64 sums), for ``variance=measured``."""

    total: float = 0.0
    total_sq: float = 0.0
    count: int = 0

    def update(self, x: torch.Tensor) -> None:
        """Add a batch of pixel values."""
        x = x.double()
        self.total += float(x.sum())
        self.total_sq += float((x * x).sum())
        self.count += x.numel()

    def variance(self) -> float:
        """Population variance of every value added."""
        if self.count == 0:
            raise ValueError("no values were added")
        mean = self.total / self.count
        return max(self.total_sq / self.count - mean * mean, 0.0)


def evaluate_nmse(request, device: str = "auto", batch_size: int | None = None, run: str = ""):
    """NMSE of the checkpoint's reconstructions of the ``--reference`` split under an ``nmse`` protocol.

    ``request`` is a :class:`vgbench.metrics.contract.MetricRequest` (checkpoint, reference, NMSEProtocol).
    """
    # lead: implemented in issue 12
    from vgbench.errors import VgbenchError

    raise VgbenchError(
        f"{request.name} needs a VideoGPT checkpoint; arrives with `vgbench train` (the VQ-VAE models are not "
        "in this version yet)"
    )
