"""The tensor contract and every conversion between its scales, in one place.

- **Videos on disk and in sample sets**: (N, T, H, W, C), C = 3 (grey models' output repeated) or 1, uint8 levels
  0-255, or floats in a declared range ``0-255``, ``0-1`` or ``-1-1`` (:func:`parse_range`, :func:`detect_range`).
- **Model input** (VQ-VAE, prior): float (B, C, T, H, W) on [-0.5, 0.5], VideoGPT's ``u / 255 - 0.5``
  (:func:`to_model_input`).
- **Decoder output -> stored samples**: clamp to [-0.5, 0.5], +0.5, ``floor(255 x)`` (VideoGPT's
  ``(x * 255).astype(uint8)``, metrics.md §7): :func:`to_uint8`, and :func:`to_rgb_uint8` for the FVD family.
- **Network scale of the metrics**: float32 0-255 with the protocol's quantisation (:func:`to_network_scale`);
  real clips as float64 uint8 levels for PSNR/SSIM (:func:`on_levels`).
"""

from __future__ import annotations

import numpy as np
import torch

from vgbench.errors import InputError

RANGE_TOL = 1e-3  # float rounding slack at the ends of a declared range
RANGES = {"0-255": (0.0, 255.0), "0-1": (0.0, 1.0), "-1-1": (-1.0, 1.0)}
LEVEL_TOL = 1e-3  # a reference value farther than this from a uint8 level is not on the levels (float input)


def parse_range(value: str | None) -> str | None:
    """Normalise a ``--range`` value; None means auto-detect."""
    if value in (None, "", "auto"):
        return None
    aliases = {
        "0-255": "0-255",
        "0,255": "0-255",
        "uint8": "0-255",
        "0-1": "0-1",
        "0,1": "0-1",
        "-1-1": "-1-1",
        "-1,1": "-1-1",
        "[-1,1]": "-1-1",
        "[0,1]": "0-1",
        "[0,255]": "0-255",
    }
    if value not in aliases:
        raise InputError(f"unknown value range {value!r}; allowed: auto, 0-255, 0-1, -1-1")
    return aliases[value]


def to_0_255(batch: np.ndarray, value_range: str) -> np.ndarray:
    """Map a batch to float32 on the 0-255 scale (uint8 passes through as float32)."""
    x = batch.astype(np.float32, copy=False)
    if value_range == "0-1":
        return x * np.float32(255.0)
    if value_range == "-1-1":
        return (x + np.float32(1.0)) * np.float32(127.5)
    return x


def detect_range(batch: np.ndarray) -> str:
    """Guess a float batch's range from its extremes (reported to the user; ``--range`` overrides)."""
    lo, hi = float(np.min(batch)), float(np.max(batch))
    if lo < -RANGE_TOL:
        return "-1-1"
    if hi <= 1.0 + RANGE_TOL:
        return "0-1"
    return "0-255"


def to_network_scale(batch: np.ndarray, value_range: str, quantize: str) -> np.ndarray:
    """Raw batch -> float32 (B, T, H, W, C) on the 0-255 scale, with the protocol's uint8 conversion.

    - ``none``: no quantisation (the official pipeline takes 0-255 values of any dtype as they are);
    - ``truncate``: VideoGPT's ``(x * 255).astype(uint8)`` on [0, 1] data. uint8 input first makes VideoGPT's
      loader round trip u -> u/255 - 0.5 -> +0.5, which turns 63 of the 256 levels into u - 1;
    - ``round``: StyleGAN-V's ``clamp(x * 127.5 + 128, 0, 255).to(uint8)`` on [-1, 1] data.
    """
    f32 = np.float32
    if quantize == "none":
        if value_range == "0-1":
            return batch.astype(f32) * f32(255.0)
        if value_range == "-1-1":
            return (batch.astype(f32) + f32(1.0)) * f32(127.5)
        return batch.astype(f32)
    if quantize == "truncate":
        if batch.dtype == np.uint8:
            unit = (batch.astype(f32) / f32(255.0) - f32(0.5)) + f32(0.5)
        elif value_range == "0-1":
            unit = batch.astype(f32)
        elif value_range == "-1-1":
            unit = batch.astype(f32) * f32(0.5) + f32(0.5)
        else:
            unit = batch.astype(f32) / f32(255.0)
        return np.floor(np.clip(unit * f32(255.0), 0, 255)).astype(f32)
    if quantize == "round":
        if batch.dtype == np.uint8:
            return batch.astype(f32)
        if value_range == "-1-1":
            v = batch.astype(f32) * f32(127.5) + f32(128.0)
        elif value_range == "0-1":
            v = batch.astype(f32) * f32(255.0) + f32(0.5)
        else:
            v = batch.astype(f32) + f32(0.5)
        return np.floor(np.clip(v, 0, 255)).astype(f32)
    raise InputError(f"unknown quantize mode {quantize!r}; allowed: none, truncate, round")


def to_uint8(video: torch.Tensor) -> torch.Tensor:
    """Decoder output (B, C, T, H, W) on the [-0.5, 0.5] scale -> uint8 (B, T, H, W, C): clamp(-0.5, 0.5) + 0.5
    (videogpt.md §6), then floor(255 x), VideoGPT's ``(x * 255).astype(uint8)`` (metrics.md §7). Samples and
    reconstructions share this conversion, so FVD* compares like with like and the paper's FVD path is reproduced;
    a sample stored this way equals what VideoGPT hands its I3D."""
    x = (video.float().clamp(-0.5, 0.5) + 0.5) * 255.0
    return x.floor_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 4, 1).contiguous()


def to_rgb_uint8(x: torch.Tensor) -> np.ndarray:
    """Decoder output (B, C, T, H, W) on [-0.5, 0.5] -> uint8 (B, T, H, W, 3), as samples are stored (§7): clamp,
    +0.5, floor(255 x); grey repeated to RGB for I3D."""
    u = to_uint8(x).cpu().numpy()  # (B, T, H, W, C)
    return np.repeat(u, 3, axis=-1) if u.shape[-1] == 1 else u


def to_model_input(batch: np.ndarray, in_channels: int, device) -> torch.Tensor:
    """Clips (B, T, H, W, C) on the 0-255 scale -> float (B, in_channels, T, H, W) on [-0.5, 0.5] (VideoGPT's
    u / 255 - 0.5); 3-channel clips of a grey model must have equal channels."""
    x = torch.from_numpy(np.ascontiguousarray(batch)).float()
    if x.shape[-1] != in_channels:
        if in_channels == 1 and x.shape[-1] == 3:
            if not torch.equal(x[..., :1].expand_as(x), x):
                raise InputError("this model reads grey clips, but the reference clips have colour (channels differ)")
            x = x[..., :1]
        else:
            raise InputError(f"the model reads {in_channels}-channel clips, the reference has {x.shape[-1]} channels")
    return (x / 255.0 - 0.5).permute(0, 4, 1, 2, 3).contiguous().to(device)  # (B, C, T, H, W)


def on_levels(batch: np.ndarray) -> tuple[np.ndarray, bool]:
    """Real clips (B, T, H, W, C) on the 0-255 scale -> the nearest uint8 levels as float64, and whether any value
    lay off the levels (a float reference; uint8 data never does)."""
    x = np.clip(batch.astype(np.float64), 0, 255)
    levels = np.rint(x)
    return levels, bool(np.abs(x - levels).max(initial=0.0) > LEVEL_TOL)
