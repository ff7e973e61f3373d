"""PSNR and SSIM of reconstructions, per frame (the tokenizer metrics reported beside R-FVD, e.g. by TokenBench).

Definitions (frames on the [0, 1] scale, both videos quantised to uint8 levels first, as they are stored):

- PSNR of a frame = 10 log10(data_range^2 / max(MSE, 1e-10)) with the MSE over its pixels and channels and data
  range 1; the floor caps an identical frame at 100 dB instead of infinity. Averaged over frames, then videos.
- SSIM (Wang et al. 2004) of a frame: Gaussian window 11 x 11, sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1,
  computed per channel on the window's valid region and averaged over pixels and channels; averaged over frames,
  then videos.

Every one of these numbers is a field of the metric cards' protocols (``psnr.per_frame``, ``ssim.wang2004``), so
it is hashed and recorded with each result; the pure functions take them as arguments.

Implementation (a decision with measured reasons): SSIM is computed here, in float64, with the Gaussian window
applied separably as two products with banded matrices (``valid_filter_matrix``), which BLAS runs fast on CPU and
GPU alike. The vetted libraries do not fit exactly: torchmetrics 1.9's ``structural_similarity_index_measure``
averages its map over the whole frame including the 5-pixel border it computes on reflection padding (not Wang et
al.'s or scikit-image's convention; its map can be cropped), and its float64 path is slow on CPU: 9.0 s for 64
RGB frames of 64 x 64 on the shared 2-core development machine, against 0.9 s here (and 1.0 s for torchmetrics in
float32, which would cost precision); scikit-image is not a dependency and works on one image at a time. The test
suite checks this code against both, to rounding: scikit-image 0.26's ``structural_similarity`` (golden,
``tests/golden/psnr_ssim_skimage.json``), torchmetrics' map cropped to the valid region, and an independent numpy
implementation of the formula. PSNR is one line and needs no library.

Parity and deviations: TokenBench's published tokenizer numbers (e.g. VideoGPT 4x4x4: PSNR 35.12, SSIM 0.914) are
made by NVlabs/TokenBench ``token_bench/metrics_cli.py``, which defines both differently (one MSE per whole video;
scikit-image's default 7 x 7 uniform window with sample covariances): they are not this protocol's numbers.

The engines (:func:`evaluate_psnr`, :func:`evaluate_ssim`) score a checkpoint's reconstructions of the
``--reference`` clips, made once through :func:`vgbench.metrics.derived.reconstructions` (the cached uint8
set R-FVD and FVD* read), against the real clips; per-video means are summed in float64 and all-reduced over
torchrun processes, so the value does not depend on the batch size or the number of processes.
"""

from __future__ import annotations

import numpy as np
import torch

from vgbench.metrics.accumulate import RatioAccumulator
from vgbench.metrics.runner import ClipMetric, evaluate_clips
from vgbench.tensors import on_levels

PSNR_MSE_FLOOR = 1e-10
SSIM_PARAMS = {"kernel_size": 11, "sigma": 1.5, "k1": 0.01, "k2": 0.03, "data_range": 1.0}


