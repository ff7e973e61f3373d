"""Metrics of a checkpoint (NMSE, bits/dim, R-FVD, FVD*, FVD from samples) and `vgbench sample`, on tiny trained
models: each engine equals an independent computation, and the training log's validation numbers."""

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

from vgbench import api, cards
from vgbench import sample as sample_mod
from vgbench import train as train_mod
from vgbench.errors import InputError
from vgbench.metrics import derived as ck_metrics
from vgbench.metrics import uncertainty
from vgbench.models import checkpoint as ckpt_mod

from .conftest import TINY_PRIOR, TINY_VQ

REPO = Path(__file__).resolve().parents[1]
TINY = [*TINY_VQ, "vqvae.config.downsample=[4, 8, 8]", *TINY_PRIOR]  # 4 x 8 x 8 = 256 latent tokens: quick to sample


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny VQ-VAE and 1-frame-conditional prior trained 3 steps each on a 12/4-video quickstart store."""
    from vgbench.datasets import quickstart

    base = tmp_path_factory.mktemp("ckm")
    root = base / "data"
    quickstart.prepare(cards.dataset("quickstart"), root=root, counts={"train": 12, "test": 4})
    old = {k: os.environ.get(k) for k in ("VGBENCH_DATA", "VGBENCH_HOME")}
    os.environ["VGBENCH_DATA"], os.environ["VGBENCH_HOME"] = str(root), str(base / "home")
    vq, prior = train_mod.train(
        model="gpt.quickstart",
        stage="all",
        out=base / "run",
        overrides=TINY,
        steps=3,
        batch_size=4,
        val_every=3,
        ckpt_every=3,
        progress=False,
        device="cpu",
    )
    yield {"root": root, "vq": vq, "prior": prior, "base": base}
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _last_val(folder: Path, key: str) -> float:
    recs = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [r[key] for r in recs if r["kind"] == "val"][-1]


def _clips(n: int = 4) -> torch.Tensor:
    """The 4 test clips as the metrics read them: fixed windows, float (B, 1, T, H, W) on [-0.5, 0.5]."""
    from vgbench import datasets

    view = datasets.open_split("quickstart:test", channels=1)
    v = torch.stack([view[i]["video"] for i in range(n)])  # (B, T, H, W, 1) uint8
    return v.permute(0, 4, 1, 2, 3).float() / 255.0 - 0.5


def test_nmse_equals_the_definition_and_the_validation_log(trained):
    final = trained["vq"].folder / "checkpoints" / "final.pt"
    r = api.evaluate("nmse", reference="quickstart:test", checkpoint=final)
    model, ck = ckpt_mod.load_model(final)
    x = _clips().double()
    with torch.no_grad():
        recon = model.decode(model.encode(x.float())).double()
    want = float(((recon - x) ** 2).mean() / 0.06)  # metrics.md §10, variance 0.06, unclamped
    assert r.value == pytest.approx(want, rel=1e-9)
    # validation scores the same 4 clips through the same accumulator (nmse.SquaredError) as eval
    assert r.value == pytest.approx(_last_val(trained["vq"].folder, "val_nmse"), rel=1e-9)
    assert r.checkpoint["sha256"] == ck.sha256 and r.checkpoint["card"] == "vqvae.quickstart"
    assert r.reference["count"] == 4 and r.protocol == "videogpt" and not r.off_protocol
    # the interval resamples the clips' own squared-error sums (issue 18), recomputed here from the definition
    per_clip = ((recon - x) ** 2).flatten(1).sum(1).numpy()
    mine = uncertainty.interval(
        uncertainty.Contributions("ratio", [{"num": per_clip, "den": np.full(4, x[0].numel())}], {"scale": 1 / 0.06})
    )
    assert r.interval["low"] == pytest.approx(mine["low"], rel=1e-9)
    assert r.interval["high"] == pytest.approx(mine["high"], rel=1e-9)
    assert r.interval["low"] <= r.value <= r.interval["high"] and not r.curve  # a mean has no N-bias curve


def test_bits_per_dim_equals_the_definition_and_the_validation_log(trained):
    final = trained["prior"].folder / "checkpoints" / "final.pt"
    r = api.evaluate("bits-per-dim", reference="quickstart:test", checkpoint=final)
    model, _ = ckpt_mod.load_model(final)
    x = _clips()
    with torch.no_grad():
        nll = model.token_nll(x, {"frames": x[:, :, :1]})  # (B, S) nats, conditioned on frame 0
    assert nll.shape == (4, 256)
    assert r.value == pytest.approx(float(nll.double().mean()) / math.log(2), rel=1e-9)
    assert r.value == pytest.approx(_last_val(trained["prior"].folder, "val_bits_per_dim"), rel=1e-9)  # TokenNLL
    assert r.label == "bits/dim (per latent token)" and r.samples["tokens"] == 4 * 256
    per_clip = nll.double().sum(1).numpy()
    mine = uncertainty.interval(
        uncertainty.Contributions("ratio", [{"num": per_clip, "den": np.full(4, 256.0)}], {"scale": 1 / math.log(2)})
    )
    assert r.interval["low"] == pytest.approx(mine["low"], rel=1e-9)
    assert r.interval["high"] == pytest.approx(mine["high"], rel=1e-9)
    assert 0 < r.value < math.log2(16) + 1  # near the uniform 4 bits after 3 steps


def test_reconstructions_are_cached_truncated_and_shared(trained):
    final = trained["vq"].folder / "checkpoints" / "final.pt"
    path, prov = ck_metrics.reconstructions(final, "quickstart:test")
    again, _ = ck_metrics.reconstructions(final, "quickstart:test")
    assert path == again and path.parent.name == "derived"
    arr = np.load(path)
    assert arr.shape == (4, 16, 64, 64, 3) and arr.dtype == np.uint8
    model, _ = ckpt_mod.load_model(final)
    with torch.no_grad():
        recon = model.decode(model.encode(_clips()))
    want = torch.floor((recon.clamp(-0.5, 0.5) + 0.5) * 255).to(torch.uint8)[:, 0]  # (B, T, H, W): floor (§7)
    assert np.array_equal(arr[..., 0], want.numpy()) and np.array_equal(arr[..., 0], arr[..., 2])
    assert prov["checkpoint"]["sha256"] == hub_sha(final)


def hub_sha(path) -> str:
    from vgbench import cache

    return cache.sha256_file(path)


@pytest.fixture
def mocked_i3d(monkeypatch):
    """FVD with a mean-pool stand-in for I3D (as tests/test_fvd_pipeline.py)."""
    from tests.test_fvd_pipeline import fake_extractor
    from vgbench.metrics import fvd

    monkeypatch.setattr(fvd, "build_extractor", lambda *a, **k: fake_extractor)
    return fake_extractor


def test_r_fvd_and_fvd_star_compare_the_made_reconstructions(trained, mocked_i3d):
    from vgbench.metrics import fvd as fvd_mod
    from vgbench.metrics.frechet import FeatureStats

    final = trained["vq"].folder / "checkpoints" / "final.pt"
    with pytest.warns(UserWarning, match="singular"):
        r = api.evaluate("r-fvd", reference="quickstart:test", checkpoint=final, use_cache=False)
    recon = np.load(ck_metrics.reconstructions(final, "quickstart:test")[0])
    real = np.repeat(((_clips() + 0.5) * 255).round().to(torch.uint8).permute(0, 2, 3, 4, 1).numpy(), 3, -1)
    p = r.protocol_params
    stats = []
    for videos in (recon, real):
        s = FeatureStats.empty(fvd_mod.FEATURE_DIM)
        s.update(mocked_i3d(fvd_mod.to_network_scale(videos, "0-255", p["quantize"])))
        stats.append(s)
    protocol = cards.resolve_protocol("r-fvd")[2]
    assert r.value == pytest.approx(fvd_mod.fvd_value(stats[0], stats[1], protocol), rel=1e-6)
    assert r.samples["made_from_checkpoint"]["kind"] == "reconstructions" and r.checkpoint["card"] == "vqvae.quickstart"
    samples = trained["base"] / "s.npy"
    np.save(samples, real[::-1].copy())
    with pytest.warns(UserWarning, match="singular"):
        star = api.evaluate("fvd-star", samples=samples, reference="quickstart:test", checkpoint=final, use_cache=False)
    assert star.reference["path"] == r.samples["path"]  # the same reconstructions, made once


def test_fvd_from_a_prior_checkpoint_pairs_samples_with_real_windows(trained, mocked_i3d):
    final = trained["prior"].folder / "checkpoints" / "final.pt"
    with pytest.warns(UserWarning, match="singular"):
        r = api.evaluate(
            "fvd.videogpt_paper",
            reference="quickstart:test",
            checkpoint=final,
            overrides={"trials": "2", "num_samples": "4", "num_reference": "4"},
            use_cache=False,
        )
    assert len(r.trial_values) == 2 and r.std is not None and r.off_protocol
    made = r.samples["made_from_checkpoint"]
    assert made["kind"] == "samples" and made["conditioning_frames"] == 1 and made["trials"] == 2
    assert r.reference["made_from_checkpoint"]["kind"] == "real windows" and r.n_samples == r.n_reference == 4


def test_samples_do_not_depend_on_the_batch_size(trained, tmp_path):
    final = trained["prior"].folder / "checkpoints" / "final.pt"
    a = sample_mod.sample(final, 3, tmp_path / "a", cond="quickstart:test", seed=5, batch_size=3, progress=False)
    b = sample_mod.sample(final, 3, tmp_path / "b", cond="quickstart:test", seed=5, batch_size=2, progress=False)
    va, vb = np.load(a.samples)["videos"], np.load(b.samples)["videos"]
    assert va.shape == (3, 16, 64, 64, 3) and np.array_equal(va, vb)
    side = json.loads(a.sidecar.read_text())
    assert side["checkpoint"]["sha256"] == hub_sha(final) and side["seed"] == 5
    assert side["conditioning"]["dataset"] == "quickstart:test" and a.gif.stat().st_size > 0
    c = sample_mod.sample(final, 3, tmp_path / "c", cond="quickstart:test", seed=6, batch_size=3, progress=False)
    assert not np.array_equal(va, np.load(c.samples)["videos"])


def test_sample_bad_inputs(trained, tmp_path):
    prior = trained["prior"].folder / "checkpoints" / "final.pt"
    vq = trained["vq"].folder / "checkpoints" / "final.pt"
    with pytest.raises(InputError, match="--n 0: need at least one sample"):
        sample_mod.sample(prior, 0, tmp_path / "x")
    with pytest.raises(InputError, match="needs 1 conditioning frame.*--cond DATASET:SPLIT"):
        sample_mod.sample(prior, 1, tmp_path / "x")
    with pytest.raises(InputError, match="no split 'validation'|not prepared|validation"):
        sample_mod.sample(prior, 1, tmp_path / "x", cond="quickstart:validation")
    with pytest.raises(InputError, match="a VQ-VAE checkpoint.*needs a prior checkpoint"):
        sample_mod.sample(vq, 1, tmp_path / "x", cond="quickstart:test")
    with pytest.raises(InputError, match="--top-p 1.5"):
        sample_mod.sample(prior, 1, tmp_path / "x", cond="quickstart:test", top_p=1.5)
    assert not (tmp_path / "x").exists()  # nothing written before the checks passed


def sample_one_and_two_processes(final: Path, out: Path, port: str, *extra: str) -> tuple:
    """`vgbench sample` of 3 videos from FINAL in one process (OUT/one) and under torchrun with two (OUT/two, on
    master PORT); both must succeed. Returns (videos one, videos two, sidecar one, sidecar two)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    # -n, not --n: torchrun's own parser reads --n as an abbreviation of its options
    args = ["-m", "vgbench", "sample", str(final), "-n", "3", "--cond", "quickstart:test", "--seed", "2",
            "--device", "cpu", *extra]  # fmt: skip
    one = subprocess.run([sys.executable, *args, "--out", str(out / "one")], env=env, capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                          port, *args, "--out", str(out / "two")], env=env, capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = (np.load(out / d / "samples.npz")["videos"] for d in ("one", "two"))
    sa, sb = (json.loads((out / d / "samples.json").read_text()) for d in ("one", "two"))
    return a, b, sa, sb


