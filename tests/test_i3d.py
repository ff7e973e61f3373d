"""The I3D port: weights, padding rules, folding, frame-count limits."""

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vgbench.models.i3d import build_i3d, max_pool_same, tf_same_pads

# sha256 of C-order little-endian float32 bytes, from metrics.md §2.4 (measured with the real weights).
SPOT_CHECKS = {
    "Conv3d_1a_7x7/conv_3d/w": "db1c4848bcd22bd63baca5697c81841bc8206964a861087aeceb2e8baa3c06f7",
    "Conv3d_1a_7x7/batch_norm/moving_mean": "64100c0e10af59d88d35e426ea68b62347f1605c7e6fa1951f9cf7bff5522f62",
    "Mixed_5b/Branch_2/Conv3d_0a_3x3/conv_3d/w": "3a64911a170afd13f8cab24a7bd1f9ba83bcf1052f99d8d8c7ab26af6243c473",
    "Logits/Conv3d_0c_1x1/conv_3d/w": "b861850b083e5c03c12ebf58e2b591185f4dd8a9a39ae286ac3b0a1401409b74",
    "Logits/Conv3d_0c_1x1/conv_3d/b": "1a88ebf157af9910e873bb08c4f6ffd0d55a5783ef22e680456a36b304daf683",
}


def test_converted_weights_match_the_spec(i3d_tensors):
    assert len(i3d_tensors) == 230
    assert sum(v.size for v in i3d_tensors.values()) == 12_704_544
    for name, digest in SPOT_CHECKS.items():
        a = i3d_tensors["RGB/inception_i3d/" + name]
        assert hashlib.sha256(a.astype("<f4").tobytes()).hexdigest() == digest, name
    total = sum(float(i3d_tensors[k].astype(np.float64).sum()) for k in sorted(i3d_tensors))
    assert total == pytest.approx(41089.6156, abs=1e-3)
    assert not any("gamma" in k for k in i3d_tensors)  # Sonnet BN without scale


@pytest.mark.parametrize(
    "size,k,s,pads",
    [
        (224, 7, 2, (2, 3)),
        (112, 3, 2, (0, 1)),
        (16, 7, 2, (2, 3)),
        (8, 3, 2, (0, 1)),
        (5, 3, 2, (1, 1)),
        (56, 3, 1, (1, 1)),
        (4, 2, 2, (0, 0)),
    ],
)
def test_tf_same_pads(size, k, s, pads):
    assert tf_same_pads(size, k, s) == pads


@pytest.mark.parametrize(
    "shape,k,s",
    [
        ((1, 2, 8, 112, 112), (1, 3, 3), (1, 2, 2)),
        ((1, 2, 5, 9, 9), (3, 3, 3), (2, 2, 2)),
        ((1, 2, 3, 7, 6), (2, 2, 2), (2, 2, 2)),
        ((1, 2, 9, 28, 27), (3, 3, 3), (2, 2, 2)),
    ],
)
def test_max_pool_same_equals_explicit_minus_inf_padding(shape, k, s):
    x = torch.randn(shape)
    pads = [tf_same_pads(n, ki, si) for n, ki, si in zip(shape[2:], k, s, strict=True)]
    ref = F.max_pool3d(F.pad(x, [p for pair in reversed(pads) for p in pair], value=float("-inf")), k, s)
    assert torch.equal(max_pool_same(x, k, s), ref)


def test_frame_limits_and_time_averaging(i3d_tensors):
    model = build_i3d(i3d_tensors)
    with torch.inference_mode():
        with pytest.raises(ValueError, match="at least 9 frames, got 8"):
            model(torch.zeros(1, 3, 8, 224, 224))
        for t in (9, 16, 32):
            assert model(torch.zeros(1, 3, t, 224, 224)).shape == (1, 400)


def test_folded_bn_equals_reference_form(i3d_tensors):
    x = torch.rand(2, 3, 9, 224, 224) * 2 - 1
    with torch.inference_mode():
        fast = build_i3d(i3d_tensors)(x)
        ref = build_i3d(i3d_tensors, fold_bn=False, channels_last=False)(x)
    assert (fast - ref).abs().max() < 1e-3 * ref.abs().max()


def test_bn_eps_switch_moves_logits_slightly(i3d_tensors):
    x = torch.rand(2, 3, 9, 224, 224) * 2 - 1
    with torch.inference_mode():
        a = build_i3d(i3d_tensors, bn_eps=1e-3)(x)
        b = build_i3d(i3d_tensors, bn_eps=1e-5)(x)
    diff = (a - b).abs().max().item()
    assert 1e-4 < diff < 0.1  # metrics.md §4: up to ~0.011 on typical inputs


def test_wrong_weight_names_are_refused(i3d_tensors):
    broken = dict(i3d_tensors)
    broken.pop("RGB/inception_i3d/Mixed_4c/Branch_3/Conv3d_0b_1x1/conv_3d/w")
    with pytest.raises(KeyError, match="Mixed_4c/Branch_3/Conv3d_0b_1x1/conv_3d/w"):
        build_i3d(broken)
    extra = dict(i3d_tensors, **{"RGB/inception_i3d/Extra/w": np.zeros(1, np.float32)})
    with pytest.raises(KeyError, match="unexpected.*Extra"):
        build_i3d(extra)
