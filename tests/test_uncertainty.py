"""Intervals, the sample-count curve and paired comparisons (vgbench.metrics.uncertainty): known answers.

Every statistical assertion is seeded (deterministic); the bands are stated with the measurement they come from.
"""

import importlib.util
import json

import numpy as np
import pytest

from vgbench import api
from vgbench.errors import InputError
from vgbench.metrics import featurefile, fvd
from vgbench.metrics import uncertainty as u
from vgbench.metrics.frechet import FeatureStats, frechet_distance, frechet_distance_from_stats
from vgbench.metrics.inception import split_scores

from .conftest import REPO, random_videos
from .test_fvd_pipeline import fake_extractor


def _coverage_script():
    spec = importlib.util.spec_from_file_location("coverage_fd_inf", REPO / "benchmarks" / "coverage_fd_inf.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ----------------------------------------------------------------------------------------------------------
# The fast weighted Fréchet distance equals the reference function


@pytest.mark.parametrize("n1,n2,dim", [(300, 250, 40), (20, 30, 40), (20, 100, 40), (100, 12, 40)])
def test_weighted_frechet_equals_frechet_distance(n1, n2, dim):
    rng = np.random.default_rng(n1)
    a = rng.normal(size=(n1, dim)) @ rng.normal(size=(dim, dim)) + 1.0
    b = rng.normal(size=(n2, dim)) * 0.7
    want = frechet_distance_from_stats(FeatureStats.from_features(a), FeatureStats.from_features(b), warn=False)
    got = u.frechet_from_counts(u.FeatureSet(a), u.FeatureSet(b), np.ones(n1, int), np.ones(n2, int))
    assert got == pytest.approx(want, rel=1e-9)
    # counts are a multiset: drawing video i c_i times is the same as repeating its row c_i times
    ca = rng.integers(0, 3, n1)
    ca[:2] = 1
    rep = np.repeat(a, ca, axis=0)
    want = frechet_distance_from_stats(FeatureStats.from_features(rep), FeatureStats.from_features(b), warn=False)
    got = u.frechet_from_counts(u.FeatureSet(a), u.FeatureSet(b), ca, np.ones(n2, int))
    assert got == pytest.approx(want, rel=1e-8)


def test_weighted_inception_score_equals_split_scores():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(11, 0.3), size=50)
    assert u.inception_from_counts(probs, np.ones((1, 50)))[0] == pytest.approx(split_scores(probs)[0], rel=1e-12)
    c = rng.integers(0, 3, 50)
    rep = np.repeat(probs, c, axis=0)
    assert u.inception_from_counts(probs, c[None])[0] == pytest.approx(split_scores(rep)[0], rel=1e-12)


def test_resample_counts_are_seeded_draws_of_n():
    c = u.resample_counts(37, 50, seed=3)
    assert c.shape == (50, 37) and (c.sum(axis=1) == 37).all()
    assert np.array_equal(c, u.resample_counts(37, 50, seed=3))
    assert not np.array_equal(c, u.resample_counts(37, 50, seed=4))
    assert not np.array_equal(c, u.resample_counts(37, 50, seed=3, stream=u.STREAM_REFERENCE))


# ----------------------------------------------------------------------------------------------------------
# Gaussian features with a known Fréchet distance


def test_mean_term_bias_is_the_closed_form():
    """E||m1 - m2||^2 = ||mu1 - mu2||^2 + tr(S1)/N1 + tr(S2)/N2 exactly (independent sample means): the mean over
    4000 repetitions is within 4 standard errors of it."""
    cov = _coverage_script()
    rng = np.random.default_rng(1)
    n1, n2, reps = 40, 60, 4000
    a = rng.normal(size=(reps, n1, cov.DIM)) * np.sqrt(cov.S1)
    b = cov.MU2 + rng.normal(size=(reps, n2, cov.DIM)) * np.sqrt(cov.S2)
    d = a.mean(1) - b.mean(1)
    terms = (d * d).sum(1)
    want = cov.MU2 @ cov.MU2 + cov.S1.sum() / n1 + cov.S2.sum() / n2
    assert abs(terms.mean() - want) < 4 * terms.std() / np.sqrt(reps)


