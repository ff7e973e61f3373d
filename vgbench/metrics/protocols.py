"""Protocol dataclasses, one per metric engine: every parameter that changes a metric's number.

A metric card's ``protocols`` are parsed into the class its engine reads (``registry.PROTOCOL_TYPES``, keyed by the
card's ``fn``), so an FVD protocol carries FVD's parameters and an IS protocol only the Inception Score's; each
class checks its own rules (:meth:`Protocol.problems`), such as I3D's 9-frame minimum for FVD only. This module
imports no torch: cards are read by ``vgbench list`` and ``--help``.

Hashes (``cards.protocol_hash``) cover every field except the texts (description, sources, notes). They are the
same as before the split into per-metric classes: FVD's fields are exactly the former shared ones, and an IS
protocol adds the FVD-only fields it used to carry at their fixed defaults (``HASH_COMPAT``), so records made
earlier stay comparable without a card_version bump.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

I3D_MIN_FRAMES = 9  # I3D downsamples time x8 (ceil), then pools 2 steps VALID (metrics.md §1.4)
TEXT_FIELDS = ("description", "sources", "notes")  # explain a protocol; never hashed, never overridden

Problem = tuple[str, str, "str | None", Any]  # (field, problem, expected, got)


@dataclass(frozen=True)
class Need:
    """What a protocol needs of every video it reads (checked by :mod:`vgbench.validation`)."""

    metric: str  # ``metric.protocol``, for messages
    frames: int | None = None  # the clip length the protocol cuts from the start of each video (None: all frames)
    min_frames: int = 1  # the network's minimum
    min_reason: str = ""  # why the network needs min_frames
    size: int | None = None  # the frame size (H = W) of a protocol that does not resize; None: any size
    min_count: int = 2  # FVD: a covariance needs two videos per set


@dataclass(frozen=True, kw_only=True)
class Protocol:
    """Fields every metric protocol has: counts of trials, how they are summarised, the seed, provenance."""

    description: str
    batch_size: int = 16  # videos per forward pass; a speed setting that the card fixes for exact parity
    trials: int = 1
    std: Literal["population", "none"] = "none"  # how several trials are summarised besides their mean
    seed: int = 0
    sources: tuple[str, ...] = ()
    notes: str = ""

    HASH_COMPAT: ClassVar[dict[str, Any]] = {}  # fields earlier hashes included at fixed values
    HASH_OPTIONAL: ClassVar[tuple[str, ...]] = ()  # fields hashed only when set (added after release)

    def problems(self) -> list[Problem]:
        """Rules a card's protocol must satisfy, as (field, problem, expected, got)."""
        out: list[Problem] = []
        if self.batch_size < 1:
            out.append(("batch_size", "must be at least 1", ">= 1", self.batch_size))
        if self.trials < 1:
            out.append(("trials", "must be at least 1", None, self.trials))
        if self.trials > 1 and self.std == "none":
            out.append(("std", "several trials need a std convention", "'population'", self.std))
        return out

    def need(self, name: str, role: str = "samples") -> Need:
        """What every video this protocol reads must satisfy; ``name`` is ``metric.protocol`` for messages."""
        return Need(name, getattr(self, "frames", None))

    def hash_payload(self) -> dict[str, Any]:
        """The parameters that define the protocol's numbers (what :func:`cards.protocol_hash` hashes)."""
        payload = {**self.HASH_COMPAT, **self.as_dict()}
        for name in TEXT_FIELDS:
            payload.pop(name, None)
        for name in self.HASH_OPTIONAL:
            if payload.get(name) is None:
                payload.pop(name, None)
        return payload

    def as_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-able values (what a result records as ``protocol_params``)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True, kw_only=True)
