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
    """Resize float (..., H, W) to ``size`` with TF1's legacy bilinear grid; returns float32."""
    x = x.float()
    out_h, out_w = size
    h, w = x.shape[-2:]
    if (h, w) == (out_h, out_w):
        return x  # TF returns the input values unchanged when sizes match
    y0, y1, wy = legacy_coords(h, out_h, x.device)
    x0, x1, wx = legacy_coords(w, out_w, x.device)
    # Horizontal pass on the input rows first, then rows picked from it: the same float32 operations on the same
    # operands as TF's top/bottom/out per output pixel (so the same bits), with the column gathers done on H input
    # rows instead of out_h output rows. Advanced indexing, as index_select on the last dimension is slow on CPU.
    left, right = x[..., x0], x[..., x1]  # (..., H, out_w)
    across = left + (right - left) * wx
    top, bottom = across.index_select(-2, y0), across.index_select(-2, y1)  # (..., out_h, out_w)
    return top + (bottom - top) * wy.unsqueeze(-1)


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
