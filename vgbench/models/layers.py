"""Building blocks shared by the VideoGPT VQ-VAE and prior.

- :class:`SamePadConv3d` / :class:`SamePadConvTranspose3d`: the reference's "same" padding (videogpt.md §3): for
  kernel k and stride s the total pad per axis is k - s, split ``(p//2 + p%2)`` in front and ``p//2`` behind, so
  **the extra pad goes in front** (the opposite of TF SAME). The transposed convolution pads its input that way and
  crops k - 1 on each side, which upsamples by exactly s.
- :class:`BroadcastPositionEmbedding`: one learned table per axis of a grid, broadcast over the grid and
  concatenated (VG / VGP) or summed along channels.
- :func:`make_norm`: the residual blocks' normalisation, a channel LayerNorm (the paper) or BatchNorm3d (both code
  bases).
- :class:`AxialAttention`: multi-head attention along each of T, H and W separately, the three outputs summed
  (VGP's ``axial_attention`` package and VG's ``AxialBlock`` both sum).

Speed: the transposed convolution skips the zero rows the reference pads on both sides of its input only to crop
their outputs again (the crop shrinks instead): the same numbers (tested against the reference form) with up to
1.9x fewer multiplies on small latent grids. A sub-pixel (phase) decomposition, which also never multiplies the
zeros between upsampled inputs, was tried and measured slower on CPU (oneDNN's deconvolution already skips them,
and eight small convolutions plus an interleave cost more). Activations may be channels-last-3d.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


def _triple(v: int | tuple[int, ...]) -> tuple[int, int, int]:
    return (v, v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


def same_pads(kernel: int | tuple[int, ...], stride: int | tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """(front, back) zero padding per axis of the reference's "same" convolution: total k - s, extra pad in front."""
    out = []
    for k, s in zip(_triple(kernel), _triple(stride), strict=True):
        p = k - s
        if p < 0:
            raise ValueError(f"kernel {k} is smaller than stride {s}: 'same' padding needs kernel >= stride")
        out.append((p // 2 + p % 2, p // 2))
    return tuple(out)


def f_pad_arg(pads: tuple[tuple[int, int], ...]) -> tuple[int, ...]:
    """Per-axis (front, back) pads in F.pad's order (last axis first)."""
    return tuple(v for front_back in reversed(pads) for v in front_back)


class SamePadConv3d(nn.Module):
    """Conv3d with the reference's "same" padding (extra pad in front); output size = ceil(input / stride).

    The symmetric part of the padding is left to the convolution (no copy); only the one extra front pad of an odd
    total goes through ``F.pad``. Parameters live in ``self.conv`` as in the reference (``conv.weight``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, bias: bool = True):
        super().__init__()
        pads = same_pads(kernel_size, stride)
        self.extra = f_pad_arg(tuple((front - back, 0) for front, back in pads))  # the odd pad, in front
        self.conv = nn.Conv3d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=tuple(back for _, back in pads),
            bias=bias,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W) -> (B, C', T/s, H/s, W/s)
        if any(self.extra):
            x = F.pad(x, self.extra)
        return self.conv(x)


class SamePadConvTranspose3d(nn.Module):
    """ConvTranspose3d with the reference's "same" padding: upsamples each axis by exactly its stride.

    Reference form (``reference=True``): zero-pad the input as :class:`SamePadConv3d` would, then
    ``conv_transpose3d`` with padding k - 1, which crops k - 1 outputs on each side again. Default form, the same
    numbers: the b = ``pad // 2`` pads on both sides of an axis would only make s*b outputs per side that are then
    cropped, so they are left out and the crop shrinks to k - 1 - s*b; only the odd extra front pad (stride-1 axes)
    is still padded. For k = 4, s = 2 an axis of n inputs costs n rows of taps instead of the reference's n + 2.
    Parameters live in ``self.convt`` in ConvTranspose3d layout (in, out, kt, kh, kw), as in the reference.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, bias: bool = True):
        super().__init__()
        self.kernel, self.stride = _triple(kernel_size), _triple(stride)
        for k, s in zip(self.kernel, self.stride, strict=True):
            if s > 1 and k != s + 2:  # output (n + k - s - 1) s - k + 2 equals s n only then (or for s == 1)
                raise ValueError(
                    f"the reference's transposed conv upsamples exactly x{s} only with kernel {s + 2}, got {k}"
                )
        pads = same_pads(self.kernel, self.stride)
        self.reference_pad = f_pad_arg(pads)
        self.extra = f_pad_arg(tuple((front - back, 0) for front, back in pads))  # the odd pad, in front
        self.crop = tuple(k - 1 - s * back for k, s, (_, back) in zip(self.kernel, self.stride, pads, strict=True))
        self.convt = nn.ConvTranspose3d(
            in_channels,
            out_channels,
            self.kernel,
            stride=self.stride,
            padding=tuple(k - 1 for k in self.kernel),
            bias=bias,
        )

    def forward(self, x: torch.Tensor, reference: bool = False) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, C', T*st, H*sh, W*sw)."""
        if reference:
            return self.convt(F.pad(x, self.reference_pad))
        if any(self.extra):
            x = F.pad(x, self.extra)
        return F.conv_transpose3d(x, self.convt.weight, self.convt.bias, self.stride, self.crop)


class BroadcastPositionEmbedding(nn.Module):
    """Learned position embedding of a grid: one table per axis, ``emb.d_i`` of shape (shape[i], width_i).

    ``mode="concat"``: each table is dim / n_axes wide and the broadcast tables are concatenated (VG, VGP; needs
    dim divisible by the number of axes). ``mode="sum"``: each table is dim wide and they are added. Tables start
    at N(0, init_std^2) (0.01 in VG and VGP).
    """

    def __init__(self, shape: tuple[int, ...], dim: int, mode: Literal["concat", "sum"] = "concat", init_std=0.01):
        super().__init__()
        n = len(shape)
        if mode == "concat" and dim % n:
            raise ValueError(f"concatenated position embedding needs dim divisible by {n} axes, got dim={dim}")
        self.shape, self.dim, self.mode = tuple(shape), dim, mode
        width = dim // n if mode == "concat" else dim
        self.emb = nn.ParameterDict(
            {f"d_{i}": nn.Parameter(torch.randn(s, width) * init_std) for i, s in enumerate(shape)}
        )

    def table(self) -> torch.Tensor:
        """The embedding of every grid position: (*shape, dim)."""
        n = len(self.shape)
        parts = []
        for i, s in enumerate(self.shape):
            view = [1] * n + [-1]
            view[i] = s
            parts.append(self.emb[f"d_{i}"].view(view).expand(*self.shape, -1))  # (*shape, width)
        return torch.cat(parts, -1) if self.mode == "concat" else sum(parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, *shape, dim) channels-last -> same
        return x + self.table()


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of each position of a (B, C, T, H, W) tensor (no copy for channels-last)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 4, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.permute(0, 4, 1, 2, 3)


def make_norm(kind: Literal["layer", "batch"], channels: int) -> nn.Module:
    """The residual blocks' normalisation: channel LayerNorm (paper §3) or BatchNorm3d (VG, VGP as SyncBN)."""
    if kind == "layer":
        return ChannelLayerNorm(channels)
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    raise ValueError(f"unknown norm {kind!r}; expected 'layer' or 'batch'")


class AxisAttention(nn.Module):
    """Multi-head self-attention along one axis of a channels-last grid (no mask, no dropout).

    Projections as in VGP's ``axial_attention``: q, k, v without bias (``qkv``), output with bias (``out``),
    PyTorch's default Linear initialisation.
    """

    def __init__(self, dim: int, heads: int, axis: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads, self.axis = heads, axis
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, H, W, C) -> same
        C = x.shape[-1]
        h = self.heads
        x = x.movedim(self.axis, -2)  # (B, a, b, L, C): the attended axis next to the channels
        lead = x.shape[:-2]
        L = x.shape[-2]
        q, k, v = self.qkv(x).reshape(-1, L, 3, h, C // h).permute(2, 0, 3, 1, 4)  # 3 x (N, h, L, d)
        y = F.scaled_dot_product_attention(q, k, v)  # (N, h, L, d)
        y = y.transpose(1, 2).reshape(*lead, L, C)  # (B, a, b, L, C)
        return self.out(y).movedim(-2, self.axis)


class AxialAttention(nn.Module):
    """Attention along T, H and W separately, the three outputs summed (VGP ``axial_attention``, VG ``AxialBlock``).

    Input and output (B, C, T, H, W); the optional shared position embedding is added (channels-last) first.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.attn_t = AxisAttention(dim, heads, 1)
        self.attn_h = AxisAttention(dim, heads, 2)
        self.attn_w = AxisAttention(dim, heads, 3)

    def forward(self, x: torch.Tensor, pos: BroadcastPositionEmbedding | None = None) -> torch.Tensor:
        h = x.permute(0, 2, 3, 4, 1)  # (B, T, H, W, C)
        if pos is not None:
            h = pos(h)
        y = self.attn_t(h) + self.attn_h(h) + self.attn_w(h)  # (B, T, H, W, C)
        return y.permute(0, 4, 1, 2, 3)
