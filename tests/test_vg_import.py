"""Import of the public VideoGPT checkpoints (wilson1yan/VideoGPT, "VG") and the VG-compatible variants.

Synthetic Lightning files are written with VG's documented names and shapes (``tests/vg_synthetic.py``,
videogpt.md §7.1); the parity golden (``tests/golden/vg_parity.*``, see its README) holds outputs of VG's own modules.
"""

from __future__ import annotations

import argparse
import builtins
import hashlib
import json
import math
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from tests import vg_synthetic as vs
from vgbench import cards, weights
from vgbench.errors import CardError, InputError, OfflineError, UnsafePickleError
from vgbench.models import checkpoint, create, torch_container, vg_import, videogpt_repo
from vgbench.models.attention import sparse_block_layout

GOLDEN = Path(__file__).parent / "golden"
SMALL_VQ = dict(n_hiddens=16, n_res_layers=4, n_codes=32, embedding_dim=8, downsample=(4, 2, 2))

# Cards with the small clip size of the synthetic files and the golden (16x16x16 clips, 4x2x2 -> 4x8x8 latents);
# they inherit everything else from the real cards.
TEST_CARDS = {
    "vqvae.vgtest": {"base": "vqvae.bair_stride4x2x2", "config": {"resolution": 16, "latent": [4, 8, 8]}},
    "gpt.vgtest_frames": {"base": "gpt.bair_gpt", "vqvae": "vqvae.vgtest",
                          "config": {"attention": "full", "cond_frames": 1, "n_classes": 0}},
    "gpt.vgtest_class": {"base": "gpt.bair_gpt", "vqvae": "vqvae.vgtest",
                         "config": {"attention": "sparse", "cond_frames": 0, "n_classes": 5}},
    "gpt.vgtest_class_full": {"base": "gpt.bair_gpt", "vqvae": "vqvae.vgtest",
                              "config": {"attention": "full", "cond_frames": 0, "n_classes": 5}},
}  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread


@pytest.fixture(scope="module")
def vg_cards(tmp_path_factory):
    root = tmp_path_factory.mktemp("cards")
    (root / "models").mkdir()
    for name, data in TEST_CARDS.items():
        card = {"card_version": 1, "name": name, "description": "importer test card", **data}
        card["weights"] = {"file": f"{name}.pt"}
        (root / "models" / f"{name}.yaml").write_text(yaml.safe_dump(card))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VGBENCH_CARDS_PATH", str(root))
        cards._index.cache_clear()
        cards.get.cache_clear()
        yield root
    cards._index.cache_clear()
    cards.get.cache_clear()


def small_vqvae_file(path, legacy=False, **changes):
    vq = {**SMALL_VQ, **changes.pop("vq", {})}
    entries = vs.vqvae_entries(**vq)
    sd = vs.state_dict(entries)
    args = vs.vqvae_args(**vq, sequence_length=16, resolution=changes.pop("resolution", 64))
    args.update(changes)
    return vs.write_lightning(path, sd, args, legacy=legacy), sd


def class_gpt_file(path, attn_type="sparse", **kw):
    """A class-conditional prior (5 classes) on a small VQ-VAE with 16x16x16 clips (card gpt.vgtest_class)."""
    entries = vs.gpt_entries(SMALL_VQ, (4, 8, 8), hidden_dim=24, layers=2, attn_type=attn_type, class_cond_dim=5)
    sd = vs.state_dict(entries)
    for k in kw.pop("drop", ()):
        del sd[k]
    args = vs.gpt_args(24, 2, 2, attn_type, 0, 5, sequence_length=16, resolution=16)
    return vs.write_lightning(path, sd, args, **kw), sd


# ----------------------------------------------------------------------------------------------------------
# An independent statement of where each VG entry lands (regexes; vg_import uses an explicit plan)

