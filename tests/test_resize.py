"""The TF1 legacy bilinear resize against an independent numpy implementation (and TF itself when installed)."""

import numpy as np
import pytest
import torch

from vgbench.metrics.resize import resize_frames, resize_tf_legacy


def numpy_legacy_resize(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Independent loop form of TF's legacy grid: src = i * in/out, float32 like TF's kernel. img (H, W, C)."""
    h, w, _ = img.shape
    img = img.astype(np.float32)
    out = np.zeros((out_h, out_w, img.shape[2]), np.float32)
    sy, sx = np.float32(h) / np.float32(out_h), np.float32(w) / np.float32(out_w)
    for i in range(out_h):
        fy = np.float32(i) * sy
        y0 = int(np.floor(fy))
        y1 = min(y0 + 1, h - 1)
        wy = np.float32(fy - np.floor(fy))
        for j in range(out_w):
            fx = np.float32(j) * sx
            x0 = int(np.floor(fx))
            x1 = min(x0 + 1, w - 1)
            wx = np.float32(fx - np.floor(fx))
            top = img[y0, x0] + (img[y0, x1] - img[y0, x0]) * wx
            bot = img[y1, x0] + (img[y1, x1] - img[y1, x0]) * wx
            out[i, j] = top + (bot - top) * wy
    return out


@pytest.mark.parametrize("shape", [(23, 37, 56, 41), (64, 48, 224, 224), (240, 320, 112, 150), (9, 5, 4, 7)])
def test_legacy_resize_matches_numpy(shape):
    h, w, oh, ow = shape
    img = np.random.default_rng(h * w).random((h, w, 3)).astype(np.float32)
    ref = numpy_legacy_resize(img, oh, ow)
    got = resize_tf_legacy(torch.from_numpy(img).permute(2, 0, 1)[None], (oh, ow))[0].permute(1, 2, 0).numpy()
    assert np.abs(got - ref).max() < 1e-5


def test_legacy_grid_differs_from_half_pixel_when_upscaling():
    x = torch.from_numpy(np.random.default_rng(0).random((1, 3, 48, 64)).astype(np.float32) * 255)
    legacy = resize_frames(x, (224, 224), "tf_legacy")
    half = resize_frames(x, (224, 224), "torch_half_pixel")
    assert (legacy - half).abs().max() > 20  # half an input pixel of shift on noise (metrics.md §3.1: up to ~140)
    const = torch.full((1, 3, 48, 64), 77.0)
    # constant frames stay constant under both grids (to float32 rounding: torch's kernel differs by thread count)
    for grid in ("tf_legacy", "torch_half_pixel"):
        assert (resize_frames(const, (224, 224), grid) - 77.0).abs().max() < 1e-4


def test_unknown_grid_is_refused():
    with pytest.raises(ValueError, match="unknown resize grid 'cubic'.*tf_legacy"):
        resize_frames(torch.zeros(1, 3, 4, 4), (8, 8), "cubic")


@pytest.mark.tf
def test_legacy_resize_equals_tensorflow(tf):
    rng = np.random.default_rng(5)
    for h, w, oh, ow in [(64, 48, 224, 224), (240, 320, 224, 224), (17, 9, 224, 100)]:
        x = (rng.random((2, h, w, 3)) * 255).astype(np.float32)
        ref = tf.compat.v1.image.resize_bilinear(x, (oh, ow)).numpy()
        got = resize_tf_legacy(torch.from_numpy(x).permute(0, 3, 1, 2), (oh, ow)).permute(0, 2, 3, 1).numpy()
        assert np.abs(got - ref).max() <= 1e-4


def _legacy_resize_straightforward(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The form vgbench used before issue 9 (gather the four neighbours per output pixel, then TF's three
    expressions), kept here as the bit-level reference of the faster channels-last version."""
    from vgbench.metrics.resize import legacy_coords

    y0, y1, wy = legacy_coords(x.shape[-2], size[0])
    x0, x1, wx = legacy_coords(x.shape[-1], size[1])
    rows0, rows1 = x.index_select(-2, y0), x.index_select(-2, y1)
    tl, tr = rows0.index_select(-1, x0), rows0.index_select(-1, x1)
    bl, br = rows1.index_select(-1, x0), rows1.index_select(-1, x1)
    top, bottom = tl + (tr - tl) * wx, bl + (br - bl) * wx
    return top + (bottom - top) * wy.unsqueeze(-1)


@pytest.mark.parametrize("shape", [(2, 3, 64, 64, 224, 224), (1, 3, 240, 320, 224, 224), (3, 5, 17, 9, 224, 100)])
def test_fast_legacy_resize_is_bit_identical_and_channels_last(shape):
    x = torch.from_numpy(np.random.default_rng(shape[2]).random(shape[:4]).astype(np.float32) * 255)
    want = _legacy_resize_straightforward(x, shape[4:])
    for inp in (x, x.contiguous(memory_format=torch.channels_last)):
        got = resize_tf_legacy(inp, shape[4:])
        assert torch.equal(got, want) and got.is_contiguous(memory_format=torch.channels_last)