def _frames(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) in [0, 1] -> (B*T, C, H, W) float64."""
    if x.ndim != 5:
        raise ValueError(f"expected videos (B, C, T, H, W), got shape {tuple(x.shape)}")
    b, c, t, h, w = x.shape
    return x.double().permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


def psnr_per_frame(
    recon: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, mse_floor: float = PSNR_MSE_FLOOR
) -> torch.Tensor:
    """PSNR in dB of every frame: (B, C, T, H, W) pairs in [0, 1] -> (B, T) float64.

    Args:
        recon: reconstructed videos (B, C, T, H, W).
        target: the videos they reconstruct, same shape.
        data_range: peak-to-peak value of the frames (1 on the [0, 1] scale).
        mse_floor: the smallest MSE used, so an identical frame scores 10 log10(data_range^2 / mse_floor).
    """
    if recon.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(recon.shape)} vs {tuple(target.shape)}")
    mse = ((_frames(recon) - _frames(target)) ** 2).flatten(1).mean(1).clamp_min(mse_floor)
    return (10 * torch.log10(data_range**2 / mse)).view(recon.shape[0], recon.shape[2])


def gaussian_window(kernel_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """The normalised 1-D Gaussian (kernel_size,) float64 whose outer product is SSIM's window."""
    x = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def valid_filter_matrix(n: int, kernel_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """(n - kernel_size + 1, n) float64 banded matrix: row i holds the Gaussian at columns i .. i + kernel_size - 1,
    so ``M @ v`` is the Gaussian-weighted mean of every full window of ``v`` (the valid region, no padding)."""
    g = gaussian_window(kernel_size, sigma)
    m = torch.zeros(n - kernel_size + 1, n, dtype=torch.float64)
    for i in range(n - kernel_size + 1):
        m[i, i : i + kernel_size] = g
    return m


def ssim_per_frame(
    recon: torch.Tensor,
    target: torch.Tensor,
    kernel_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    data_range: float = 1.0,
    chunk: int = 512,
) -> torch.Tensor:
    """SSIM of every frame: (B, C, T, H, W) pairs in [0, 1] -> (B, T) float64 (frames at least kernel_size wide).

    SSIM map = ((2 mx my + C1)(2 sxy + C2)) / ((mx^2 + my^2 + C1)(sx^2 + sy^2 + C2)) with Gaussian-weighted local
    means and population (co)variances over every full window; averaged over the map and the channels.

    Args:
        recon: reconstructed videos (B, C, T, H, W).
        target: the videos they reconstruct, same shape.
        kernel_size: side of the Gaussian window (odd).
        sigma: standard deviation of the Gaussian window in pixels.
        k1: C1 = (k1 * data_range)^2.
        k2: C2 = (k2 * data_range)^2.
        data_range: peak-to-peak value of the frames (1 on the [0, 1] scale).
        chunk: frame-channels filtered at once (bounds memory; the result does not depend on it).
    """
    if recon.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(recon.shape)} vs {tuple(target.shape)}")
    if min(recon.shape[-2:]) < kernel_size:
        raise ValueError(
            f"SSIM needs frames of at least {kernel_size} x {kernel_size} pixels, got {tuple(recon.shape[-2:])}"
        )
    b, c, t, h, w = recon.shape
    x = _frames(recon).reshape(b * t * c, h, w)  # (N, H, W) float64, N = frames x channels
    y = _frames(target).reshape(b * t * c, h, w)
    mh = valid_filter_matrix(h, kernel_size, sigma).to(x.device)  # (H', H)
    mw = valid_filter_matrix(w, kernel_size, sigma).to(x.device).T  # (W, W')
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    out = []
    for i in range(0, len(x), chunk):
        xi, yi = x[i : i + chunk], y[i : i + chunk]

        def local_mean(z: torch.Tensor) -> torch.Tensor:
            """(n, H, W) -> (n, H', W'): the separable Gaussian over every full window, as two large GEMMs."""
            n = len(z)
            rows = (z.reshape(n * h, w) @ mw).view(n, h, -1)  # along W: (n, H, W')
            cols = mh @ rows.transpose(0, 1).reshape(h, -1)  # along H: (H', n * W')
            return cols.view(-1, n, rows.shape[-1]).transpose(0, 1)

        mx, my = local_mean(xi), local_mean(yi)
        sxx = local_mean(xi * xi) - mx * mx
        syy = local_mean(yi * yi) - my * my
        sxy = local_mean(xi * yi) - mx * my
        ssim_map = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        out.append(ssim_map.flatten(1).mean(1))  # (n,)
    return torch.cat(out).view(b, t, c).mean(2)


# ----------------------------------------------------------------------------------------------------------
# Engines: a checkpoint's reconstructions against the real clips


def per_frame_scores(metric: str, recon: torch.Tensor, target: torch.Tensor, p) -> torch.Tensor:
    """``psnr`` or ``ssim`` of every frame under protocol ``p`` (a PSNRProtocol or SSIMProtocol): (B, T)."""
    if metric == "psnr":
        return psnr_per_frame(recon, target, p.data_range, p.mse_floor)
    return ssim_per_frame(recon, target, p.kernel_size, p.sigma, p.k1, p.k2, p.data_range)


class FrameScoreMean(RatioAccumulator):
    """PSNR, SSIM: the mean over videos of each video's mean per-frame score."""

    def __init__(self, n: int):
        super().__init__(n)
        self.states["off_levels"] = np.zeros(1)  # batches whose reference values lay between uint8 levels

    def update(self, scores: torch.Tensor, at: int) -> None:
        """Per-frame scores (B, T) of clips ``at ..``."""
        per_video = scores.mean(1)
        self.add(at, per_video, 1.0, float(per_video.sum()), len(scores))

    def compute(self) -> float:
        total, videos = self.states["total"]
        return total / videos


