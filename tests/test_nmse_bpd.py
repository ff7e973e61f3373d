"""Known answers for the NMSE and bits/dim maths (metrics.md §10-11)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vgbench.metrics.bits_per_dim import TokenNLL, bits_per_token, token_nll
from vgbench.metrics.nmse import VIDEOGPT_VARIANCE, SquaredError, nmse


def test_nmse_identical_is_zero():
    x = torch.rand(2, 3, 4, 8, 8) - 0.5
    assert nmse(x, x, VIDEOGPT_VARIANCE) == 0.0


def test_nmse_constant_offset():
    # every value off by 0.1: MSE = 0.01, divided by 0.06
    x = torch.zeros(1, 3, 2, 4, 4, dtype=torch.float64)
    assert nmse(x + 0.1, x, 0.06) == pytest.approx(0.01 / 0.06, rel=1e-12)


def test_streaming_equals_whole_and_ignores_batching():
    rng = np.random.default_rng(0)
    a, b = (torch.from_numpy(rng.uniform(-0.5, 0.5, (6, 3, 4, 8, 8))) for _ in range(2))
    acc = SquaredError(6, 0.06)
    for i in (0, 1, 4):  # uneven batches
        j = {0: 1, 1: 4, 4: 6}[i]
        acc.update(a[i:j], b[i:j], i)
    assert acc.compute() == pytest.approx(nmse(a, b, 0.06), rel=1e-12)
    # each clip's row: its own squared-error sum and value count
    per_clip = ((a - b) ** 2).flatten(1).sum(1).numpy()
    np.testing.assert_allclose(acc.states["per_video"][0], per_clip, rtol=1e-12)
    assert (acc.states["per_video"][1] == a[0].numel()).all()


def test_merge_of_two_halves_equals_the_whole():
    """merge() adds states: two accumulators over disjoint clips give the accumulator of all clips."""
    rng = np.random.default_rng(2)
    a, b = (torch.from_numpy(rng.uniform(-0.5, 0.5, (4, 1, 2, 4, 4))) for _ in range(2))
    whole, first, second = SquaredError(4, 0.06), SquaredError(4, 0.06), SquaredError(4, 0.06)
    whole.update(a, b, 0)
    first.update(a[:3], b[:3], 0)
    second.update(a[3:], b[3:], 3)
    merged = first.merge(second)
    assert merged.compute() == pytest.approx(whole.compute(), rel=1e-14)
    np.testing.assert_array_equal(merged.states["per_video"], whole.states["per_video"])
    assert merged.contributions().params == {"scale": 1 / 0.06}
    with pytest.raises(TypeError, match="cannot merge"):
        merged.merge(TokenNLL(4))


def test_nmse_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differs"):
        nmse(torch.zeros(1, 3, 2, 4, 4), torch.zeros(1, 3, 2, 4, 5), 0.06)


@pytest.mark.parametrize("k", [2, 256, 1024, 4096])
def test_uniform_prior_is_log2_k(k):
    logits = torch.zeros(3, 5, k)
    targets = torch.randint(0, k, (3, 5))
    acc = TokenNLL(3)
    acc.update(token_nll(logits, targets), 0)
    assert acc.compute() == pytest.approx(math.log2(k), rel=1e-12)
    assert acc.states["per_video"][1].tolist() == [5, 5, 5]


def test_certain_prediction_is_zero_bits_and_known_value():
    logits = torch.tensor([[0.0, 100.0], [math.log(3.0), 0.0]], dtype=torch.float64)  # p = [~0, ~1]; [3/4, 1/4]
    targets = torch.tensor([1, 1])
    nll = token_nll(logits, targets)
    assert float(nll[0]) == pytest.approx(0.0, abs=1e-40)
    assert float(nll[1]) == pytest.approx(math.log(4.0), rel=1e-12)
    assert bits_per_token(float(nll.sum()), 2) == pytest.approx(1.0, rel=1e-12)  # (0 + 2 bits) / 2


def test_bad_targets_and_counts():
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        token_nll(torch.zeros(2, 4), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="at least one token"):
        bits_per_token(1.0, 0)
