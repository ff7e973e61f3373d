"""The quickstart's pretrained checkpoint (issue 19): pack into bf16 files under 1 MB, unpack to a checkpoint whose
weights are the bf16 values; latent-prefix sampling keeps the codes of the still first frame as latent frame 1."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from vgbench import cards, pretrained
from vgbench import sample as sample_mod
from vgbench import train as train_mod
from vgbench.errors import ChecksumError, InputError
from vgbench.models import checkpoint as ckpt_mod

from .conftest import TINY_PRIOR, TINY_VQ

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread


@pytest.fixture(scope="module")
def unconditional(tmp_path_factory):
    """A tiny VQ-VAE and an unconditional prior (cond_frames 0) trained 3 steps each on a 12/4-video store."""
    from vgbench.datasets import quickstart

    base = tmp_path_factory.mktemp("pre")
    root = base / "data"
    quickstart.prepare(cards.dataset("quickstart"), root=root, counts={"train": 12, "test": 4})
    old = os.environ.get("VGBENCH_DATA")
    os.environ["VGBENCH_DATA"] = str(root)
    _, prior = train_mod.train(model="gpt.quickstart", stage="all", out=base / "run", steps=3, batch_size=4,
                               overrides=[*TINY_VQ, *TINY_PRIOR, "prior.config.cond_frames=0"], val_every=3,
                               ckpt_every=3, progress=False, device="cpu")  # fmt: skip
    yield {"base": base, "prior": prior.folder / "checkpoints" / "final.pt"}
    if old is None:
        os.environ.pop("VGBENCH_DATA", None)
    else:
        os.environ["VGBENCH_DATA"] = old


def test_pack_unpack_round_trip(unconditional, tmp_path):
    made = {"command": "vgbench train ...", "seed": 0, "seconds": 1.0, "machine": "test"}
    m = pretrained.pack(unconditional["prior"], tmp_path / "p", made)
    assert set(m["files"]) == {"vqvae", "prior"} and m["made_by"]["steps"] == 3
    for info in m["files"].values():
        assert (tmp_path / "p" / info["file"]).stat().st_size == info["bytes"] < 1_000_000
    dest = pretrained.unpack(tmp_path / "prior.pt", tmp_path / "p")
    src, got = ckpt_mod.load(unconditional["prior"]), ckpt_mod.load(dest)
    assert got.card == src.card and got.config == src.config and got.meta["pretrained"]["seed"] == 0
    for k, v in src.model.items():
        want = v.to(torch.bfloat16).float() if v.is_floating_point() else v
        assert torch.equal(got.model[k], want), k
    (tmp_path / "p" / "prior.bf16.pt").write_bytes(b"PK" + b"\0" * (m["files"]["prior"]["bytes"] - 2))
    with pytest.raises(ChecksumError):
        pretrained.unpack(tmp_path / "again.pt", tmp_path / "p")


def test_prefix_sampling_keeps_the_still_first_frame(unconditional, tmp_path):
    run = sample_mod.sample(unconditional["prior"], 4, tmp_path / "s", cond="quickstart:test", seed=0, device="cpu",
                            batch_size=2, progress=False, prefix=True)  # fmt: skip
    meta = json.loads((tmp_path / "s" / "samples.json").read_text())
    assert "latent prefix" in meta["conditioning"]["prefix"]
    net, _ = ckpt_mod.load_model(unconditional["prior"])
    from vgbench import datasets

    view = datasets.open_split("quickstart:test", channels=1)
    first = torch.stack([view[i]["video"][0] for i in range(4)]).permute(0, 3, 1, 2).float() / 255.0 - 0.5
    ctx = net.still_prefix(first)
    assert ctx.shape == (4, 1, *net.config.shape[1:])
    videos = np.load(run.samples)["videos"][..., :1]
    seeds = [sample_mod.sample_seed(0, i) for i in range(4)]
    with torch.no_grad():
        want = net.sample(4, seeds=seeds, context=ctx, batch_size=4).numpy()
        free = net.sample(4, seeds=seeds, batch_size=4).numpy()
    assert np.array_equal(videos, want)  # the sampler's videos are the prior's, continued from the still frame's codes
    assert not np.array_equal(videos, free)
    with pytest.raises(InputError, match="needs the clips"):
        sample_mod.sample(unconditional["prior"], 2, tmp_path / "t", progress=False, prefix=True)
