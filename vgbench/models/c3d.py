"""The C3D classifier tgan2 uses for the UCF-101 Inception Score, with tgan2's numerics, in PyTorch.

Reference: ``pfnet-research/tgan2 tgan2/models/c3d/c3d_ucf101.py`` (``C3DVersion1UCF101``; metrics.md §9).
The network reads tgan2's Chainer ``save_npz`` file unchanged (``conv1a/W`` (out, in, kT, kH, kW) ... ``fc8/b``).
Its fixed ``pre`` stage runs in tgan2's order, in float32 as Chainer does:

1. RGB -> BGR and x128 (a 1x1x1 convolution in tgan2; exact in float32, so a flip and a multiply here);
2. every frame resized to 112x112 with Chainer's ``resize_images`` (corner-aligned bilinear grid
   ``src = i * (in - 1) / (out - 1)`` from ``numpy.linspace`` in float64, float32 weights combined as Chainer's CPU
   kernel combines them);
3. plus ``float32(128 - mean[:, :, 8:120, 8:120])``, a fixed crop of the BGR mean clip (not the horizontal centre).

Then conv1a ... conv5b with ReLU, max pools (pool1 1x2x2, the others 2x2x2, ceil mode as Chainer's
``cover_all``: pool5 maps 7 -> 4), fc6, fc7 (ReLU; dropout off) and fc8 = logits over 101 classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vgbench import cache
from vgbench.errors import InputError

CONVS = (
    ("conv1a", 3, 64),
    ("conv2a", 64, 128),
    ("conv3a", 128, 256),
    ("conv3b", 256, 256),
    ("conv4a", 256, 512),
    ("conv4b", 512, 512),
    ("conv5a", 512, 512),
    ("conv5b", 512, 512),
)
POOL_AFTER = {"conv1a": (1, 2, 2), "conv2a": (2, 2, 2), "conv3b": (2, 2, 2), "conv4b": (2, 2, 2), "conv5b": (2, 2, 2)}
NUM_CLASSES = 101
FRAMES = 16  # the mean clip and fc6 (512*1*4*4 inputs) fix the clip length
SIZE = 112
MEAN_SHAPE = (3, 16, 128, 171)


@dataclass
class C3DConfig:
    """Configuration of the tgan2 classifier (all fixed by its weight and mean files)."""

    num_classes: int = NUM_CLASSES
    frames: int = FRAMES
    size: int = SIZE
    mean_offset: tuple[int, int] = (8, 8)  # tgan2 crops mean[:, :, 8:8+112, 8:8+112]


def expected_shapes(num_classes: int = NUM_CLASSES) -> dict[str, tuple[int, ...]]:
    """Every array of the Chainer weight file with its exact shape (all float32)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name, cin, cout in CONVS:
        shapes[f"{name}/W"] = (cout, cin, 3, 3, 3)
        shapes[f"{name}/b"] = (cout,)
    for name, cin, cout in (("fc6", 512 * 4 * 4, 4096), ("fc7", 4096, 4096), ("fc8", 4096, num_classes)):
        shapes[f"{name}/W"] = (cout, cin)
        shapes[f"{name}/b"] = (cout,)
    return shapes


def check_weights(arrays: dict[str, np.ndarray], where: str, num_classes: int = NUM_CLASSES) -> None:
    """Refuse a weight file that is not tgan2's C3D layout: names every missing, extra or misshapen array."""
    want = expected_shapes(num_classes)
    problems = []
    missing = sorted(set(want) - set(arrays))
    extra = sorted(set(arrays) - set(want))
    if missing:
        problems.append(f"missing arrays {missing}")
    if extra:
        problems.append(f"unexpected arrays {extra}")
    for k in sorted(set(want) & set(arrays)):
        a = arrays[k]
        if tuple(a.shape) != want[k] or a.dtype != np.float32:
            problems.append(f"{k}: {a.dtype}{tuple(a.shape)}, expected float32{want[k]}")
    if problems:
        raise InputError(
            f"{where} is not tgan2's C3D weight file (Chainer npz of C3DVersion1UCF101): "
            + "; ".join(problems)
            + ". Use conv3d_deepnetA_ucf.npz from the rezoo/tgan2 v1.0 release."
        )


