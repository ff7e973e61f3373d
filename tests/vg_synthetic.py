"""Synthetic wilson1yan/VideoGPT ("VG") Lightning checkpoints for the importer's tests and its parity golden.

- :func:`vqvae_entries` / :func:`gpt_entries`: VG's state_dict names and shapes for given hyperparameters, written
  from videogpt.md §7.1 and VG's module layout (``videogpt/vqvae.py``, ``gpt.py``, ``attention.py``,
  ``resnet.py`` @733d2b1). The parity test checks them against the names and shapes VG's own modules produce
  (recorded in ``tests/golden/vg_parity.json``).
- :func:`fill`: deterministic values for a named tensor from integer hashing (splitmix64) alone, so a golden can
  store names and shapes instead of megabytes of weights and the test rebuilds identical tensors on any machine,
  whatever the torch or numpy version.
- :func:`write_lightning`: a PyTorch Lightning 1.3-style container (``state_dict``, ``hyper_parameters`` with an
  ``argparse.Namespace``, ``hparams_name``, Adam ``optimizer_states``, ``lr_schedulers``,
  ``native_amp_scaling_state``, ``callbacks`` keyed by the ``ModelCheckpoint`` class), written with a fake
  ``pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint`` that exists in ``sys.modules`` only while
  ``torch.save`` runs.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import types
import zlib
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np
import torch

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
FRAME_WIDTHS = (64, 128, 256, 240)  # VG resnet34(1, (1, 4, 4), resnet_dim=240)
RESNET34 = (3, 4, 6, 3)


def vqvae_entries(n_hiddens=240, n_res_layers=4, n_codes=2048, embedding_dim=256, downsample=(4, 4, 4)) -> dict:
    """{name: shape} of a VG VQ-VAE state_dict (283 entries with 4 residual layers)."""
    h, r = n_hiddens, n_hiddens // 2
    n = max(int(math.log2(d)) for d in downsample)
    out: dict[str, tuple] = {}
    for i in range(n):
        out[f"encoder.convs.{i}.conv.weight"] = (h, 3 if i == 0 else h, 4, 4, 4)
        out[f"encoder.convs.{i}.conv.bias"] = (h,)
    out["encoder.conv_last.conv.weight"] = (h, h, 3, 3, 3)
    out["encoder.conv_last.conv.bias"] = (h,)
    for side in ("encoder", "decoder"):
        for b in range(n_res_layers):
            s = f"{side}.res_stack.{b}.block"
            for idx, c in ((0, h), (3, r), (6, h)):
                for p in BN:
                    out[f"{s}.{idx}.{p}"] = () if p == "num_batches_tracked" else (c,)
            out[f"{s}.2.conv.weight"] = (r, h, 3, 3, 3)
            out[f"{s}.5.conv.weight"] = (h, r, 1, 1, 1)
            for ax in ("w", "h", "t"):
                for w in ("w_qs", "w_ks", "w_vs", "fc"):
                    out[f"{s}.8.attn_{ax}.{w}.weight"] = (h, h)
                out[f"{s}.8.attn_{ax}.fc.bias"] = (h,)
        for p in BN:
            out[f"{side}.res_stack.{n_res_layers}.{p}"] = () if p == "num_batches_tracked" else (h,)
    for i in range(n):
        c = 3 if i == n - 1 else h
        out[f"decoder.convts.{i}.convt.weight"] = (h, c, 4, 4, 4)
        out[f"decoder.convts.{i}.convt.bias"] = (c,)
    out["pre_vq_conv.conv.weight"] = (embedding_dim, h, 1, 1, 1)
    out["pre_vq_conv.conv.bias"] = (embedding_dim,)
    out["post_vq_conv.conv.weight"] = (h, embedding_dim, 1, 1, 1)
    out["post_vq_conv.conv.bias"] = (h,)
    out["codebook.embeddings"] = (n_codes, embedding_dim)
    out["codebook.N"] = (n_codes,)
    out["codebook.z_avg"] = (n_codes, embedding_dim)
    return out


def gpt_entries(vq: dict, latent, hidden_dim=576, layers=8, attn_type="sparse", n_cond_frames=0, resolution=64,
                class_cond_dim=None, resnet_blocks=RESNET34) -> dict:  # fmt: skip
    """{name: shape} of a VG prior's state_dict, its VQ-VAE (``vq``: :func:`vqvae_entries` kwargs) included."""
    out = {f"vqvae.{k}": v for k, v in vqvae_entries(**vq).items()}
    d = hidden_dim
    if n_cond_frames:
        out["resnet.stem.0.weight"] = (64, 3, 3, 3, 3)
        out["resnet.stem.1.norm.norm.weight"] = out["resnet.stem.1.norm.norm.bias"] = (64,)
        cin = 64
        for g, (n, cout) in enumerate(zip(resnet_blocks, FRAME_WIDTHS, strict=True), start=1):
            blocks = [("start_block", cin, True)] + [(f"blocks.{k}", cout, False) for k in range(n - 1)]
            for name, ci, project in blocks:
                p = f"resnet.group{g}.{name}"
                if project:
                    out[f"{p}.proj_conv.weight"] = (cout, ci, 1, 1, 1)
                    out[f"{p}.proj_bnr.norm.norm.weight"] = out[f"{p}.proj_bnr.norm.norm.bias"] = (cout,)
                out[f"{p}.conv1.weight"] = (cout, ci, 3, 3, 3)
                out[f"{p}.conv2.weight"] = (cout, cout, 3, 3, 3)
                for bnr in ("bnr1", "bnr2"):
                    out[f"{p}.{bnr}.norm.norm.weight"] = out[f"{p}.{bnr}.norm.norm.bias"] = (cout,)
            cin = cout
        for i, s in enumerate((n_cond_frames, resolution // 4, resolution // 4)):
            out[f"cond_pos_embd.emb.d_{i}"] = (s, 80)
    out["fc_in.weight"] = (d, vq["embedding_dim"])
    out["attn_stack.right_shift.sos"] = (d,)
    for i, s in enumerate(latent):
        out[f"attn_stack.pos_embd.emb.d_{i}"] = (s, d // 3)

    def norm(prefix):
        if class_cond_dim:
            out[f"{prefix}.w.weight"] = out[f"{prefix}.wb.weight"] = (d, class_cond_dim)
        else:
            out[f"{prefix}.g"] = out[f"{prefix}.b"] = (d,)

    seq = math.prod(latent)
    for layer in range(layers):
        s = f"attn_stack.attn_nets.{layer}"
        norm(f"{s}.pre_attn_norm")
        for w in ("w_qs", "w_ks", "w_vs", "fc"):
            out[f"{s}.attn.{w}.weight"] = (d, d)
        out[f"{s}.attn.fc.bias"] = (d,)
        if attn_type == "full":
            out[f"{s}.attn.attn.mask"] = (seq, seq)
        if n_cond_frames:
            norm(f"{s}.pre_enc_norm")
            out[f"{s}.enc_attn.w_qs.weight"] = (d, d)
            out[f"{s}.enc_attn.w_ks.weight"] = (d, 240)
            out[f"{s}.enc_attn.w_vs.weight"] = (240, 240)
            out[f"{s}.enc_attn.fc.weight"] = (d, 240)
            out[f"{s}.enc_attn.fc.bias"] = (d,)
        norm(f"{s}.pre_fc_norm")
        out[f"{s}.fc_block.0.weight"], out[f"{s}.fc_block.0.bias"] = (4 * d, d), (4 * d,)
        out[f"{s}.fc_block.2.weight"], out[f"{s}.fc_block.2.bias"] = (d, 4 * d), (d,)
    norm("norm")
    out["fc_out.weight"] = (vq["n_codes"], d)
    return out


# ----------------------------------------------------------------------------------------------------------
# Deterministic values


def uniform(seed: int, n: int) -> np.ndarray:
    """n values in [-1, 1) from splitmix64 over (seed + i): exact integer arithmetic, identical everywhere."""
    with np.errstate(over="ignore"):
        z = (np.arange(n, dtype=np.uint64) + np.uint64(seed)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-52 - 1.0


def fill(key: str, shape: tuple, salt: int = 0) -> torch.Tensor:
    """A deterministic tensor for VG entry ``key`` (a prior's ``vqvae.`` prefix ignored), scaled by its role so a
    network built from them gives well-scaled outputs (weights ~ 1/sqrt(fan-in), norms' gains near 1, BatchNorm
    variances in [0.5, 1), counts and the causal mask as VG has them)."""
    name = key.removeprefix("vqvae.")
    if name.endswith("num_batches_tracked"):
        return torch.tensor(7, dtype=torch.int64)
    n = math.prod(shape)
    if name.endswith("attn.attn.mask"):
        return torch.ones(shape).tril()
    u = torch.from_numpy(uniform((zlib.crc32(name.encode()) << 20) + salt, n)).view(shape)
    last = name.rsplit(".", 1)[-1]
    if last == "running_var":
        v = 0.75 + 0.25 * u
    elif last == "running_mean":
        v = 0.2 * u
    elif name == "codebook.N":
        v = 1.5 + 0.5 * u
    elif last in ("g",) or (last == "weight" and len(shape) == 1):
        v = 1.0 + 0.2 * u
    elif last in ("b", "bias"):
        v = 0.1 * u
    elif name.startswith(("attn_stack.pos_embd", "cond_pos_embd")) or last == "sos":
        v = 0.3 * u
    elif name.endswith((".w.weight", ".wb.weight")):
        v = 0.2 * u
    else:  # weight matrices / conv kernels
        v = u * math.sqrt(3.0 / max(1, math.prod(shape[1:])))
    return v.to(torch.float32)


def state_dict(entries: dict, salt: int = 0, explicit: dict | None = None) -> OrderedDict:
    """Tensors for every entry: ``explicit`` ones as given (keyed without a prior's ``vqvae.`` prefix, so a prior
    and its VQ-VAE share them), the rest from :func:`fill`."""
    explicit = explicit or {}
    out = OrderedDict()
    for k, s in entries.items():
        name = k.removeprefix("vqvae.")
        out[k] = explicit[name].clone() if name in explicit else fill(k, tuple(s), salt)
    return out


# ----------------------------------------------------------------------------------------------------------
# Lightning container

LIGHTNING_MODULES = ("pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.model_checkpoint")


@contextlib.contextmanager
def fake_lightning() -> Iterator[type]:
    """A stand-in ``pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint`` class, importable by pickle
    only inside the ``with`` block (then the previous ``sys.modules`` entries are restored)."""
    saved = {m: sys.modules.get(m) for m in LIGHTNING_MODULES}
    cls = type("ModelCheckpoint", (), {"__module__": LIGHTNING_MODULES[-1]})
    for m in LIGHTNING_MODULES:
        sys.modules[m] = types.ModuleType(m)
    sys.modules[LIGHTNING_MODULES[-1]].ModelCheckpoint = cls
    try:
        yield cls
    finally:
        for m, mod in saved.items():
            if mod is None:
                sys.modules.pop(m, None)
            else:
                sys.modules[m] = mod


def lightning_container(sd: dict, args: dict, model_checkpoint: type, amp: bool = True) -> dict:
    """The dict PyTorch Lightning 1.3.3 saves (``dump_checkpoint``) for a model with ``save_hyperparameters()``."""
    params = [k for k, v in sd.items() if v.is_floating_point() and not k.endswith(("running_mean", "running_var"))]
    zeros = [torch.zeros(1).expand(sd[k].shape) for k in params]  # Adam moments, 1-element storages (small file)
    out = {
        "epoch": 41,
        "global_step": 123456,
        "pytorch-lightning_version": "1.3.3",
        "state_dict": OrderedDict(sd),
        "callbacks": {
            model_checkpoint: {
                "monitor": "val/loss",
                "best_model_score": torch.tensor(2.87),
                "best_model_path": "/runs/lightning_logs/version_0/checkpoints/epoch=41-step=123456.ckpt",
                "current_score": torch.tensor(2.91),
                "dirpath": "/runs/lightning_logs/version_0/checkpoints",
            }
        },
        "optimizer_states": [
            {
                "state": {i: {"step": 123456, "exp_avg": z, "exp_avg_sq": z} for i, z in enumerate(zeros)},
                "param_groups": [
                    {
                        "lr": 3e-4,
                        "betas": (0.9, 0.999),
                        "eps": 1e-8,
                        "weight_decay": 0,
                        "amsgrad": False,
                        "initial_lr": 3e-4,
                        "params": list(range(len(zeros))),
                    }  # fmt: skip
                ],
            }
        ],
        "lr_schedulers": [
            {
                "T_max": 200000,
                "eta_min": 0,
                "base_lrs": [3e-4],
                "last_epoch": 123456,
                "_step_count": 123457,
                "verbose": False,
                "_get_lr_called_correctly": True,
                "_last_lr": [1.2e-4],
            }
        ],  # fmt: skip
        "hparams_name": "kwargs",
        "hyper_parameters": {"args": argparse.Namespace(**args)},
    }
    if amp:
        out["native_amp_scaling_state"] = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                                           "growth_interval": 2000, "_growth_tracker": 17}  # fmt: skip
    return out


def write_lightning(path, sd: dict, args: dict, legacy: bool = False, amp: bool = True, extra: dict | None = None):
    """Write a Lightning-1.3-style checkpoint of ``sd`` / ``args`` (zip format, or torch's legacy format)."""
    with fake_lightning() as model_checkpoint:
        ckpt = lightning_container(sd, args, model_checkpoint, amp)
        ckpt.update(extra or {})
        torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    return path


def vqvae_args(n_hiddens, n_res_layers, n_codes, embedding_dim, downsample, sequence_length, resolution) -> dict:
    """VG ``train_vqvae.py`` arguments (``downsample`` a list, as argparse gives it from the command line), with a
    few of the Trainer's arguments that ``add_argparse_args`` puts into the same Namespace."""
    return dict(embedding_dim=embedding_dim, n_codes=n_codes, n_hiddens=n_hiddens, n_res_layers=n_res_layers,
                downsample=list(downsample), data_path="/data/bair.hdf5", sequence_length=sequence_length,
                resolution=resolution, batch_size=32, num_workers=8, gpus=2, max_steps=None, precision=16,
                sync_batchnorm=True, gradient_clip_val=1.0, default_root_dir=None)  # fmt: skip


def gpt_args(hidden_dim, heads, layers, attn_type, n_cond_frames, class_cond_dim, sequence_length, resolution,
             vqvae="bair_stride4x2x2", dropout=0.2, attn_dropout=0.3) -> dict:  # fmt: skip
    """VG ``train_videogpt.py`` arguments (``class_cond_dim`` is None unless ``--class_cond``)."""
    return dict(vqvae=vqvae, n_cond_frames=n_cond_frames, class_cond=class_cond_dim is not None,
                hidden_dim=hidden_dim, heads=heads, layers=layers, dropout=dropout, attn_type=attn_type,
                attn_dropout=attn_dropout, data_path="/data/bair.hdf5", resolution=resolution,
                sequence_length=sequence_length, batch_size=8, num_workers=8, gpus=4, max_steps=200000,
                precision=16, class_cond_dim=class_cond_dim, gradient_clip_val=0)  # fmt: skip
