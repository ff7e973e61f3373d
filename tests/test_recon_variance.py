"""``recon_variance: measured``: the training split's pixel variance from an exact histogram of the store, set
before the first step, recorded in the run, kept on resume, used by validation and by ``nmse.measured``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vgbench import cards, datasets
from vgbench import train as train_mod
from vgbench.datasets import trainclips
from vgbench.datasets.store import Store, StoreWriter, byte_counts
from vgbench.errors import InputError
from vgbench.metrics import nmse
from vgbench.models import checkpoint as ckpt_mod

from .conftest import TINY_VQ
from .test_train import OPTS

MEASURED = [*TINY_VQ, "vqvae.config.recon_variance=measured"]


def _numpy_variance(frames: np.ndarray) -> float:
    return float(np.var(frames.astype(np.float64) / 255.0 - 0.5))


# ----------------------------------------------------------------------------------------------------------
# The histogram and its variance


def test_variance_from_histogram_known_answers():
    counts = np.zeros(256, np.int64)
    counts[0] = counts[255] = 5  # half -0.5, half +0.5: variance 0.25 exactly
    assert nmse.variance_from_histogram(counts) == 0.25
    counts = np.zeros(256, np.int64)
    counts[77] = 1000  # one value: 0
    assert nmse.variance_from_histogram(counts) == 0.0
    counts = np.zeros(256, np.int64)
    counts[[0, 1, 2]] = 1  # {0, 1, 2} / 255: population variance 2/3 / 255^2
    assert nmse.variance_from_histogram(counts) == (2 / 3) / 255**2
    with pytest.raises(ValueError, match="no values were counted"):
        nmse.variance_from_histogram(np.zeros(256, np.int64))
    with pytest.raises(ValueError, match="expected 256 non-negative counts"):
        nmse.variance_from_histogram(np.ones(255, np.int64))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_histogram_variance_equals_numpy(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (7, 33, 17, 3), dtype=np.uint8)
    x[:2] = rng.integers(100, 110, (2, 33, 17, 3), dtype=np.uint8)  # not uniform
    counts = byte_counts(x)
    assert np.array_equal(counts, np.bincount(x.reshape(-1), minlength=256))
    # numpy's two-pass float64 variance agrees to rounding (the histogram's is the exact value, correctly rounded)
    assert nmse.variance_from_histogram(counts) == pytest.approx(_numpy_variance(x), rel=1e-13)


def test_store_histogram_streams_every_frame_and_shares_by_shard(tmp_path):
    rng = np.random.default_rng(3)
    writer = StoreWriter(tmp_path / "s", "toy", "v", {}, {"src": {"name": "toy"}}, (8, 12, 1), crop_size=(8, 8))
    frames = []
    for shard in range(3):
        a = rng.integers(0, 256, (10, 8, 12, 1), dtype=np.uint8)
        videos = [
            {"name": f"{shard}a", "label": None, "start": 0, "length": 4, "picture": [0, 0, 8, 12], "center": [0, 2]},
            {"name": f"{shard}b", "label": None, "start": 4, "length": 6, "picture": [0, 3, 8, 8], "center": [0, 3]},
        ]
        writer.write_shard("train", shard, a, videos)
        frames += [a[0:4, :, 2:10], a[4:10, :, 3:11]]  # each video's centre window
    store = Store(tmp_path / "s")
    want = np.bincount(np.concatenate(frames).reshape(-1), minlength=256)
    assert np.array_equal(store.pixel_histogram("train", chunk=100), want)  # pieces of 1 frame (64 values)
    parts = [store.pixel_histogram("train", part=(r, 2)) for r in range(2)]
    assert np.array_equal(parts[0] + parts[1], want) and parts[0].sum() == 64 * (10 + 10)  # shards 0, 2 / shard 1
    variance, how = nmse.split_variance(store, "train")
    assert variance == pytest.approx(_numpy_variance(np.concatenate(frames)), rel=1e-13)
    assert how["values"] == 30 * 64 and how["split"] == "train"


# ----------------------------------------------------------------------------------------------------------
# Training


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """A quickstart store with 12 training and 4 test videos (as tests/test_train.py)."""
    from vgbench.datasets import quickstart

    root = tmp_path_factory.mktemp("data")
    quickstart.prepare(cards.dataset("quickstart"), root=root, counts={"train": 12, "test": 4})
    return root


def _train_frames(root: Path) -> np.ndarray:
    """Every frame of the quickstart store's train split, read with numpy from its shard files."""
    folder = root / "quickstart" / "prepared"
    (store,) = [p for p in folder.iterdir() if (p / "manifest.json").exists()]
    return np.concatenate([np.load(f) for f in sorted((store / "train").glob("shard-*[0-9].npy"))])


def _train(root, out, steps, **kw):
    opts = {**OPTS, "val_every": 2, "ckpt_every": 1, **kw.pop("opts", {})}
    return train_mod.train(
        model="vqvae.quickstart", stage="vqvae", out=out, root=root, overrides=MEASURED, steps=steps, **kw, **opts
    )


