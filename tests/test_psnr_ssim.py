"""PSNR and SSIM known answers and parity of the SSIM library call with an independent numpy implementation."""

from __future__ import annotations

import math
from pathlib import Path

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


# ----------------------------------------------------------------------------------------------------------
# The engines (`vgbench eval --metric psnr|ssim --checkpoint CKPT --reference REF`) with known reconstructions:
# reconstructions() is replaced by a file of chosen uint8 clips, so the answer is known in closed form. The real
# reconstruction path is tested on a trained checkpoint in tests/test_checkpoint_metrics.py.

FAKE_CKPT = {"path": "/nowhere/final.pt", "sha256": "ab" * 32, "card": "vqvae.quickstart", "arch": "videogpt_vqvae"}


@pytest.fixture
def known_recon(monkeypatch, tmp_path):
    """Writes (reference, reconstructions) uint8 arrays and makes reconstructions() return the second."""
    from vgbench.metrics import derived

    calls = []

    def install(real: np.ndarray, recon: np.ndarray) -> Path:
        ref = tmp_path / "real.npy"
        np.save(ref, real)
        np.save(tmp_path / "recon.npy", recon)

        def fake(checkpoint, reference, frames=16, device="auto", batch_size=16):
            calls.append((str(checkpoint), str(reference), frames))
            prov = {"kind": "reconstructions", "checkpoint": FAKE_CKPT, "reference": {"path": str(reference)}}
            return tmp_path / "recon.npy", prov

        monkeypatch.setattr(derived, "reconstructions", fake)
        return ref

    install.calls = calls
    return install


def _levels(seed: int, n: int = 3, lo: int = 0, hi: int = 200) -> np.ndarray:
    """uint8 clips (N, 16, 16, 16, 3) on levels [lo, hi): 16 x 16 frames fit SSIM's 11 x 11 window."""
    return np.random.default_rng(seed).integers(lo, hi, (n, 16, 16, 16, 3), dtype=np.uint8)


@pytest.mark.parametrize("metric,want", [("psnr", 100.0), ("ssim", 1.0)])
def test_engine_identical_reconstructions(known_recon, metric, want):
    from vgbench import api

    real = _levels(0)
    ref = known_recon(real, real)
    r = api.evaluate(metric, reference=ref, checkpoint="/nowhere/final.pt")
    # identical frames: PSNR = 10 log10(1 / 1e-10) = 100 dB (the MSE floor); SSIM = 1 by definition
    assert r.value == pytest.approx(want, abs=1e-12)
    assert r.n_samples == 3 and r.checkpoint == FAKE_CKPT and not r.off_protocol
    assert r.samples["made_from_checkpoint"]["kind"] == "reconstructions"
    assert known_recon.calls == [("/nowhere/final.pt", str(ref), 16)]
    assert r.protocol == {"psnr": "per_frame", "ssim": "wang2004"}[metric] and r.higher_is_better


@pytest.mark.parametrize("delta", [1, 5, 55])
def test_engine_psnr_of_a_constant_offset(known_recon, delta):
    from vgbench import api

    real = _levels(1)
    ref = known_recon(real, real + np.uint8(delta))  # levels < 200: no wrap-around
    r = api.evaluate("psnr", reference=ref, checkpoint="c.pt")
    # every pixel off by delta levels: MSE = (delta / 255)^2, PSNR = 20 log10(255 / delta) in every frame
    assert r.value == pytest.approx(20 * math.log10(255 / delta), rel=1e-12)
    assert r.label == "PSNR (dB)"


@pytest.mark.parametrize("level,delta", [(100, 5), (20, 30), (0, 255)])
def test_engine_ssim_of_a_constant_offset_on_flat_frames(known_recon, level, delta):
    from vgbench import api

    real = np.full((2, 16, 16, 16, 3), level, np.uint8)
    ref = known_recon(real, real + np.uint8(delta))
    r = api.evaluate("ssim", reference=ref, checkpoint="c.pt")
    # flat frames: zero variances, so the contrast-structure term (0 + C2) / (0 + C2) = 1 and SSIM is the
    # luminance term (2 mx my + C1) / (mx^2 + my^2 + C1), C1 = 0.01^2 (Wang et al. 2004, eq. 13 with L = 1)
    mx, my, c1 = level / 255, (level + delta) / 255, 0.01**2
    assert r.value == pytest.approx((2 * mx * my + c1) / (mx**2 + my**2 + c1), rel=1e-9)


def test_engine_equals_the_pure_functions_and_is_batch_independent(known_recon):
    from vgbench import api

    real, recon = _levels(2, n=5), _levels(3, n=5)
    ref = known_recon(real, recon)
    x = torch.from_numpy(real).permute(0, 4, 1, 2, 3).double() / 255  # (B, C, T, H, W)
    y = torch.from_numpy(recon).permute(0, 4, 1, 2, 3).double() / 255
    for metric, fn in (("psnr", psnr_per_frame), ("ssim", ssim_per_frame)):
        want = float(fn(y, x).mean())  # all videos have 16 frames: frame-then-video mean = mean of all frames
        for bs in (1, 2, 5):
            assert api.evaluate(metric, reference=ref, checkpoint="c.pt", batch_size=bs).value == pytest.approx(
                want, rel=1e-12
            )


