"""Generate the VideoGPT-import parity golden (``vg_parity.json`` + ``vg_parity.npz``) by running VG's own modules.

Usage (from the repository root, with a checkout of wilson1yan/VideoGPT, e.g. ``git archive`` of 733d2b1)::

    PYTHONPATH=. python tests/golden/make_vg_parity.py --vg /path/to/VideoGPT

It imports VG's ``videogpt/{vqvae,gpt,attention,resnet,utils}.py`` from that checkout at run time (nothing of VG
is copied into this repository), with a minimal ``pytorch_lightning`` stand-in in ``sys.modules`` (VG's modules
subclass ``pl.LightningModule``; the stand-in is ``nn.Module`` with a no-op ``save_hyperparameters`` and a
``load_from_checkpoint`` that hands back the VQ-VAE built here), a ``videogpt.download`` stand-in that refuses
to download, and an empty ``skvideo.io`` (``utils.py`` imports it for writing videos only). It then

1. builds VG's ``VQVAE`` (4x2x2, n_hiddens 32, 1 residual layer, 64 codes of dimension 16, 16x16x16 clips), a
   frame-conditional full-attention ``VideoGPT`` (48 wide, 4 heads, 2 layers; VG's ``ResNet`` class with 2 blocks
   per group, i.e. ResNet-18, instead of the hard-coded ResNet-34, to keep the test small) and a class-conditional
   sparse-attention ``VideoGPT`` (5 classes) on it;
2. gives every state_dict entry deterministic values (``tests/vg_synthetic.py::fill``, rebuilt by the test from
   the recorded names and shapes), except the codebook, chosen from the encoder's outputs so codes are diverse
   and stored explicitly;
3. records VG's outputs on a fixed input: VQ-VAE codes and decoded clips, the full prior's teacher-forced logits,
   and the sparse prior's logits through VG's decoding path (its only path without DeepSpeed: one position per
   step with VG's sparse layout row; checked here against teacher forcing on the full prior), plus VG's
   ``StridedSparsityConfig`` block layouts of four latent grids.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests import vg_synthetic as vs  # noqa: E402

OUT = Path(__file__).resolve().parent
VQ = dict(n_hiddens=32, n_res_layers=1, n_codes=64, embedding_dim=16, downsample=(4, 2, 2))
CLIP = dict(sequence_length=16, resolution=16)
GPT_FULL = dict(hidden_dim=48, heads=4, layers=2, attn_type="full", n_cond_frames=1, class_cond_dim=None)
GPT_SPARSE = dict(hidden_dim=48, heads=4, layers=2, attn_type="sparse", n_cond_frames=0, class_cond_dim=5)
LAYOUT_SHAPES = [(4, 32, 32), (8, 32, 32), (4, 16, 16), (4, 8, 8)]
BATCH = 2
LABELS = [1, 3]
SEED_VIDEO, SEED_CODES = 11, 12


def import_vg(root: Path, loaded: dict):
    """VG's modules from a checkout, with the Lightning and download stand-ins."""
    pl = types.ModuleType("pytorch_lightning")

    class LightningModule(nn.Module):
        def save_hyperparameters(self, *args, **kwargs):
            pass

        @classmethod
        def load_from_checkpoint(cls, path):
            return loaded[path]

    pl.LightningModule = LightningModule
    sys.modules["pytorch_lightning"] = pl
    pkg = types.ModuleType("videogpt")  # the package without its __init__ (which imports data/download deps)
    pkg.__path__ = [str(root / "videogpt")]
    sys.modules["videogpt"] = pkg
    dl = types.ModuleType("videogpt.download")

    def refuse(*args, **kwargs):
        raise RuntimeError("the golden never downloads")

    dl.load_vqvae = dl.load_videogpt = refuse
    sys.modules["videogpt.download"] = dl
    for name in ("skvideo", "skvideo.io"):  # imported by utils.py for save_video_grid only
        sys.modules.setdefault(name, types.ModuleType(name))
    import videogpt.attention as attention
    import videogpt.gpt as gpt
    import videogpt.resnet as resnet
    import videogpt.vqvae as vqvae

    # ResNet-18 layout through VG's own ResNet class (VG hard-codes ResNet-34 in VideoGPT.__init__)
    gpt.resnet34 = lambda width, stride, cifar_stem=True, resnet_dim=240: resnet.ResNet(
        3, [2, 2, 2, 2], width, stride, resnet_dim=resnet_dim, cifar_stem=cifar_stem
    )
    return vqvae, gpt, attention


