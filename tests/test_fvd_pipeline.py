"""The FVD engine with a stand-in extractor: planning, trials, stats files, caching, records, quantisation."""

import json

import numpy as np
import pytest

from vgbench import api, results
from vgbench.errors import ProtocolError
from vgbench.metrics import fvd
from vgbench.tensors import to_network_scale

from .conftest import random_videos

PROJ = np.random.default_rng(123).normal(size=(27, 400))


def fake_extractor(x0255: np.ndarray) -> np.ndarray:
    """Mean colour of the first 9 frames, projected to 400-d: cheap, deterministic, input-sensitive."""
    m = x0255[:, :9].mean(axis=(2, 3)).reshape(len(x0255), -1) / 255.0  # (B, 27)
    return np.tanh(m @ PROJ)


@pytest.fixture
def mocked(monkeypatch, home):
    calls = []

    def build(*args, **kwargs):
        calls.append(args)
        return fake_extractor

    monkeypatch.setattr(fvd, "build_extractor", build)
    return calls


def test_identical_sets_give_zero_and_record_provenance(mocked, tmp_path):
    path = tmp_path / "v.npy"
    np.save(path, random_videos(40, seed=1))
    store = tmp_path / "store.jsonl"
    with pytest.warns(UserWarning, match="singular"):
        r = api.evaluate("fvd", path, path, store=store, run="unit")
    assert abs(r.value) < 1e-6
    rec = results.read_records(store)[0]
    assert rec["metric"] == "fvd" and rec["protocol"] == "official" and rec["run"] == "unit"
    assert rec["n_samples"] == rec["n_reference"] == 40
    assert rec["protocol_params"]["resize"] == "tf_legacy" and len(rec["protocol_hash"]) == 16
    assert rec["samples"]["range"] == "0-255" and rec["samples"]["range_source"] == "dtype"
    assert rec["extractor"]["content_sha256"] == "1798d51a2a114d7724ed3a47dfe57be917056d216424763d056aa9350d7c7b34"
    assert rec["vgbench_version"] and rec["torch_version"] and rec["created"]


def test_different_sets_give_positive_fvd_and_float_inputs_are_detected(mocked, tmp_path):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, random_videos(30, seed=1))
    np.save(b, (random_videos(30, seed=2) // 2).astype(np.float32) / 255.0)  # darker, as [0, 1] floats
    r = api.evaluate("fvd", a, b)
    assert r.value > 1.0
    assert r.reference["range"] == "0-1" and r.reference["range_source"] == "detected"


def test_trials_use_disjoint_chunks_and_report_population_std(mocked, tmp_path):
    s, ref = tmp_path / "s.npy", tmp_path / "r.npy"
    np.save(s, random_videos(2560, t=9, h=4, w=4, seed=3))
    np.save(ref, random_videos(256, t=9, h=4, w=4, seed=4))
    r = api.evaluate("fvd", s, ref, protocol="videogpt_paper")
    assert len(r.trial_values) == 10 and r.n_samples == 256 and r.n_reference == 256
    assert r.value == pytest.approx(np.mean(r.trial_values))
    assert r.std == pytest.approx(np.std(r.trial_values)) and r.std > 0
    assert any("reused" in n for n in r.notes)
    assert not r.off_protocol


def test_too_few_samples_is_refused_or_marked(mocked, tmp_path):
    s = tmp_path / "s.npy"
    np.save(s, random_videos(300, t=9, h=4, w=4))
    with pytest.raises(
        # wording fixed in issue 9 (was "2560 samples videos")
        ProtocolError,
        match=r"needs 2560 sample videos \(--samples\): 256 per trial x 10 trials, got 300.*--allow-fewer",
    ):
        api.evaluate("fvd", s, s, protocol="videogpt_paper")
    r = api.evaluate("fvd", s, s, protocol="videogpt_paper", allow_fewer=True)
    assert r.off_protocol and len(r.trial_values) == 1


def test_stats_file_round_trip_and_protocol_mismatch(mocked, tmp_path):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, random_videos(30, seed=1))
    np.save(b, random_videos(30, seed=2))
    stats = tmp_path / "b_stats.npz"
    direct = api.evaluate("fvd", b, a, save_stats=stats)
    via_stats = api.evaluate("fvd", a, stats)
    assert via_stats.value == pytest.approx(direct.value, rel=1e-6)
    assert via_stats.reference["stats_file"].endswith("b_stats.npz")
    with pytest.raises(ProtocolError, match="other feature settings.*resize"):
        api.evaluate("fvd", a, stats, protocol="videogpt_repo", allow_fewer=True)


def test_statistics_of_both_sets_are_cached_by_content(mocked, tmp_path, home, monkeypatch):
    from vgbench.metrics import fvd as fvd_mod

    extracted = []
    real_extract = fvd_mod.extract_stats
    monkeypatch.setattr(
        fvd_mod, "extract_stats", lambda v, *a, **k: extracted.append(v.path.name) or real_extract(v, *a, **k)
    )
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, random_videos(20, seed=1))
    np.save(b, random_videos(20, seed=2))
    first = api.evaluate("fvd", a, b)
    assert len(list((home / "stats").glob("*.npz"))) == 2 and sorted(extracted) == ["a.npy", "b.npy"]
    again = api.evaluate("fvd", a, b)
    assert again.value == first.value and len(extracted) == 2  # nothing extracted again
    assert again.samples["content_sha256"] == first.samples["content_sha256"]
    assert again.samples["clip_shape"] == first.samples["clip_shape"] == [9, 16, 16]
    # the roles swapped (FVD* of FVD's samples, R-FVD of FVD*'s reconstructions): the same statistics
    assert api.evaluate("fvd", b, a).value == pytest.approx(first.value, rel=1e-6) and len(extracted) == 2
    np.save(b, random_videos(20, seed=5))  # new content -> new key; a's statistics still reused
    api.evaluate("fvd", a, b)
    assert len(list((home / "stats").glob("*.npz"))) == 3 and extracted[2:] == ["b.npy"]


