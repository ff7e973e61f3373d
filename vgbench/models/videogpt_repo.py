"""The VideoGPT networks exactly as the public checkpoints need them (``arch: videogpt_repo_vqvae`` and
``videogpt_repo_gpt``): the clean repository ``wilson1yan/VideoGPT@733d2b1`` ("VG"; videogpt.md §3, §4, §7, §8).

Nothing here is a second implementation: both variants are the paper-design modules (:mod:`.vqvae`, :mod:`.gpt`)
configured and composed the way VG builds them, so an imported checkpoint samples, scores and saves like a
trained vgbench model (:mod:`vgbench.models.checkpoint`). :mod:`vgbench.models.vg_import` maps VG's state_dict
keys onto them.

VQ-VAE (a :class:`~vgbench.models.vqvae.VQVAE` whose config is pinned to VG's choices, :data:`VG_VQVAE_FIXED`):
BatchNorm residual blocks with hidden // 2 residual units; the three per-axis attentions summed, 2 heads, no
position embedding; 4x4x4 strided encoder convs, a 3x3x3 ``conv_last``; 1x1x1 pre- and post-quantisation convs;
"same" padding with the extra pad in front; one EMA codebook (``embeddings``, ``N``, ``z_avg``; an imported one is
marked initialised). VG cannot run a largest downsampling factor of 2 (its ``conv_last`` bug, §8 item 9), so no
VG checkpoint has one and this variant refuses it.

Prior (:class:`RepoGPT`, a :class:`~vgbench.models.gpt.GPT` with VG's blocks and frame encoder): concatenated
per-axis position embeddings (hidden % 3 == 0), LayerNorm ``(x - mu) * (1e-5 + rsqrt(var))`` (the quirk,
§8 item 1), conditional-LN gain initialised to 1 + 1/sqrt(C), MLP 4 x hidden, attention output projections
**with** bias, cross-attention values kept at the frame features' width (``w_vs`` 240 -> 240, ``fc`` 240 -> D),
attention dropout on full attention only, and VG's ResNet-34 frame encoder (:class:`RepoFrameEncoder`: channel
LayerNorm, and a ReLU after the second norm of every block *before* the residual add, unlike the paper design's
:class:`~vgbench.models.conditioning.FrameEncoder`) with its own 80-per-axis position embedding (``cond_pos_embd``).
Full attention is the causal mask (VG's persistent S x S buffer is checked and dropped on import, never required);
sparse attention is the paper-design dense mask of VG's ``StridedSparsityConfig`` (block 32, 4 local blocks).

Differences from VG that do not change a loaded model's numbers: the attention output bias starts at zero (VG:
PyTorch's default), and the paper-design modules fuse q/k/v into one matrix (the importer concatenates).
``bf16`` defaults to False in the cards: VG samples in float32.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vgbench import cards
from vgbench.errors import CardError, InputError, OfflineError
from vgbench.models.attention import MLP, CrossAttention, LayerNorm, SelfAttention
from vgbench.models.conditioning import RESNET_BLOCKS, ChannelLayerNorm, ConditionalLayerNorm, FrameConv3d
from vgbench.models.gpt import (
    GPT,
    VQVAE_FIELDS,
    AxisPositionEmbedding,
    Block,
    GPTConfig,
    VideoGPT,
    prior_config,
    vqvae_fields,
)
from vgbench.models.vqvae import VQVAE, VQVAEConfig

VQVAE_ARCH = "videogpt_repo_vqvae"
GPT_ARCH = "videogpt_repo_gpt"

# VQ-VAE config fields VG hard-codes (videogpt.md §3); res_hidden is hidden // 2, checked separately.
VG_VQVAE_FIXED: dict[str, Any] = {
    "in_channels": 3,
    "attention": True,
    "attn_heads": 2,
    "pos_embedding": False,
    "norm": "batch",
    "encoder_kernel": 4,
    "upsample_kernel": 4,
    "post_vq_kernel": 1,
    "n_codebooks": 1,
    "commitment": 0.25,
    "ema_decay": 0.99,
    "ema_eps": 1e-7,
    "restart_threshold": 1.0,
    "recon_variance": 0.06,
}

# Prior config fields VG hard-codes (videogpt.md §4); ff_hidden is 4 * hidden, checked separately.
VG_GPT_FIXED: dict[str, Any] = {
    "codebooks": 1,
    "head_dim": None,
    "sparse_block": 32,
    "sparse_local_blocks": 4,
    "pos_embedding": "axes",
    "layernorm": "videogpt",
    "resnet_dim": 240,
    "resnet_base": 64,
    "action_dim": 0,
}
VG_RESNET_DEPTHS = (34, 18)  # VG builds ResNet-34; 18 (its ResNet class with 2 blocks per group) for small tests


def _fail(where: str, field: str, problem: str, expected, got) -> None:
    raise CardError(where, f"config.{field}", problem, str(expected), got)


def check_vqvae_config(cfg: VQVAEConfig, where: str) -> VQVAEConfig:
    """Refuse a VQ-VAE config that VG's network cannot be (CardError naming ``where`` and the field)."""
    for name, value in VG_VQVAE_FIXED.items():
        got = getattr(cfg, name)
        if got != value:
            _fail(where, name, "is fixed in VG's VQ-VAE (videogpt.md §3)", repr(value), got)
    if cfg.res_hidden != cfg.hidden // 2:
        _fail(where, "res_hidden", "VG's residual blocks use hidden // 2 units", cfg.hidden // 2, cfg.res_hidden)
    if max(cfg.downsample) < 4:
        _fail(where, "downsample", "VG cannot run a largest factor below 4: its conv_last is built with 3 input "
              "channels then (videogpt.md §8 item 9), so no VG checkpoint has one", "a largest factor >= 4",
              list(cfg.downsample))  # fmt: skip
    return cfg


def check_gpt_config(cfg: GPTConfig, where: str) -> GPTConfig:
    """Refuse a prior config that VG's network cannot be (CardError naming ``where`` and the field)."""
    for name, value in VG_GPT_FIXED.items():
        got = getattr(cfg, name)
        if got != value:
            _fail(where, name, "is fixed in VG's prior (videogpt.md §4)", repr(value), got)
    if cfg.ff_hidden != 4 * cfg.hidden:
        _fail(where, "ff_hidden", "VG's MLP is 4 x hidden wide", 4 * cfg.hidden, cfg.ff_hidden)
    if cfg.resnet_depth not in VG_RESNET_DEPTHS:
        _fail(where, "resnet_depth", "VG's frame encoder is a ResNet-34", "34 (or 18 for tests)", cfg.resnet_depth)
    if cfg.cond_frames and cfg.resnet_dim % cfg.heads:
        _fail(where, "heads", f"VG splits the {cfg.resnet_dim} frame-feature values into heads",
              f"a divisor of {cfg.resnet_dim}", cfg.heads)  # fmt: skip
    return cfg


# ----------------------------------------------------------------------------------------------------------
# Frame encoder (VG resnet.py)


class NormReLU(nn.Module):
    """Channel LayerNorm (float32), then ReLU unless ``relu=False`` (VG ``NormReLU``)."""

    def __init__(self, channels: int, relu: bool = True):
        super().__init__()
        self.norm = ChannelLayerNorm(channels)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        x = self.norm(x)
        return F.relu(x) if self.relu else x


class RepoResBlock(nn.Module):
    """VG's basic block: relu(norm(conv(relu(norm(conv(x)))))) + shortcut, then ReLU.

    The ReLU after the second norm, before the add, is VG's (``bnr2`` is a NormReLU with relu on); the paper
    design's block has none there.
    """

    def __init__(self, cin: int, cout: int, stride: tuple[int, int, int], project: bool):
        super().__init__()
        if project:
            self.proj_conv, self.proj_bnr = FrameConv3d(cin, cout, 1, stride), NormReLU(cout, relu=False)
        self.conv1, self.bnr1 = FrameConv3d(cin, cout, 3, stride), NormReLU(cout)
        self.conv2, self.bnr2 = FrameConv3d(cout, cout, 3, (1, 1, 1)), NormReLU(cout)
        self.project = project

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Cin, n, H, W) -> (B, Cout, n, H/s, W/s)
        shortcut = self.proj_bnr(self.proj_conv(x)) if self.project else x
        h = self.bnr2(self.conv2(self.bnr1(self.conv1(x))))
        return F.relu(h + shortcut)