RULES = [
    (r"(encoder|decoder)\.res_stack\.(\d+)\.block\.0\.", r"\1.res_stack.blocks.\2.norm1."),
    (r"(encoder|decoder)\.res_stack\.(\d+)\.block\.3\.", r"\1.res_stack.blocks.\2.norm2."),
    (r"(encoder|decoder)\.res_stack\.(\d+)\.block\.6\.", r"\1.res_stack.blocks.\2.norm3."),
    (r"(encoder|decoder)\.res_stack\.(\d+)\.block\.2\.", r"\1.res_stack.blocks.\2.conv1."),
    (r"(encoder|decoder)\.res_stack\.(\d+)\.block\.5\.", r"\1.res_stack.blocks.\2.conv2."),
    (r"(encoder|decoder)\.res_stack\.(\d+)\.block\.8\.attn_(.)\.fc\.", r"\1.res_stack.blocks.\2.attn.attn_\3.out."),
    (r"(encoder|decoder)\.res_stack\.(\d+)\.block\.8\.attn_(.)\.w_.s\.", r"\1.res_stack.blocks.\2.attn.attn_\3.qkv."),
    (r"(encoder|decoder)\.res_stack\.\d+\.(weight|bias|running_mean|running_var|num_batches_tracked)$",
     r"\1.res_stack.norm.\2"),
    (r"^fc_in\.", "prior.fc_in."),
    (r"^attn_stack\.right_shift\.sos$", "prior.sos"),
    (r"^attn_stack\.pos_embd\.emb\.d_(\d)$", r"prior.pos.tables.\1"),
    (r"^cond_pos_embd\.emb\.d_(\d)$", r"prior.frame_pos.tables.\1"),
    (r"^resnet\.(.*)\.norm\.norm\.", r"prior.frame_encoder.\1.norm."),
    (r"^resnet\.", "prior.frame_encoder."),
    (r"^attn_stack\.attn_nets\.(\d+)\.", r"prior.blocks.\1."),
    (r"\.pre_attn_norm\.", ".norm1."),
    (r"\.pre_enc_norm\.", ".norm2."),
    (r"\.pre_fc_norm\.", ".norm3."),
    (r"^norm\.", "prior.norm."),
    (r"norm(\d?)\.g$", r"norm\1.weight"),
    (r"norm(\d?)\.b$", r"norm\1.bias"),
    (r"norm(\d?)\.w\.weight$", r"norm\1.gain.weight"),
    (r"norm(\d?)\.wb\.weight$", r"norm\1.shift.weight"),
    (r"\.attn\.fc\.", ".attn.out."),
    (r"\.attn\.w_.s\.", ".attn.qkv."),
    (r"\.enc_attn\.w_qs\.", ".cross.q."),
    (r"\.enc_attn\.w_[kv]s\.", ".cross.kv."),
    (r"\.enc_attn\.fc\.", ".cross.out."),
    (r"\.fc_block\.0\.", ".mlp.fc1."),
    (r"\.fc_block\.2\.", ".mlp.fc2."),
    (r"^fc_out\.", "prior.head."),
]  # fmt: skip


def target_of(key: str, width: int, memory: int = 240):
    """(target key, index into it) of VG entry ``key``: q/k/v are row blocks of the fused matrices (width
    ``width``; cross-attention values ``memory`` wide), codebook buffers index 0 of the codebook axis."""
    prefix = "vqvae." if key.startswith("vqvae.") else ""
    name = key.removeprefix("vqvae.")
    if name.startswith("codebook."):
        return prefix + name, 0
    for pattern, repl in RULES:
        name = re.sub(pattern, repl, name)
    index = ...  # the whole tensor (0-dim ones too)
    for proj, block in (("w_qs", 0), ("w_ks", 1), ("w_vs", 2)):
        if f".{proj}." in key and ".enc_attn." not in key:
            index = slice(block * width, (block + 1) * width)
    if ".enc_attn.w_ks." in key:
        index = slice(0, width)
    if ".enc_attn.w_vs." in key:
        index = slice(width, width + memory)
    return prefix + name, index


def assert_mapped(vg_sd: dict, model: torch.nn.Module, prior_width: int) -> None:
    """Every VG entry sits, unchanged, where the independent rules say; every model entry is covered."""
    mine = model.state_dict()
    covered = set()
    for key, value in vg_sd.items():
        if key.endswith("attn.attn.mask"):
            continue  # checked and dropped
        if ".block.8." in key:  # VQ-VAE attention: q/k/v blocks as wide as the VQ-VAE
            width = mine["vqvae.encoder.convs.0.conv.bias" if "vqvae." in key else "encoder.convs.0.conv.bias"].numel()
        target, index = target_of(key, width if ".block.8." in key else prior_width)
        assert target in mine, f"{key} -> {target}: not in the model"
        got = mine[target][index]
        assert torch.equal(got.to(value.dtype), value), f"{key} -> {target}[{index}] differs"
        covered.add(target)
    constants = {k for k in mine if k.endswith(("codebook.initialized", "recon_variance"))}
    assert set(mine) - covered == constants
    for k in constants:  # VG: an imported codebook is initialised; NMSE divisor 0.06 (videogpt.md §3)
        assert mine[k].item() == (True if k.endswith("initialized") else 0.06)