def entries(module: nn.Module) -> list:
    return [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in module.state_dict().items()]


def load_filled(module: nn.Module, explicit: dict) -> None:
    names = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    sd = vs.state_dict(names, explicit=explicit)
    if any(k.endswith("attn.attn.mask") for k in sd):  # VG's own causal buffer: fill() must reproduce it
        for k, v in module.state_dict().items():
            if k.endswith("attn.attn.mask"):
                assert torch.equal(v, sd[k]), k
    module.load_state_dict(sd, strict=True)


def git_commit(root: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout; give --commit)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vg", type=Path, required=True, help="checkout of wilson1yan/VideoGPT")
    ap.add_argument("--commit", default=None, help="VG commit, if --vg is not a git checkout")
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    loaded: dict = {}
    vqvae_mod, gpt_mod, attention_mod = import_vg(a.vg.resolve(), loaded)

    # -- VQ-VAE ------------------------------------------------------------------------------------------
    vq_args = argparse.Namespace(**VQ, **CLIP)
    vq_args.downsample = list(VQ["downsample"])
    vq = vqvae_mod.VQVAE(vq_args).eval()
    load_filled(vq, {})
    size = (BATCH, 3, CLIP["sequence_length"], CLIP["resolution"], CLIP["resolution"])
    video = torch.from_numpy(vs.uniform(SEED_VIDEO, int(np.prod(size))) * 0.5).float().view(size)
    with torch.no_grad():
        z = vq.pre_vq_conv(vq.encoder(video))  # (B, D, T', H', W')
        flat = z.permute(0, 2, 3, 4, 1).reshape(-1, VQ["embedding_dim"])
        scale = float((flat.double() ** 2).sum(1).max())  # float32 distances round at ~1e-7 of this
        step = flat.shape[0] // VQ["n_codes"]
        best = None
        for offset in range(step):  # codebooks of encoder outputs (diverse codes); keep the clearest choice
            cand = flat[offset::step][: VQ["n_codes"]].clone()
            top2 = (torch.cdist(flat.double(), cand.double()) ** 2).topk(2, largest=False).values
            margin = float((top2[:, 1] - top2[:, 0]).min())
            if best is None or margin > best[0]:
                best = (margin, cand)
        margin, codebook = best
        explicit = {"codebook.embeddings": codebook}
        load_filled(vq, explicit)
        codes = vq.encode(video)  # (B, T', H', W')
        recon = vq.decode(codes)  # (B, 3, T, H, W)
    assert margin > 1e-5 * scale, f"nearest-code margin {margin} (scale {scale}) too small for exact code parity"
    latent = tuple(codes.shape[1:])
    tmp = tempfile.TemporaryDirectory()
    vq_path = str(Path(tmp.name) / "vqvae.ckpt")  # VG's VideoGPT loads args.vqvae by path when it exists
    Path(vq_path).touch()
    loaded[vq_path] = vq

    # -- priors --------------------------------------------------------------------------------------------
    gcodes = (
        torch.from_numpy((vs.uniform(SEED_CODES, BATCH * int(np.prod(latent))) + 1) / 2 * VQ["n_codes"])
        .long()
        .clamp(max=VQ["n_codes"] - 1)
        .view(BATCH, *latent)
    )
    labels = torch.tensor(LABELS)
    priors = {}
    for tag, cfg in (("gpt_full", GPT_FULL), ("gpt_sparse", GPT_SPARSE)):
        args = argparse.Namespace(vqvae=vq_path, class_cond=cfg["class_cond_dim"] is not None, dropout=0.2,
                                  attn_dropout=0.3, **cfg, **CLIP)  # fmt: skip
        net = gpt_mod.VideoGPT(args).eval()
        load_filled(net, explicit)
        cond = {}
        if cfg["n_cond_frames"]:
            cond["frame_cond"] = video[:, :, : cfg["n_cond_frames"]]
        if cfg["class_cond_dim"]:
            cond["class_cond"] = F.one_hot(labels, cfg["class_cond_dim"]).float()
        with torch.no_grad():
            emb = net.vqvae.codebook.dictionary_lookup(gcodes)  # (B, T', H', W', D)
            steps, prev = [], None
            for i, idx in enumerate(itertools.product(*[range(s) for s in latent])):  # VG's sampling loop, fed codes
                here = (slice(None), *[slice(j, j + 1) for j in idx])
                src = here if prev is None else prev
                out = net(emb[src], gcodes[src], dict(cond), decode_step=i, decode_idx=idx)[1]
                steps.append(out.reshape(BATCH, -1))
                prev = here
            decoded = torch.stack(steps, 1)  # (B, S, K)
            if cfg["attn_type"] == "full":
                forced = net(emb, gcodes, dict(cond))[1].reshape(BATCH, -1, VQ["n_codes"])
                gap = float((forced - decoded).abs().max())
                assert gap < 1e-5, f"VG decoding and teacher forcing disagree by {gap}"
                logits = forced
            else:
                logits = decoded  # VG's teacher-forced sparse pass needs DeepSpeed
        priors[tag] = {"args": {k: v for k, v in vars(args).items() if k != "vqvae"}, "entries": entries(net),
                       "logits_path": "teacher forcing" if cfg["attn_type"] == "full" else "VG decoding loop",
                       "logits_absmax": float(logits.abs().max())}  # fmt: skip
        priors[tag + "_logits"] = logits.numpy().astype(np.float32)

    layouts = {}
    for shape in LAYOUT_SHAPES:
        cfg = attention_mod.StridedSparsityConfig(shape=shape, n_head=1, causal=True, block=32, num_local_blocks=4)
        layouts["x".join(map(str, shape))] = cfg.make_layout()[0].numpy().astype(bool)

    arrays = {
        "codebook": codebook.numpy(),
        "codes": codes.numpy().astype(np.int16),
        "recon": recon.numpy(),
        "gpt_codes": gcodes.numpy().astype(np.int16),
        "gpt_full_logits": priors.pop("gpt_full_logits"),
        "gpt_sparse_logits": priors.pop("gpt_sparse_logits"),
    }
    for name, lay in layouts.items():
        arrays[f"layout_{name}"] = np.packbits(lay, axis=-1)
    np.savez_compressed(OUT / "vg_parity.npz", **arrays)
    meta = {
        "generator": "tests/golden/make_vg_parity.py",
        "vg_commit": a.commit or git_commit(a.vg),
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "fill": "tests/vg_synthetic.py::fill (splitmix64 per entry name); explicit: codebook.embeddings",
        "video": f"vg_synthetic.uniform({SEED_VIDEO}, n) * 0.5 as float32 {list(size)}",
        "gpt_codes_rule": f"floor((uniform({SEED_CODES}, n) + 1) / 2 * n_codes), clamped",
        "labels": LABELS,
        "vqvae": {
            "args": {**VQ, "downsample": list(VQ["downsample"]), **CLIP},
            "entries": entries(vq),
            "nearest_code_margin": margin,
            "recon_absmax": float(recon.abs().max()),
        },  # fmt: skip
        **priors,
        "layouts": {name: list(lay.shape) for name, lay in layouts.items()},
    }
    (OUT / "vg_parity.json").write_text(json.dumps(meta, indent=1) + "\n")
    tmp.cleanup()
    print(f"wrote {OUT / 'vg_parity.json'} and {OUT / 'vg_parity.npz'}; code margin {margin:.4g}")


if __name__ == "__main__":
    main()