class BlockGroup(nn.Module):
    """A projecting first block, then ``blocks - 1`` plain ones (VG ``BlockGroup``)."""

    def __init__(self, cin: int, cout: int, blocks: int, stride: tuple[int, int, int]):
        super().__init__()
        self.start_block = RepoResBlock(cin, cout, stride, project=True)
        self.blocks = nn.Sequential(*[RepoResBlock(cout, cout, (1, 1, 1), project=False) for _ in range(blocks - 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.start_block(x))


class RepoFrameEncoder(nn.Module):
    """VG's ``resnet34(1, (1, 4, 4), resnet_dim)``: CIFAR stem, groups of widths base, 2 base, 4 base, out_dim,
    (1, 2, 2) strides in groups 2 and 3: frames (B, C, n, H, W) in [-0.5, 0.5] -> (B, n, H/4, W/4, out_dim)."""

    def __init__(self, in_channels: int = 3, depth: int = 34, base: int = 64, out_dim: int = 240):
        super().__init__()
        self.stem = nn.Sequential(FrameConv3d(in_channels, base, 3, (1, 1, 1)), NormReLU(base))
        widths = (base, 2 * base, 4 * base, out_dim)
        strides = ((1, 1, 1), (1, 2, 2), (1, 2, 2), (1, 1, 1))
        cin = base
        for g, (n, cout, stride) in enumerate(zip(RESNET_BLOCKS[depth], widths, strides, strict=True), start=1):
            setattr(self, f"group{g}", BlockGroup(cin, cout, n, stride))
            cin = cout

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.stem(frames.contiguous(memory_format=torch.channels_last_3d))  # (B, base, n, H, W)
        x = self.group4(self.group3(self.group2(self.group1(x))))  # (B, out_dim, n, H/4, W/4)
        return x.movedim(1, -1)  # (B, n, H/4, W/4, out_dim)


# ----------------------------------------------------------------------------------------------------------
# Prior


def _vg_norm(c: GPTConfig) -> nn.Module:
    """VG ``LayerNorm``: the epsilon quirk always; conditional (gain 1 + W c, W initialised to 1/sqrt(C))."""
    return ConditionalLayerNorm(c.hidden, c.n_classes, quirk=True) if c.n_classes else LayerNorm(c.hidden, quirk=True)


class RepoBlock(Block):
    """VG ``AttentionBlock``: the paper-design block's forward and sampling step with VG's projections."""

    def __init__(self, c: GPTConfig):
        nn.Module.__init__(self)  # Block's own submodules differ (no output bias, square cross-attention values)
        attn_dropout = c.attn_dropout if c.attention == "full" else 0.0  # VG's sparse kernel ignores it
        self.norm1 = _vg_norm(c)
        self.attn = SelfAttention(c.hidden, c.heads, c.hidden, c.hidden, c.layers, attn_dropout, out_bias=True)
        if c.cond_frames:
            self.norm2 = _vg_norm(c)
            # w_qs D -> D, w_ks 240 -> D, w_vs 240 -> 240, fc 240 -> D (d_v = 240 / heads)
            d, m = c.hidden, c.resnet_dim
            self.cross = CrossAttention(d, m, c.heads, d, m, c.layers, out_bias=True)
        self.norm3 = _vg_norm(c)
        self.mlp = MLP(c.hidden, c.ff_hidden)
        self.drop = nn.Dropout(c.dropout)
        self.has_cross = bool(c.cond_frames)


class RepoGPT(GPT):
    """The paper-design :class:`~vgbench.models.gpt.GPT` (forward, conditioning, KV-cache sampling) with VG's
    blocks (:class:`RepoBlock`), LayerNorms and frame encoder (:class:`RepoFrameEncoder`)."""

    def __init__(self, config: GPTConfig):
        config.validate()
        # GPT builds the embeddings, position tables, final norm, head and attention mask; its blocks and frame
        # encoder are not VG's, so it is built without frame conditioning (no ResNet built twice) and they are
        # replaced here. A test checks that the result has exactly GPT's submodules.
        super().__init__(dataclasses.replace(config, cond_frames=0))
        self.config = c = config
        self.blocks = nn.ModuleList([RepoBlock(c) for _ in range(c.layers)])
        if c.cond_frames:
            self.frame_encoder = RepoFrameEncoder(c.frame_channels, c.resnet_depth, c.resnet_base, c.resnet_dim)
            self.frame_pos = AxisPositionEmbedding(c.memory_shape, c.resnet_dim)


# ----------------------------------------------------------------------------------------------------------
# Builders (the model factory's ARCHS entries)


def vqvae_config(card, **overrides) -> VQVAEConfig:
    """The VG-checked :class:`VQVAEConfig` of a ``videogpt_repo_vqvae`` card with ``overrides``."""
    where = f"card {card.name}"
    config = cards.build_config(VQVAEConfig, card, **overrides)
    shape_fields = {"frames", "resolution", "downsample"}
    if config.latent is not None and shape_fields & set(overrides) and "latent" not in overrides:
        config.latent = None  # a reduced-size override makes the card's stated latent shape moot
    return check_vqvae_config(config, where)


def _load_imported(card, root, overrides: dict) -> nn.Module:
    """The network of ``card`` from its imported checkpoint in the weights cache (``vgbench weights import``)."""
    from vgbench import cache
    from vgbench.models import checkpoint

    if overrides:
        raise InputError(f"{card.name}: config overrides {sorted(overrides)} need weights=False (the imported "
                         "checkpoint fixes its own config)")  # fmt: skip
    path = cache.cache_dir("weights", root) / card.weights.file
    if not path.exists():
        from vgbench.weights import manual_instructions

        raise OfflineError(f"{card.name}: no imported checkpoint at {path}. {manual_instructions(card, root)}")
    model, ckpt = checkpoint.load_model(path)
    if ckpt.card != card.name:
        raise InputError(f"{path} holds {ckpt.card}, not {card.name}; import the right file again")
    return model


def vqvae_from_card(card, weights: bool = True, root=None, **overrides) -> VQVAE:
    """Builder of ``videogpt_repo_vqvae`` cards: VG's VQ-VAE as a :class:`VQVAE`.

    Args:
        card: a ``videogpt_repo_vqvae`` model card.
        weights: load the checkpoint imported with ``vgbench weights import CKPT --model CARD`` from the weights
            cache; False: a freshly initialised network (its codebook is initialised by the first training batch).
        root: weights cache root.
        **overrides: fields of :class:`VQVAEConfig` (only with weights=False); VG's fixed choices cannot change.
    """
    if weights:
        return _load_imported(card, root, overrides)
    return VQVAE(vqvae_config(card, **overrides), f"card {card.name}")


def gpt_config(card, vqvae: nn.Module, **overrides) -> GPTConfig:
    """The VG-checked :class:`GPTConfig` of a ``videogpt_repo_gpt`` card on ``vqvae``, with ``overrides``.

    Fields the VQ-VAE fixes (shape, vocab_size, ...) may be given only with the VQ-VAE's own values (a vgbench
    checkpoint stores the whole resolved config)."""
    where = f"card {card.name}"
    derived = vqvae_fields(vqvae)
    for key in sorted(set(overrides) & set(VQVAE_FIELDS)):
        value = overrides.pop(key)
        value = tuple(value) if isinstance(value, list) else value
        if value != derived[key]:
            raise CardError(where, f"config.{key}", "comes from the VQ-VAE and differs from it", derived[key], value)
    return check_gpt_config(prior_config(card, vqvae, **overrides), where)


def gpt_from_card(card, weights: bool = True, root=None, vqvae: nn.Module | None = None, **overrides) -> VideoGPT:
    """Builder of ``videogpt_repo_gpt`` cards: VG's prior (:class:`RepoGPT`) on its VQ-VAE, as a
    :class:`~vgbench.models.gpt.VideoGPT`.

    Args:
        card: a ``videogpt_repo_gpt`` card; its ``vqvae`` names the ``videogpt_repo_vqvae`` card.
        weights: load the imported checkpoint (prior and its VQ-VAE) from the weights cache; False: initialised.
        root: weights cache root.
        vqvae: the VQ-VAE to put under the prior (default: the card's VQ-VAE card, initialised).
        **overrides: fields of :class:`GPTConfig` (only with weights=False).
    """
    if weights:
        return _load_imported(card, root, {**overrides, **({"vqvae": vqvae} if vqvae is not None else {})})
    if vqvae is None:
        vqvae = vqvae_from_card(cards.model(card.vqvae), weights=False)
    check_vqvae_config(vqvae.config, f"the VQ-VAE given for card {card.name}")  # VG's prior sits on VG's VQ-VAE
    config = gpt_config(card, vqvae, **overrides)
    return VideoGPT(vqvae, RepoGPT(config))


def vqvae_card_summary(card) -> dict:
    """Latent grid and trainable parameter count of a ``videogpt_repo_vqvae`` card at its nominal config (an
    imported checkpoint may differ: it brings its own hyperparameters), built on the meta device."""
    from vgbench.models.vqvae import count_parameters

    config = vqvae_config(card)
    with torch.device("meta"):
        model = VQVAE(config, f"card {card.name}")
    return {"latent": "x".join(map(str, model.latent_shape)), "params": count_parameters(model)}


def gpt_card_summary(card) -> dict:
    """Latent grid and trainable parameter count of a ``videogpt_repo_gpt`` card's prior at its nominal config (the
    VQ-VAE, frozen under the prior, not counted), built on the meta device."""
    if not card.vqvae:
        raise CardError(f"card {card.name}", "vqvae", "a prior card names the VQ-VAE card it models")
    with torch.device("meta"):
        vqvae = vqvae_from_card(cards.model(card.vqvae), weights=False)
        check_vqvae_config(vqvae.config, f"card {card.vqvae} (the VQ-VAE of card {card.name})")
        config = gpt_config(card, vqvae)
        prior = RepoGPT(config)
    params = sum(p.numel() for p in prior.parameters() if p.requires_grad)
    return {"latent": "x".join(map(str, config.shape)), "params": params}


__all__ = [
    "RepoFrameEncoder",
    "RepoGPT",
    "check_gpt_config",
    "check_vqvae_config",
    "gpt_card_summary",
    "gpt_config",
    "gpt_from_card",
    "vqvae_card_summary",
    "vqvae_config",
    "vqvae_from_card",
]
