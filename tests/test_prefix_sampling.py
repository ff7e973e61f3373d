"""Latent-prefix sampling (issue 19): an unconditional prior continues given first frames, the codes of each frame
held still kept as latent frame 1 (`vgbench sample --prefix`)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from vgbench import cards
from vgbench import sample as sample_mod
from vgbench import train as train_mod
from vgbench.errors import InputError
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


def test_prefix_from_the_command_line(unconditional, tmp_path, capsys):
    from click.testing import CliRunner

    from vgbench.cli import cli

    args = ["sample", str(unconditional["prior"]), "--n", "2", "--cond", "quickstart:test", "--seed", "0",
            "--device", "cpu", "--batch-size", "2"]  # fmt: skip
    ok = CliRunner().invoke(cli, [*args, "--prefix", "--out", str(tmp_path / "a")])
    assert ok.exit_code == 0, ok.output
    assert "--reference quickstart:test" in ok.output  # the next command names the clips it was conditioned on
    lib = sample_mod.sample(unconditional["prior"], 2, tmp_path / "b", cond="quickstart:test", seed=0, device="cpu",
                            batch_size=2, progress=False, prefix=True)  # fmt: skip
    assert np.array_equal(np.load(tmp_path / "a" / "samples.npz")["videos"], np.load(lib.samples)["videos"])
    from vgbench.cli import main

    with pytest.raises(SystemExit) as exc:  # no --cond: one line, exit 1
        main([*args[:4], "--prefix", "--out", str(tmp_path / "c")])
    assert exc.value.code == 1
    assert "latent-prefix conditioning needs the clips: pass --cond" in capsys.readouterr().err