def test_fvd_star_and_r_fvd_share_the_engine_with_their_roles(mocked, tmp_path):
    a = tmp_path / "a.npy"
    np.save(a, random_videos(20, seed=1))
    star = api.evaluate("fvd-star", a, a)
    rfvd = api.evaluate("r-fvd.official", a, a)
    assert star.metric == "fvd-star" and star.reference["role"] == "VQ-VAE reconstructions of real clips"
    assert rfvd.samples["role"] == "VQ-VAE reconstructions of real clips"
    assert star.protocol_hash != rfvd.protocol_hash


def test_truncation_quirk_of_videogpt_drops_63_levels():
    levels = np.arange(256, dtype=np.uint8).reshape(1, 1, 1, 256, 1).repeat(3, axis=-1)
    out = to_network_scale(levels, "0-255", "truncate")[0, 0, 0, :, 0]
    assert int((out == np.arange(256) - 1).sum()) == 63  # metrics.md §4
    assert int((out == np.arange(256)).sum()) == 193


def test_quantisation_modes():
    x = np.array([-1.0, -0.5, 0.0, 0.999, 1.0], np.float32).reshape(1, 1, 1, 5, 1).repeat(3, -1)
    assert to_network_scale(x, "-1-1", "round")[0, 0, 0, :, 0].tolist() == [0, 64, 128, 255, 255]
    assert to_network_scale(x, "-1-1", "none")[0, 0, 0, :, 0].tolist() == pytest.approx(
        [0, 63.75, 127.5, 254.87, 255], abs=0.01
    )
    y = np.array([0.0, 0.5, 1.0], np.float32).reshape(1, 1, 1, 3, 1).repeat(3, -1)
    assert to_network_scale(y, "0-1", "truncate")[0, 0, 0, :, 0].tolist() == [0, 127, 255]


def test_result_json_is_one_line(mocked, tmp_path):
    a = tmp_path / "a.npy"
    np.save(a, random_videos(8, seed=1))
    line = api.evaluate("fvd", a, a).to_json()
    assert "\n" not in line and json.loads(line)["metric"] == "fvd"