class FVDProtocol(Protocol):
    """FVD, FVD* and R-FVD: I3D preprocessing, the network's BN eps, the distance's precision, the counts."""

    # Preprocessing
    resize: Literal["tf_legacy", "torch_half_pixel", "none"]
    scale: Literal["minus_one_one", "none"]
    quantize: Literal["none", "truncate", "round"]  # float samples -> uint8 levels before the network
    size: int = 224
    resize_mode: Literal["direct", "short_side_center_crop"] = "direct"
    frames: int | None = None  # clip length taken from the start of each video; None keeps all frames
    # Network
    bn_eps: float = 1e-3
    exact: bool = True  # parity protocol: TF32 / reduced precision disabled
    # Distance
    fd_sqrtm: Literal["svd", "scipy"] = "svd"
    fd_dtype: Literal["float64", "float32"] = "float64"
    result_dtype: Literal["float32", "float64"] = "float32"
    # Counts
    num_samples: int | None = None  # per trial; None = all given
    num_reference: int | None = None  # per trial; None = all given
    # The paper's BAIR protocol when samples are drawn from a checkpoint (`--checkpoint`; read by the sampler)
    conditioning_frames: int | None = None
    real_split: str | None = None
    # Long videos (StyleGAN-V's fvd2048_128f and fvd2048_128f_subsample8f): a clip of ``frames`` frames taken every
    # ``subsample``-th frame, spanning frames x subsample; samples from their first frame, real clips from the first
    # frame or from a random start (one per video, seeded by ``seed`` and the video's index).
    subsample: int | None = None  # None: 1 (consecutive frames)
    reference_start: Literal["first", "random"] | None = None  # None: first
    covariance: Literal["unbiased", "biased"] | None = None  # None: unbiased (n-1, TF-GAN); StyleGAN-V divides by n

    HASH_OPTIONAL: ClassVar[tuple[str, ...]] = ("subsample", "reference_start", "covariance")  # hashed when set

    @property
    def span(self) -> int | None:
        """Frames of a video one clip covers (frames x subsample); None when the protocol keeps every frame."""
        return None if self.frames is None else self.frames * (self.subsample or 1)

    def need(self, name: str, role: str = "samples") -> Need:
        """Clips of ``span`` frames of at least I3D's minimum; ``role`` "reference" of a long-video protocol whose
        real clips start at random reads every frame of a video at least a span long."""
        size = self.size if self.resize == "none" else None
        if role == "reference" and self.reference_start == "random":  # every frame read; the clip starts anywhere
            return Need(name, None, max(I3D_MIN_FRAMES, self.span), " (the protocol's clip span, frames x subsample)",
                        size)  # fmt: skip
        return Need(name, self.span, I3D_MIN_FRAMES, " (I3D downsamples time x8 and then pools 2 steps)", size)

    def problems(self) -> list[Problem]:
        out = super().problems()
        if self.frames is not None and self.frames < I3D_MIN_FRAMES:
            out.append(("frames", "I3D needs at least 9 frames", ">= 9", self.frames))
        if self.subsample is not None and self.subsample < 1:
            out.append(("subsample", "must be at least 1", ">= 1", self.subsample))
        if (self.subsample or self.reference_start) and self.frames is None:
            out.append(("frames", "a subsampled or randomly started clip needs a clip length", ">= 9", None))
        return out


@dataclass(frozen=True, kw_only=True)
class ISProtocol(Protocol):
    """The UCF-101 Inception Score: C3D's fixed input stage, the clip length, the split convention."""

    resize: Literal["chainer"]  # tgan2's classifier resizes with Chainer's corner-aligned grid
    scale: Literal["minus_one_one"]
    quantize: Literal["none"]
    size: int = 112
    frames: int = 16
    exact: bool = True
    num_samples: int | None = None  # per trial; None = all given
    splits: int = 1  # IS per split of each trial's samples (tgan2: i*n//splits boundaries)
    eps: float = 0.0  # added to every probability before the KL (tgan2: 1e-20)
    shuffle_seed: int | None = None  # RandomState seed shuffling the probabilities before splitting

    # Before protocols were per metric, IS protocols carried FVD's fields at these defaults.
    HASH_COMPAT: ClassVar[dict[str, Any]] = {
        "bn_eps": 0.001,
        "conditioning_frames": None,
        "fd_dtype": "float64",
        "fd_sqrtm": "svd",
        "num_reference": None,
        "real_split": None,
        "resize_mode": "direct",
        "result_dtype": "float32",
    }
    HASH_OPTIONAL: ClassVar[tuple[str, ...]] = ("shuffle_seed",)

    def need(self, name: str, role: str = "samples") -> Need:
        """Clips of the classifier's length; one sample has a defined score (1: p(y) = p(y|x)), too few for the
        splits is the engine's own check."""
        return Need(name, self.frames, self.frames, " (the classifier's clip length)", min_count=1)

    def problems(self) -> list[Problem]:
        out = super().problems()
        if self.splits < 1:
            out.append(("splits", "must be at least 1", None, self.splits))
        if self.eps < 0:
            out.append(("eps", "must not be negative", ">= 0", self.eps))
        return out


@dataclass(frozen=True, kw_only=True)
class NMSEProtocol(Protocol):
    """NMSE of VQ-VAE reconstructions (metrics.md §10): the variance divided by, clamping, the split scored."""

    variance: float | Literal["measured"]  # on the [-0.5, 0.5] scale; 'measured': pixel variance of variance_split
    clamp: bool  # clamp reconstructions to [-0.5, 0.5] before scoring (VideoGPT's loss does not)
    split: str = "test"  # the dataset split scored (`--reference DATASET:SPLIT`)
    variance_split: str = "train"  # read only with variance 'measured'
    frames: int = 16
    windows: Literal["fixed", "all"] = "fixed"  # ClipDataset windows: one per video, or every start
    num_samples: int | None = None  # clips scored; None = the whole split

    def problems(self) -> list[Problem]:
        out = super().problems()
        if self.variance != "measured" and not self.variance > 0:
            out.append(("variance", "must be positive", "> 0 or 'measured'", self.variance))
        return out


@dataclass(frozen=True, kw_only=True)
class BitsPerDimProtocol(Protocol):
    """bits/dim of a latent prior (metrics.md §11): per latent token, teacher-forced, on a held-out split."""

    unit: Literal["latent_token"] = "latent_token"  # the paper's magnitudes are per latent token, not per pixel
    split: str = "test"
    frames: int = 16
    conditioning_frames: int | None = None  # BAIR: the prior is conditioned on the first frame
    mask: Literal["training"] = "training"  # the attention mask the prior was trained with (sparse or full)
    windows: Literal["fixed", "all"] = "fixed"
    num_samples: int | None = None  # clips scored; None = the whole split


