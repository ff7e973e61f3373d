"""PSNR and SSIM of reconstructions, per frame (the tokenizer metrics reported beside R-FVD, e.g. by TokenBench).

Definitions (frames on the [0, 1] scale, both videos quantised to uint8 levels first, as they are stored):

- PSNR of a frame = 10 log10(1 / max(MSE, 1e-10)) with the MSE over its pixels and channels; the floor caps an
  identical frame at 100 dB instead of infinity. Averaged over frames, then videos.
- SSIM (Wang et al. 2004) of a frame: Gaussian window 11 x 11, sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1,
  computed per channel on the window's valid region and averaged over pixels and channels; averaged over frames,
  then videos.

The SSIM map comes from torchmetrics (``structural_similarity_index_measure``, a vetted implementation), cropped
to the valid region here: torchmetrics 1.9 averages its map over the whole frame, including the 5-pixel border it
computes on reflection padding, which is not Wang et al.'s (or scikit-image's) convention. The test suite checks
the result against an independent numpy implementation of the formula. PSNR is one line and needs no library.
"""

from __future__ import annotations

import torch

PSNR_MSE_FLOOR = 1e-10
SSIM_PARAMS = {"kernel_size": 11, "sigma": 1.5, "k1": 0.01, "k2": 0.03, "data_range": 1.0}


def _frames(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) in [0, 1] -> (B*T, C, H, W) float64."""
    if x.ndim != 5:
        raise ValueError(f"expected videos (B, C, T, H, W), got shape {tuple(x.shape)}")
    b, c, t, h, w = x.shape
    return x.double().permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


def psnr_per_frame(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of every frame: (B, C, T, H, W) pairs in [0, 1] -> (B, T) float64."""
    if recon.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(recon.shape)} vs {tuple(target.shape)}")
    mse = ((_frames(recon) - _frames(target)) ** 2).flatten(1).mean(1).clamp_min(PSNR_MSE_FLOOR)
    return (10 * torch.log10(1.0 / mse)).view(recon.shape[0], recon.shape[2])


def ssim_per_frame(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM of every frame: (B, C, T, H, W) pairs in [0, 1] -> (B, T) float64 (frames at least 11 x 11)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    if recon.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(recon.shape)} vs {tuple(target.shape)}")
    if min(recon.shape[-2:]) < SSIM_PARAMS["kernel_size"]:
        raise ValueError(f"SSIM needs frames of at least 11 x 11 pixels, got {tuple(recon.shape[-2:])}")
    _, full = structural_similarity_index_measure(
        _frames(recon), _frames(target), reduction="none", return_full_image=True, **SSIM_PARAMS
    )
    pad = (SSIM_PARAMS["kernel_size"] - 1) // 2
    valid = full[..., pad:-pad, pad:-pad]  # drop the border computed on reflection padding
    return valid.flatten(1).mean(1).view(recon.shape[0], recon.shape[2])