# ----------------------------------------------------------------------------------------------------------
# VQ-VAE files


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_vqvae_all_283_entries_used_once_and_round_trip(tmp_path, legacy):
    path, sd = small_vqvae_file(tmp_path / "bair_stride4x2x2", legacy=legacy)
    assert len(sd) == 283  # videogpt.md §7.1: 283 state_dict entries with 4 residual layers
    ck = vg_import.read_lightning(path)
    assert ck.kind == "vqvae" and ck.args["downsample"] == [4, 2, 2]  # a list, as argparse stores it
    assert {"hparams_name", "optimizer_states", "native_amp_scaling_state", "callbacks"} <= set(ck.info["entries"])
    model, config, vq_config = vg_import.build_from_lightning(ck, cards.model("vqvae.bair_stride4x2x2"))
    assert vq_config is None and (config.hidden, config.res_hidden, config.n_codes) == (16, 8, 32)
    assert_mapped(sd, model, 16)

    res = vg_import.import_checkpoint(path, "vqvae.bair_stride4x2x2", dest=tmp_path / "out.pt")
    assert res.sha256 == hashlib.sha256((tmp_path / "out.pt").read_bytes()).hexdigest()
    assert res.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    raw = torch.load(tmp_path / "out.pt", weights_only=True)  # pickle-free: tensors and plain values only
    assert raw["meta"]["imported"]["sha256"] == res.source_sha256 and raw["meta"]["step"] == 123456
    assert raw["meta"]["imported"]["state_dict_entries"] == 283
    loaded, ck2 = checkpoint.load_model(tmp_path / "out.pt")
    assert ck2.card == "vqvae.bair_stride4x2x2" and ck2.arch == "videogpt_repo_vqvae"
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    x = torch.from_numpy(vs.uniform(5, 3 * 16 * 64 * 64) * 0.5).float().view(1, 3, 16, 64, 64)
    codes = model.encode(x)
    assert torch.equal(loaded.encode(x), codes) and codes.shape == (1, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.decode(codes), model.decode(codes))


def test_a_prior_with_frame_conditioning_round_trips(tmp_path, vg_cards, golden_files):
    """The golden's frame-conditional prior file (Lightning extras included): values land where VG's names say,
    and import -> save -> load gives the same network and logits."""
    path = golden_files["gpt_full"]
    res = vg_import.import_checkpoint(path, "gpt.vgtest_frames", dest=tmp_path / "p.pt")
    assert res.kind == "gpt" and res.vqvae_config["downsample"] == [4, 2, 2]  # from the prior's position tables
    ck = vg_import.read_lightning(path)
    model, config, _ = vg_import.build_from_lightning(ck, cards.model("gpt.vgtest_frames"))
    assert config.resnet_depth == 18 and config.cond_frames == 1  # depth read off the resnet.* entries
    assert_mapped(ck.state_dict, model, 48)
    loaded, meta = checkpoint.load_model(tmp_path / "p.pt")
    assert meta.vqvae["card"] == "vqvae.vgtest"
    codes = torch.from_numpy(golden_files["npz"]["gpt_codes"].astype(np.int64))
    frames = golden_files["video"][:, :, :1]
    with torch.no_grad():
        a = model.prior(model.vqvae.embed(codes), {"frames": frames})
        b = loaded.prior(loaded.vqvae.embed(codes), {"frames": frames})
    assert torch.equal(a, b)


def test_a_prior_with_class_conditioning_round_trips_and_samples(tmp_path, vg_cards):
    path, sd = class_gpt_file(tmp_path / "class_gpt", amp=True)
    res = vg_import.import_checkpoint(path, "gpt.vgtest_class", dest=tmp_path / "c.pt")
    model, config, _ = vg_import.build_from_lightning(vg_import.read_lightning(path), cards.model("gpt.vgtest_class"))
    assert config.n_classes == 5 and config.attention == "sparse" and config.ff_hidden == 96
    assert_mapped(sd, model, 24)
    loaded, _ = checkpoint.load_model(res.path)
    codes = torch.from_numpy((vs.uniform(3, 2 * 256) > 0).astype(np.int64) * 31).view(2, 4, 8, 8)
    cond = {"label": torch.tensor([0, 4])}
    with torch.no_grad():
        a = model.prior(model.vqvae.embed(codes), cond)
        b = loaded.prior(loaded.vqvae.embed(codes), cond)
    assert torch.equal(a, b)
    video = loaded.sample(cond, seeds=[1, 2])  # an imported prior samples like a trained one
    assert video.dtype == torch.uint8 and video.shape == (2, 16, 16, 16, 3)
    assert torch.equal(video, loaded.sample(cond, seeds=[1, 2]))


