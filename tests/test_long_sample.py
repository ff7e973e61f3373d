"""Videos longer than training (issue 20): the window plan, the long sampler against today's sampler, the prefilled
context against a teacher-forced pass, causality of each window, batch-size and process-count independence, and
the `vgbench sample --frames` errors.

Priors are tiny (see tests/test_gpt.py) with a random head, so that logits differ and comparisons mean something.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from vgbench import sample as sample_mod
from vgbench.errors import InputError
from vgbench.models import sliding

from .test_checkpoint_metrics import REPO, sample_one_and_two_processes, trained  # noqa: F401 (trained: module fixture)
from .test_gpt import CONDITIONS, _cond, _video_gpt

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread


# ----------------------------------------------------------------------------------------------------------
# The plan


def test_window_plan_known_answers():
    p = sliding.plan(64, 16, 4, 4)  # the quickstart prior: 16 latent frames, windows of 4, stride 2
    assert p.stride == 2
    assert [w.start for w in p.windows] == [0, 2, 4, 6, 8, 10, 12]
    assert [w.new_from for w in p.windows] == [0, 4, 6, 8, 10, 12, 14]
    p = sliding.plan(20, 16, 4, 4, stride=3)  # 5 latent frames: the last window slides by 1 only
    assert [(w.start, w.new_from) for w in p.windows] == [(0, 0), (1, 4)]
    assert [(w.start, w.new_from) for w in sliding.plan(16, 16, 4, 4).windows] == [(0, 0)]
    p = sliding.plan(128, 16, 2, 8, stride=1)
    assert len(p.windows) == 1 + 56 and p.windows[-1].start == 56


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(frames=12), r"--frames 12: shorter than the prior's training clip of 16 frames; give --frames 16 or"),
        (dict(frames=18), r"--frames 18: not a multiple of the VQ-VAE's temporal downsampling 4; give a multiple "
                          r"of 4 \(e.g. 16 or 20\)"),  # fmt: skip
        (dict(frames=32, stride=4), r"--stride 4: out of range; allowed 1..3 latent frames .* default 2"),
        (dict(frames=32, stride=0), r"--stride 0: out of range; allowed 1..3"),
    ],
)
def test_window_plan_refuses_bad_values(kw, message):
    with pytest.raises(InputError, match=message):
        sliding.plan(kw["frames"], 16, 4, 4, kw.get("stride"))


# ----------------------------------------------------------------------------------------------------------
# The sampler (StandInVQVAE: 8-frame clips, latent 4x8x8, temporal downsampling 2)

KINDS = {"frames": CONDITIONS["frames"], "class": CONDITIONS["class"], "none": CONDITIONS["none"]}


def _long(vg, cond, frames, seeds, **kw) -> torch.Tensor:
    chunks = list(vg.sample_windows(cond if cond else len(seeds), frames, seeds=seeds, **kw))
    firsts = [f for f, _ in chunks]
    assert firsts == sorted(firsts) and firsts[0] == 0
    return torch.cat([c for _, c in chunks], dim=1)


@pytest.mark.parametrize("kind", list(KINDS))
def test_training_length_gives_todays_samples_bit_for_bit(kind):
    vg = _video_gpt(attention="sparse", **KINDS[kind]).eval()
    cond = _cond(vg.config, 3)
    today = vg.sample(cond if cond else 3, seeds=[4, 5, 6], batch_size=3)
    long = _long(vg, cond, 8, [4, 5, 6])
    assert long.shape == today.shape == (3, 8, 16, 16, 3) and torch.equal(long, today)


def _spy(vg):
    """Record every window the long sampler draws: its context, codes, step logits and conditioning."""
    calls, original = [], vg.prior.sample_codes

    def spy(*args, **kw):
        codes, logits = original(*args, **{**kw, "return_logits": True})
        calls.append({"args": args, "context": kw.get("context"), "uniforms": kw.get("uniforms"), "codes": codes,
                      "logits": logits})  # fmt: skip
        return codes

    spy.__wrapped__ = original
    vg.prior.sample_codes = spy
    return calls


@pytest.mark.parametrize("attention", ["full", "sparse"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_prefilled_context_equals_teacher_forcing_and_windows_stay_in_range(attention, kind):
    vg = _video_gpt(attention=attention, **KINDS[kind]).eval()
    cond = _cond(vg.config, 2)
    calls = _spy(vg)
    video = _long(vg, cond, 20, [7, 8], stride=1)  # 10 latent frames: windows at 0, 1, ..., 6
    assert video.shape == (2, 20, 16, 16, 3) and len(calls) == 7
    table = calls[0]["args"][0]
    for k, call in enumerate(calls):
        codes, sub = call["codes"], call["args"][2]
        if k:
            # the context is the previous window's generated codes (not re-sampled, not re-encoded from pixels)
            assert torch.equal(call["context"], calls[k - 1]["codes"][:, 1:])
            assert torch.equal(codes[:, :3], call["context"])
        # The whole window, teacher forced on its own codes only: equal logits at every position (the prefilled
        # cache holds what a full forward computes, and nothing outside the window's range reaches it).
        x = table[0][codes]  # (B, 4, 8, 8, D) codebook vectors
        forced = vg.prior(x, sub).flatten(1, -2)
        torch.testing.assert_close(call["logits"], forced, atol=1e-5, rtol=0)
        assert call["logits"].abs().max() > 0.1


def test_a_window_depends_only_on_its_context_and_uniforms():
    # Causality across windows: replaying window k from its context alone (nothing older) gives its codes again;
    # changing a code older than the context cannot reach it (the sampler is never given one), and changing the
    # context's last code changes what follows.
    vg = _video_gpt(attention="sparse", n_classes=5).eval()
    cond = _cond(vg.config, 2)
    calls = _spy(vg)
    _long(vg, cond, 16, [3, 4])  # 8 latent frames: windows at 0, 2, 4
    assert len(calls) == 3
    table = calls[0]["args"][0]
    for call in calls[1:]:
        again = vg.prior.sample_codes.__wrapped__(table, None, cond, context=call["context"],
                                                  uniforms=call["uniforms"])  # fmt: skip
        assert torch.equal(again, call["codes"])
    last = calls[-1]
    other = last["context"].clone()
    other[:, -1, -1, -1] = (other[:, -1, -1, -1] + 1) % vg.config.vocab_size
    moved = vg.prior.sample_codes.__wrapped__(table, None, cond, context=other, uniforms=last["uniforms"])
    assert not torch.equal(moved[:, 2:], last["codes"][:, 2:])


@pytest.mark.parametrize("policy", ["window", "first"])
def test_long_samples_do_not_depend_on_the_batch(policy):
    vg = _video_gpt(attention="full", cond_frames=1).eval()
    cond = _cond(vg.config, 4)
    together = _long(vg, cond, 16, [11, 12, 13, 14], cond_policy=policy)
    alone = torch.cat([_long(vg, {"frames": cond["frames"][i : i + 1]}, 16, [11 + i], cond_policy=policy)
                       for i in range(4)])  # fmt: skip
    assert together.shape == (4, 16, 16, 16, 3) and torch.equal(together, alone)
    # the policies differ after the first window, and agree on it
    other = _long(vg, cond, 16, [11, 12, 13, 14], cond_policy="first" if policy == "window" else "window")
    assert torch.equal(other[:, :8], together[:, :8]) and not torch.equal(other, together)


def test_window_policy_conditions_on_the_decoded_frame_at_the_window_start():
    vg = _video_gpt(attention="full", cond_frames=1).eval()
    cond = _cond(vg.config, 2)
    calls = _spy(vg)
    video = _long(vg, cond, 12, [1, 2], cond_policy="window", stride=2)  # windows start at latent 0, 2
    assert len(calls) == 2
    expect = video[:, 4:5].permute(0, 4, 1, 2, 3).float() / 255.0 - 0.5  # frame 4 = latent frame 2, decoded
    assert torch.equal(calls[1]["args"][2]["frames"], expect)
    assert torch.equal(calls[0]["args"][2]["frames"], cond["frames"])


# ----------------------------------------------------------------------------------------------------------
# `vgbench sample --frames` on a trained tiny checkpoint (4x8x8 latents, 16-frame clips, temporal downsampling 4)


def test_sample_frames_writes_long_videos_and_their_sidecar(trained, tmp_path):  # noqa: F811
    final = trained["prior"].folder / "checkpoints" / "final.pt"
    short = sample_mod.sample(final, 3, tmp_path / "s", cond="quickstart:test", seed=5, progress=False)
    a = sample_mod.sample(final, 3, tmp_path / "a", cond="quickstart:test", seed=5, batch_size=3, progress=False,
                          frames=32)  # fmt: skip
    b = sample_mod.sample(final, 3, tmp_path / "b", cond="quickstart:test", seed=5, batch_size=2, progress=False,
                          frames=32)  # fmt: skip
    va, vb, vs = (np.load(r.samples)["videos"] for r in (a, b, short))
    assert va.shape == (3, 32, 64, 64, 3) and np.array_equal(va, vb)
    assert not np.array_equal(va[:, :16], vs)  # same codes, but now decoded with the next frames as context
    side = json.loads(a.sidecar.read_text())
    assert side["long_video"]["frames"] == 32 and side["long_video"]["stride_latent_frames"] == 2
    assert side["long_video"]["window_starts_latent"] == [0, 2, 4] and side["long_video"]["cond_policy"] == "window"
    assert side["long_video"]["decode"].startswith("overlapping spans")  # the quickstart VQ-VAE has no attention
    assert side["seeds"] == [sample_mod.sample_seed(5, i) for i in range(3)]
    assert side["shape"] == [3, 32, 64, 64, 3] and a.gif.stat().st_size > 0
    assert not (tmp_path / "a" / ".parts").exists()
    same = sample_mod.sample(final, 3, tmp_path / "c", cond="quickstart:test", seed=5, progress=False, frames=16)
    assert np.array_equal(np.load(same.samples)["videos"], vs)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--frames", "8"], "error: --frames 8: shorter than the prior's training clip of 16 frames; give --frames 16"),
        (["--frames", "30"], "error: --frames 30: not a multiple of the VQ-VAE's temporal downsampling 4; give a "
                             "multiple of 4 (e.g. 28 or 32)"),  # fmt: skip
        (["--frames", "32", "--stride", "4"], "error: --stride 4: out of range; allowed 1..3 latent frames"),
        (["--stride", "1"], "error: --stride 1: a stride slides a window over a long video; give --frames too"),
    ],
)
def test_sample_cli_bad_frames_and_stride(trained, tmp_path, extra, message):  # noqa: F811
    final = trained["prior"].folder / "checkpoints" / "final.pt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    argv = ["-m", "vgbench", "sample", str(final), "-n", "1", "--cond", "quickstart:test", "--out", str(tmp_path / "x")]
    r = subprocess.run([sys.executable, *argv, *extra], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "x").exists()


@pytest.mark.slow
def test_long_samples_under_two_processes_equal_one(trained, tmp_path):  # noqa: F811
    final = trained["prior"].folder / "checkpoints" / "final.pt"
    a, b, sa, sb = sample_one_and_two_processes(final, tmp_path, "29537", "--frames", "24", "--stride", "1")
    assert a.shape == (3, 24, 64, 64, 3) and np.array_equal(a, b)
    assert sb["world_size"] == 2 and sa["seeds"] == sb["seeds"] and sa["samples_sha256"] == sb["samples_sha256"]


def test_span_decoding_equals_one_decode_of_the_whole_sequence():
    # A VQ-VAE without attention (the quickstart's design) decodes any latent length; the halo spans' centres must
    # equal the frames of one decode of the whole sequence, level for level.
    from vgbench.models.gpt import SpanDecoder, to_uint8
    from vgbench.models.vqvae import VQVAE, VQVAEConfig

    torch.manual_seed(0)
    vq = VQVAE(VQVAEConfig(in_channels=1, frames=8, resolution=16, downsample=(2, 4, 4), hidden=12, res_hidden=8,
                           res_layers=1, attention=False, n_codes=16, embedding_dim=4)).eval()  # fmt: skip
    assert vq.time_reach() == 1 + 1 + 2 * 2 + 1 and vq.latent_shape == (4, 4, 4)
    codes = torch.randint(0, 16, (2, 23, 4, 4), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = to_uint8(vq.decode_span(codes))  # (2, 46, 16, 16, 1)
        dec = SpanDecoder(vq, 23)
        assert dec.mode == "halo" and dec.chunk == 14
        pieces = [dec.push(codes[:, :4])] + [dec.push(codes[:, i : i + 3]) for i in range(4, 22, 3)]
        pieces.append(dec.push(codes[:, 22:]))
        got = [(f, c) for p in pieces for f, c in p]
    assert [f for f, _ in got] == sorted(f for f, _ in got)
    video = torch.cat([c for _, c in got], 1)
    assert video.shape == whole.shape and torch.equal(video, whole)
    # a sequence of one window is decoded as the training clip, exactly as vgbench sample does today
    with torch.no_grad():
        one = list(SpanDecoder(vq, 4).push(codes[:, :4]))
    assert len(one) == 1 and torch.equal(one[0][1], to_uint8(vq.decode(codes[:, :4])))


def test_interrupted_long_sampling_leaves_nothing_half_written(trained, tmp_path, monkeypatch):  # noqa: F811
    from vgbench.models.gpt import VideoGPT

    final = trained["prior"].folder / "checkpoints" / "final.pt"
    original = VideoGPT.sample_windows

    def interrupted(self, *args, **kw):  # Ctrl-C after the first window was written
        windows = original(self, *args, **kw)
        yield next(windows)
        raise KeyboardInterrupt

    monkeypatch.setattr(VideoGPT, "sample_windows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sample_mod.sample(final, 2, tmp_path / "x", cond="quickstart:test", progress=False, frames=32)
    assert list((tmp_path / "x").rglob("*")) == []  # no part, no temporary file, no samples.npz or sidecar