def test_fd_inf_recovers_the_analytic_distance_where_fixed_n_is_biased():
    """Tolerance, derived: FD∞ of one draw has a spread s (measured over the repetitions, 0.33 here); the mean of
    R = 400 repetitions is then within 4 s / sqrt(R) = 0.065 of its expectation (a 4-sigma band), and the 1/n fit
    leaves an O(1/n^2) term, below 0.1 % of FD at n >= 25 here. The fixed-N mean (N = 200) misses the truth by its
    bias, 0.26 here: about 4 such bands (asserted: more than 3), and more than the mean term's exact
    (tr S1 + tr S2) / N = 0.09."""
    cov = _coverage_script()
    rng = np.random.default_rng(7)
    infs, fixed = [], []
    for r in range(400):
        a, b = cov.draw(rng, 200)
        cv = u.curve(u.Contributions("frechet", [{"samples": a, "reference": b}]), u.IntervalConfig(seed=r), False)
        infs.append(cv["value_inf"])
        fixed.append(cv["points"][-1]["value"])
    infs, fixed = np.array(infs), np.array(fixed)
    tol = 4 * infs.std() / np.sqrt(len(infs))
    assert abs(infs.mean() - cov.TRUE_FD) < tol
    assert fixed.mean() - cov.TRUE_FD > 3 * tol
    assert fixed.mean() - cov.TRUE_FD > (cov.S1.sum() + cov.S2.sum()) / 200


def test_fd_inf_interval_coverage_matches_the_measured_band():
    """benchmarks/coverage_fd_inf.py measured 96.5 % over 400 repetitions x 200 resamples (N = 200, D = 8; the
    fixed-N interval covered E[FD_N] in 95.5 %). The reduced run here (60 x 100, 93.3 % when measured) must land
    within 3 binomial standard errors of 60 repetitions of the measured 96.5 %: [0.89, 1]."""
    out = _coverage_script().measure(reps=60, resamples=100, n=200, seed=11)
    assert 0.89 <= out["coverage_inf"] <= 1.0


# ----------------------------------------------------------------------------------------------------------
# Coverage of mean metrics


@pytest.mark.parametrize("kind", ["psnr-like", "nmse-like", "bpd-like"])
def test_mean_metric_intervals_cover_the_true_mean(kind):
    """Nominal 95 % percentile intervals of a mean over N = 200 clips cover the true mean in 95 % ± 3 % of 600
    seeded repetitions (per-clip values: normal, skewed gamma, and NLL sums over variable token counts; measured
    93.5 %, 93.0 % and 93.8 %: the percentile bootstrap's known slight undercoverage at finite N)."""
    rng = np.random.default_rng({"psnr-like": 0, "nmse-like": 1, "bpd-like": 2}[kind])
    reps, n, hits = 600, 200, 0
    for r in range(reps):
        if kind == "psnr-like":
            num, den, truth = rng.normal(30, 3, n), np.ones(n), 30.0
        elif kind == "nmse-like":
            num, den, truth = rng.gamma(2.0, 0.5, n) * 100, np.full(n, 100.0), 1.0  # mean 1 per value
        else:
            den = rng.integers(50, 150, n).astype(float)
            num, truth = den * rng.normal(4.0, 0.5, n), 4.0
        contrib = u.Contributions("ratio", [{"num": num, "den": den}])
        iv = u.interval(contrib, u.IntervalConfig(resamples=1000, seed=r))
        hits += iv["low"] <= truth <= iv["high"]
    assert 0.92 <= hits / reps <= 0.98


# ----------------------------------------------------------------------------------------------------------
# Paired comparisons


def test_compare_of_a_set_with_itself_is_zero():
    rng = np.random.default_rng(0)
    a, ref = rng.normal(size=(80, 6)), rng.normal(size=(90, 6)) + 0.2
    out = u.compare_frechet(a, a, ref, u.IntervalConfig(resamples=200))
    for where in ("fixed_n", "at_inf"):
        rec = out[where]
        assert rec["delta"] == 0.0
        assert rec["interval"]["low"] <= 0.0 <= rec["interval"]["high"]