@dataclass(frozen=True, kw_only=True)
class ReconstructionProtocol(Protocol):
    """Fidelity of VQ-VAE reconstructions to the clips they reconstruct, frame by frame (PSNR, SSIM).

    Both videos are compared on uint8 levels as they are stored: reconstructions clamped, shifted and truncated
    (``floor(255 x)``, metrics.md §7, the set R-FVD reads), real clips as the dataset holds them; frames on [0, 1]."""

    levels: Literal["uint8"] = "uint8"  # both videos on the 256 levels of uint8 before scoring
    quantize: Literal["truncate"] = "truncate"  # how reconstructions reach those levels (§7; not rounding)
    data_range: float = 1.0  # peak-to-peak value of a frame on the [0, 1] scale (1 = 255 levels)
    reduction: Literal["frame_then_video"] = "frame_then_video"  # per frame, mean over frames, then over videos
    split: str = "test"  # the dataset split scored (`--reference DATASET:SPLIT`)
    frames: int = 16
    windows: Literal["fixed"] = "fixed"  # one fixed window per video: the cached reconstructions' clips
    num_samples: int | None = None  # clips scored; None = the whole split

    def problems(self) -> list[Problem]:
        out = super().problems()
        if not self.data_range > 0:
            out.append(("data_range", "must be positive", "> 0", self.data_range))
        if self.frames < 1:
            out.append(("frames", "must be at least 1", ">= 1", self.frames))
        if self.num_samples is not None and self.num_samples < 1:
            out.append(("num_samples", "must be at least 1 (or null for the whole split)", ">= 1", self.num_samples))
        return out


@dataclass(frozen=True, kw_only=True)
class PSNRProtocol(ReconstructionProtocol):
    """PSNR per frame: 10 log10(data_range^2 / max(MSE, mse_floor)), the MSE over a frame's pixels and channels."""

    mse_floor: float = 1e-10  # an identical frame scores 10 log10(1 / 1e-10) = 100 dB instead of infinity

    def problems(self) -> list[Problem]:
        out = super().problems()
        if not self.mse_floor > 0:
            out.append(("mse_floor", "must be positive (identical frames would score inf)", "> 0", self.mse_floor))
        return out


@dataclass(frozen=True, kw_only=True)
class SSIMProtocol(ReconstructionProtocol):
    """SSIM per frame (Wang et al. 2004): Gaussian-window local statistics, per channel, over the valid region."""

    window: Literal["gaussian"] = "gaussian"
    kernel_size: int = 11  # window side in pixels (odd)
    sigma: float = 1.5  # the Gaussian's standard deviation in pixels
    k1: float = 0.01  # C1 = (k1 * data_range)^2
    k2: float = 0.03  # C2 = (k2 * data_range)^2
    border: Literal["valid"] = "valid"  # the map is averaged where the whole window lies inside the frame
    channels: Literal["mean"] = "mean"  # SSIM per channel, averaged (grey frames repeated to RGB score the same)

    def problems(self) -> list[Problem]:
        out = super().problems()
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            out.append(("kernel_size", "must be odd and at least 3", "3, 5, 7, ...", self.kernel_size))
        if not self.sigma > 0:
            out.append(("sigma", "must be positive", "> 0", self.sigma))
        for name in ("k1", "k2"):
            if not getattr(self, name) > 0:
                out.append((name, "must be positive", "> 0", getattr(self, name)))
        return out


@dataclass(frozen=True, kw_only=True)
class ContinuityProtocol(Protocol):
    """Continuity of conditional samples: SSIM of their first frames against their own conditioning frame minus
    against the other clips' (:mod:`vgbench.metrics.continuity`)."""

    frames: int = 4  # frames of each sample scored, from frame ``start`` on
    start: int = 0  # first frame scored (0-based; 0 is the regenerated conditioning frame)
    descriptor: str = "ssim"  # ssim: SSIM against the frame; spectrum: cosine of log-magnitude spectra (shift-free)
    split: str = "test"
    num_samples: int | None = None  # samples scored; None = all
    data_range: float = 1.0
    kernel_size: int = 11
    sigma: float = 1.5
    k1: float = 0.01
    k2: float = 0.03

    def problems(self) -> list[Problem]:
        out = super().problems()
        if self.frames < 1:
            out.append(("frames", "must be at least 1", ">= 1", self.frames))
        if self.start < 0:
            out.append(("start", "must be at least 0", ">= 0", self.start))
        if self.descriptor not in ("ssim", "spectrum"):
            out.append(("descriptor", "unknown descriptor", "ssim or spectrum", self.descriptor))
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            out.append(("kernel_size", "must be odd and positive", "odd >= 1", self.kernel_size))
        if self.num_samples is not None and self.num_samples < 2:
            out.append(("num_samples", "must be at least 2 (or null for all)", ">= 2", self.num_samples))
        return out