def check_mean(arrays: dict[str, np.ndarray], where: str) -> None:
    """Refuse a mean file that is not tgan2's ``mean2.npz`` (array ``mean``, float64 (3, 16, 128, 171))."""
    m = arrays.get("mean")
    if m is None or tuple(m.shape) != MEAN_SHAPE or m.dtype != np.float64 or len(arrays) != 1:
        got = {k: f"{v.dtype}{tuple(v.shape)}" for k, v in arrays.items()}
        raise InputError(
            f"{where} is not tgan2's mean2.npz: arrays {got}, expected exactly 'mean' float64{MEAN_SHAPE}. "
            "Use mean2.npz from the rezoo/tgan2 v1.0 release."
        )


def check_file(role: str, arrays: dict[str, np.ndarray], where: str, config: dict) -> None:
    """Structure check of one published file: ``weights`` or ``mean`` (registered for ``vgbench weights``)."""
    if role == "mean":
        check_mean(arrays, where)
    else:
        check_weights(arrays, where, config.get("num_classes", NUM_CLASSES))


# ----------------------------------------------------------------------------------------------------------
# Chainer's resize_images


def chainer_grid(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower index, upper index, float32 weight) of Chainer's corner-aligned grid along one axis."""
    src = np.linspace(0, in_size - 1, num=out_size, dtype=np.float64)
    frac, whole = np.modf(src)
    lo = whole.astype(np.int64)
    hi = np.minimum(lo + 1, in_size - 1)
    return lo, hi, frac.astype(np.float32)


