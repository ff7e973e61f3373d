"""The continuity metric (issue 19): all-pairs SSIM equals ssim_per_frame pair by pair; a sample that copies its
conditioning frame scores 1 - the mean SSIM between different first frames, a shuffled pairing about 0, and the
engine reads a ``vgbench sample`` folder and refuses a reference the samples were not conditioned on."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vgbench import api, cards
from vgbench.errors import InputError
from vgbench.metrics.continuity import pairing_gain, ssim_all_pairs
from vgbench.metrics.psnr_ssim import ssim_per_frame


def _protocol():
    return cards.resolve_protocol("continuity")[2]


def _digits(n: int, seed: int = 0) -> np.ndarray:
    """(n, 16, 32, 32, 1) uint8: a bright square moving right on black, a different start per clip."""
    rng = np.random.default_rng(seed)
    v = np.zeros((n, 16, 32, 32, 1), np.uint8)
    for i in range(n):
        y, x = rng.integers(0, 20, 2)
        for t in range(16):
            xx = min(x + t, 24)
            v[i, t, y : y + 8, xx : xx + 8] = 255
    return v


def test_all_pairs_equal_ssim_per_frame():
    p = _protocol()
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 1, 4, 24, 24, generator=g, dtype=torch.float64)
    b = torch.rand(5, 1, 24, 24, generator=g, dtype=torch.float64)
    got = ssim_all_pairs(a, b, p)
    for i in range(3):
        for j in range(5):
            want = ssim_per_frame(a[i : i + 1], b[j : j + 1, :, None].expand(1, 1, 4, 24, 24)).mean()
            assert abs(float(got[i, j]) - float(want)) < 1e-12


def test_copy_scores_high_and_shuffle_about_zero():
    p = _protocol()
    v = _digits(12)
    first = v[:, 0]
    repeat = np.repeat(first[:, None], 16, axis=1)
    gain, own, other = pairing_gain(repeat, first, p)
    assert own == pytest.approx(1.0) and gain == pytest.approx(1.0 - other)
    assert gain > 0.3
    real, _, _ = pairing_gain(v, first, p)
    assert 0.1 < real < gain  # the clips themselves: their digits move away from frame 1
    shuffled, _, _ = pairing_gain(v[np.roll(np.arange(12), 1)], first, p)
    assert abs(shuffled) < 0.1  # (mean over samples of own - mean others): 0 in expectation
    noise = np.random.default_rng(1).integers(0, 256, v.shape).astype(np.uint8)
    assert abs(pairing_gain(noise, first, p)[0]) < 0.01
    with pytest.raises(InputError, match="give >= 2"):
        pairing_gain(v[:1], first[:1], p)


def test_engine_reads_sample_folders_and_checks_the_pairing(tmp_path):
    v = np.repeat(_digits(6), 3, axis=-1)
    np.save(tmp_path / "ref.npy", v)
    folder = tmp_path / "s"
    folder.mkdir()
    np.savez(folder / "samples.npz", videos=v)
    (folder / "samples.json").write_text(json.dumps({"conditioning": {"dataset": str(tmp_path / "ref.npy")}}))
    r = api.evaluate("continuity", samples=folder / "samples.npz", reference=tmp_path / "ref.npy")
    assert r.n_samples == 6 and r.higher_is_better and 0.1 < r.value < 1.0
    (folder / "samples.json").write_text(json.dumps({"conditioning": {"dataset": "quickstart:test"}}))
    with pytest.raises(InputError, match="were conditioned on quickstart:test"):
        api.evaluate("continuity", samples=folder / "samples.npz", reference=tmp_path / "ref.npy")


def test_conditioning_frame_is_the_first_frame_the_sampler_read(tmp_path, monkeypatch):
    """On a prepared split the reference clip is read as the sampler read it (16 frames from frame 0), not as a
    4-frame window that may start anywhere: the first frame repeated scores an own SSIM of exactly 1."""
    from vgbench import datasets
    from vgbench.datasets import quickstart

    root = tmp_path / "data"
    quickstart.prepare(cards.dataset("quickstart"), root=root, counts={"train": 4, "test": 6})
    monkeypatch.setenv("VGBENCH_DATA", str(root))
    view = datasets.open_split("quickstart:test", clip_len=16)
    first = np.stack([view[i]["video"].numpy()[0] for i in range(6)])  # (6, 64, 64, 3)
    np.save(tmp_path / "repeat.npy", np.repeat(first[:, None], 16, axis=1))
    r = api.evaluate("continuity", samples=tmp_path / "repeat.npy", reference="quickstart:test", store=None)
    own = [n for n in r.notes if "against the own first frame" in n][0]
    assert "against the own first frame 1.0000" in own, own
    want = pairing_gain(np.repeat(first[:, None], 4, axis=1)[..., :1], first[..., :1], _protocol())[0]
    assert r.value == pytest.approx(want, rel=1e-12) and r.value > 0.3
    blocks = api.evaluate("continuity", samples=tmp_path / "repeat.npy", reference="quickstart:test", store=None,
                          batch_size=4)  # fmt: skip
    assert blocks.value == pytest.approx(r.value, rel=1e-12) and blocks.batch_size == 4  # two blocks: same rows


def _shapes(n: int, seed: int = 0) -> np.ndarray:
    """(n, 16, 32, 32, 1) uint8: a random 10x10 pattern per clip (its own shape) moving right and down."""
    rng = np.random.default_rng(seed)
    v = np.zeros((n, 16, 32, 32, 1), np.uint8)
    for i in range(n):
        shape = (rng.random((10, 10)) < 0.4) * 255
        y, x = rng.integers(0, 6, 2)
        for t in range(16):
            v[i, t, y + t : y + t + 10, x + t : x + t + 10, 0] = shape
    return v


def test_later_frames_are_compared_shift_free():
    p = cards.resolve_protocol("continuity", "later_frames")[2]
    assert (p.start, p.frames, p.descriptor) == (4, 12, "spectrum")
    v = _shapes(12)
    moved, own, other = pairing_gain(v, v[:, 0], p)
    assert moved > 0.5 and own > other  # a shape 4-15 px away from where it began is still its own shape
    assert pairing_gain(v, v[:, 0], _protocol())[0] < moved  # SSIM against frame 1 misses it further on
    shuffled = pairing_gain(v[np.roll(np.arange(12), 1)], v[:, 0], p)[0]
    noise = np.random.default_rng(1).integers(0, 256, v.shape).astype(np.uint8)
    assert abs(shuffled) < 0.1 and abs(pairing_gain(noise, v[:, 0], p)[0]) < 0.01
    with pytest.raises(InputError, match="frames 5-16: the samples have 8"):
        pairing_gain(v[:, :8], v[:, 0], p)
