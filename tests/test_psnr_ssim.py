"""PSNR and SSIM known answers and parity of the SSIM library call with an independent numpy implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from vgbench.metrics.psnr_ssim import psnr_per_frame, ssim_per_frame


def _gauss_window(size=11, sigma=1.5):
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    g /= g.sum()
    return np.outer(g, g)


def ssim_numpy(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. 2004 on one (C, H, W) frame pair in [0, 1]: valid-region Gaussian statistics, mean over C, H, W."""
    w = _gauss_window()
    c1, c2 = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2
    vals = []
    for x, y in zip(a, b, strict=True):
        mx, my = correlate2d(x, w, "valid"), correlate2d(y, w, "valid")
        sxx = correlate2d(x * x, w, "valid") - mx**2
        syy = correlate2d(y * y, w, "valid") - my**2
        sxy = correlate2d(x * y, w, "valid") - mx * my
        vals.append(((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2)))
    return float(np.mean(vals))


def test_identical_frames():
    x = torch.rand(2, 3, 4, 16, 16)
    assert torch.all(psnr_per_frame(x, x) == 100.0)  # MSE floor 1e-10 -> 100 dB
    assert torch.allclose(ssim_per_frame(x, x), torch.ones(2, 4, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("delta", [0.1, 1 / 255, 0.5])
def test_psnr_of_a_constant_offset(delta):
    x = torch.full((1, 3, 2, 8, 8), 0.25, dtype=torch.float64)
    got = psnr_per_frame(x + delta, x)
    assert torch.allclose(got, torch.full((1, 2), -20 * math.log10(delta), dtype=torch.float64), rtol=1e-12)


def test_ssim_equals_the_formula():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (2, 3, 3, 24, 20))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    got = ssim_per_frame(torch.from_numpy(b), torch.from_numpy(a)).numpy()
    want = np.array([[ssim_numpy(b[i, :, t], a[i, :, t]) for t in range(3)] for i in range(2)])
    assert np.allclose(got, want, atol=1e-9), (got, want)
    assert 0.3 < got.mean() < 0.99


def test_bad_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr_per_frame(torch.zeros(1, 3, 2, 8, 8), torch.zeros(1, 3, 2, 8, 9))
    with pytest.raises(ValueError, match="at least 11 x 11"):
        ssim_per_frame(torch.zeros(1, 3, 2, 8, 8), torch.zeros(1, 3, 2, 8, 8))