def test_full_attention_masks_are_accepted_checked_and_not_required(tmp_path, vg_cards):
    path, sd = class_gpt_file(tmp_path / "full", attn_type="full")
    assert sum(k.endswith("attn.attn.mask") for k in sd) == 2  # one persistent (S, S) buffer per layer in VG
    with_masks = vg_import.import_checkpoint(path, "gpt.vgtest_class_full", dest=tmp_path / "a.pt")
    masks = [k for k in sd if k.endswith("attn.attn.mask")]
    path2, _ = class_gpt_file(tmp_path / "full_nomask", attn_type="full", drop=masks)
    without = vg_import.import_checkpoint(path2, "gpt.vgtest_class_full", dest=tmp_path / "b.pt")
    a, b = checkpoint.load(with_masks.path).model, checkpoint.load(without.path).model
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    bad = dict(sd)
    bad[masks[0]] = torch.ones(256, 256)  # not causal
    vs.write_lightning(tmp_path / "badmask", bad, vs.gpt_args(24, 2, 2, "full", 0, 5, 16, 16))
    with pytest.raises(InputError, match=r"attn_nets\.0\.attn\.attn\.mask' is not the causal mask"):
        vg_import.import_checkpoint(tmp_path / "badmask", "gpt.vgtest_class_full", dest=tmp_path / "c.pt")


# ----------------------------------------------------------------------------------------------------------
# Real-size cards


