"""Writes tests/golden/psnr_ssim_skimage.json: per-frame PSNR and SSIM by scikit-image on seeded uint8 frame pairs.

scikit-image is a second, independent implementation of the definitions in vgbench/metrics/psnr_ssim.py (it is not
a vgbench dependency; run this in an environment that has it):
- ``peak_signal_noise_ratio(real, recon, data_range=1)`` per frame (its MSE over pixels and channels);
- ``structural_similarity(recon, real, data_range=1, channel_axis=-1, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)``: a Gaussian window truncated at 3.5 sigma (11 x 11), population variances, the map
  averaged over the valid region (its crop of (11 - 1) / 2 pixels) and over channels.
Frames on the [0, 1] scale, values k / 255. The inputs are rebuilt by the test from the recorded seed and shape.
Run: python tests/golden/make_psnr_ssim_skimage.py
"""

import json
from pathlib import Path

import numpy as np

SEED, SHAPE, NOISE = 7, (2, 3, 20, 24, 3), 12.0  # (B, T, H, W, C) uint8 clips; recon = real + N(0, 12 levels)


def pairs() -> tuple[np.ndarray, np.ndarray]:
    """(real, recon) uint8 (B, T, H, W, C): the inputs, rebuilt identically by the test."""
    rng = np.random.default_rng(SEED)
    real = rng.integers(0, 256, SHAPE, dtype=np.uint8)
    noise = np.rint(rng.normal(0.0, NOISE, SHAPE))
    recon = np.clip(real.astype(np.float64) + noise, 0, 255).astype(np.uint8)
    return real, recon


def main():
    import skimage
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    real, recon = pairs()
    x, y = real / 255.0, recon / 255.0
    psnr = [[peak_signal_noise_ratio(x[b, t], y[b, t], data_range=1.0) for t in range(SHAPE[1])] for b in range(2)]
    ssim = [
        [
            structural_similarity(y[b, t], x[b, t], data_range=1.0, channel_axis=-1, gaussian_weights=True,
                                  sigma=1.5, use_sample_covariance=False)
            for t in range(SHAPE[1])
        ]
        for b in range(SHAPE[0])
    ]  # fmt: skip
    out = {
        "tool": f"scikit-image {skimage.__version__}, numpy {np.__version__}",
        "seed": SEED,
        "shape": list(SHAPE),
        "noise": NOISE,
        "psnr": [[float(v) for v in row] for row in psnr],
        "ssim": [[float(v) for v in row] for row in ssim],
    }
    (Path(__file__).parent / "psnr_ssim_skimage.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