def resize_chainer(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Chainer 6 ``F.resize_images`` (CPU kernel) on float32 (..., H, W)."""
    h, w = x.shape[-2:]
    out_h, out_w = size
    v0, v1, vw = (torch.from_numpy(a).to(x.device) for a in chainer_grid(h, out_h))
    u0, u1, uw = (torch.from_numpy(a).to(x.device) for a in chainer_grid(w, out_w))
    vw = vw[:, None]
    # Chainer forms the weights in float32 as: w01 = uw, w00 = 1 - uw, w1* = w0* x vw, then w0* -= w1*.
    w10, w11 = (1 - uw) * vw, uw * vw
    w00, w01 = (1 - uw) - w10, uw - w11
    r0, r1 = x.index_select(-2, v0), x.index_select(-2, v1)
    p00, p01 = r0.index_select(-1, u0), r0.index_select(-1, u1)
    p10, p11 = r1.index_select(-1, u0), r1.index_select(-1, u1)
    return p00 * w00 + p01 * w01 + p10 * w10 + p11 * w11  # summed in Chainer's einsum order


def mean_bias(mean: np.ndarray, offset: tuple[int, int] = (8, 8), frames: int = FRAMES, size: int = SIZE):
    """tgan2's Bias: ``128 - mean[:, :, y:y+112, x:x+112]`` formed in float64, stored in float32."""
    y, x = offset
    return torch.from_numpy((128.0 - mean[:, :frames, y : y + size, x : x + size]).astype(np.float32))


def preprocess(x: torch.Tensor, bias: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """float32 (B, T, H, W, 3) RGB in [-1, 1] -> the classifier input (B, 3, T, 112, 112), tgan2's ``pre``."""
    b, t, h, w, _ = x.shape
    x = x.clamp(-1.0, 1.0).flip(-1) * 128.0  # BGR, [-128, 128]
    frames = x.permute(0, 1, 4, 2, 3).reshape(b * t, 3, h, w)
    frames = resize_chainer(frames, (size, size))
    frames = frames.reshape(b, t, 3, size, size).permute(0, 2, 1, 3, 4)
    return frames + bias


# ----------------------------------------------------------------------------------------------------------
# The network


class C3D(nn.Module):
    """conv1a ... fc8 of tgan2's ``C3DVersion1UCF101``; ``forward`` returns fc8 logits (B, num_classes)."""

    def __init__(self, config: C3DConfig | None = None):
        super().__init__()
        self.config = config or C3DConfig()
        self.convs = nn.ModuleDict({n: nn.Conv3d(ci, co, 3, padding=1) for n, ci, co in CONVS})
        self.fc6 = nn.Linear(512 * 4 * 4, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, self.config.num_classes)

    def forward(self, x: torch.Tensor, layer: str = "fc8") -> torch.Tensor:  # (B, 3, 16, 112, 112)
        h = x
        for name, conv in self.convs.items():
            h = F.relu(conv(h))
            if name in POOL_AFTER:
                k = POOL_AFTER[name]
                h = F.max_pool3d(h, k, stride=k, ceil_mode=True)  # Chainer cover_all=True
        h = h.flatten(1)  # (B, 512*1*4*4), C-order (C, T, H, W) as Chainer's Linear flattens
        h = F.relu(self.fc6(h))
        h = F.relu(self.fc7(h))
        if layer == "fc7":
            return h
        return self.fc8(h)

    def load_chainer(self, arrays: dict[str, np.ndarray]) -> C3D:
        """Copy the arrays of a Chainer ``save_npz`` file (checked with :func:`check_weights`) into the network."""
        check_weights(arrays, "the weight arrays", self.config.num_classes)
        with torch.no_grad():
            for name, conv in self.convs.items():
                conv.weight.copy_(torch.from_numpy(arrays[f"{name}/W"]))
                conv.bias.copy_(torch.from_numpy(arrays[f"{name}/b"]))
            for name in ("fc6", "fc7", "fc8"):
                fc = getattr(self, name)
                fc.weight.copy_(torch.from_numpy(arrays[f"{name}/W"]))
                fc.bias.copy_(torch.from_numpy(arrays[f"{name}/b"]))
        return self


class C3DClassifier(nn.Module):
    """``pre`` + C3D: RGB clips in [-1, 1] (B, T, H, W, 3) -> softmax probabilities (B, 101), as tgan2."""

    def __init__(self, weights: dict[str, np.ndarray] | None, mean: np.ndarray | None, config: C3DConfig | None = None):
        super().__init__()
        self.config = config or C3DConfig()
        self.net = C3D(self.config)
        if weights is not None:
            self.net.load_chainer(weights)
        self.net.eval()
        if mean is None:  # random-init builds (tests, structure checks): a zero mean clip
            mean = np.zeros(MEAN_SHAPE, np.float64)
        self.register_buffer("bias", mean_bias(mean, self.config.mean_offset, self.config.frames, self.config.size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.config.frames:
            raise InputError(f"C3D takes clips of exactly {self.config.frames} frames, got {x.shape[1]}")
        logits = self.net(preprocess(x, self.bias, self.config.size))
        return torch.softmax(logits, dim=1)  # float32 like Chainer's F.softmax; scored in float64


def build_c3d(weights: dict[str, np.ndarray] | None, mean: np.ndarray | None, **config) -> C3DClassifier:
    """The tgan2 classifier from its weight arrays and mean clip (None: random init, zero mean)."""
    return C3DClassifier(weights, mean, C3DConfig(**config))


def from_card(card, weights: bool | dict = True, root=None, **overrides) -> C3DClassifier:
    """The model factory's builder: the card's config, and the pinned published files when ``weights`` is True
    (a dict ``{"weights": arrays, "mean": {"mean": clip}}``: these arrays; False: random init, zero mean).

    The built classifier's ``provenance`` names the files (their sha256) or the given arrays (content hashes)."""
    from vgbench import cards
    from vgbench import weights as weights_mod

    config = cards.build_config(C3DConfig, card, **overrides)
    if weights is False:
        model, provenance = C3DClassifier(None, None, config), {}
    else:
        if weights is True:
            arrays, files = weights_mod.load_published(card.name, root)
            provenance = {f"{role}_sha256": h for role, h in files.items()}
        else:
            arrays = weights
            provenance = {f"{role}_content_sha256": cache.tensors_sha256(a) for role, a in arrays.items()}
        model = C3DClassifier(arrays["weights"], arrays["mean"]["mean"], config)
    model.provenance = provenance
    return model