def test_compare_of_two_draws_of_one_generator_contains_zero_about_95_percent():
    """Two sets drawn from one Gaussian with different seeds, one reference: the fixed-N Δ interval contains 0
    in 93.5 % of 200 seeded repetitions (measured; asserted in [0.88, 0.99])."""
    rng = np.random.default_rng(5)
    hits = 0
    reps = 200
    for r in range(reps):
        a, b, ref = rng.normal(size=(100, 6)), rng.normal(size=(100, 6)), rng.normal(size=(100, 6)) + 0.3
        ca = u.Contributions("frechet", [{"samples": a, "reference": ref}])
        cb = u.Contributions("frechet", [{"samples": b, "reference": ref}])
        rec = u.compare(ca, cb, u.IntervalConfig(resamples=200, seed=r, curve=False))["fixed_n"]
        hits += rec["interval"]["low"] <= 0 <= rec["interval"]["high"]
    assert 0.88 <= hits / reps <= 0.99


def test_compare_finds_a_real_difference_and_says_so():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(150, 6))
    good, bad = rng.normal(size=(150, 6)), rng.normal(size=(150, 6)) + 0.8
    out = u.compare_frechet(good, bad, ref, u.IntervalConfig(resamples=200))
    rec = out["fixed_n"]
    assert rec["delta"] < 0 and rec["interval"]["high"] < 0 and rec["fraction_a_lower"] > 0.99
    words = u.compare_words("FVD", rec)
    assert words.startswith("A's FVD is lower than B's in ") and "A is better" in words


def test_compare_refuses_different_references():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 4))
    ca = u.Contributions("frechet", [{"samples": x, "reference": x}])
    cb = u.Contributions("frechet", [{"samples": x, "reference": x + 1}])
    with pytest.raises(InputError, match="different reference features"):
        u.compare(ca, cb)


# ----------------------------------------------------------------------------------------------------------
# Records: determinism, batch size, provenance, warnings, features files


def row_by_row(x0255: np.ndarray) -> np.ndarray:
    """The stand-in extractor one video at a time: features that do not depend on the batch (BLAS may round a
    product of 7 rows differently from one of 4), as the I3D's do not on CPU up to its own rounding."""
    return np.concatenate([fake_extractor(x0255[i : i + 1]) for i in range(len(x0255))])


def test_fvd_record_interval_is_deterministic_and_batch_size_independent(monkeypatch, home, tmp_path):
    monkeypatch.setattr(fvd, "build_extractor", lambda *a, **k: row_by_row)
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, random_videos(30, seed=1))
    np.save(b, random_videos(24, seed=2))
    cfg = u.IntervalConfig(resamples=200)
    with pytest.warns(UserWarning, match="singular"):
        r1 = api.evaluate("fvd", a, b, batch_size=4, allow_fewer=True, use_cache=False, interval=cfg)
        r2 = api.evaluate("fvd", a, b, batch_size=7, allow_fewer=True, use_cache=False, interval=cfg)
        r3 = api.evaluate("fvd", a, b, batch_size=7, allow_fewer=True, interval=cfg)  # cached features
    assert r1.value == r2.value
    assert r1.interval == r2.interval == r3.interval
    assert r1.curve == r2.curve == r3.curve
    iv = r1.interval
    assert iv["method"] == u.METHOD_CENTRED and iv["resamples"] == 200 and iv["seed"] == 0 and iv["level"] == 0.95
    assert iv["low"] < r1.value < iv["high"]
    assert "value_inf" in r1.curve and len(r1.curve["points"]) == u.CURVE_SIZES
    assert "interval" not in r1.protocol_params  # beside the protocol hash, not inside it
    other = api.evaluate("fvd", a, b, allow_fewer=True, interval=u.IntervalConfig(resamples=100, seed=1))
    assert other.value == r1.value and other.protocol_hash == r1.protocol_hash and other.interval != r1.interval


