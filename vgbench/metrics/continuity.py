"""Continuity: do conditional samples continue the frame they were given?

For sample i, conditioned on the first frame of reference clip i (``vgbench sample --cond``'s rule), the score is
the mean SSIM of its first ``frames`` frames against its own conditioning frame minus the mean SSIM of the same
frames against every other clip's conditioning frame:

    gain_i = mean_t SSIM(s_i[t], r_i[0]) - mean_{j != i} mean_t SSIM(s_i[t], r_j[0]),   t < frames

and the value is the mean of gain_i over samples. 0 means the samples are as close to any clip's first frame as to
their own (no continuation: noise, or unconditional videos); a sample that copies its frame scores
1 - mean SSIM between different first frames. SSIM is :func:`vgbench.metrics.psnr_ssim.ssim_per_frame` on uint8
levels scaled to [0, 1].

Later frames (protocol ``later_frames``) have moved away from the first frame, so SSIM against it is about 0 even
for the real clips; there the comparison is shift-free: the cosine between the DC-free log-magnitude Fourier spectra
log(1 + |F(frame - mean)|) of the sample's frame and of the conditioning frame (a translated digit keeps its
spectrum's magnitude; two digits moving apart change it a little), with the same own-minus-others gain.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from vgbench.errors import InputError
from vgbench.metrics.accumulate import RatioAccumulator
from vgbench.metrics.derived import ClipSource
from vgbench.metrics.runner import ClipMetric, Plan, evaluate_clips


def ssim_all_pairs(videos: torch.Tensor, frames: torch.Tensor, p) -> torch.Tensor:
    """SSIM of every frame of every video against every frame of ``frames``: videos (N, C, F, H, W) and frames
    (M, C, H, W) in [0, 1] -> (N, M) float64, the mean over the F frames. The same numbers as
    :func:`~vgbench.metrics.psnr_ssim.ssim_per_frame` pair by pair; the local means and variances of each image are
    computed once, only the cross term per pair."""
    from vgbench.metrics.psnr_ssim import valid_filter_matrix

    n, c, f, h, w = videos.shape
    x = videos.double().permute(0, 2, 1, 3, 4).reshape(n * f * c, h, w)
    y = frames.double().reshape(len(frames) * c, h, w)
    mh = valid_filter_matrix(h, p.kernel_size, p.sigma)  # (H', H)
    mw = valid_filter_matrix(w, p.kernel_size, p.sigma).T  # (W, W')

    def local_mean(z: torch.Tensor) -> torch.Tensor:
        k = len(z)
        rows = (z.reshape(k * h, w) @ mw).view(k, h, -1)
        return (mh @ rows.transpose(0, 1).reshape(h, -1)).view(-1, k, rows.shape[-1]).transpose(0, 1)

    c1, c2 = (p.k1 * p.data_range) ** 2, (p.k2 * p.data_range) ** 2
    mx, my = local_mean(x), local_mean(y)
    sxx, syy = local_mean(x * x) - mx * mx, local_mean(y * y) - my * my
    x, mx, sxx = (a.view(n, f, c, *a.shape[1:]) for a in (x, mx, sxx))
    y, my, syy = (a.view(len(frames), c, *a.shape[1:]) for a in (y, my, syy))
    out = torch.empty(n, len(frames), dtype=torch.float64)
    for j in range(len(frames)):
        sxy = local_mean((x * y[j]).reshape(-1, h, w)).view(mx.shape) - mx * my[j]
        num = (2 * mx * my[j] + c1) * (2 * sxy + c2)
        den = (mx * mx + my[j] * my[j] + c1) * (sxx + syy[j] + c2)
        out[:, j] = (num / den).flatten(3).mean(3).mean((1, 2))
    return out


def spectra(frames: np.ndarray) -> np.ndarray:
    """Frames (..., H, W) on [0, 1] -> unit-norm, zero-mean log-magnitude spectra (..., H * (W // 2 + 1)) float64."""
    f = np.asarray(frames, np.float64)
    mag = np.abs(np.fft.rfft2(f - f.mean((-2, -1), keepdims=True)))
    d = np.log1p(mag).reshape(*f.shape[:-2], -1)
    d = d - d.mean(-1, keepdims=True)
    return d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)


def spectrum_all_pairs(videos: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Videos (N, F, H, W, C) and frames (M, H, W, C) on [0, 1] -> (N, M) float64: the mean over the F frames (and
    channels) of the cosine between log-magnitude spectra."""
    dv = spectra(np.moveaxis(videos, -1, 2))  # (N, F, C, D)
    df = spectra(np.moveaxis(frames, -1, 1))  # (M, C, D)
    return np.einsum("nfcd,mcd->nm", dv, df) / (dv.shape[1] * dv.shape[2])


def pairing_gain(samples: np.ndarray, first: np.ndarray, p) -> tuple[float, float, float]:
    """Videos (N, T, H, W, C) and their conditioning frames (N, H, W, C), both 0-255 -> (mean gain, mean own score,
    mean other score) over frames ``p.start ..`` (``p``: a ContinuityProtocol); the whole set as one block."""
    if len(samples) < 2:
        raise InputError(
            f"continuity compares each sample with the other clips' first frames: give >= 2, got {len(samples)}"
        )
    gains, own, other = block_gains(samples, first, 0, p)
    return float(gains.mean()), float(own.mean()), float(other.mean())


def block_gains(samples: np.ndarray, first: np.ndarray, at: int, p) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples ``at .. at + B`` (B, T, H, W, C) against all N conditioning frames (N, H, W, C), both 0-255 ->
    (gain, own score, mean score against the other N - 1 frames), each (B,) float64. Row i of a block depends on
    sample i and the frames only, so blocks of any size give the same rows."""
    start = getattr(p, "start", 0)
    if samples.shape[1] < start + p.frames:
        have = samples.shape[1]
        raise InputError(f"continuity scores frames {start + 1}-{start + p.frames}: the samples have {have}")
    # levels in float64 before scaling: float32 inputs (the engine's batches) would round k / 255 to float32
    s = np.rint(np.clip(np.asarray(samples[:, start : start + p.frames], np.float64), 0, 255)) / 255.0
    r = np.rint(np.clip(np.asarray(first, np.float64), 0, 255)) / 255.0
    if getattr(p, "descriptor", "ssim") == "spectrum":
        scores = spectrum_all_pairs(s, r)
    else:  # scores[i, j]: sample at + i against the first frame of clip j
        scores = ssim_all_pairs(torch.from_numpy(s).permute(0, 4, 1, 2, 3), torch.from_numpy(r).permute(0, 3, 1, 2), p)
        scores = scores.numpy()
    rows = np.arange(len(s))
    own = scores[rows, at + rows]
    other = (scores.sum(1) - own) / (len(r) - 1)
    return own - other, own, other


class PairingGain(RatioAccumulator):
    """Continuity: the mean over samples of (own score - mean score against the other clips' first frames); the
    own and other scores' sums ride along for the record's note."""

    def __init__(self, n: int):
        super().__init__(n)
        self.states["scores"] = np.zeros(2)  # sum of own scores, sum of mean other scores

    def update(self, gains: np.ndarray, own: np.ndarray, other: np.ndarray, at: int) -> None:
        self.add(at, gains, 1.0, float(gains.sum()), len(gains))
        self.states["scores"] += [own.sum(), other.sum()]

    def compute(self) -> float:
        total, videos = self.states["total"]
        return total / videos


def _conditioning_of(path: Path) -> dict | None:
    """The ``conditioning`` record of a ``vgbench sample`` folder's samples.json beside ``path``, if any."""
    meta = path.parent / "samples.json"
    if not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text()).get("conditioning")
    except (OSError, ValueError):
        return None


def _frames_of(sam, at_least: int) -> int:
    """Frames per video of a sample set (``at_least`` for a dataset reference, whose windows are drawn)."""
    if sam.samples is None:
        return at_least
    return int(next(sam.samples.iter_batches(1, 0, 1)).shape[1])


class ContinuityScore(ClipMetric):
    """Samples against the first frames of the reference clips they were conditioned on (sample i on clip i)."""

    def source(self, request) -> ClipSource:
        """The reference clips as the sampler read them: its clip length and window seed (samples.json), so that
        frame 0 is the conditioning frame; a window as short as the scored frames would start anywhere in a video.
        Only the first len(samples) clips are scored."""
        p = self.protocol = request.protocol
        self.notes = []
        self.cond = _conditioning_of(Path(str(request.samples)))
        if self.cond is not None and self.cond.get("dataset") not in (None, str(request.reference)):
            raise InputError(
                f"{request.samples} were conditioned on {self.cond['dataset']}, not on {request.reference}: give "
                f"--reference {self.cond['dataset']}"
            )
        if self.cond is None:
            self.notes.append(
                "no samples.json beside the samples: sample i is taken to be conditioned on reference clip i"
            )
        self.samples = ClipSource(request.samples, p.start + p.frames)
        cond = self.cond or {}
        clip_len = int(cond.get("clip_len") or _frames_of(self.samples, p.start + p.frames))
        src = ClipSource(request.reference, clip_len, seed=int(cond.get("window_seed", p.seed)))
        if self.samples.count > src.count:
            raise InputError(
                f"{self.samples.count} samples but {request.reference} has {src.count} clips: sample i needs clip i"
            )
        if self.samples.count < 2:
            raise InputError(
                "continuity compares each sample with the other clips' first frames: give >= 2, got "
                f"{self.samples.count}"
            )
        src.count = self.samples.count
        return src

    def check(self, request, plan: Plan, device: str) -> None:
        plan.device = torch.device("cpu")  # float64 maths on small frames: the CPU is the device

    def open(self, request, plan: Plan, device: str) -> None:
        """Every conditioning frame (each sample is scored against all of them): N frames, not N clips."""
        self.first = np.concatenate([b[:, 0] for b in plan.src.batches(plan.batch_size, 0, plan.n)])

    def accumulator(self, request, plan: Plan) -> PairingGain:
        return PairingGain(plan.n)

    def update(self, acc: PairingGain, batch, at: int, plan: Plan) -> None:
        videos = np.concatenate(list(self.samples.batches(len(batch), at, at + len(batch))))
        first = self.first
        if videos.shape[-1] != first.shape[-1]:  # grey samples are stored as grey RGB
            videos, first = videos[..., :1], first[..., :1]
        if videos.shape[2:] != first.shape[1:]:
            raise InputError(
                f"samples' frames {videos.shape[2:]} and reference frames {first.shape[1:]} differ in size"
            )
        acc.update(*block_gains(videos, first, at, self.protocol), at)

    def fields(self, request, plan: Plan, acc: PairingGain) -> dict:
        p = request.protocol
        own, other = acc.states["scores"] / acc.count
        what = "spectrum cosine" if p.descriptor == "spectrum" else "SSIM"
        return {
            "samples": {"role": "samples", **self.samples.identity()},
            "extractor": {"implementation": f"vgbench.metrics.continuity.block_gains ({what}, float64)"},
            "notes": [
                *self.notes,
                f"mean {what} of frames {p.start + 1}-{p.start + p.frames} against the own first "
                f"frame {own:.4f}, against the other clips' {other:.4f}",
            ],  # fmt: skip
        }


def evaluate_continuity(request, device: str = "auto", batch_size: int | None = None, run: str = ""):
    """The continuity gain of ``--samples`` against the first frames of the ``--reference`` clips they were
    conditioned on (sample i on clip i); sharded under torchrun like every clip metric."""
    return evaluate_clips(request, ContinuityScore(), device, batch_size, run)