def test_engine_set_changes_are_off_protocol(known_recon):
    from vgbench import api

    real = np.full((2, 16, 16, 16, 3), 100, np.uint8)
    ref = known_recon(real, real + np.uint8(5))
    r = api.evaluate("ssim", reference=ref, checkpoint="c.pt", overrides={"k1": "0.02"})
    mx, my, c1 = 100 / 255, 105 / 255, 0.02**2  # the changed constant is used
    assert r.value == pytest.approx((2 * mx * my + c1) / (mx**2 + my**2 + c1), rel=1e-9)
    assert r.off_protocol and r.protocol_overrides == {"k1": [0.01, 0.02]}


def test_engine_checks_frame_size_before_reconstructing(known_recon, tmp_path):
    from vgbench import api
    from vgbench.errors import InputError

    small = np.zeros((2, 16, 8, 8, 3), np.uint8)
    ref = known_recon(small, small)
    with pytest.raises(InputError, match=r"frames of 8 x 8 pixels; SSIM's 11 x 11 window"):
        api.evaluate("ssim", reference=ref, checkpoint="c.pt")
    assert known_recon.calls == []  # refused before any reconstruction
    assert api.evaluate("psnr", reference=ref, checkpoint="c.pt").value == 100.0  # PSNR has no window


def test_engine_rounds_a_float_reference_to_levels_and_says_so(known_recon, tmp_path):
    from vgbench import api

    real = _levels(4)
    known_recon(real, real)
    ref = tmp_path / "real_float.npy"
    np.save(ref, (real.astype(np.float32) + 0.3) / 255)  # [0, 1] floats between the levels
    r = api.evaluate("psnr", reference=ref, checkpoint="c.pt")
    assert r.value == 100.0  # rint(255 x) restores the levels
    assert any("between uint8 levels" in n for n in r.notes)


def test_protocol_rules_are_card_errors():
    from vgbench.metrics.protocols import PSNRProtocol, SSIMProtocol

    assert [f for f, *_ in SSIMProtocol(description="", kernel_size=10, sigma=0, k2=-1).problems()] == [
        "kernel_size",
        "sigma",
        "k2",
    ]
    assert [f for f, *_ in PSNRProtocol(description="", mse_floor=0, data_range=0).problems()] == [
        "data_range",
        "mse_floor",
    ]


def test_pure_functions_equal_scikit_image():
    """Golden: scikit-image 0.26's peak_signal_noise_ratio and structural_similarity (Gaussian weights, sigma 1.5,
    population covariances, data range 1) on seeded uint8 frames (tests/golden/make_psnr_ssim_skimage.py)."""
    import json

    from tests.golden.make_psnr_ssim_skimage import pairs

    golden = json.loads((Path(__file__).parent / "golden" / "psnr_ssim_skimage.json").read_text())
    real, recon = pairs()
    x = torch.from_numpy(real).permute(0, 4, 1, 2, 3).double() / 255.0  # (B, C, T, H, W), k / 255 in float64
    y = torch.from_numpy(recon).permute(0, 4, 1, 2, 3).double() / 255.0
    # both in float64: equal to rounding (measured: 7e-15 dB, 2e-16)
    assert np.allclose(psnr_per_frame(y, x).numpy(), golden["psnr"], rtol=1e-13, atol=0)
    assert np.allclose(ssim_per_frame(y, x).numpy(), golden["ssim"], rtol=0, atol=1e-12)


def test_ssim_equals_torchmetrics_map_on_the_valid_region():
    """torchmetrics 1.9's SSIM map (Gaussian 11 x 11, sigma 1.5, float64) cropped to the valid region, averaged."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 4, 24, 17, dtype=torch.float64, generator=g)  # (B, C, T, H, W): non-square frames
    y = (x + 0.1 * torch.randn(x.shape, dtype=torch.float64, generator=g)).clamp(0, 1)
    frames = [v.permute(0, 2, 1, 3, 4).reshape(8, 3, 24, 17) for v in (y, x)]  # (B*T, C, H, W)
    _, full = structural_similarity_index_measure(*frames, reduction="none", return_full_image=True, data_range=1.0)
    want = full[..., 5:-5, 5:-5].flatten(1).mean(1).view(2, 4)  # drop the 5-pixel reflection-padded border
    assert torch.allclose(ssim_per_frame(y, x), want, rtol=0, atol=1e-12)
    # chunks change only the GEMM shapes, hence the rounding
    assert torch.allclose(ssim_per_frame(y, x, chunk=5), ssim_per_frame(y, x), rtol=0, atol=1e-14)