def test_real_size_counts_match_hand_derivation():
    # VG VQ-VAE, 240 hidden, 4 residual layers, 2 strided convs (4x4x4, 4x2x2 and 2x4x4 alike), 256-d codes:
    enc = (3 * 240 * 64 + 240) + (240 * 240 * 64 + 240) + (240 * 240 * 27 + 240)  # strided convs, conv_last
    block = 480 + 120 * 240 * 27 + 240 + 240 * 120 + 480 + 3 * (4 * 240 * 240 + 240)  # BN conv BN conv BN 3 attn
    dec = (240 * 240 * 64 + 240) + (240 * 3 * 64 + 3)
    vq_params = enc + dec + 2 * (4 * block + 480) + (256 * 240 + 256) + (240 * 256 + 240)
    assert vq_params == 21_141_619  # videogpt.md §3: "21.14 M trainable parameters" [measured on VG]
    for name in ("vqvae.bair_stride4x2x2", "vqvae.ucf101_stride4x4x4", "vqvae.kinetics_stride2x4x4"):
        card = cards.model(name)
        with torch.device("meta"):
            vq = create(card, weights=False, device="meta")
        assert sum(p.numel() for p in vq.parameters()) == vq_params, name
        sd = vq.state_dict()
        assert (len(sd), sum(v.numel() for v in sd.values())) == (card.weights.tensors, card.weights.values)
    # VG prior at its defaults (576 wide, 8 layers, 4 heads, 2048 codes) with 1 frame at 64x64 (bair_gpt):
    conv = lambda i, o, k=3: i * o * k**3  # noqa: E731
    resnet = conv(3, 64) + 128
    cin = 64
    for n, cout in zip((3, 4, 6, 3), (64, 128, 256, 240), strict=True):
        resnet += conv(cin, cout, 1) + conv(cin, cout) + conv(cout, cout) + 6 * cout  # projecting block
        resnet += (n - 1) * (2 * conv(cout, cout) + 4 * cout)
        cin = cout
    d = 576
    layer = 3 * 2 * d + (4 * d * d + d) + (d * d + d * 240 + 240 * 240 + 240 * d + d) + (8 * d * d + 5 * d)
    prior = resnet + 33 * 80 + 256 * d + d + 68 * (d // 3) + 8 * layer + 2 * d + 2048 * d
    assert round(prior / 1e6, 1) == 72.5  # videogpt.md §7.1: "about 72.5 M parameters outside the VQ-VAE"
    card = cards.model("gpt.bair_gpt")
    fields = dict(shape=(4, 32, 32), vocab_size=2048, embedding_dim=256, frames=16, resolution=64)
    cfg = videogpt_repo.check_gpt_config(cards.build_config(videogpt_repo.GPTConfig, card, **fields), "t")
    with torch.device("meta"):
        net = videogpt_repo.RepoGPT(cfg)
    assert sum(p.numel() for p in net.parameters()) == prior == 72_471_920


def test_repo_gpt_has_exactly_gpts_submodules():
    base = dict(shape=(4, 8, 8), vocab_size=32, embedding_dim=8, frames=16, resolution=16, hidden=24, heads=2,
                layers=1, ff_hidden=96, pos_embedding="axes", resnet_dim=240, resnet_depth=18)  # fmt: skip
    for extra in ({"cond_frames": 1}, {"n_classes": 5}, {"attention": "full"}):
        cfg = videogpt_repo.GPTConfig(**{**base, **extra})
        with torch.device("meta"):
            ours, theirs = videogpt_repo.RepoGPT(cfg), videogpt_repo.GPT(cfg)
        assert dict(ours.named_children()).keys() == dict(theirs.named_children()).keys()
        assert dict(ours.named_buffers()).keys() == dict(theirs.named_buffers()).keys()
        assert isinstance(ours.blocks[0], videogpt_repo.RepoBlock)


@pytest.mark.slow
def test_real_size_bair_gpt_file_imports(tmp_path):
    """gpt.bair_gpt's own identity: 4x32x32 latents, sparse, 1 frame, ResNet-34 (34 M frame-encoder values)."""
    vq = {**SMALL_VQ}
    entries = vs.gpt_entries(vq, (4, 32, 32), hidden_dim=24, layers=1, attn_type="sparse", n_cond_frames=1)
    assert sum(k.startswith("resnet.") for k in entries) == 3 + 16 * 6 + 4 * 3  # stem, 16 blocks, projections
    g = torch.Generator().manual_seed(0)
    sd = {k: (torch.randn(s, generator=g) if s else torch.tensor(3)) for k, s in entries.items()}
    vs.write_lightning(tmp_path / "bair_gpt", sd, vs.gpt_args(24, 2, 1, "sparse", 1, None, 16, 64))
    ck = vg_import.read_lightning(tmp_path / "bair_gpt")
    model, config, vq_config = vg_import.build_from_lightning(ck, cards.model("gpt.bair_gpt"))
    assert config.resnet_depth == 34 and vq_config.downsample == (4, 2, 2) and config.shape == (4, 32, 32)
    assert_mapped(sd, model, 24)


# ----------------------------------------------------------------------------------------------------------
# Parity with VG's own modules


@pytest.fixture(scope="module")
def golden_files(tmp_path_factory):
    meta = json.loads((GOLDEN / "vg_parity.json").read_text())
    npz = dict(np.load(GOLDEN / "vg_parity.npz"))
    root = tmp_path_factory.mktemp("golden")
    explicit = {"codebook.embeddings": torch.from_numpy(npz["codebook"])}
    out = {"meta": meta, "npz": npz}
    size = (2, 3, 16, 16, 16)
    out["video"] = torch.from_numpy(vs.uniform(11, math.prod(size)) * 0.5).float().view(size)  # as the generator
    vq_args = meta["vqvae"]["args"]
    for tag in ("vqvae", "gpt_full", "gpt_sparse"):
        entries = {k: tuple(s) for k, s, _ in meta[tag]["entries"]}
        sd = vs.state_dict(entries, explicit=explicit)
        args = {**vq_args} if tag == "vqvae" else {**meta[tag]["args"], "vqvae": "kinetics_stride4x4x4"}
        out[tag] = vs.write_lightning(root / tag, sd, args)
        out[tag + "_entries"] = entries
    return out


def test_synthetic_names_and_shapes_equal_vgs_own(golden_files):
    """tests/vg_synthetic.py's layout (used for the 283-entry and real-size files) is VG's, entry for entry."""
    meta = golden_files["meta"]
    vq = {k: v for k, v in meta["vqvae"]["args"].items() if k not in ("sequence_length", "resolution")}
    assert vs.vqvae_entries(**vq) == golden_files["vqvae_entries"]
    for tag in ("gpt_full", "gpt_sparse"):
        a = meta[tag]["args"]
        mine = vs.gpt_entries(vq, (4, 8, 8), a["hidden_dim"], a["layers"], a["attn_type"], a["n_cond_frames"],
                              a["resolution"], a["class_cond_dim"], resnet_blocks=(2, 2, 2, 2))  # fmt: skip
        assert mine == golden_files[tag + "_entries"], tag
    dtypes = {d for _, _, d in meta["vqvae"]["entries"]}
    assert dtypes == {"float32", "int64"}


def test_vqvae_parity_with_vg(tmp_path, vg_cards, golden_files):
    res = vg_import.import_checkpoint(golden_files["vqvae"], "vqvae.vgtest", dest=tmp_path / "v.pt")
    model, _ = checkpoint.load_model(res.path)
    codes = model.encode(golden_files["video"])
    want = golden_files["npz"]["codes"].astype(np.int64)
    assert np.unique(want).size == 64  # every code in use: the comparison is not vacuous
    assert np.array_equal(codes.numpy(), want)  # exact (nearest-code margins >= 8e-5, see vg_parity.json)
    with torch.no_grad():
        recon = model.decode(codes).numpy()
    np.testing.assert_allclose(recon, golden_files["npz"]["recon"], rtol=0, atol=1e-5)
    assert np.abs(golden_files["npz"]["recon"]).max() > 0.1


@pytest.mark.parametrize("tag, card", [("gpt_full", "gpt.vgtest_frames"), ("gpt_sparse", "gpt.vgtest_class")])
def test_prior_logits_parity_with_vg(tmp_path, vg_cards, golden_files, tag, card):
    """Frame-conditional full attention (VG teacher forcing) and class-conditional sparse attention (VG's decoding
    loop, one position per step with its layout row) against vgbench's teacher-forced dense-mask pass."""
    res = vg_import.import_checkpoint(golden_files[tag], card, dest=tmp_path / "g.pt")
    model, _ = checkpoint.load_model(res.path)
    codes = torch.from_numpy(golden_files["npz"]["gpt_codes"].astype(np.int64))
    cond = {"frames": golden_files["video"][:, :, :1]} if tag == "gpt_full" else {"label": torch.tensor([1, 3])}
    with torch.no_grad():
        logits = model.prior(model.vqvae.embed(codes), cond).reshape(2, 256, 64).numpy()
    want = golden_files["npz"][f"{tag}_logits"]
    assert np.abs(want).max() > 1.0  # well away from the zero-initialised head
    np.testing.assert_allclose(logits, want, rtol=0, atol=1e-5)


def test_sparse_layout_equals_vgs(golden_files):
    npz = golden_files["npz"]
    for name, shape in golden_files["meta"]["layouts"].items():
        vg = np.unpackbits(npz[f"layout_{name}"], axis=-1, count=shape[1]).astype(bool)
        mine = sparse_block_layout(tuple(int(s) for s in name.split("x")), 32, 4).numpy()
        assert np.array_equal(mine, vg), name


def test_layernorm_quirk_against_the_formula(tmp_path, vg_cards, golden_files):
    """VG: y = (x - mu) * (1e-5 + rsqrt(var)) * g + b (videogpt.md §4), not rsqrt(var + 1e-5)."""
    res = vg_import.import_checkpoint(golden_files["gpt_full"], "gpt.vgtest_frames", dest=tmp_path / "q.pt")
    model, _ = checkpoint.load_model(res.path)
    norm = model.prior.blocks[1].norm3
    x = torch.from_numpy(vs.uniform(9, 4 * 48)).float().view(4, 48) * torch.tensor([1e-3, 1e-2, 1.0, 30.0])[:, None]
    xd = x.double()
    mu = xd.mean(-1, keepdim=True)
    var = ((xd - mu) ** 2).mean(-1, keepdim=True)
    g, b = norm.weight.double(), norm.bias.double()
    formula = (xd - mu) * (1e-5 + var.rsqrt()) * g + b
    textbook = (xd - mu) * (var + 1e-5).rsqrt() * g + b
    with torch.no_grad():
        y = norm(x).double()
    torch.testing.assert_close(y, formula, rtol=1e-5, atol=1e-6)
    assert (y - textbook).abs().max() > 0.1  # at small variance the two placements differ: the test can fail


def small_vqvae():
    return create("vqvae.vgtest", weights=False, hidden=16, res_hidden=8, res_layers=1, n_codes=32, embedding_dim=8)


def test_fresh_conditional_norm_gain_starts_at_one_plus_inverse_sqrt_classes(vg_cards):
    model = create("gpt.vgtest_class", weights=False, vqvae=small_vqvae(), hidden=24, heads=2, layers=1, ff_hidden=96)
    gain = model.prior.blocks[0].norm1.gain.weight
    assert torch.allclose(gain, torch.full_like(gain, 1 / math.sqrt(5)))  # VG: W_g = 1/sqrt(C) (videogpt.md §4)
    c = torch.nn.functional.one_hot(torch.tensor([2]), 5).float()
    assert torch.allclose(1 + model.prior.blocks[0].norm1.gain(c), torch.tensor(1 + 1 / math.sqrt(5)))


# ----------------------------------------------------------------------------------------------------------
# Refusals


class Payload:
    """Would create ``marker`` if its reduction ran."""

    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return self.fn, (self.arg,)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("kind", ["os.system", "builtins.eval"])
def test_foreign_global_is_refused_without_running_it(tmp_path, kind, legacy):
    marker = tmp_path / "ran"
    payload = Payload(os.system, f"touch {marker}") if kind == "os.system" else Payload(
        builtins.eval, f"open({str(marker)!r}, 'w').close()")  # fmt: skip
    fn, args = payload.__reduce__()  # proof that the payload is live: called directly, it creates the file
    fn(*args)
    assert marker.exists()
    marker.unlink()
    entries = vs.vqvae_entries(**SMALL_VQ)
    args = {**vs.vqvae_args(**SMALL_VQ, sequence_length=16, resolution=64), "evil": payload}
    path = vs.write_lightning(tmp_path / "evil.ckpt", vs.state_dict(entries), args, legacy=legacy)
    name = {"os.system": "posix.system", "builtins.eval": "builtins.eval"}[kind]  # as pickle names them
    with pytest.raises(UnsafePickleError, match=rf"references the global '{re.escape(name)}'.*Nothing in the file"):
        vg_import.import_checkpoint(path, "vqvae.bair_stride4x2x2", dest=tmp_path / "out.pt")
    assert not marker.exists() and not (tmp_path / "out.pt").exists()


def test_lightning_class_only_as_a_reference(tmp_path):
    with vs.fake_lightning() as model_checkpoint:
        torch.save({"callbacks": {model_checkpoint: {}}}, tmp_path / "ref.pt")
        torch.save({"callbacks": [model_checkpoint()]}, tmp_path / "obj.pt")
    ref = next(iter(torch_container.load(tmp_path / "ref.pt")["callbacks"]))
    assert isinstance(ref, torch_container.ClassRef) and str(ref).endswith("model_checkpoint.ModelCheckpoint")
    with pytest.raises(UnsafePickleError, match="instantiates an object of a class it may only reference"):
        torch_container.load(tmp_path / "obj.pt")
    assert "pytorch_lightning" not in __import__("sys").modules  # the stand-in was only there while writing


def test_other_architectures_and_wrong_cards_get_clear_errors(tmp_path, vg_cards):
    g = torch.Generator().manual_seed(0)
    resnet = {"conv1.weight": torch.randn(8, 3, 3, 3, generator=g), "fc.weight": torch.randn(10, 8, generator=g)}
    vs.write_lightning(tmp_path / "resnet.ckpt", resnet, {"lr": 0.1})
    with pytest.raises(InputError, match=r"not a VideoGPT checkpoint.*conv1\.weight.*another architecture"):
        vg_import.import_checkpoint(tmp_path / "resnet.ckpt", "vqvae.bair_stride4x2x2", dest=tmp_path / "o.pt")
    path, sd = small_vqvae_file(tmp_path / "vq.ckpt")
    with pytest.raises(InputError, match=r"holds a VQ-VAE, but gpt.bair_gpt is a prior \(GPT\) card.*vqvae\.bair_"):
        vg_import.import_checkpoint(path, "gpt.bair_gpt", dest=tmp_path / "o.pt")
    with pytest.raises(InputError, match=r"vqvae\.bair \(arch videogpt_vqvae\) does not import .*gpt\.bair_gpt"):
        vg_import.import_checkpoint(path, "vqvae.bair", dest=tmp_path / "o.pt")
    torch.save(dict(sd), tmp_path / "bare.pt")  # a bare state_dict: no hyperparameters
    with pytest.raises(InputError, match=r"not a PyTorch Lightning checkpoint.*hyperparameters only inside"):
        vg_import.import_checkpoint(tmp_path / "bare.pt", "vqvae.bair_stride4x2x2", dest=tmp_path / "o.pt")
    ucf, _ = small_vqvae_file(tmp_path / "ucf.ckpt", vq={"downsample": (4, 4, 4)}, resolution=128)
    with pytest.raises(InputError, match=r"downsample \(4, 4, 4\) \(card: \(4, 2, 2\)\).*not vqvae.bair_stride4x2x2"
                       r".*match: vqvae.kinetics_stride4x4x4, vqvae.ucf101_stride4x4x4"):  # fmt: skip
        vg_import.import_checkpoint(ucf, "vqvae.bair_stride4x2x2", dest=tmp_path / "o.pt")
    assert not (tmp_path / "o.pt").exists()


def test_inconsistent_or_damaged_files_are_refused(tmp_path):
    card = "vqvae.bair_stride4x2x2"
    path, sd = small_vqvae_file(tmp_path / "a", n_codes=64)  # args say 64 codes, the codebook has 32
    with pytest.raises(InputError, match=r"'codebook.embeddings' has shape \(32, 8\), but .* needs \(64, 8\)"):
        vg_import.import_checkpoint(path, card, dest=tmp_path / "o.pt")
    path, _ = small_vqvae_file(tmp_path / "b", n_res_layers=3)  # a fourth block the args do not know
    with pytest.raises(InputError, match=r"has 4 encoder residual blocks, its hyperparameters say n_res_layers 3"):
        vg_import.import_checkpoint(path, card, dest=tmp_path / "o.pt")
    args = vs.vqvae_args(**SMALL_VQ, sequence_length=16, resolution=64)
    vs.write_lightning(tmp_path / "e", {**sd, "encoder.extra.weight": torch.zeros(2)}, args)
    with pytest.raises(InputError, match=r"1 state_dict entries have no place in .*: encoder.extra.weight"):
        vg_import.import_checkpoint(tmp_path / "e", card, dest=tmp_path / "o.pt")
    bad = dict(sd)
    bad["encoder.conv_last.conv.bias"] = torch.full((16,), float("nan"))
    vs.write_lightning(tmp_path / "c", bad, args)
    with pytest.raises(InputError, match=r"'encoder.conv_last.conv.bias' holds NaN"):
        vg_import.import_checkpoint(tmp_path / "c", card, dest=tmp_path / "o.pt")
    del args["n_codes"]
    vs.write_lightning(tmp_path / "d", sd, args)
    with pytest.raises(InputError, match=r"hyper_parameters\['args'\] has no 'n_codes'"):
        vg_import.import_checkpoint(tmp_path / "d", card, dest=tmp_path / "o.pt")
    data = (tmp_path / "a").read_bytes()
    (tmp_path / "trunc").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="a damaged or truncated zip archive"):
        vg_import.import_checkpoint(tmp_path / "trunc", card, dest=tmp_path / "o.pt")
    import tarfile

    with tarfile.open(tmp_path / "old.tar", "w") as tar:  # torch < 0.4 wrote tar archives
        tar.add(tmp_path / "a", arcname="storages")
    with pytest.raises(InputError, match="tar format of torch < 0.4 is not supported"):
        vg_import.import_checkpoint(tmp_path / "old.tar", card, dest=tmp_path / "o.pt")
    (tmp_path / "text").write_text("not a checkpoint")
    with pytest.raises(InputError, match="not a torch.save file"):
        vg_import.import_checkpoint(tmp_path / "text", card, dest=tmp_path / "o.pt")
    with zipfile.ZipFile(tmp_path / "a") as zf:  # a storage record shorter than its tensor
        names = zf.namelist()
        with zipfile.ZipFile(tmp_path / "short", "w") as out:
            for n in names:
                blob = zf.read(n)
                out.writestr(n, blob[:-4] if n.endswith("/data/0") else blob)
    with pytest.raises(InputError, match=r"tensor record .*data/0 holds \d+ bytes, but \d+ elements"):
        vg_import.import_checkpoint(tmp_path / "short", card, dest=tmp_path / "o.pt")
    assert not (tmp_path / "o.pt").exists()