class ReconstructionScore(ClipMetric):
    """PSNR or SSIM of the checkpoint's cached uint8 reconstructions against the real clips, per frame."""

    count_note = "only {count} clips scored (the protocol names {wanted})"

    def __init__(self, metric: str):
        self.metric = metric

    def source(self, request):
        from vgbench.metrics.derived import ClipSource

        return ClipSource(request.reference, request.protocol.frames)  # the clips reconstructions() reconstructs

    def check(self, request, plan, device) -> None:
        """Cheap before expensive: the reference, its split and frame size, and the device, before any model runs."""
        from vgbench import datasets
        from vgbench.device import resolve_device
        from vgbench.errors import InputError

        p, src = request.protocol, plan.src
        self.protocol = p
        parsed = datasets.parse_ref(str(request.reference)) if src.view is not None else None
        if parsed is not None and parsed[2] != p.split:
            plan.notes.append(f"off-protocol: scored on split {parsed[2]!r}; the protocol scores {p.split!r}")
            plan.off_protocol = True
        (first,) = list(src.batches(1, 0, 1))  # (1, T, H, W, C)
        if self.metric == "ssim" and min(first.shape[2:4]) < p.kernel_size:
            raise InputError(
                f"{request.reference}: frames of {first.shape[2]} x {first.shape[3]} pixels; SSIM's {p.kernel_size} "
                f"x {p.kernel_size} window needs at least that size (use --metric psnr, or --set kernel_size=K, odd)"
            )
        plan.device = resolve_device(device)

    def open(self, request, plan, device) -> None:
        from vgbench.errors import InputError
        from vgbench.metrics import derived

        self.path, self.prov = derived.reconstructions(
            request.checkpoint, request.reference, request.protocol.frames, device, plan.batch_size
        )
        self.recon = np.load(self.path, mmap_mode="r")  # uint8 (N, T, H, W, 3)
        if len(self.recon) != plan.src.count:
            raise InputError(
                f"{self.path}: {len(self.recon)} reconstructions for {plan.src.count} reference clips; delete it and "
                "rerun"
            )

    def accumulator(self, request, plan) -> FrameScoreMean:
        return FrameScoreMean(plan.n)

    def update(self, acc: FrameScoreMean, batch, at: int, plan) -> None:
        from vgbench.errors import InputError

        real, odd = on_levels(batch)  # (B, T, H, W, C) float64 levels
        acc.states["off_levels"] += float(odd)
        made = np.asarray(self.recon[at : at + len(real)], dtype=np.float64)  # (B, T, H, W, 3)
        if real.shape[-1] == 1 and made.shape[-1] == 3:
            real = np.repeat(real, 3, axis=-1)  # grey models' reconstructions are stored as grey RGB
        if made.shape != real.shape:
            raise InputError(f"reconstructions {made.shape[1:]} and reference clips {real.shape[1:]} differ in shape")
        x = torch.from_numpy(real).permute(0, 4, 1, 2, 3).to(plan.device) / 255.0  # (B, C, T, H, W) in [0, 1]
        y = torch.from_numpy(made).permute(0, 4, 1, 2, 3).to(plan.device) / 255.0  # (B, C, T, H, W) in [0, 1]
        acc.update(per_frame_scores(self.metric, y, x, self.protocol), at)  # (B, T) float64

    def fields(self, request, plan, acc) -> dict:
        notes = []
        if acc.states["off_levels"][0]:
            notes.append("the reference holds values between uint8 levels (float input): rounded to the nearest level")
        return {
            "samples": {
                "role": "reconstructions",
                "path": str(self.path),
                "content_sha256": _sha256(self.path),
                "made_from_checkpoint": self.prov,
            },
            "extractor": {"implementation": _implementation(self.metric)},
            "notes": notes,
            "checkpoint": self.prov["checkpoint"],
        }


def evaluate_psnr(request, device: str = "auto", batch_size: int | None = None, run: str = ""):
    """PSNR (dB) of the checkpoint's reconstructions of the ``--reference`` clips under a ``psnr`` protocol."""
    return evaluate_clips(request, ReconstructionScore("psnr"), device, batch_size, run)


def evaluate_ssim(request, device: str = "auto", batch_size: int | None = None, run: str = ""):
    """SSIM of the checkpoint's reconstructions of the ``--reference`` clips under an ``ssim`` protocol."""
    return evaluate_clips(request, ReconstructionScore("ssim"), device, batch_size, run)


def _sha256(path) -> str:
    from vgbench import contenthash

    return contenthash.file_sha256(path)


def _implementation(metric: str) -> str:
    """What computed the value, for the record."""
    if metric == "psnr":
        return "vgbench.metrics.psnr_ssim.psnr_per_frame (float64)"
    return "vgbench.metrics.psnr_ssim.ssim_per_frame (separable Gaussian, valid region, float64)"
