"""`vgbench eval --samples` on what `vgbench sample` writes: the folder is read as its samples.npz (not its GIF and
MP4 grids), and the samples.json sidecar is copied into the FVD, FVD* and IS records when it describes those very
samples. Networks are mocked; the sampler itself is exercised in tests/test_checkpoint_metrics.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vgbench import api, contenthash, samplesdir
from vgbench import sample as sample_mod
from vgbench.metrics import fvd, inception

from .test_fvd_pipeline import fake_extractor


def _videos(seed: int, n: int = 6) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 16, 32, 32, 3), dtype=np.uint8)


def write_run(folder: Path, videos: np.ndarray, with_hash: bool = True) -> dict:
    """A `vgbench sample` output folder, as sample.sample writes it: samples.npz, samples.json, grid.gif, grid.mp4."""
    folder.mkdir(parents=True)
    with open(folder / "samples.npz", "wb") as f:
        np.savez(f, videos=videos)
    side = {
        "format": samplesdir.SIDECAR_FORMAT,
        "checkpoint": {"path": "/runs/r/prior/checkpoints/final.pt", "sha256": "cd" * 32, "card": "gpt.bair"},
        "card": "gpt.bair",
        "vqvae_card": "vqvae.bair",
        "count": len(videos),
        "shape": list(videos.shape),
        "seed": 3,
        "sample_seeds": "vgbench.samplesdir.sample_seed(seed, i) for sample i",
        "temperature": 1.0,
        "top_k": None,
        "top_p": 0.9,
        "conditioning": {"dataset": "bair:test", "frames": 1},
        "world_size": 1,
    }
    if with_hash:
        side["samples_sha256"] = contenthash.file_sha256(folder / "samples.npz")
    (folder / "samples.json").write_text(json.dumps(side))
    frames = sample_mod.grid(videos[:4])
    sample_mod.write_gif(folder / "grid.gif", frames)  # two videos a folder reader would otherwise take as samples
    sample_mod.write_mp4(folder / "grid.mp4", frames)
    return side


def _expected(side: dict, folder: Path, how: str = "samples_sha256") -> dict:
    info = {k: v for k, v in side.items() if k != "format"}
    sidecar = str((folder / "samples.json").resolve())
    return {**info, "sidecar": sidecar, "sidecar_format": side["format"], "matched_by": how}


@pytest.fixture
def mocked_i3d(monkeypatch, home):
    monkeypatch.setattr(fvd, "build_extractor", lambda *a, **k: fake_extractor)


class FakeC3D:
    """Stands in for tgan2's C3D: softmax of a fixed projection of the clip's mean colour."""

    device = "cpu"

    class model:  # noqa: N801 - mimics the extractor's attribute
        provenance = {"weights": "fake"}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        logits = x.mean(axis=(1, 2, 3)) @ np.linspace(-1, 1, 3 * 101).reshape(3, 101)  # (B, 101)
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)


@pytest.fixture
def mocked_c3d(monkeypatch, home):
    monkeypatch.setattr(inception.C3DExtractor, "from_card", classmethod(lambda cls, *a, **k: FakeC3D()))


@pytest.mark.parametrize("given", ["folder", "npz"])
def test_fvd_record_carries_the_sidecar(tmp_path, mocked_i3d, given):
    folder = tmp_path / "run"
    side = write_run(folder, _videos(0))
    ref = tmp_path / "real.npy"
    np.save(ref, _videos(1))
    samples = folder if given == "folder" else folder / "samples.npz"
    with pytest.warns(UserWarning, match="singular"):
        r = api.evaluate("fvd", samples=samples, reference=ref)
    assert r.samples["kind"] == "npz" and r.samples["path"] == str((folder / "samples.npz").resolve())
    assert r.n_samples == 6  # the samples, not the 2 grid videos beside them
    assert r.samples["generated_by"] == _expected(side, folder)
    assert r.samples["generated_by"]["checkpoint"]["sha256"] == "cd" * 32 and r.samples["generated_by"]["seed"] == 3
    assert "generated_by" not in r.reference  # a plain array has no sidecar


def test_fvd_star_and_is_records_carry_the_sidecar(tmp_path, mocked_i3d, mocked_c3d):
    folder = tmp_path / "run"
    side = write_run(folder, _videos(2))
    recon = tmp_path / "recon.npy"
    np.save(recon, _videos(3))
    with pytest.warns(UserWarning, match="singular"):
        star = api.evaluate("fvd-star", samples=folder, reference=recon)
    assert star.samples["generated_by"] == _expected(side, folder)
    r = api.evaluate("is", samples=folder, allow_fewer=True)
    assert r.samples["generated_by"] == _expected(side, folder) and r.n_samples == 6
    assert r.value > 1.0  # a real score of the 6 samples (1 would mean identical predictions)


def test_replaced_samples_do_not_inherit_the_sidecar(tmp_path, mocked_i3d):
    folder = tmp_path / "run"
    write_run(folder, _videos(4))
    with open(folder / "samples.npz", "wb") as f:  # other samples of the same shape, written afterwards
        np.savez(f, videos=_videos(5))
    ref = tmp_path / "real.npy"
    np.save(ref, _videos(1))
    with pytest.warns(UserWarning, match="singular"):
        r = api.evaluate("fvd", samples=folder, reference=ref)
    assert "generated_by" not in r.samples
    assert any("does not describe" in n and "samples_sha256 differ" in n for n in r.notes)


def test_a_sidecar_without_a_hash_is_matched_by_count_and_shape(tmp_path, mocked_i3d):
    folder = tmp_path / "run"
    side = write_run(folder, _videos(6), with_hash=False)  # written before the sidecar recorded samples_sha256
    ref = tmp_path / "real.npy"
    np.save(ref, _videos(1))
    with pytest.warns(UserWarning, match="singular"):
        r = api.evaluate("fvd", samples=folder, reference=ref)
    assert r.samples["generated_by"] == _expected(side, folder, "count and shape")
    with open(folder / "samples.npz", "wb") as f:
        np.savez(f, videos=_videos(6, n=5))  # one sample fewer than the sidecar says
    with pytest.warns(UserWarning, match="singular"):
        r = api.evaluate("fvd", samples=folder, reference=ref)
    assert "generated_by" not in r.samples and any("count and shape differ" in n for n in r.notes)


def test_a_folder_with_a_foreign_json_is_still_a_video_folder(tmp_path):
    from vgbench.video import SampleSet

    folder = tmp_path / "clips"
    write_run(folder, _videos(7))
    (folder / "samples.json").write_text(json.dumps({"format": "someone-else/1"}))
    s = SampleSet.open(folder)
    assert s.kind == "videos" and s.count == 2  # not a vgbench sample run: the folder's video files are the set


def test_an_unreadable_sidecar_is_named_not_fatal(tmp_path, mocked_i3d, monkeypatch):
    folder = tmp_path / "run"
    write_run(folder, _videos(8))
    ref = tmp_path / "real.npy"
    np.save(ref, _videos(1))

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(samplesdir, "read_sidecar", denied)
    with pytest.warns(UserWarning, match="singular"):
        r = api.evaluate("fvd", samples=folder / "samples.npz", reference=ref)
    assert "generated_by" not in r.samples
    assert any("samples.json: could not be read (Permission denied)" in n for n in r.notes)
