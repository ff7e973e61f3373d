"""Bilinear resize conventions used by the reference pipelines, in torch (metrics.md §3.1).

- ``tf_legacy``: TF1 ``tf.image.resize_bilinear`` with ``align_corners=False, half_pixel_centers=False``
  (official FVD). Source coordinate ``src = i * (in / out)``, computed in float32 as TF's kernel does, then
  ``top = tl + (tr - tl) * wx``, ``bottom = bl + (br - bl) * wx``, ``out = top + (bottom - top) * wy``.
- ``torch_half_pixel``: ``F.interpolate(mode="bilinear", align_corners=False)``, what the VideoGPT code uses.

No antialiasing on downscaling in either: that is what the references do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vgbench.errors import InputError

GRIDS = ("tf_legacy", "torch_half_pixel")


def legacy_coords(in_size: int, out_size: int, device=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lower index, upper index, float32 weight) of TF's legacy grid along one axis."""
    scale = torch.tensor(in_size, dtype=torch.float32) / torch.tensor(out_size, dtype=torch.float32)
    src = torch.arange(out_size, dtype=torch.float32) * scale  # float32 like TF's LegacyScaler
    lo_f = torch.floor(src)
    lo = lo_f.long().clamp(min=0)
    hi = torch.ceil(src).long().clamp(max=in_size - 1)
    return lo.to(device), hi.to(device), (src - lo_f).to(device)


def resize_tf_legacy(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize float (..., C, H, W) to ``size`` with TF1's legacy bilinear grid; returns float32.

    Works channels-last inside (the gathers move whole pixels) and returns a channels-last tensor, the memory
    format I3D runs in, so no copy is made to convert it. Per output value it computes TF's
    ``top = tl + (tr - tl) * wx``, ``bottom = bl + (br - bl) * wx``, ``out = top + (bottom - top) * wy`` with the
    same float32 operations on the same operands (in place, where no new buffer is needed): the same bits.
    """
    x = x.float()
    out_h, out_w = size
    h, w = x.shape[-2:]
    if (h, w) == (out_h, out_w):
        return x  # TF returns the input values unchanged when sizes match
    lead = x.shape[:-2]
    y0, y1, wy = legacy_coords(h, out_h, x.device)
    x0, x1, wx = legacy_coords(w, out_w, x.device)
    nhwc = x.reshape(-1, *x.shape[-3:]) if x.dim() >= 3 else x[None, None]
    nhwc = nhwc.permute(0, 2, 3, 1).contiguous()  # (N, H, W, C): no copy when x is channels-last already
    left, across = nhwc[:, :, x0], nhwc[:, :, x1]  # (N, H, out_w, C)
    across = across.sub_(left).mul_(wx[:, None]).add_(left)  # left + (right - left) * wx
    top, out = across[:, y0], across[:, y1]  # (N, out_h, out_w, C)
    out = out.sub_(top).mul_(wy[:, None, None]).add_(top)  # top + (bottom - top) * wy
    return out.permute(0, 3, 1, 2).reshape(*lead, out_h, out_w)  # (..., C, out_h, out_w), channels-last


def resize_torch_half_pixel(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """PyTorch's bilinear resize with ``align_corners=False`` on (B, C, H, W) float32."""
    return F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False)


def resize_frames(frames: torch.Tensor, size: tuple[int, int], grid: str) -> torch.Tensor:
    """Resize (B, C, H, W) frames with the named grid."""
    if grid == "tf_legacy":
        return resize_tf_legacy(frames, size)
    if grid == "torch_half_pixel":
        return resize_torch_half_pixel(frames, size)
    raise InputError(f"unknown resize grid {grid!r}; allowed: {', '.join(GRIDS)}")
