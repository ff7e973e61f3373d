"""Long-video FVD protocols (issue 20) against StyleGAN-V's own code, and the engine's frame selection.

Goldens: ``tests/golden/stylegan_v_long.{npz,json}`` from ``tests/golden/make_stylegan_v_long.py``, which ran
StyleGAN-V's ``fvd2048_128f`` and ``fvd2048_128f_subsample8f`` (and ``fvd2048_16f``) on tiny frame folders with its
detector replaced by ``stub_features``. Here vgbench's selection picks the clips of the same videos, the same stand-in
features are computed on them, and vgbench's distance is compared with StyleGAN-V's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from vgbench import api, cards, validation
from vgbench.metrics import fvd, long_video
from vgbench.metrics.frechet import FeatureStats

GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN))
import make_stylegan_v_long as gen  # noqa: E402  (numpy only at import time)

GOLD = np.load(GOLDEN / "stylegan_v_long.npz")
META = json.loads((GOLDEN / "stylegan_v_long.json").read_text())
LONG = {"fvd2048_128f": "stylegan_v_2048_128f", "fvd2048_128f_subsample8f": "stylegan_v_2048_128f_subsample8f"}
VIDEOS = gen.videos()


def _protocol(name: str):
    return cards.metric("fvd").protocols[name]


@pytest.mark.parametrize("theirs", list(LONG) + ["fvd2048_16f"])
def test_cards_spell_out_stylegan_v_parameters(theirs):
    kw = META["metrics"][theirs]["compute_fvd_kwargs"]
    p = _protocol(LONG.get(theirs, "stylegan_v_2048_16f"))
    assert p.frames == kw["num_frames"] and (p.subsample or 1) == kw.get("subsample_factor", 1)
    assert p.num_samples == kw["num_gen"] and p.num_reference == kw["max_real"]
    assert p.fd_sqrtm == "scipy" and p.fd_dtype == "float64" and p.result_dtype == "float64"


@pytest.mark.parametrize("theirs", list(LONG))
def test_frames_and_distance_equal_stylegan_v(theirs):
    p = _protocol(LONG[theirs])
    s = p.subsample or 1
    # generated videos: frames 0, s, ..., (n-1)s of every video, as StyleGAN-V read them
    fake = np.stack(VIDEOS["fake"])
    ours_fake = long_video.select(fake, 0, p, "samples")
    assert np.array_equal(ours_fake[:, :, 0, 0, :2].astype(np.int64), GOLD[f"{theirs}/fake_idx"])
    # real videos: the same ones kept (L >= n·s); the shorter ones refused, as StyleGAN-V skips them
    real = VIDEOS["real"]
    theirs_real = GOLD[f"{theirs}/real_idx"]  # (N, n, 2): video, frame
    kept = [i for i, v in enumerate(real) if len(v) >= p.span]
    assert theirs_real[:, 0, 0].tolist() == kept and len(kept) < len(real)
    need = validation.need_for("fvd." + LONG[theirs], p, "reference")
    for i, v in enumerate(real):
        problem = validation.clip_problem(f"video {i}", v.shape, need)
        assert (problem is None) == (i in kept), (i, len(v))
        if i not in kept:
            with pytest.raises(ValueError, match="the protocol reads videos of at least"):
                long_video.random_offset(p.seed, i, len(v), p.frames, s)
    # their random starts lie in vgbench's range, and a start gives the same frames in both
    clips = []
    for row in theirs_real:
        i, offset = int(row[0, 0]), int(row[0, 1])
        assert 0 <= offset <= len(real[i]) - p.frames * s + s - 1
        idx = long_video.clip_indices(offset, p.frames, s)
        assert np.array_equal(idx, row[:, 1])
        clips.append(real[i][idx])
    # the same stand-in features give StyleGAN-V's statistics and distance
    f_real = FeatureStats.from_features(gen.stub_features(np.stack(clips)))
    f_fake = FeatureStats.from_features(gen.stub_features(ours_fake))
    for key, st in (("real", f_real), ("fake", f_fake)):
        np.testing.assert_allclose(st.mu, GOLD[f"{theirs}/mu_{key}"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(st.sigma * (st.n - 1) / st.n, GOLD[f"{theirs}/sigma_{key}"], rtol=0, atol=1e-12)
    value = fvd.fvd_value(f_fake, f_real, p)
    assert value == pytest.approx(META["metrics"][theirs]["value"], rel=1e-9)
    # the unbiased (n-1) convention would be another number: the card's covariance field matters here
    unbiased = fvd.fvd_value(f_fake, f_real, _protocol("stylegan_v_2048_16f"))
    assert abs(unbiased - value) > 1e-3 * value


@pytest.mark.parametrize("frames, subsample, length", [(128, 1, 131), (16, 8, 131), (16, 8, 128)])
def test_random_starts_cover_stylegan_v_range(frames, subsample, length):
    # StyleGAN-V: random.randint(0, L - n·s + s - 1), both ends included
    starts = {long_video.random_offset(7, i, length, frames, subsample) for i in range(3000)}
    assert starts == set(range(length - frames * subsample + subsample))


def test_engine_reads_the_protocols_frames(tmp_path, monkeypatch, home):
    """Through `vgbench eval`'s engine: what the network receives is the selection above, for both roles."""
    seen = {"n": []}

    def extractor(x: np.ndarray) -> np.ndarray:  # (B, T, H, W, C) on the 0-255 scale
        seen["n"].append(x[:, :, 0, 0, :2].round().astype(np.int64))
        return np.tanh(x.reshape(len(x), x.shape[1], -1).mean(-1)[:, :9] @ np.ones((9, 400)) / 2000.0)

    monkeypatch.setattr(fvd, "build_extractor", lambda *a, **k: extractor)
    rng = np.random.default_rng(0)

    def vids(n, t):
        v = rng.integers(0, 256, (n, t, 8, 8, 3), dtype=np.uint8)
        v[:, :, 0, 0, 0] = np.arange(n)[:, None]
        v[:, :, 0, 0, 1] = np.arange(t)[None]
        return v

    for name, arr in (("s.npy", vids(4, 130)), ("r.npy", vids(5, 140))):
        np.save(tmp_path / name, arr)
    r = api.evaluate("fvd", samples=tmp_path / "s.npy", reference=tmp_path / "r.npy",
                     protocol="stylegan_v_2048_128f_subsample8f", allow_fewer=True, use_cache=False)  # fmt: skip
    got = np.concatenate(seen["n"])  # reference first (5 clips), then samples (4 clips)
    ref, samples = got[:5], got[5:]
    assert np.array_equal(samples[:, :, 1], np.tile(np.arange(0, 128, 8), (4, 1)))
    p = _protocol("stylegan_v_2048_128f_subsample8f")
    starts = [long_video.random_offset(0, i, 140, 16, 8) for i in range(5)]
    assert np.array_equal(ref[:, :, 1], np.stack([long_video.clip_indices(o, 16, 8) for o in starts]))
    assert ref[:, 0, 0].tolist() == list(range(5)) and p.seed == 0
    assert r.value > 0 and r.n_samples == 4 and r.n_reference == 5