def test_variants_refuse_what_vg_cannot_be(vg_cards):
    with pytest.raises(CardError, match=r"config.norm.*fixed in VG's VQ-VAE.*'batch'"):
        create("vqvae.bair_stride4x2x2", weights=False, norm="layer")
    with pytest.raises(CardError, match=r"config.downsample.*conv_last"):
        create("vqvae.bair_stride4x2x2", weights=False, downsample=(2, 2, 2), latent=None)
    with pytest.raises(CardError, match=r"config.res_hidden.*hidden // 2"):
        create("vqvae.bair_stride4x2x2", weights=False, res_hidden=128)
    with pytest.raises(CardError, match=r"config.ff_hidden.*4 x hidden"):
        create("gpt.vgtest_class", weights=False, vqvae=small_vqvae(), hidden=24, heads=2, layers=1, ff_hidden=64)


# ----------------------------------------------------------------------------------------------------------
# CLI and the model factory


def test_cli_import_then_create_uses_the_imported_file(tmp_path, home, capsys):
    from vgbench.cli import cli, main

    with pytest.raises(OfflineError, match=r"no imported checkpoint .*1iIAYJ2Qqrx5Q94s5eIXQYJgAydzvT_8L.*"
                       r"vgbench weights import PATH --model vqvae.bair_stride4x2x2"):  # fmt: skip
        create("vqvae.bair_stride4x2x2")
    path, _ = small_vqvae_file(tmp_path / "bair_stride4x2x2")
    r = CliRunner().invoke(cli, ["weights", "import", str(path)])  # the card is detected from the file
    assert r.exit_code == 0, r.output
    dest = home / "weights" / "vqvae.bair_stride4x2x2.pt"
    assert f"{dest}" in r.output and f"sha256 {hashlib.sha256(dest.read_bytes()).hexdigest()}" in r.output
    model = create("vqvae.bair_stride4x2x2")  # weights=True: the imported checkpoint from the cache
    assert model.config.hidden == 16 and bool(model.codebook.initialized)
    ucf, _ = small_vqvae_file(tmp_path / "ucf", vq={"downsample": (4, 4, 4)}, resolution=128)
    with pytest.raises(InputError, match=r"fits several models \(vqvae.kinetics_stride4x4x4, vqvae.ucf101_stride"):
        weights.import_file(ucf)  # the same network trained on two datasets: --model decides
    r = CliRunner().invoke(cli, ["weights", "list"])
    assert re.search(r"vqvae.bair_stride4x2x2\s+present", r.output), r.output
    r = CliRunner().invoke(cli, ["weights", "verify", "vqvae.bair_stride4x2x2"])
    assert r.exit_code == 0 and "vqvae.bair_stride4x2x2: ok" in r.output, r.output
    ns = argparse.Namespace(evil=Payload(os.system, "true"))
    with vs.fake_lightning():
        torch.save({"state_dict": {}, "hyper_parameters": {"args": ns}}, tmp_path / "evil")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["weights", "import", str(tmp_path / "evil"), "--model", "vqvae.bair_stride4x2x2"])
    assert exit_.value.code == 1 and "references the global 'posix.system'" in capsys.readouterr().err