@pytest.mark.slow
def test_samples_under_two_processes_equal_one(trained, tmp_path):
    final = trained["prior"].folder / "checkpoints" / "final.pt"
    a, b, _, sb = sample_one_and_two_processes(final, tmp_path, "29531")
    assert a.shape == (3, 16, 64, 64, 3) and np.array_equal(a, b)
    assert sb["world_size"] == 2


# ----------------------------------------------------------------------------------------------------------
# PSNR and SSIM of reconstructions (metrics/psnr.yaml, metrics/ssim.yaml)


def _stored_pair(final: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstructions, real clips) of the 4 test clips as the metrics compare them: (B, 1, T, H, W) float64 on
    [0, 1], reconstructions truncated to uint8 levels as stored (metrics.md §7), real clips on their levels."""
    model, _ = ckpt_mod.load_model(final)
    x = _clips()
    with torch.no_grad():
        recon = model.decode(model.encode(x))
    made = torch.floor((recon.clamp(-0.5, 0.5) + 0.5) * 255).double() / 255  # floor(255 x): §7 truncation
    real = ((x.double() + 0.5) * 255).round() / 255
    return made, real


@pytest.mark.parametrize("metric", ["psnr", "ssim"])
def test_psnr_and_ssim_equal_the_pure_functions_on_stored_reconstructions(trained, metric):
    from vgbench.metrics.psnr_ssim import psnr_per_frame, ssim_per_frame

    final = trained["vq"].folder / "checkpoints" / "final.pt"
    r = api.evaluate(metric, reference="quickstart:test", checkpoint=final)
    made, real = _stored_pair(final)
    # one grey channel here; the engine compares the RGB-repeated clips, whose PSNR and SSIM are the grey ones
    want = float((psnr_per_frame if metric == "psnr" else ssim_per_frame)(made, real).mean())
    assert r.value == pytest.approx(want, rel=1e-12)
    assert (0 < r.value < 100) if metric == "psnr" else (0 < r.value < 1)  # 3 training steps: far from perfect
    recon_path, prov = ck_metrics.reconstructions(final, "quickstart:test")
    assert r.samples["path"] == str(recon_path)  # the set R-FVD reads, made once
    assert r.checkpoint["sha256"] == hub_sha(final) and r.checkpoint["card"] == "vqvae.quickstart"
    assert r.reference["dataset"] == "quickstart:test" and r.n_samples == 4 and not r.off_protocol


def test_psnr_on_another_split_is_off_protocol(trained):
    final = trained["vq"].folder / "checkpoints" / "final.pt"
    r = api.evaluate("psnr", reference="quickstart:train", checkpoint=final, overrides={"num_samples": "2"})
    assert r.off_protocol and r.n_samples == 2
    assert any("scored on split 'train'; the protocol scores 'test'" in n for n in r.notes)


@pytest.mark.slow
def test_ssim_under_two_processes_equals_one(trained, tmp_path):
    final = trained["vq"].folder / "checkpoints" / "final.pt"
    one = api.evaluate("ssim", reference="quickstart:test", checkpoint=final)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    args = ["-m", "vgbench", "eval", "--metric", "ssim", "--checkpoint", str(final), "--reference",
            "quickstart:test", "--device", "cpu", "--batch-size", "1", "--no-store"]  # fmt: skip
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                          "29533", *args], env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    rec = json.loads(two.stdout.strip().splitlines()[-1])
    assert rec["world_size"] == 2 and rec["value"] == pytest.approx(one.value, rel=1e-12)  # float64 sums


def test_eval_of_sampled_videos_copies_the_sidecar(trained, tmp_path, mocked_i3d):
    final = trained["prior"].folder / "checkpoints" / "final.pt"
    run = sample_mod.sample(final, 2, tmp_path / "s", cond="quickstart:test", seed=4, top_k=8, progress=False)
    side = json.loads(run.sidecar.read_text())
    with pytest.warns(UserWarning, match="singular"):
        r = api.evaluate("fvd", samples=tmp_path / "s", reference="quickstart:test", use_cache=False)
    made = r.samples["generated_by"]
    assert r.n_samples == 2 and r.samples["path"] == str(run.samples.resolve())  # not grid.gif / grid.mp4
    assert made["checkpoint"]["sha256"] == hub_sha(final) and made["card"] == "gpt.quickstart"
    assert made["seed"] == 4 and made["top_k"] == 8 and made["conditioning"] == side["conditioning"]
    assert made["samples_sha256"] == r.samples["content_sha256"] and made["matched_by"] == "samples_sha256"


# ----------------------------------------------------------------------------------------------------------
# `vgbench table` places a trained run: the tiny checkpoints re-saved under cards that claim paper rows


TABLE_CARDS = {
    "vqvae.tabletest": "base: vqvae.quickstart\ntables: ['3: With Attention', '5: 8 × 32 × 32', '6: 1024', "
    "'7: 8 × 32 × 32 × 1']\n",
    "gpt.tabletest": "base: gpt.quickstart\nvqvae: vqvae.tabletest\ntables: ['4: 16', '5: 8 × 32 × 32', '6: 1024', "
    "'7: 8 × 32 × 32 × 1']\n",
}  # fake `tables:` mappings: the quickstart configuration standing behind the rows of vqvae.bair and gpt.bair


@pytest.fixture
def table_cards(tmp_path, monkeypatch):
    folder = tmp_path / "cards" / "models"
    folder.mkdir(parents=True)
    for name, body in TABLE_CARDS.items():
        (folder / f"{name}.yaml").write_text(f"card_version: 1\nname: {name}\ndescription: a test card\n{body}")
    monkeypatch.setenv("VGBENCH_CARDS_PATH", str(tmp_path / "cards"))
    cards._index.cache_clear()
    cards.get.cache_clear()
    yield
    monkeypatch.delenv("VGBENCH_CARDS_PATH")
    cards._index.cache_clear()
    cards.get.cache_clear()


@pytest.mark.slow
def test_vgbench_table_places_a_trained_run(trained, tmp_path, mocked_i3d, table_cards):
    vq_ck = ckpt_mod.load(trained["vq"].folder / "checkpoints" / "final.pt")
    prior_ck = ckpt_mod.load(trained["prior"].folder / "checkpoints" / "final.pt")
    vq, prior = tmp_path / "vq.pt", tmp_path / "prior.pt"
    ckpt_mod.save(vq, ckpt_mod.build(vq_ck), "vqvae.tabletest", vq_ck.config, meta=vq_ck.meta)
    vqvae = {"card": "vqvae.tabletest", "config": prior_ck.vqvae["config"]}
    ckpt_mod.save(prior, ckpt_mod.build(prior_ck), "gpt.tabletest", prior_ck.config, vqvae=vqvae, meta=prior_ck.meta)
    store, ref = tmp_path / "results.jsonl", "quickstart:test"
    common = {"reference": ref, "store": store, "run": "tiny"}
    api.evaluate("nmse", checkpoint=vq, **common)
    api.evaluate("bits-per-dim", checkpoint=prior, **common)
    sample_mod.sample(prior, 2, tmp_path / "s", cond=ref, seed=1, progress=False)  # FVD and FVD* read these
    with pytest.warns(UserWarning, match="singular"):
        api.evaluate("r-fvd", checkpoint=vq, use_cache=False, **common)
        few = {"samples": tmp_path / "s", "allow_fewer": True, "use_cache": False}  # 2 samples: off-protocol
        api.evaluate("fvd.videogpt_paper", **few, **common)  # no checkpoint read: placed by the sidecar's card
        api.evaluate("fvd-star.videogpt_paper", checkpoint=vq, **few, **common)
    records = [json.loads(x) for x in store.read_text().splitlines()]
    assert [r["metric"] for r in records] == ["nmse", "bits-per-dim", "r-fvd", "fvd", "fvd-star"]
    assert [r["samples"]["generated_by"]["card"] for r in records[3:]] == ["gpt.tabletest"] * 2
    assert "checkpoint" not in records[3] or not records[3]["checkpoint"]  # FVD read no checkpoint: the sidecar
    want = {  # table -> (published row, the run's metrics there)
        "3": ("With Attention", {"nmse", "r-fvd"}),
        "4": ("16", {"bits-per-dim", "fvd"}),
        "5": ("8 × 32 × 32", {"r-fvd", "fvd", "fvd-star"}),
        "6": ("1024", {"r-fvd", "fvd", "bits-per-dim"}),
        "7": ("8 × 32 × 32 × 1", {"r-fvd", "fvd", "bits-per-dim"}),
    }
    from vgbench import leaderboard, results

    frame = results.read(store)
    for number, (slot, metrics) in want.items():
        t = leaderboard.with_results(leaderboard.get_table(number), frame)
        labels = [r.label for r in t.rows]
        row = t.rows[labels.index(f"{slot} — vgbench, tiny")]
        assert labels[labels.index(row.label) - 1] == slot and set(row.cells) == metrics
        by_metric = {r["metric"]: r for r in records}
        for m, cell in row.cells.items():
            v = by_metric[m]["value"]
            assert cell.value == leaderboard._fmt(v, leaderboard._decimals(v))  # as the paper prints such a value
            assert cell.off_protocol  # the quickstart data is not BAIR: never ranked beside the paper
        assert any("tiny" in f and "measured on quickstart, the row on bair" in f for f in t.footnotes)
        for fmt in leaderboard.FORMATS:
            text = api.tables(number, fmt, results=store)
            assert "vgbench, tiny" in text and "measured on quickstart" in text, (number, fmt)
    assert "tiny" not in api.tables("1", "md", results=store)  # the prior card names no Table 1 row