def test_measured_variance_is_set_before_training_recorded_and_validated(data_root, tmp_path, monkeypatch):
    frames = _train_frames(data_root)
    assert frames.shape[1:] == (64, 64, 1) and len(frames) == 12 * 16  # datasets/quickstart.yaml: 16 frames, grey
    want = _numpy_variance(frames)
    (res,) = _train(data_root, tmp_path / "run", 2)
    config = json.loads((res.folder / "config.json").read_text())
    rec = config["recon_variance"]
    assert rec["source"] == "measured" and rec["value"] == pytest.approx(want, rel=1e-13)
    assert rec["values"] == frames.size and rec["split"] == "train" and config["config"]["recon_variance"] == "measured"
    ck = ckpt_mod.load(res.folder / "checkpoints" / "final.pt")
    assert float(ck.model["recon_variance"]) == rec["value"]  # the model's buffer, saved with it
    vals = [json.loads(x) for x in (res.folder / "metrics.jsonl").read_text().splitlines() if '"val"' in x]
    assert vals and all(v["nmse_variance"] == rec["value"] for v in vals)  # validation divides by the buffer
    # the NMSE it logs is the squared error over that variance: recompute from the checkpoint's reconstructions
    model = ckpt_mod.build(ck)
    model.load_state_dict(ck.model)
    model.eval()
    data = trainclips.store_data(cards.model("vqvae.quickstart").training, 1, 0, root=data_root)
    x = torch.stack([data.val[i]["video"] for i in range(len(data.val))])
    with torch.no_grad():
        err = float(((model(x).recon - x) ** 2).mean())
    assert vals[-1]["val_nmse"] == pytest.approx(err / rec["value"], rel=1e-5)
    # nmse.measured of the checkpoint divides by the same variance, so it equals the validation value (same 4 clips)
    from vgbench import api

    monkeypatch.setenv("VGBENCH_DATA", str(data_root))
    monkeypatch.setenv("VGBENCH_HOME", str(tmp_path / "home"))
    r = api.evaluate("nmse", reference="quickstart:test", checkpoint=res.folder / "checkpoints" / "final.pt",
                     protocol="measured")  # fmt: skip
    assert r.extractor["variance"] == rec["value"] and r.value == pytest.approx(vals[-1]["val_nmse"], rel=1e-5)


def test_resume_keeps_the_checkpoint_variance_and_never_measures_again(data_root, tmp_path, monkeypatch):
    (first,) = _train(data_root, tmp_path / "run", 2)
    rec = json.loads((first.folder / "config.json").read_text())["recon_variance"]

    def no_measuring(*a, **k):
        raise AssertionError("a resumed run measured the variance again")

    monkeypatch.setattr(nmse, "split_variance", no_measuring)
    (res,) = _train(data_root, tmp_path / "run", 3, resume=True)
    assert res.step == 3
    assert json.loads((res.folder / "config.json").read_text())["recon_variance"] == rec
    assert float(ckpt_mod.load(res.folder / "checkpoints" / "final.pt").model["recon_variance"]) == rec["value"]


def test_a_constant_variance_is_recorded_as_such(data_root, tmp_path):
    (res,) = train_mod.train(
        model="vqvae.quickstart", stage="vqvae", out=tmp_path / "run", root=data_root, overrides=TINY_VQ, steps=1,
        **{**OPTS, "val_every": 1},
    )  # fmt: skip
    config = json.loads((res.folder / "config.json").read_text())
    assert config["recon_variance"] == {"value": 0.06, "source": "card constant"}  # vqvae.quickstart: 0.06


def test_measured_variance_needs_a_store(data_root, tmp_path):
    data = trainclips.store_data(cards.model("vqvae.quickstart").training, 1, 0, root=data_root)
    clips = torch.utils.data.TensorDataset(torch.zeros(8, 1, 16, 64, 64))  # not a prepared store's clips
    not_a_store = trainclips.TrainData(clips, data.val, data.describe)
    with pytest.raises(InputError, match=r"recon_variance 'measured' needs training clips from a prepared store"):
        train_mod.train(model="vqvae.quickstart", stage="vqvae", out=tmp_path / "run", overrides=MEASURED, steps=1,
                        data={"vqvae": not_a_store}, **OPTS)  # fmt: skip


def test_nmse_measured_divides_by_the_same_variance(data_root, monkeypatch):
    monkeypatch.setenv("VGBENCH_DATA", str(data_root))
    variance, how = nmse.measured_variance("quickstart:train")
    assert variance == pytest.approx(_numpy_variance(_train_frames(data_root)), rel=1e-13)
    assert how.startswith("measured on quickstart:train (") and "exact histogram" in how
    assert variance == nmse.split_variance(datasets.open_store("quickstart", None, data_root), "train")[0]


def test_a_constant_training_split_is_a_clear_error(tmp_path):
    from vgbench.datasets.loader import ClipDataset

    writer = StoreWriter(tmp_path / "flat", "toy", "v", {}, {"src": {"name": "flat"}}, (64, 64, 1))
    videos = [{"name": f"v{i}", "label": None, "start": 16 * i, "length": 16} for i in range(8)]
    writer.write_shard("train", 0, np.full((128, 64, 64, 1), 9, np.uint8), videos)
    clips = ClipDataset(Store(tmp_path / "flat"), "train", output="float_cthw")
    data = trainclips.TrainData(clips, None, {"dataset": "toy"})
    with pytest.raises(InputError, match=r"flat:train: every pixel of the training split has the same value"):
        train_mod.train(model="vqvae.quickstart", stage="vqvae", out=tmp_path / "run", overrides=MEASURED, steps=1,
                        data={"vqvae": data}, **OPTS)  # fmt: skip
    assert not list((tmp_path / "run" / "vqvae" / "checkpoints").glob("*.pt"))  # no step was taken