def test_wide_interval_and_small_n_are_noted_with_the_n_needed():
    notes = u.warnings_for(100.0, {"low": 80.0, "high": 120.0}, 64, 2048)
    assert notes[0].startswith("wide interval: ±20 is 20% of the value") and "N = 1024 videos" in notes[0]
    assert notes[1] == "N = 64 is below the protocol's 2048"
    assert u.needed_n(64, 100.0, 20.0) == 1024  # 64 (20 / 5)^2
    assert u.warnings_for(100.0, {"low": 99.0, "high": 101.0}, 2048, 2048) == []
    # a gain near 0 (continuity of noise): no "N = 1,054,825 videos" from a fraction of nothing
    (note,) = u.warnings_for(-0.0006, {"low": -0.0046, "high": 0.0035}, 64, None)
    assert note == "the interval [-0.0046, 0.0035] contains 0 at N = 64: the value is not distinguishable from 0"


def test_features_file_round_trip_recomputes_value_and_interval(monkeypatch, home, tmp_path):
    monkeypatch.setattr(fvd, "build_extractor", lambda *a, **k: fake_extractor)
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, random_videos(20, seed=1))
    np.save(b, random_videos(20, seed=2))
    feats = tmp_path / "f.npz"
    cfg = u.IntervalConfig(resamples=100)
    with pytest.warns(UserWarning, match="singular"):
        r = api.evaluate("fvd", a, b, allow_fewer=True, interval=cfg, save_features=feats)
    with np.load(feats, allow_pickle=False) as z:
        assert str(z["format"]) == featurefile.FORMAT and z["samples"].shape == (20, 400)
        record = json.loads(str(z["record"]))
        # anyone can recompute the value with their own code from the arrays
        s, ref = z["samples"], z["reference"]
        mine = frechet_distance(s.mean(0), np.cov(s.T), ref.mean(0), np.cov(ref.T))
    assert record["value"] == r.value and record["interval"] == r.interval
    assert mine == pytest.approx(r.value, rel=1e-5)
    contrib, rec = featurefile.load(feats)
    assert u.interval(contrib, cfg, rec["value"]) == r.interval
    out = api.compare("fvd", features=[feats, feats], interval=cfg)
    assert out["fixed_n"]["delta"] == 0.0 and out["words"][0].startswith("A's FVD is")


def test_compare_needs_two_sets():
    with pytest.raises(InputError, match="--samples was given 1 time"):
        api.compare("fvd", samples=["a.npy"], reference="r.npy")


def test_cli_eval_prints_plain_words_and_compare_prints_words_then_json(monkeypatch, home, tmp_path, capsys):
    from vgbench.cli import main

    monkeypatch.setattr(fvd, "build_extractor", lambda *a, **k: fake_extractor)
    a, b, r = tmp_path / "a.npy", tmp_path / "b.npy", tmp_path / "r.npy"
    np.save(a, random_videos(16, seed=1))
    np.save(b, random_videos(16, seed=2) // 2)  # darker videos: another distribution
    np.save(r, random_videos(16, seed=3))
    feats = tmp_path / "a_feats.npz"
    common = ["--allow-fewer", "--resamples", "50", "--no-store"]
    with pytest.raises(SystemExit) as done, pytest.warns(UserWarning):
        main(["eval", "--samples", str(a), "--reference", str(r), "--save-features", str(feats), *common])
    assert done.value.code == 0
    out, err = capsys.readouterr()
    rec = json.loads(out)
    assert err.strip().splitlines()[-1].startswith(f"fvd.official = {rec['value']:.6g}, 95% interval [")
    assert rec["interval"]["resamples"] == 50 and feats.is_file()
    with pytest.raises(SystemExit) as done, pytest.warns(UserWarning):
        main(["compare", "--samples", str(a), "--samples", str(b), "--reference", str(r), "--allow-fewer",
              "--resamples", "50"])  # fmt: skip
    assert done.value.code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("A's FVD is ") and "at N = 16" in lines[0] and "N -> inf" in lines[1]
    data = json.loads(lines[2])
    assert data["a"]["samples"]["path"].endswith("a.npy") and data["fixed_n"]["interval"]["resamples"] == 50
    assert data["fixed_n"]["delta"] == pytest.approx(data["a"]["value"] - data["b"]["value"])
