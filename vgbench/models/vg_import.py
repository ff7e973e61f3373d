"""Import the public VideoGPT checkpoints (``wilson1yan/VideoGPT`` PyTorch Lightning files) as vgbench checkpoints.

``vgbench weights import CKPT --model CARD`` (CARD: a ``videogpt_repo_vqvae`` or ``videogpt_repo_gpt`` card):

1. read the Lightning container with the restricted reader (:mod:`vgbench.models.torch_container`): tensors,
   plain values, ``argparse.Namespace`` and inert Lightning class references only; nothing in it runs;
2. take the hyperparameters from the file itself (``hyper_parameters['args']``, videogpt.md §7: they live nowhere
   else), check the ones that identify the card (clip size, downsampling; a prior's attention type and
   conditioning) against the card, and take the rest (codes, widths, depths) from the file;
3. a prior's VQ-VAE comes from the file's own ``vqvae.*`` entries (never downloaded; VG's constructor would fetch
   it by name, §8 item 11): its widths from their shapes, its downsampling from the prior's position tables;
4. map every VG key onto the VG-compatible network (:mod:`vgbench.models.videogpt_repo`): each entry used exactly
   once, every shape checked, q/k/v matrices concatenated, codebook buffers given a codebook axis and marked
   initialised, full attention's persistent S x S masks checked to be causal and dropped;
5. write a pickle-free vgbench checkpoint (:mod:`vgbench.models.checkpoint`: tensors and plain values, loadable
   with ``torch.load(weights_only=True)``) recording the source file's sha256, its Lightning entries and its
   hyperparameters; by default at the card's place in the weights cache, so ``create(CARD)`` and
   ``vgbench sample`` use it like a trained model.

The public files' links are dead and no checksum was published (videogpt.md §7): the source sha256 is recorded,
not checked against a pinned value.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vgbench import cache, cards
from vgbench.errors import InputError, OfflineError, VgbenchError
from vgbench.models import checkpoint, torch_container, videogpt_repo
from vgbench.models.conditioning import RESNET_BLOCKS
from vgbench.models.gpt import VideoGPT
from vgbench.models.vqvae import VQVAE, VQVAEConfig, stride_schedule
from vgbench.weights import WeightSource

log = logging.getLogger(__name__)

VQVAE_MARK = "encoder.convs.0.conv.weight"  # a key every VG VQ-VAE has (videogpt.md §7.1)
GPT_MARK = "attn_stack.right_shift.sos"  # a key every VG prior has
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
VQVAE_IDENTITY = ("frames", "resolution", "downsample")  # must match the card; the rest comes from the file
GPT_IDENTITY = ("attention", "cond_frames", "n_classes")


@dataclass
class LightningCheckpoint:
    """What the importer reads from a Lightning file."""

    path: Path
    sha256: str
    state_dict: dict[str, torch.Tensor]
    args: dict[str, Any]  # hyper_parameters['args'] as a dict
    info: dict[str, Any] = field(default_factory=dict)  # Lightning bookkeeping (version, epoch, step, entries)

    @property
    def kind(self) -> str:
        """'gpt' or 'vqvae' (else InputError: a checkpoint of another architecture)."""
        sd = self.state_dict
        if GPT_MARK in sd or any(k.startswith("vqvae.") for k in sd):
            return "gpt"
        if VQVAE_MARK in sd:
            return "vqvae"
        some = ", ".join(list(sd)[:3]) or "none"
        raise InputError(
            f"{self.path}: not a VideoGPT checkpoint: its state_dict ({len(sd)} entries, e.g. {some}) has neither "
            f"VG's VQ-VAE entries ({VQVAE_MARK}, ...) nor its prior's ({GPT_MARK}, vqvae.*); it is a checkpoint of "
            "another architecture"
        )


@dataclass
class ImportResult:
    """The written vgbench checkpoint and where it came from."""

    path: Path
    sha256: str
    source_sha256: str
    card: str
    kind: str  # "vqvae" | "gpt"
    config: dict
    vqvae_config: dict | None = None


# ----------------------------------------------------------------------------------------------------------
# Reading


def _plain(value: Any) -> Any:
    """Hyperparameter values as plain Python (for the checkpoint's metadata); anything else as its repr."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return repr(value)


def read_lightning(path: str | os.PathLike) -> LightningCheckpoint:
    """Read a Lightning checkpoint's state_dict and hyperparameters without running code from it.

    Raises:
        UnsafePickleError: the file names a global outside the reader's allow-list.
        InputError: not a Lightning checkpoint (no state_dict / hyper_parameters), or entries of the wrong type.
    """
    path = Path(path)
    obj = torch_container.load(path)
    if not isinstance(obj, dict) or "state_dict" not in obj or "hyper_parameters" not in obj:
        top = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise InputError(
            f"{path}: not a PyTorch Lightning checkpoint (top level {top}; expected 'state_dict' and "
            "'hyper_parameters'). VG stores its hyperparameters only inside its Lightning files, so a bare "
            "state_dict cannot be imported."
        )
    sd = obj["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise InputError(f"{path}: 'state_dict' is not a mapping of names to tensors")
    hp = obj["hyper_parameters"]
    args = hp.get("args", hp) if isinstance(hp, dict) else hp
    if isinstance(args, argparse.Namespace):
        args = vars(args)
    if not isinstance(args, dict):
        raise InputError(f"{path}: hyper_parameters['args'] is {type(args).__name__}, expected an argparse.Namespace")
    info = {
        "pytorch_lightning_version": _plain(obj.get("pytorch-lightning_version")),
        "epoch": _plain(obj.get("epoch")),
        "global_step": _plain(obj.get("global_step")),
        "hparams_name": _plain(obj.get("hparams_name")),
        "entries": sorted(map(str, obj)),
    }
    return LightningCheckpoint(path, cache.sha256_file(path), dict(sd), dict(args), info)


def _arg(ck: LightningCheckpoint, name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    """``hyper_parameters['args'].name``, type-checked; a clear error when it is missing."""
    if name not in ck.args:
        if default is not ...:
            return default
        raise InputError(
            f"{ck.path}: hyper_parameters['args'] has no '{name}' (it has {', '.join(sorted(ck.args)) or 'nothing'});"
            " VG's files carry their training command line there"
        )
    value = ck.args[name]
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind in (int, float, (int, float)))
    if not ok:
        raise InputError(f"{ck.path}: hyper_parameters['args'].{name} is {value!r}, expected {kind}")
    return value


def _shape(ck: LightningCheckpoint, key: str) -> tuple[int, ...]:
    if key not in ck.state_dict:
        raise InputError(f"{ck.path}: the state_dict lacks '{key}'; it is not a complete VG checkpoint")
    return tuple(ck.state_dict[key].shape)


def _count(ck: LightningCheckpoint, pattern: str) -> int:
    n = 0
    while pattern.format(n) in ck.state_dict:
        n += 1
    return n


# ----------------------------------------------------------------------------------------------------------
# Configs from the file (and the card's identity fields)


def _check_identity(ck, card, fields: tuple[str, ...], got: dict, arch: str, what: str = "") -> None:
    mine = {k: _norm_value(card.config.get(k)) for k in fields}
    theirs = {k: _norm_value(got[k]) for k in fields}
    if mine == theirs:
        return
    diff = ", ".join(f"{k} {theirs[k]} (card: {mine[k]})" for k in fields if mine[k] != theirs[k])
    matching = [
        n
        for n in cards.names("models")
        if cards.model(n).arch == arch and all(_norm_value(cards.model(n).config.get(k)) == theirs[k] for k in fields)
    ]
    hint = f"; cards that match: {', '.join(matching)}" if matching else ""
    raise InputError(f"{ck.path}: {what}{diff}; it is not {card.name}'s model{hint}")


def _norm_value(v: Any) -> Any:
    return tuple(v) if isinstance(v, list | tuple) else v


def vqvae_config_of(ck: LightningCheckpoint, card, prefix: str = "", hparams: dict | None = None) -> VQVAEConfig:
    """The VQ-VAE config of a VG file: VQ-VAE files from their args; a prior's from ``hparams`` (read off its
    ``vqvae.*`` shapes). Identity fields must match ``card``."""
    if hparams is None:
        downsample = _arg(ck, "downsample", (list, tuple))  # a list when given on the command line
        hparams = {
            "frames": _arg(ck, "sequence_length", int),
            "resolution": _arg(ck, "resolution", int),
            "downsample": tuple(downsample),
            "hidden": _arg(ck, "n_hiddens", int),
            "res_layers": _arg(ck, "n_res_layers", int),
            "n_codes": _arg(ck, "n_codes", int),
            "embedding_dim": _arg(ck, "embedding_dim", int),
        }
    if len(hparams["downsample"]) != 3 or not all(isinstance(d, int) for d in hparams["downsample"]):
        raise InputError(f"{ck.path}: downsample {hparams['downsample']!r} is not three integers (t, h, w)")
    blocks = _count(ck, prefix + "encoder.res_stack.{}.block.0.weight")
    if blocks != hparams["res_layers"]:
        raise InputError(f"{ck.path}: the file has {blocks} encoder residual blocks, its hyperparameters say "
                         f"n_res_layers {hparams['res_layers']}; it is damaged or edited")  # fmt: skip
    _check_identity(ck, card, VQVAE_IDENTITY, hparams, videogpt_repo.VQVAE_ARCH,
                    "its VQ-VAE has " if prefix else "")  # fmt: skip
    free = {k: v for k, v in hparams.items() if k not in VQVAE_IDENTITY}
    free["res_hidden"] = free["hidden"] // 2
    return videogpt_repo.vqvae_config(card, **free)


def _vqvae_hparams_of_prior(ck: LightningCheckpoint, frames: int, resolution: int) -> dict:
    """A prior file's VQ-VAE hyperparameters from its own entries: widths from the ``vqvae.*`` shapes, the
    downsampling from the clip size and the prior's per-axis position tables (the latent grid)."""
    latent = tuple(_shape(ck, f"attn_stack.pos_embd.emb.d_{i}")[0] for i in range(3))
    size = (frames, resolution, resolution)
    if any(s % n for s, n in zip(size, latent, strict=True)):
        raise InputError(f"{ck.path}: latent grid {latent} (position tables) does not divide the clip size {size}")
    n_codes, dim = _shape(ck, "vqvae.codebook.embeddings")
    return {
        "frames": frames,
        "resolution": resolution,
        "downsample": tuple(s // n for s, n in zip(size, latent, strict=True)),
        "hidden": _shape(ck, "vqvae." + VQVAE_MARK)[0],
        "res_layers": _count(ck, "vqvae.encoder.res_stack.{}.block.0.weight"),
        "n_codes": n_codes,
        "embedding_dim": dim,
    }


def _resnet_depth(ck: LightningCheckpoint) -> int:
    blocks = tuple(1 + _count(ck, f"resnet.group{g}.blocks.{{}}.conv1.weight") for g in range(1, 5))
    for depth, layout in RESNET_BLOCKS.items():
        if layout == blocks and depth in videogpt_repo.VG_RESNET_DEPTHS:
            return depth
    raise InputError(f"{ck.path}: frame-encoder ResNet with {blocks} blocks per group; VG's is ResNet-34 (3, 4, 6, 3)")


def gpt_config_of(ck: LightningCheckpoint, card, vqvae: VQVAE):
    """The prior config of a VG prior file from its args (identity fields checked against ``card``)."""
    class_cond = bool(_arg(ck, "class_cond", bool, False))
    n_cond = _arg(ck, "n_cond_frames", int, 0)
    hidden = _arg(ck, "hidden_dim", int)
    got = {
        "attention": _arg(ck, "attn_type", str),
        "cond_frames": n_cond,
        "n_classes": _arg(ck, "class_cond_dim", int) if class_cond else 0,
    }
    _check_identity(ck, card, GPT_IDENTITY, got, videogpt_repo.GPT_ARCH)
    free = {
        "hidden": hidden,
        "heads": _arg(ck, "heads", int),
        "layers": _arg(ck, "layers", int),
        "ff_hidden": 4 * hidden,
        "dropout": float(_arg(ck, "dropout", (int, float))),
        "attn_dropout": float(_arg(ck, "attn_dropout", (int, float))),
    }
    blocks = _count(ck, "attn_stack.attn_nets.{}.attn.w_qs.weight")
    if blocks != free["layers"]:
        raise InputError(f"{ck.path}: the file has {blocks} attention layers, its hyperparameters say layers "
                         f"{free['layers']}; it is damaged or edited")  # fmt: skip
    if n_cond:
        free["resnet_depth"] = _resnet_depth(ck)
    return videogpt_repo.gpt_config(card, vqvae, **free)


# ----------------------------------------------------------------------------------------------------------
# Key mapping


class _KeyMap:
    """VG entries -> the target network's state_dict: every source entry used exactly once, every shape checked
    against what the target needs (naming the VG entry), floats finite."""

    def __init__(self, ck: LightningCheckpoint, card_name: str, want: dict[str, torch.Tensor]):
        self.ck, self.card_name, self.want = ck, card_name, want
        self.used: set[str] = set()
        self.out: dict[str, torch.Tensor] = {}

    def take(self, key: str, shape, dtype: torch.dtype) -> torch.Tensor:
        if key not in self.ck.state_dict:
            raise InputError(
                f"{self.ck.path}: the state_dict lacks '{key}', which {self.card_name} with the file's "
                "hyperparameters needs; the file is incomplete or of another configuration"
            )
        if key in self.used:
            raise VgbenchError(f"importer bug: '{key}' mapped twice")
        self.used.add(key)
        t = self.ck.state_dict[key]
        if tuple(t.shape) != tuple(shape):
            raise InputError(
                f"{self.ck.path}: '{key}' has shape {tuple(t.shape)}, but {self.card_name} with the file's "
                f"hyperparameters needs {tuple(shape)}"
            )
        if dtype.is_floating_point:
            if not t.is_floating_point():
                raise InputError(f"{self.ck.path}: '{key}' is {t.dtype}, expected floating point")
            if not bool(torch.isfinite(t).all()):
                raise InputError(f"{self.ck.path}: '{key}' holds NaN or infinite values; the file is damaged")
        return t.to(dtype)

    def put(self, dst: str, *src: str, sizes: tuple[int, ...] | None = None) -> None:
        """``dst`` from one source entry, or from several stacked along dim 0 (q/k/v) with row counts ``sizes``."""
        want = self.want[dst]
        if len(src) == 1:
            self.out[dst] = self.take(src[0], want.shape, want.dtype)
            return
        sizes = sizes or (want.shape[0] // len(src),) * len(src)
        parts = [self.take(k, (n, *want.shape[1:]), want.dtype) for k, n in zip(src, sizes, strict=True)]
        self.out[dst] = torch.cat(parts)

    def put_codebook(self, dst: str, src: str) -> None:
        """VG's single codebook buffer (K, ...) as vgbench's (1, K, ...) (codebook axis first)."""
        want = self.want[dst]
        self.out[dst] = self.take(src, want.shape[1:], want.dtype).unsqueeze(0)

    def const(self, dst: str, value: torch.Tensor) -> None:
        self.out[dst] = value

    def causal_mask(self, key: str, seq_len: int) -> None:
        """Check and drop one of full attention's persistent masks (must be tril(ones(S, S)))."""
        mask = self.take(key, (seq_len, seq_len), torch.float32)
        if not torch.equal(mask.bool(), torch.ones(seq_len, seq_len, dtype=torch.bool).tril()):
            raise InputError(f"{self.ck.path}: '{key}' is not the causal mask tril(ones({seq_len}, {seq_len}))")

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The mapped entries, once none of the file's is left over and none of the target's is missing."""
        unused = sorted(set(self.ck.state_dict) - self.used)
        if unused:
            raise InputError(
                f"{self.ck.path}: {len(unused)} state_dict entries have no place in {self.card_name} with the file's "
                f"hyperparameters: {', '.join(unused[:8])}{' ...' if len(unused) > 8 else ''}. The file holds "
                "another configuration than its hyperparameters say, or is not a VG checkpoint"
            )
        if set(self.out) != set(self.want):
            raise VgbenchError(f"importer bug: unmapped {sorted(set(self.want) - set(self.out))[:5]}, "
                               f"extra {sorted(set(self.out) - set(self.want))[:5]}")  # fmt: skip
        return {k: v.contiguous() for k, v in self.out.items()}


def _map_vqvae(m: _KeyMap, cfg: VQVAEConfig, src: str = "", dst: str = "") -> None:
    """VG VQ-VAE keys (videogpt.md §7.1) -> :class:`VQVAE` keys."""
    n_convs = len(stride_schedule(cfg.downsample))
    for i in range(n_convs):
        for p in ("weight", "bias"):
            m.put(f"{dst}encoder.convs.{i}.conv.{p}", f"{src}encoder.convs.{i}.conv.{p}")
            m.put(f"{dst}decoder.convts.{i}.convt.{p}", f"{src}decoder.convts.{i}.convt.{p}")
    for name in ("encoder.conv_last.conv", "pre_vq_conv.conv", "post_vq_conv.conv"):
        for p in ("weight", "bias"):
            m.put(f"{dst}{name}.{p}", f"{src}{name}.{p}")
    for side in ("encoder", "decoder"):
        for b in range(cfg.res_layers):
            s, d = f"{src}{side}.res_stack.{b}.block", f"{dst}{side}.res_stack.blocks.{b}"
            for norm, idx in (("norm1", 0), ("norm2", 3), ("norm3", 6)):  # Sequential: BN, ReLU, conv, BN, ...
                for p in BN:
                    m.put(f"{d}.{norm}.{p}", f"{s}.{idx}.{p}")
            m.put(f"{d}.conv1.conv.weight", f"{s}.2.conv.weight")
            m.put(f"{d}.conv2.conv.weight", f"{s}.5.conv.weight")
            for axis in ("t", "h", "w"):
                a, q = f"{s}.8.attn_{axis}", f"{d}.attn.attn_{axis}"
                m.put(f"{q}.qkv.weight", f"{a}.w_qs.weight", f"{a}.w_ks.weight", f"{a}.w_vs.weight")
                m.put(f"{q}.out.weight", f"{a}.fc.weight")
                m.put(f"{q}.out.bias", f"{a}.fc.bias")
        for p in BN:  # the stack's final BatchNorm is entry res_layers of VG's Sequential
            m.put(f"{dst}{side}.res_stack.norm.{p}", f"{src}{side}.res_stack.{cfg.res_layers}.{p}")
    for buf in ("embeddings", "N", "z_avg"):  # VG: one codebook, (K, D) / (K,); vgbench: (C, K, D) / (C, K)
        m.put_codebook(f"{dst}codebook.{buf}", f"{src}codebook.{buf}")
    m.const(f"{dst}codebook.initialized", torch.tensor(True))  # VG keeps this flag as an attribute only
    m.const(f"{dst}recon_variance", torch.tensor(0.06, dtype=torch.float64))  # VG's fixed NMSE divisor


def _map_norm(m: _KeyMap, dst: str, src: str, conditional: bool) -> None:
    if conditional:  # VG: w (gain, 1 + W c), wb (bias)
        m.put(f"{dst}.gain.weight", f"{src}.w.weight")
        m.put(f"{dst}.shift.weight", f"{src}.wb.weight")
    else:
        m.put(f"{dst}.weight", f"{src}.g")
        m.put(f"{dst}.bias", f"{src}.b")


def _map_gpt(m: _KeyMap, model: VideoGPT) -> None:
    """VG prior keys (videogpt.md §7.1) -> :class:`VideoGPT` keys (``vqvae.*``, ``prior.*``)."""
    c = model.prior.config
    _map_vqvae(m, model.vqvae.config, "vqvae.", "vqvae.")
    m.put("prior.fc_in.weight", "fc_in.weight")
    m.put("prior.sos", "attn_stack.right_shift.sos")
    for i in range(len(c.shape)):
        m.put(f"prior.pos.tables.{i}", f"attn_stack.pos_embd.emb.d_{i}")
    cond = c.n_classes > 0
    for layer in range(c.layers):
        s, d = f"attn_stack.attn_nets.{layer}", f"prior.blocks.{layer}"
        _map_norm(m, f"{d}.norm1", f"{s}.pre_attn_norm", cond)
        m.put(f"{d}.attn.qkv.weight", f"{s}.attn.w_qs.weight", f"{s}.attn.w_ks.weight", f"{s}.attn.w_vs.weight")
        m.put(f"{d}.attn.out.weight", f"{s}.attn.fc.weight")
        m.put(f"{d}.attn.out.bias", f"{s}.attn.fc.bias")
        if c.attention == "full" and f"{s}.attn.attn.mask" in m.ck.state_dict:
            m.causal_mask(f"{s}.attn.attn.mask", c.seq_len)  # persistent in VG; accepted, not required
        if c.cond_frames:
            _map_norm(m, f"{d}.norm2", f"{s}.pre_enc_norm", cond)
            m.put(f"{d}.cross.q.weight", f"{s}.enc_attn.w_qs.weight")
            m.put(f"{d}.cross.kv.weight", f"{s}.enc_attn.w_ks.weight", f"{s}.enc_attn.w_vs.weight",
                  sizes=(c.hidden, c.resnet_dim))  # fmt: skip
            m.put(f"{d}.cross.out.weight", f"{s}.enc_attn.fc.weight")
            m.put(f"{d}.cross.out.bias", f"{s}.enc_attn.fc.bias")
        _map_norm(m, f"{d}.norm3", f"{s}.pre_fc_norm", cond)
        for vg, mine in (("0", "fc1"), ("2", "fc2")):
            for p in ("weight", "bias"):
                m.put(f"{d}.mlp.{mine}.{p}", f"{s}.fc_block.{vg}.{p}")
    _map_norm(m, "prior.norm", "norm", cond)
    m.put("prior.head.weight", "fc_out.weight")
    if c.cond_frames:
        for i in range(3):
            m.put(f"prior.frame_pos.tables.{i}", f"cond_pos_embd.emb.d_{i}")
        for key in model.prior.frame_encoder.state_dict():  # VG ResNet names; ChannelLayerNorm one level flatter
            vg = key.replace(".norm.weight", ".norm.norm.weight").replace(".norm.bias", ".norm.norm.bias")
            m.put(f"prior.frame_encoder.{key}", f"resnet.{vg}")


# ----------------------------------------------------------------------------------------------------------
# Import


def _card(model: str | cards.ModelCard) -> cards.ModelCard:
    card = cards.model(model) if isinstance(model, str) else model
    if card.arch not in (videogpt_repo.VQVAE_ARCH, videogpt_repo.GPT_ARCH):
        ok = [n for n in cards.names("models") if cards.model(n).arch.startswith("videogpt_repo_")]
        raise InputError(
            f"{card.name} (arch {card.arch}) does not import VideoGPT Lightning checkpoints; use one of {', '.join(ok)}"
        )
    return card


def build_from_lightning(ck: LightningCheckpoint, card: cards.ModelCard):
    """(network with the file's weights, its config, its VQ-VAE config or None) for a read Lightning file."""
    kind = ck.kind
    want = "gpt" if card.arch == videogpt_repo.GPT_ARCH else "vqvae"
    if kind != want:
        names = {"gpt": "a prior (GPT)", "vqvae": "a VQ-VAE"}
        ok = [n for n in cards.names("models") if cards.model(n).arch == f"videogpt_repo_{kind}"]
        raise InputError(f"{ck.path} holds {names[kind]}, but {card.name} is {names[want]} card; use --model with "
                         f"one of {', '.join(ok)}")  # fmt: skip
    if kind == "vqvae":
        config = vqvae_config_of(ck, card)
        model = VQVAE(config, f"card {card.name}")
        m = _KeyMap(ck, card.name, model.state_dict())
        _map_vqvae(m, config)
        vq_config = None
    else:
        frames, resolution = _arg(ck, "sequence_length", int), _arg(ck, "resolution", int)
        vq_card = cards.model(card.vqvae)
        vq_config = vqvae_config_of(ck, vq_card, "vqvae.", _vqvae_hparams_of_prior(ck, frames, resolution))
        vqvae = VQVAE(vq_config, f"card {vq_card.name}")
        config = gpt_config_of(ck, card, vqvae)
        model = VideoGPT(vqvae, videogpt_repo.RepoGPT(config))
        m = _KeyMap(ck, card.name, model.state_dict())
        _map_gpt(m, model)
    model.load_state_dict(m.state_dict(), strict=True)
    return model.eval(), config, vq_config


def default_destination(card: cards.ModelCard, root=None) -> Path:
    """Where an imported checkpoint of ``card`` lives: the card's file in the weights cache."""
    return cache.cache_dir("weights", root) / card.weights.file


def import_checkpoint(
    path: str | os.PathLike, model: str | cards.ModelCard, dest: str | os.PathLike | None = None, root=None
) -> ImportResult:
    """Convert a VG Lightning checkpoint into a vgbench checkpoint (see the module docstring).

    Args:
        path: the Lightning file (e.g. ``~/.cache/videogpt/bair_gpt``).
        model: a ``videogpt_repo_vqvae`` / ``videogpt_repo_gpt`` card (name or card).
        dest: where to write; default the card's file in the weights cache (``create(CARD)`` loads it there).
        root: weights cache root.

    Returns:
        The written checkpoint's path and sha256, the source's sha256 and the configs read from the file.
    """
    card = _card(model)
    ck = read_lightning(path)
    net, config, vq_config = build_from_lightning(ck, card)
    dest = Path(dest) if dest is not None else default_destination(card, root)
    vqvae = {"card": card.vqvae, "config": checkpoint.config_dict(vq_config)} if vq_config is not None else None
    source = {
        "file": ck.path.name,
        "path": str(ck.path.resolve()),
        "sha256": ck.sha256,
        "bytes": ck.path.stat().st_size,
        "format": "PyTorch Lightning checkpoint of wilson1yan/VideoGPT",
        "converted_from": " ".join(card.converted_from.split()),
        "state_dict_entries": len(ck.state_dict),
        "hyper_parameters": _plain(ck.args),
        **ck.info,
    }
    step = ck.info.get("global_step")
    meta = {"step": step if isinstance(step, int) else 0, "imported": source, "importer": __name__}
    digest = checkpoint.save(dest, net, card, config, vqvae=vqvae, meta=meta)
    log.info("imported %s (%s, sha256 %s) as %s -> %s", ck.path, ck.kind, ck.sha256, card.name, dest)
    return ImportResult(dest, digest, ck.sha256, card.name, ck.kind, checkpoint.config_dict(config),
                        checkpoint.config_dict(vq_config) if vq_config is not None else None)  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# The weights-cache entry of the videogpt_repo_* cards (vgbench.weights.source picks it)


@functools.lru_cache(maxsize=8)
def _identity(path: str, digest: str) -> dict | None:
    """What identifies a VG file's card (kind and the identity fields), or None for a file that is not one.

    Read once per file content (detection asks every card); an unsafe file raises instead of looking unknown."""
    try:
        ck = read_lightning(path)
        kind = ck.kind
        if kind == "vqvae":
            fields = {"frames": _arg(ck, "sequence_length", int), "resolution": _arg(ck, "resolution", int),
                      "downsample": tuple(_arg(ck, "downsample", (list, tuple)))}  # fmt: skip
            return {"kind": kind, "vqvae": fields}
        hp = _vqvae_hparams_of_prior(ck, _arg(ck, "sequence_length", int), _arg(ck, "resolution", int))
        class_cond = bool(_arg(ck, "class_cond", bool, False))
        prior = {"attention": _arg(ck, "attn_type", str), "cond_frames": _arg(ck, "n_cond_frames", int, 0),
                 "n_classes": _arg(ck, "class_cond_dim", int) if class_cond else 0}  # fmt: skip
        return {"kind": kind, "vqvae": {k: hp[k] for k in VQVAE_IDENTITY}, "prior": prior}
    except InputError:
        return None


def _matches(card: cards.ModelCard, fields: dict) -> bool:
    return all(_norm_value(card.config.get(k)) == _norm_value(v) for k, v in fields.items())


class LightningCheckpointWeights(WeightSource):
    """The ``weights`` of a ``videogpt_repo_*`` card: a user's copy of a public VG Lightning checkpoint, converted
    once into a vgbench checkpoint at the card's place in the weights cache. There is no automatic source (the
    links are dead and no checksum was published); the source file's sha256 is recorded in the checkpoint."""

    kind = "videogpt_checkpoint"
    label = "VideoGPT checkpoint import"

    def fetch(self, force: bool = False) -> Path:  # noqa: D102
        if self.dest.exists() and not force:
            self.verify()
            return self.dest
        raise OfflineError(f"{self.card.name} has no automatic source. {self.manual()}")

    def load(self):  # noqa: D102
        raise VgbenchError(f"{self.card.name} is a network checkpoint; build it with "
                           f"vgbench.models.create({self.card.name!r})")  # fmt: skip

    def recognises(self, path: Path, digest: str) -> bool:  # noqa: D102
        found = _identity(str(path), digest)
        if found is None or f"videogpt_repo_{found['kind']}" != self.card.arch:
            return False
        if found["kind"] == "vqvae":
            return _matches(self.card, found["vqvae"])
        return _matches(self.card, found["prior"]) and _matches(cards.model(self.card.vqvae), found["vqvae"])

    def import_file(self, path: Path, digest: str) -> Path:  # noqa: D102
        return import_checkpoint(path, self.card, dest=self.dest).path

    def verify(self) -> str:  # noqa: D102
        return verify(self.card, self.root)

    def manual(self) -> str:  # noqa: D102
        how = f"vgbench weights import PATH --model {self.card.name}"
        return f"{' '.join(self.spec.manual.split())} Then run `{how}` (stored at {self.dest})."

    def provenance(self) -> dict[str, str]:  # noqa: D102
        return {"checkpoint_sha256": cache.sha256_file(self.dest)} if self.dest.exists() else {}


def verify(card: cards.ModelCard, root=None) -> str:
    """Rebuild an imported checkpoint strictly (``vgbench weights verify``); returns what it was made from."""
    path = default_destination(card, root)
    if not path.exists():
        from vgbench.weights import manual_instructions

        raise OfflineError(f"{card.name}: no imported checkpoint at {path}. {manual_instructions(card, root)}")
    _, ckpt = checkpoint.load_model(path)
    src = ckpt.meta.get("imported", {})
    return f"sha256 {ckpt.sha256}, imported from {src.get('file', '?')} (sha256 {src.get('sha256', '?')})"


__all__ = [
    "ImportResult",
    "LightningCheckpoint",
    "LightningCheckpointWeights",
    "build_from_lightning",
    "import_checkpoint",
    "read_lightning",
    "verify",
]
