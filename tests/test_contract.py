"""The metric contract: inputs declared by cards, --set overrides, streaming FVD, prefetching, CLI loose ends."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from vgbench import api, cards, demo, listing
from vgbench.cli import main
from vgbench.errors import CardError, InputError, UnknownNameError, VgbenchError
from vgbench.metrics import fvd
from vgbench.metrics.contract import build_request
from vgbench.metrics.planning import prefetch

from .conftest import random_videos
from .test_fvd_pipeline import fake_extractor, mocked  # noqa: F401 (fixture)

# ----------------------------------------------------------------------------------------------------------
# Inputs: what each card declares


def test_an_input_a_metric_does_not_read_is_refused_by_name(tmp_path):
    with pytest.raises(InputError, match=r"--checkpoint does not apply to metric is: it reads --samples; drop"):
        build_request("is", samples="s.npz", checkpoint="m.ckpt")
    with pytest.raises(InputError, match=r"--samples does not apply to metric nmse: it reads --reference \+ --che"):
        build_request("nmse", samples="s.npz", reference="bair:test", checkpoint="m.ckpt")


def test_a_missing_input_is_named_with_its_role():
    with pytest.raises(InputError, match=r"^metric nmse needs --reference \(real clips, a prepared dataset split"):
        build_request("nmse", checkpoint="m.ckpt")
    with pytest.raises(InputError, match=r"^metric fvd needs --samples \(generated videos\) or --checkpoint \(a Vid"):
        build_request("fvd", reference="bair:test")
    with pytest.raises(InputError, match=r"^metric fvd does not take --samples, --reference and --checkpoint toge"):
        build_request("fvd", samples="s.npz", reference="bair:test", checkpoint="m.ckpt")


def test_each_way_of_calling_gets_its_roles():
    r = build_request("r-fvd", reference="bair:test", checkpoint="vqvae.ckpt")
    assert r.derived("samples") == "reconstructions" and r.derived("reference") is None
    assert r.role("samples") == "reconstructions made by vqvae.ckpt from bair:test"
    assert r.role("reference").startswith("real clips")
    star = build_request("fvd-star", samples="s.npz", reference="bair:test", checkpoint="vqvae.ckpt")
    assert star.derived("reference") == "reconstructions" and star.role("samples") == "generated videos"
    plain = build_request("fvd-star.videogpt_paper", samples="s.npz", reference="recon.npz")
    assert plain.role("reference") == "VQ-VAE reconstructions of real clips" and plain.name == "fvd-star.videogpt_paper"


def test_checkpoint_metrics_reach_their_engine(tmp_path):
    # the engines read the checkpoint first (cheap) and say what is wrong with it
    with pytest.raises(InputError, match=r"m.ckpt: no such checkpoint"):
        api.evaluate("nmse", reference="bair:test", checkpoint=tmp_path / "m.ckpt")
    with pytest.raises(InputError, match=r"m.ckpt: no such checkpoint"):
        api.evaluate("bits-per-dim", reference="bair:test", checkpoint=tmp_path / "m.ckpt")
    with pytest.raises(InputError, match="--allow-fewer does not apply to metric nmse"):
        api.evaluate("nmse", reference="bair:test", checkpoint=tmp_path / "m.ckpt", allow_fewer=True)


def test_derived_sets_fail_before_any_network_is_built(mocked, tmp_path):  # noqa: F811
    with pytest.raises(InputError, match=r"m.ckpt: no such checkpoint"):
        api.evaluate("r-fvd", reference=tmp_path / "r.npy", checkpoint=tmp_path / "m.ckpt")
    assert mocked == []  # build_extractor was never called


# ----------------------------------------------------------------------------------------------------------
# --set overrides


def test_overrides_are_recorded_and_mark_the_result_off_protocol(mocked, tmp_path):  # noqa: F811
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, random_videos(12, seed=1))
    np.save(b, random_videos(12, seed=2))
    on = api.evaluate("fvd", a, b)
    off = api.evaluate("fvd", a, b, overrides={"result_dtype": "float64", "bn_eps": "0.001"})
    assert off.off_protocol and not on.off_protocol
    assert off.protocol_overrides == {"result_dtype": ["float32", "float64"]}  # bn_eps 0.001 is the card's value
    assert "off-protocol: --set changed result_dtype='float64' (protocol: 'float32')" in off.notes
    assert off.protocol_params["result_dtype"] == "float64" and off.protocol_hash != on.protocol_hash
    assert off.value == pytest.approx(on.value, rel=1e-6) and off.value != on.value  # float64, not cast to float32


def test_override_errors_name_the_key():
    with pytest.raises(UnknownNameError, match=r"Unknown parameter of this ISProtocol 'split'. Did you mean 'splits'"):
        build_request("is", samples="s.npz", overrides={"split": "4"})
    with pytest.raises(CardError, match=r"--set: field 'splits': wrong type; expected an integer, got 'four'"):
        build_request("is", samples="s.npz", overrides={"splits": "four"})
    with pytest.raises(CardError, match=r"--set: field 'frames': I3D needs at least 9 frames; expected >= 9, got 8"):
        build_request("fvd", samples="s.npz", reference="r.npz", overrides={"frames": "8"})
    with pytest.raises(UnknownNameError, match="'description'"):  # texts are not parameters
        build_request("fvd", samples="s.npz", reference="r.npz", overrides={"description": "x"})
    r = build_request("bits-per-dim", reference="bair:test", checkpoint="m", overrides={"conditioning_frames": "null"})
    assert r.protocol.conditioning_frames is None and r.overrides == {"conditioning_frames": [1, None]}


def test_cli_set_needs_key_equals_value(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--metric", "is", "--samples", str(tmp_path), "--set", "splits"])
    assert exc.value.code == 2 and "expected KEY=VALUE (e.g. splits=4), got 'splits'" in capsys.readouterr().err


def test_uint8_round_trip_is_noted_in_the_result(mocked, tmp_path):  # noqa: F811
    u8, f = tmp_path / "u8.npy", tmp_path / "f.npy"
    x = random_videos(12, seed=3)
    np.save(u8, x)
    np.save(f, x.astype(np.float32))
    r = api.evaluate("fvd", u8, f, protocol="videogpt_repo", reference_range="0-255", allow_fewer=True)
    noted = [n for n in r.notes if "63 of the 256 levels" in n]
    assert len(noted) == 1 and noted[0].startswith("u8.npy: uint8 input under a truncating protocol")
    assert r.value > 0  # the same pixels, read two ways, differ by the round trip (metrics.md §4)
    plain = api.evaluate("fvd", u8, u8, allow_fewer=True)  # official: no truncation, no note
    assert not any("63 of the 256" in n for n in plain.notes)


# ----------------------------------------------------------------------------------------------------------
# Streaming FVD


def test_streaming_fvd_equals_eval_on_the_demo_sets(mocked, tmp_path):  # noqa: F811
    paths = demo.make_sets(tmp_path, n=24)
    want = api.evaluate("fvd", paths["fast"], paths["slow_a"]).value
    stream = fvd.FrechetVideoDistance("fvd.official", extractor=fake_extractor)
    with np.load(paths["slow_a"]) as z:
        real = z["videos"]
    with np.load(paths["fast"]) as z:
        fake = z["videos"]
    stream.update(real[:10], real=True)  # batches of any size: features do not depend on batching here
    stream.update(real[10:], real=True)
    for i in range(0, 24, 7):
        stream.update(fake[i : i + 7], real=False)
    assert stream.compute() == want
    stream.reset(real=False)  # keep the reference statistics, forget the samples
    with pytest.raises(InputError, match="at least 2 generated videos; 0 were added"):
        stream.compute()
    stream.update(real, real=False)
    same = api.evaluate("fvd", paths["slow_a"], paths["slow_a"]).value  # N=24 <= 400: 5.1e-5, not exactly 0
    # the real set was summed as 10 + 14 here and as 16 + 8 by eval: float64 sums in another order (measured 2e-7)
    assert stream.compute() == pytest.approx(same, rel=1e-5)


def test_streaming_fvd_checks_its_input():
    stream = fvd.FrechetVideoDistance("fvd.official", extractor=fake_extractor)
    with pytest.raises(InputError, match=r"expected 3 RGB channels in the last axis, got shape \(2, 9, 8, 8, 1\)"):
        stream.update(np.zeros((2, 9, 8, 8, 1), np.uint8), real=True)
    with pytest.raises(InputError, match="8 frames; at least 9 are needed"):
        stream.update(np.zeros((2, 8, 8, 8, 3), np.uint8), real=True)
    stream.update(np.full((2, 9, 8, 8, 3), 0.5, np.float32), real=False)  # detected as 0-1
    with pytest.raises(InputError, match="reads as range -1-1 .* earlier ones as 0-1; pass value_range="):
        stream.update(np.full((2, 9, 8, 8, 3), -0.5, np.float32), real=False)
    with pytest.raises(InputError, match="is.tganv2 is not an FVD-family metric"):
        fvd.FrechetVideoDistance("is", extractor=fake_extractor)


@pytest.mark.slow
def test_streaming_fvd_with_the_real_i3d_equals_vgbench_eval(i3d_tensors, tmp_path):
    paths = demo.make_sets(tmp_path, n=5)  # 20 I3D forwards in all: the slow test stays well under a minute
    want = api.evaluate("fvd", paths["fast"], paths["slow_a"], tensors=i3d_tensors, device="cpu", use_cache=False)
    stream = fvd.FrechetVideoDistance("fvd.official", device="cpu", tensors=i3d_tensors)
    for name, real in (("slow_a", True), ("fast", False)):
        with np.load(paths[name]) as z:
            stream.update(z["videos"], real=real)  # the protocol's batches of 16, as eval reads them
    assert stream.compute() == want.value  # same batches, same float32 value


# ----------------------------------------------------------------------------------------------------------
# Prefetching


def test_prefetch_keeps_order_and_raises_in_order():
    assert list(prefetch(range(50), depth=3)) == list(range(50))

    def items():
        yield 1
        yield 2
        raise InputError("bad video 3")

    got = []
    with pytest.raises(InputError, match="bad video 3"):
        for x in prefetch(items()):
            got.append(x)
    assert got == [1, 2]


def test_prefetch_stops_its_producer_when_the_consumer_leaves():
    produced = []

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    for x in prefetch(items(), depth=2):
        if x == 3:
            break
    time.sleep(0.2)
    assert len(produced) <= 3 + 2 + 2  # the item in hand, the queue, one being put
    assert not any(t.name == "vgbench-prefetch" for t in threading.enumerate())


# ----------------------------------------------------------------------------------------------------------
# Error mapping and output


def test_debug_flag_and_environment_show_the_traceback(monkeypatch, capsys, tmp_path):
    args = ["eval", "--metric", "fdv", "--samples", str(tmp_path), "--reference", str(tmp_path)]
    with pytest.raises(UnknownNameError):
        main(["--debug", *args])
    monkeypatch.setenv("VGBENCH_DEBUG", "1")
    with pytest.raises(UnknownNameError):
        main(args)
    monkeypatch.delenv("VGBENCH_DEBUG")
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 1 and "Traceback" not in capsys.readouterr().err


def test_an_unexpected_exception_is_one_line(monkeypatch, capsys, tmp_path):
    def broken(*a, **k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(api, "evaluate", broken)
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--samples", str(tmp_path), "--reference", str(tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 1 and err.startswith("error: unexpected ZeroDivisionError: division by zero\n")
    assert "rerun with --debug (or VGBENCH_DEBUG=1)" in err and "Traceback" not in err


def test_network_errors_are_vgbench_errors():
    import torch

    from vgbench.models.i3d import build_i3d

    with pytest.raises(InputError, match="I3D needs at least 9 frames, got 8"):
        build_i3d()(torch.zeros(1, 3, 8, 16, 16))
    with pytest.raises(VgbenchError, match="I3D weights lack RGB/inception_i3d/Conv3d_1a_7x7/conv_3d/w"):
        build_i3d({"RGB/inception_i3d/x": np.zeros(1, np.float32)})


@pytest.mark.parametrize("kind", ["protocols", "metrics", "models", "datasets"])
def test_list_shows_whole_descriptions(kind):
    text = listing.listing(kind)
    words = " ".join(text.split())
    for name in cards.names("metrics" if kind == "protocols" else kind):
        if kind == "protocols":
            for tag, p in cards.metric_protocols(cards.metric(name)).items():
                assert f"{name}.{tag} {' '.join(p.description.split())}" in words
        elif kind == "models":
            # a table row (name, arch, latent, sizes), then the whole description under it
            desc = " ".join(cards.get(kind, name).description.split())
            row = words.index(f" {name} ") if not words.startswith(f"{name} ") else 0
            assert words.find(desc, row) > row, name
        else:
            assert f"{name} {' '.join(cards.get(kind, name).description.split())}" in words
    assert max(len(line) for line in text.splitlines()) <= 118


def test_list_protocols_explains_the_uint8_round_trip():
    words = " ".join(listing.listing("protocols").split())
    assert "moves 63 of the 256 levels down by one: the same videos as uint8 and as float 0-255 give different" in words


def test_demo_ends_with_a_sentence(mocked, tmp_path):  # noqa: F811
    runs = demo.run(n=6, store=tmp_path / "r.jsonl")
    text = demo.summary(runs, tmp_path / "r.jsonl")
    assert text.startswith(f"FVD(slow, slow') = {runs[0].value:.2f}: two draws of the same motion, so small.")
    assert f"the two records above were appended to {tmp_path / 'r.jsonl'}." in text and "/demo" in text
