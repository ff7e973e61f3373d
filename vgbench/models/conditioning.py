"""Conditioning of the VideoGPT prior: the 3D ResNet frame encoder (frame conditioning through cross-attention)
and the conditional LayerNorm (class and action conditioning).

Frame encoder, as in both reference code bases (videogpt.md §4; VG ``resnet.py``, VGP ``models/resnet.py``):
a 3D ResNet-18 or -34 of basic blocks with a "CIFAR" stem (3x3x3 conv, stride 1, no bias), **channel LayerNorm**
instead of BatchNorm, a projection shortcut in the first block of every group, widths base, 2·base, 4·base and
``out_dim``, and (1, 2, 2) downsampling in groups 2 and 3: ``n`` frames of H x W become an (n, H/4, W/4) grid of
``out_dim`` features (VG: 240; VGP: 576; the paper's Appendix A: 512 units).

Speed: with one conditioning frame (the paper's BAIR and Moving MNIST priors) a 3x3x3 convolution padded by one
frame sees zeros in its outer temporal taps, so it equals the 2D convolution with the kernel's centre slice.
:class:`FrameConv3d` takes that path (a third of the multiply-adds; same parameters and state_dict as a 3D conv).

Conditional LayerNorm (paper §3.2, VG/VGP ``LayerNorm`` with a class vector): gain ``1 + W_g c`` and bias
``W_b c`` with ``c`` the conditioning vector (one-hot class, and/or an action vector), both maps without bias;
``W_g`` starts at the constant 1/sqrt(dim c), so the initial gain is 1 + 1/sqrt(n_classes) for a one-hot class
(both code bases; videogpt.md §8 item 1), and ``W_b`` has PyTorch's default Linear initialisation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vgbench.models.attention import layer_norm

RESNET_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}  # basic blocks per group
FRAME_DOWNSAMPLE = 4  # spatial stride of the frame encoder: (n, H, W) -> (n, H/4, W/4)


class ConditionalLayerNorm(nn.Module):
    """LayerNorm whose gain and bias are predicted from a conditioning vector ``c`` (B, cond_dim)."""

    def __init__(self, dim: int, cond_dim: int, quirk: bool = False, eps: float = 1e-5):
        super().__init__()
        self.gain = nn.Linear(cond_dim, dim, bias=False)
        self.shift = nn.Linear(cond_dim, dim, bias=False)
        nn.init.constant_(self.gain.weight, 1.0 / math.sqrt(cond_dim))
        self.quirk, self.eps = quirk, eps

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
        g = 1 + self.gain(c.float()).view(shape)  # (B, 1, C)
        b = self.shift(c.float()).view(shape)
        return layer_norm(x, g, b, self.eps, self.quirk)


class ChannelLayerNorm(nn.Module):
    """``nn.LayerNorm`` over the channels of a (B, C, T, H, W) tensor, computed in float32."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.float().movedim(1, -1)  # (B, T, H, W, C): a free view for channels-last-3d memory
        y = F.layer_norm(y, y.shape[-1:], self.weight, self.bias, 1e-5)
        return y.movedim(-1, 1).type_as(x)


class FrameConv3d(nn.Conv3d):
    """Conv3d (no bias, padding k//2) that runs a one-frame input as the exactly equal 2D convolution."""

    def __init__(self, cin: int, cout: int, k: int, stride: tuple[int, int, int]):
        super().__init__(cin, cout, k, stride=stride, padding=k // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] == 1 and self.stride[0] == 1:
            # Outer temporal taps multiply the zero padding: only the centre slice contributes.
            w = self.weight[:, :, self.padding[0]].contiguous()  # (Cout, Cin, k, k)
            x2 = x[:, :, 0]  # (B, Cin, H, W)
            if self.kernel_size[1:] == (1, 1):
                # A strided 1x1 conv reads every s-th pixel: subsample, then convolve with stride 1. (Also avoids
                # oneDNN's strided 1x1 weight gradient on channels-last input, which hangs or corrupts the heap in
                # torch 2.13 on CPU.)
                return F.conv2d(x2[..., :: self.stride[1], :: self.stride[2]], w).unsqueeze(2)
            return F.conv2d(x2, w, None, self.stride[1:], self.padding[1:]).unsqueeze(2)
        return super().forward(x)


class BasicBlock(nn.Module):
    """conv3 -> LN -> ReLU -> conv3 -> LN, plus the (projected) shortcut, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: tuple[int, int, int], project: bool):
        super().__init__()
        self.conv1, self.norm1 = FrameConv3d(cin, cout, 3, stride), ChannelLayerNorm(cout)
        self.conv2, self.norm2 = FrameConv3d(cout, cout, 3, (1, 1, 1)), ChannelLayerNorm(cout)
        if project:
            self.proj_conv, self.proj_norm = FrameConv3d(cin, cout, 1, stride), ChannelLayerNorm(cout)
        self.project = project

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.proj_norm(self.proj_conv(x)) if self.project else x
        h = F.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return F.relu(h + shortcut)


class FrameEncoder(nn.Module):
    """3D ResNet-18/34 with channel LayerNorm: frames (B, C, n, H, W) in [-0.5, 0.5] -> (B, n, H/4, W/4, out_dim)."""

    def __init__(self, in_channels: int = 3, depth: int = 34, base: int = 64, out_dim: int = 576):
        super().__init__()
        widths = (base, 2 * base, 4 * base, out_dim)
        strides = ((1, 1, 1), (1, 2, 2), (1, 2, 2), (1, 1, 1))
        self.stem_conv, self.stem_norm = FrameConv3d(in_channels, base, 3, (1, 1, 1)), ChannelLayerNorm(base)
        groups, cin = [], base
        for n_blocks, cout, stride in zip(RESNET_BLOCKS[depth], widths, strides, strict=True):
            blocks = [BasicBlock(cin, cout, stride, project=True)]
            blocks += [BasicBlock(cout, cout, (1, 1, 1), project=False) for _ in range(n_blocks - 1)]
            groups.append(nn.Sequential(*blocks))
            cin = cout
        self.groups = nn.ModuleList(groups)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.contiguous(memory_format=torch.channels_last_3d)  # (B, C, n, H, W), channels innermost
        x = F.relu(self.stem_norm(self.stem_conv(x)))
        for group in self.groups:
            x = group(x)
        return x.movedim(1, -1)  # (B, n, H/4, W/4, out_dim)
