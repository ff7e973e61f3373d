"""The VideoGPT prior: a GPT over the VQ-VAE's latent codes, as the paper designs it (``arch: videogpt_gpt``).

Paper §3.2 and Appendix A, with the details the paper leaves open taken from its own code (VGP,
``wilson1yan/VideoGPT-Paper@f4579d1``; videogpt.md §2, §4):

- Input: the frozen codebook vectors of the codes (not a learned token embedding) through ``fc_in`` (no bias,
  N(0, 0.02²)); a learned SOS vector replaces the first position and the sequence is shifted right by one.
- Position embedding: one learned table per axis, broadcast over the grid and **concatenated** along channels
  (N(0, 0.01²)). VG concatenates over (T', H', W') only, so hidden % 3 == 0 (its 576). VGP keeps a codebook axis
  in the latent grid, (T', H', W', C) with C = 1 for one codebook, so the paper's 512- and 1024-wide priors split
  into 4 tables of hidden/4 (the C = 1 table is one learned vector added everywhere). ``pos_embedding`` names the
  choice: ``axes_and_codebook`` (VGP, paper cards) or ``axes`` (VG).
- L pre-LN blocks: LN -> causal self-attention -> dropout -> residual; with frame conditioning LN -> cross-attention
  to the ResNet features -> dropout -> residual; LN -> MLP (x·sigmoid(1.702x)) -> dropout -> residual. Final LN and
  a zero-initialised ``head`` (no bias). Per-head width hidden/heads (VGP fixes 128, which equals hidden/heads for
  its 512/4 and 1024/8 priors; ``head_dim`` overrides it). The output projections have no bias (VGP).
- LayerNorm: both code bases compute ``(x - mu) * (1e-5 + rsqrt(var))`` (the epsilon outside the square root);
  ``layernorm: videogpt`` reproduces it, ``standard`` is the textbook form.
- Attention: ``full`` causal or the paper's ``sparse`` "local and strided" layout (block 32, 4 local blocks) as a
  dense boolean mask through SDPA (see :mod:`vgbench.models.attention`).
- Frame conditioning: ResNet-18/34 frame encoder (:mod:`vgbench.models.conditioning`) plus its own concatenated
  position embedding over (n, H/4, W/4), attended by every layer. Class / action conditioning: conditional LN.

Sampling visits the grid in raster order with a KV cache (self-attention keys/values written per step;
cross-attention keys/values and the frame features computed once; under the sparse layout each step attends to
its mask row's positions only, gathered from the cache, since reading the cache bounds the step's time).
Randomness is per sample: sample j draws its uniforms from ``torch.Generator().manual_seed(seeds[j])`` and picks
each token by inverse CDF, so a sample depends only on its seed, not on the batch it shares or the process count.
Precision: bf16 autocast on CUDA (``bf16``), float32 on CPU. Gradient checkpointing per block when
``checkpointing`` (off by default: it recomputes the forward).
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from vgbench.errors import CardError, InputError
from vgbench.models.attention import (
    MLP,
    CrossAttention,
    KVCache,
    LayerNorm,
    SelfAttention,
    sparse_attention_mask,
    sparse_block_grid,
    sparse_decode_keys,
)
from vgbench.models.conditioning import RESNET_BLOCKS, ConditionalLayerNorm, FrameEncoder
from vgbench.tensors import to_uint8

# Fields a prior card never sets: from_card takes them from the VQ-VAE card named in the card's ``vqvae``.
VQVAE_FIELDS = ("shape", "vocab_size", "embedding_dim", "codebooks", "frame_channels", "frames", "resolution")
COND_KEYS = ("frames", "label", "action")


@dataclass
class GPTConfig:
    """Configuration of the prior. Defaults are the paper's BAIR prior (Appendix A, VGP code where it is silent)."""

    # From the VQ-VAE (filled by from_card)
    shape: tuple[int, ...] = (8, 32, 32)  # latent grid (T', H', W'), or (T', H', W', C) for C codebooks
    vocab_size: int = 1024  # codes per codebook
    embedding_dim: int = 256  # width D of one codebook vector (the prior's input)
    codebooks: int = 1  # C; with C > 1 the grid's last axis is the codebook axis
    frame_channels: int = 3  # channels of the video (and of the conditioning frames)
    frames: int = 16  # clip length the VQ-VAE encodes
    resolution: int = 64  # frame height = width
    # Transformer
    hidden: int = 512
    heads: int = 4
    layers: int = 16
    ff_hidden: int = 2048
    head_dim: int | None = None  # per-head q/k/v width; None = hidden // heads (VGP's fixed 128 at 512/4, 1024/8)
    dropout: float = 0.2  # after attention, cross-attention and MLP
    attn_dropout: float = 0.0  # on self-attention weights (VGP 0; the clean repository 0.3, full attention only)
    attention: Literal["full", "sparse"] = "sparse"
    sparse_block: int = 32
    sparse_local_blocks: int = 4  # a block attends to itself and this many previous blocks
    pos_embedding: Literal["axes", "axes_and_codebook"] = "axes_and_codebook"  # VG: axes; VGP: + codebook axis
    pos_std: float = 0.01  # init std of the per-axis position tables (both code bases 0.01)
    # vgbench addition, off in every paper card: a k x k conv over the previous latent frame's code vectors, added
    # to each position's input, so "the same place one latent frame back" needs no learned positional attention
    # (a CPU-sized prior does not find it in a demo's budget; issue 19). 0 = off (both code bases).
    frame_shortcut: int = 0
    frame_shortcut_depth: int = 1  # latent frames before each position's that the shortcut conv reads (2: velocity)
    # vgbench addition, off in every paper card: a 1x3 conv over the row above in the same latent frame (sampled
    # before the position), so neighbours of one frame agree without learned positional attention (issue 19)
    row_shortcut: bool = False
    layernorm: Literal["videogpt", "standard"] = "videogpt"  # videogpt: (x-mu)*(1e-5+rsqrt(var)), both code bases
    # Conditioning
    cond_frames: int = 0  # first n frames of the clip, through the ResNet and cross-attention (0 = none)
    resnet_depth: Literal[18, 34] = 34
    resnet_dim: int = 576  # output features; VGP 576 (Appendix A says 512, which its 3-axis embedding cannot split)
    resnet_base: int = 64  # width of the stem and group 1 (groups 2, 3: 2x, 4x)
    n_classes: int = 0  # class-conditional LN over a one-hot label (0 = none)
    action_dim: int = 0  # action-conditional LN over a flattened action vector (0 = none)
    # Execution
    checkpointing: bool = False  # recompute each block in backward (memory for time)
    bf16: bool = True  # bf16 autocast on CUDA; CPU always runs float32

    @property
    def seq_len(self) -> int:
        return math.prod(self.shape)

    @property
    def qk_dim(self) -> int:
        return self.heads * (self.head_dim or self.hidden // self.heads)

    @property
    def cond_dim(self) -> int:
        return self.n_classes + self.action_dim

    @property
    def pos_shape(self) -> tuple[int, ...]:
        """Axes of the position embedding: the grid, plus a size-1 codebook axis in VGP's form."""
        if self.pos_embedding == "axes_and_codebook" and self.codebooks == 1:
            return (*self.shape, 1)
        return tuple(self.shape)

    @property
    def memory_shape(self) -> tuple[int, ...]:
        """Grid of the frame features: (n, H/4, W/4)."""
        return (self.cond_frames, self.resolution // 4, self.resolution // 4)

    def validate(self, where: str = "GPTConfig") -> GPTConfig:
        """Raise :class:`CardError` (naming ``where`` and the field) on a configuration that cannot be built."""

        def bad(name, problem, expected, got):
            raise CardError(where, f"config.{name}", problem, expected, got)

        for name in ("vocab_size", "embedding_dim", "codebooks", "frame_channels", "frames", "resolution", "hidden",
                     "heads", "layers", "ff_hidden", "sparse_block", "resnet_dim", "resnet_base"):  # fmt: skip
            if getattr(self, name) < 1:
                bad(name, "must be positive", ">= 1", getattr(self, name))
        for name in ("cond_frames", "n_classes", "action_dim", "sparse_local_blocks", "frame_shortcut"):
            if getattr(self, name) < 0:
                bad(name, "must not be negative", ">= 0", getattr(self, name))
        if not self.shape or any(s < 1 for s in self.shape):
            bad("shape", "latent grid needs positive sizes", "e.g. (8, 32, 32)", self.shape)
        if self.frame_shortcut and (self.frame_shortcut % 2 == 0 or self.codebooks > 1 or len(self.shape) != 3):
            bad("frame_shortcut", "is an odd conv kernel over one codebook's (T', H', W') grid",
                "0 (off) or an odd size such as 3, with one codebook", self.frame_shortcut)  # fmt: skip
        if self.row_shortcut and (self.codebooks > 1 or len(self.shape) != 3):
            bad("row_shortcut", "is a conv over one codebook's (T', H', W') grid", "false, or one codebook",
                self.row_shortcut)  # fmt: skip
        if self.frame_shortcut_depth < 1:
            bad("frame_shortcut_depth", "counts the previous latent frames the shortcut reads", ">= 1",
                self.frame_shortcut_depth)  # fmt: skip
        if not self.pos_std > 0:
            bad("pos_std", "is a standard deviation", "> 0 (both code bases: 0.01)", self.pos_std)
        if self.codebooks > 1 and self.shape[-1] != self.codebooks:
            bad("shape", f"with {self.codebooks} codebooks the grid's last axis is the codebook axis",
                f"(..., {self.codebooks})", self.shape)  # fmt: skip
        for name in ("dropout", "attn_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                bad(name, "is a probability", "0 <= p < 1", getattr(self, name))
        if self.head_dim is None and self.hidden % self.heads:
            bad("heads", f"hidden {self.hidden} does not split into {self.heads} heads",
                f"a divisor of {self.hidden}, or set head_dim", self.heads)  # fmt: skip
        if self.head_dim is not None and self.head_dim < 1:
            bad("head_dim", "must be positive", ">= 1 or null", self.head_dim)
        n_axes = len(self.pos_shape)
        if self.hidden % n_axes:
            hint = "" if self.pos_embedding == "axes_and_codebook" else " (or pos_embedding: axes_and_codebook, 4 axes)"
            bad("hidden", f"the position embedding concatenates {n_axes} per-axis tables over {self.pos_shape} "
                f"({self.pos_embedding})", f"a multiple of {n_axes}{hint}", self.hidden)  # fmt: skip
        if self.attention == "sparse":
            try:
                sparse_block_grid(self.shape, self.sparse_block)
            except ValueError as exc:
                bad("attention", f"sparse layout impossible: {exc}", "attention: full, or another latent grid",
                    "sparse")  # fmt: skip
        if self.cond_frames:
            if self.cond_frames > self.frames:
                bad("cond_frames", f"more conditioning frames than the clip's {self.frames}",
                    f"<= {self.frames}", self.cond_frames)  # fmt: skip
            if self.resolution % 4:
                bad("resolution", "the frame encoder downsamples H and W by 4", "a multiple of 4", self.resolution)
            if self.resnet_dim % 3:
                bad("resnet_dim", "the frame features' position embedding concatenates 3 per-axis tables "
                    "over (n, H/4, W/4)", "a multiple of 3 (VGP: 576)", self.resnet_dim)  # fmt: skip
            if self.resnet_depth not in RESNET_BLOCKS:
                bad("resnet_depth", "unknown ResNet depth", str(sorted(RESNET_BLOCKS)), self.resnet_depth)
        return self


class AxisPositionEmbedding(nn.Module):
    """Learned per-axis tables (n_i, dim / n_axes), broadcast over the grid and concatenated along channels."""

    def __init__(self, shape: tuple[int, ...], dim: int, std: float = 0.01):
        super().__init__()
        self.shape = tuple(shape)
        self.tables = nn.ParameterList([nn.Parameter(torch.randn(n, dim // len(shape)) * std) for n in shape])

    def forward(self) -> torch.Tensor:
        """The embedding of every grid position in raster order: (prod(shape), dim)."""
        nd = len(self.shape)
        parts = [
            t.view(*(1,) * i, n, *(1,) * (nd - i - 1), -1).expand(*self.shape, -1)
            for i, (t, n) in enumerate(zip(self.tables, self.shape, strict=True))
        ]
        return torch.cat(parts, dim=-1).reshape(math.prod(self.shape), -1)


def _norm(config: GPTConfig) -> nn.Module:
    quirk = config.layernorm == "videogpt"
    if config.cond_dim:
        return ConditionalLayerNorm(config.hidden, config.cond_dim, quirk)
    return LayerNorm(config.hidden, quirk)


class Block(nn.Module):
    """One pre-LN transformer block: self-attention, (cross-attention), MLP; dropout before each residual add."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        c, qk = config, config.qk_dim
        self.norm1 = _norm(c)
        self.attn = SelfAttention(c.hidden, c.heads, qk, qk, c.layers, c.attn_dropout)
        if c.cond_frames:
            self.norm2 = _norm(c)
            self.cross = CrossAttention(c.hidden, c.resnet_dim, c.heads, qk, qk, c.layers)
        self.norm3 = _norm(c)
        self.mlp = MLP(c.hidden, c.ff_hidden)
        self.drop = nn.Dropout(c.dropout)
        self.has_cross = bool(c.cond_frames)

    def forward(self, x, c, features, mask):
        """``x`` (B, S, C); ``c`` (B, cond_dim) or None; ``features`` (B, M, Cm) or None; ``mask`` (S, S) or None."""
        x = x + self.drop(self.attn(self.norm1(x, c), mask))
        if self.has_cross:
            x = x + self.drop(self.cross(self.norm2(x, c), self.cross.memory(features)))
        return x + self.drop(self.mlp(self.norm3(x, c)))

    def prefill(self, x, c, memory, cache: KVCache, mask):
        """Teacher-forced pass over a window's first n positions, ``x`` (B, n, C), filling ``cache`` 0..n-1."""
        x = x + self.attn.prefill(self.norm1(x, c), cache, mask)
        if self.has_cross:
            x = x + self.cross(self.norm2(x, c), memory)
        return x + self.mlp(self.norm3(x, c))

    def step(self, x, c, memory, cache: KVCache, i: int, keys):
        """One sampling step at position ``i``: ``x`` (B, 1, C); ``memory`` this layer's cross-attention k/v;
        ``keys`` the positions the sparse layout lets i attend to (None: all up to i)."""
        x = x + self.attn.step(self.norm1(x, c), cache, i, keys)
        if self.has_cross:
            x = x + self.cross(self.norm2(x, c), memory)
        return x + self.mlp(self.norm3(x, c))


class GPT(nn.Module):
    """The prior: codebook vectors (B, *shape, D) and conditioning -> logits (B, *shape, K)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = c = config.validate()
        self.fc_in = nn.Linear(c.embedding_dim, c.hidden, bias=False)
        nn.init.normal_(self.fc_in.weight, std=0.02)
        self.sos = nn.Parameter(torch.randn(c.hidden) * 0.02)
        self.pos = AxisPositionEmbedding(c.pos_shape, c.hidden, c.pos_std)
        if c.frame_shortcut:
            k, n = c.frame_shortcut, c.frame_shortcut_depth
            self.shortcut = nn.Conv3d(c.embedding_dim, c.hidden, (n, k, k), padding=(0, k // 2, k // 2), bias=False)
            nn.init.normal_(self.shortcut.weight, std=0.02 / (k * n**0.5))  # like fc_in's 0.02, over n*k*k inputs
        if c.row_shortcut:
            self.row = nn.Conv3d(c.embedding_dim, c.hidden, (1, 1, 3), padding=(0, 0, 1), bias=False)
            nn.init.normal_(self.row.weight, std=0.02 / 3**0.5)
        if c.cond_frames:
            self.frame_encoder = FrameEncoder(c.frame_channels, c.resnet_depth, c.resnet_base, c.resnet_dim)
            self.frame_pos = AxisPositionEmbedding(c.memory_shape, c.resnet_dim)
        self.blocks = nn.ModuleList([Block(c) for _ in range(c.layers)])
        self.norm = _norm(c)
        self.head = nn.Linear(c.hidden, c.vocab_size, bias=False)
        nn.init.zeros_(self.head.weight)
        if c.attention == "sparse":
            mask = sparse_attention_mask(c.shape, c.sparse_block, c.sparse_local_blocks)
            self.register_buffer("attn_mask", mask, persistent=False)  # rebuilt from the config, never saved
        else:
            self.attn_mask = None

    # -- conditioning ----------------------------------------------------------------------------------------

    def _conditioning(self, cond: dict | None, batch: int, device) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Check ``cond`` against the config; return the LN conditioning vector (B, n_classes + action_dim) and
        the frame features with their position embedding (B, M, resnet_dim), each None when unused."""
        c = self.config
        cond = dict(cond or {})
        unknown = sorted(set(cond) - set(COND_KEYS))
        if unknown:
            raise InputError(f"unknown conditioning key {unknown[0]!r}; allowed: {', '.join(COND_KEYS)}")
        needed = {"frames": c.cond_frames > 0, "label": c.n_classes > 0, "action": c.action_dim > 0}
        for key, need in needed.items():
            if need and cond.get(key) is None:
                raise InputError(f"this prior is conditioned on {key!r} but cond has none; pass cond={{{key!r}: ...}}")
            if not need and cond.get(key) is not None:
                raise InputError(f"this prior is not conditioned on {key!r}; remove it from cond")
        vec = []
        if c.n_classes:
            label = cond["label"]
            if label.shape != (batch,) or label.dtype not in (torch.int64, torch.int32):
                raise InputError(f"cond['label'] must be integer ({batch},), got {tuple(label.shape)} {label.dtype}")
            if label.min() < 0 or label.max() >= c.n_classes:
                raise InputError(f"cond['label'] out of range: allowed 0..{c.n_classes - 1}, got "
                                 f"{int(label.min())}..{int(label.max())}")  # fmt: skip
            vec.append(F.one_hot(label.to(device).long(), c.n_classes).float())
        if c.action_dim:
            action = cond["action"]
            if tuple(action.shape) != (batch, c.action_dim):
                raise InputError(f"cond['action'] must be ({batch}, {c.action_dim}), got {tuple(action.shape)}")
            vec.append(action.to(device).float())
        features = None
        if c.cond_frames:
            frames = cond["frames"]
            expect = (batch, c.frame_channels, c.cond_frames, c.resolution, c.resolution)
            if tuple(frames.shape) != expect:
                raise InputError(f"cond['frames'] must be (B, C, n, H, W) = {expect}, got {tuple(frames.shape)}")
            if not frames.is_floating_point() or frames.min() < -0.5 - 1e-3 or frames.max() > 0.5 + 1e-3:
                raise InputError(
                    "cond['frames'] must be float in [-0.5, 0.5] (uint8 / 255 - 0.5), got "
                    f"{frames.dtype} in [{float(frames.min()):.3g}, {float(frames.max()):.3g}]"
                )
            f = self.frame_encoder(frames.to(device)).flatten(1, -2)  # (B, M, resnet_dim)
            features = f + self.frame_pos().to(f.dtype)
        return (torch.cat(vec, dim=-1) if vec else None), features

    def _autocast(self, device):
        on = device.type == "cuda" and self.config.bf16
        return torch.autocast("cuda", dtype=torch.bfloat16) if on else nullcontext()

    # -- teacher forcing -------------------------------------------------------------------------------------

    def forward(self, x_emb: torch.Tensor, cond: dict | None = None) -> torch.Tensor:
        """Teacher-forced logits.

        Args:
            x_emb: (B, *shape, D) codebook vectors of the codes (the input; shifted right inside).
            cond: ``{"frames": (B, C, n, H, W) in [-0.5, 0.5], "label": (B,) int, "action": (B, A)}`` as the
                config requires, or None for an unconditional prior.

        Returns:
            (B, *shape, K) logits; position i sees codes < i only (raster order).
        """
        c = self.config
        expect = (*c.shape, c.embedding_dim)
        if x_emb.dim() != len(expect) + 1 or tuple(x_emb.shape[1:]) != expect or not x_emb.is_floating_point():
            raise InputError(f"x_emb must be float (B, *shape, D) = (B, {', '.join(map(str, expect))}), "
                             f"got {x_emb.dtype} {tuple(x_emb.shape)}")  # fmt: skip
        b, device = x_emb.shape[0], x_emb.device
        with self._autocast(device):
            vec, features = self._conditioning(cond, b, device)
            h = self.fc_in(x_emb.flatten(1, -2))  # (B, S, C)
            h = torch.cat([self.sos.to(h.dtype).expand(b, 1, -1), h[:, :-1]], dim=1)  # right shift, SOS first
            h = h + self.pos()
            if c.frame_shortcut:
                h = h + self.previous_frames(x_emb).to(h.dtype)
            if c.row_shortcut:
                h = h + self.row_above(x_emb).to(h.dtype)
            for block in self.blocks:
                if c.checkpointing and self.training and torch.is_grad_enabled():
                    h = checkpoint(block, h, vec, features, self.attn_mask, use_reentrant=False)
                else:
                    h = block(h, vec, features, self.attn_mask)
            logits = self.head(self.norm(h, vec))  # (B, S, K)
        return logits.view(b, *c.shape, c.vocab_size)

    def frame_features(self, frames_emb: torch.Tensor) -> torch.Tensor:
        """The shortcut of the latent frame after ``frames_emb`` (B, n, H', W', D), the code vectors of the n =
        frame_shortcut_depth frames before it (zeros before the clip's start): (B, H'*W', hidden)."""
        f = self.shortcut(frames_emb.permute(0, 4, 1, 2, 3))  # (B, hidden, 1, H', W')
        return f.flatten(2).transpose(1, 2)  # (B, H'*W', hidden)

    def previous_frames(self, x_emb: torch.Tensor) -> torch.Tensor:
        """Shortcut input of every position, (B, S, hidden): latent frame t gets the conv of frames t - n .. t - 1's
        code vectors (all earlier in raster order, so causal; zeros before frame 0). ``x_emb`` (B, T', H', W', D)."""
        n = self.config.frame_shortcut_depth
        pad = x_emb.new_zeros(x_emb.shape[0], n, *x_emb.shape[2:])
        e = torch.cat([pad, x_emb[:, :-1]], 1).permute(0, 4, 1, 2, 3)  # (B, D, T' + n - 1, H', W')
        f = self.shortcut(e)  # (B, hidden, T', H', W'): output t reads frames t - n .. t - 1
        return f.flatten(2).transpose(1, 2)  # (B, S, hidden)

    def row_above(self, x_emb: torch.Tensor) -> torch.Tensor:
        """Row shortcut of every position, (B, S, hidden): (t, r, w) gets the conv of the code vectors at
        (t, r - 1, w - 1 .. w + 1), all earlier in raster order (zeros in row 0 and beyond the edges).
        ``x_emb`` (B, T', H', W', D)."""
        above = F.pad(x_emb[:, :, :-1], (0, 0, 0, 0, 1, 0))  # (B, T', H', W', D): row r holds row r - 1
        f = self.row(above.permute(0, 4, 1, 2, 3))  # (B, hidden, T', H', W')
        return f.flatten(2).transpose(1, 2)  # (B, S, hidden)

    def _row_step(self, table: torch.Tensor, codes: torch.Tensor, i: int) -> torch.Tensor | None:
        """The row shortcut of position ``i`` from the codes sampled so far: (B, 1, hidden), or None in row 0."""
        _, h, w = self.config.shape
        r, col = divmod(i % (h * w), w)
        if r == 0:
            return None
        lo, hi = max(col - 1, 0), min(col + 1, w - 1)
        near = table[0, codes[:, i - w - col + lo : i - w - col + hi + 1]]  # (B, n <= 3, D) of row r - 1
        weight = self.row.weight[:, :, 0, 0, lo - col + 1 : hi - col + 2]  # (hidden, D, n)
        return torch.einsum("bnd,hdn->bh", near, weight.to(near.dtype))[:, None]

    # -- sampling --------------------------------------------------------------------------------------------

    @torch.no_grad()
    def sample_codes(
        self,
        codebook: torch.Tensor,
        n: int | None = None,
        cond: dict | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seeds: list[int] | None = None,
        return_logits: bool = False,
        context: torch.Tensor | None = None,
        uniforms: torch.Tensor | None = None,
    ):
        """Sample code grids with the KV cache, one position per step in raster order.

        Args:
            codebook: (K, D) or (C, K, D) vectors the VQ-VAE maps codes to (codebook c serves grid positions whose
                last index is c).
            n: number of samples (unconditional priors); conditional priors take it from ``cond``.
            cond: as in :meth:`forward`.
            temperature, top_k, top_p: logits / temperature, then keep the k best and / or the smallest set with
                probability >= top_p.
            seeds: one integer per sample (its own random stream); None draws them from the global torch RNG.
            return_logits: also return the (N, S, K) float32 logits of every step (for tests).
            context: (N, t, *shape[1:]) codes of the window's first t latent frames, kept rather than sampled (the
                sliding window of long videos): one teacher-forced pass over them fills the KV cache at positions
                0..t·P-1 (P positions per latent frame), then the rest of the grid is sampled. None: t = 0.
            uniforms: (N, S - t·P) float64 in [0, 1), one per sampled position, instead of the seeds' streams (the
                long sampler continues each sample's stream from window to window).

        Returns:
            codes (N, *shape) int64, context included [, logits; the context's are the teacher-forced ones].
        """
        c = self.config
        if self.training:
            raise InputError("sample_codes needs eval mode (dropout off): call .eval() first")
        batch = _batch_size(n, cond)
        device = self.sos.device
        table = codebook.reshape(c.codebooks, c.vocab_size, c.embedding_dim).to(device)
        s = c.seq_len
        codes = torch.zeros(batch, s, dtype=torch.long, device=device)
        start = 0
        if context is not None:
            if tuple(context.shape[0:1] + context.shape[2:]) != (batch, *c.shape[1:]) or context.shape[1] >= c.shape[0]:
                raise InputError(f"context must be (N, t, {', '.join(map(str, c.shape[1:]))}) codes with "
                                 f"t < {c.shape[0]}, got {tuple(context.shape)}")  # fmt: skip
            start = context[0].numel()
            codes[:, :start] = context.reshape(batch, start).to(device)
        if uniforms is None:
            seeds = _check_seeds(seeds, batch)
            u = torch.stack([torch.rand(s, generator=torch.Generator().manual_seed(x), dtype=torch.float64)
                             for x in seeds]).to(device)  # fmt: skip
        else:
            if tuple(uniforms.shape) != (batch, s - start):
                raise InputError(f"uniforms must be ({batch}, {s - start}), got {tuple(uniforms.shape)}")
            u = torch.cat([torch.zeros(batch, start, dtype=torch.float64), uniforms.cpu().double()], 1).to(device)
        all_logits = torch.zeros(batch, s, c.vocab_size, device=device) if return_logits else None
        with self._autocast(device):
            vec, features = self._conditioning(cond, batch, device)
            memories = [blk.cross.memory(features) if blk.has_cross else None for blk in self.blocks]
            table_h = self.fc_in(table)  # (C, K, hidden): fc_in of every code, once
            pos = self.pos()  # (S, hidden)
            dtype = torch.bfloat16 if device.type == "cuda" and c.bf16 else self.sos.dtype
            caches = [KVCache(batch, c.heads, s, c.qk_dim, c.qk_dim, device, dtype) for _ in self.blocks]
            if start:
                # the kept latent frames: inputs SOS, z_0 .. z_{n-2} (shifted right), one teacher-forced pass
                book = torch.arange(start - 1, device=device) % c.codebooks  # (n-1,)
                prev = table_h[book, codes[:, : start - 1]]  # (B, n-1, hidden)
                x = torch.cat([self.sos.to(prev.dtype).expand(batch, 1, -1), prev], dim=1) + pos[:start]
                if c.frame_shortcut or c.row_shortcut:  # one codebook (validated)
                    kept = table[0, codes[:, :start]].view(batch, -1, *c.shape[1:], c.embedding_dim)
                if c.frame_shortcut:
                    x = x + self.previous_frames(kept).to(x.dtype)
                if c.row_shortcut:
                    x = x + self.row_above(kept).to(x.dtype)
                mask = None if self.attn_mask is None else self.attn_mask[:start, :start]
                for blk, memory, cache in zip(self.blocks, memories, caches, strict=True):
                    x = blk.prefill(x, vec, memory, cache, mask)
                if all_logits is not None:
                    all_logits[:, :start] = self.head(self.norm(x, vec)).float()
            frame = math.prod(c.shape[1:])  # positions per latent frame
            block_keys = None
            if c.attention == "sparse":
                block_keys = [k.to(device) for k in sparse_decode_keys(c.shape, c.sparse_block, c.sparse_local_blocks)]
            for i in range(start, s):
                if i == 0:
                    x = self.sos.expand(batch, 1, -1)
                else:
                    x = table_h[(i - 1) % c.codebooks, codes[:, i - 1]][:, None]  # (B, 1, hidden)
                x = x + pos[i]
                if c.frame_shortcut and i >= frame:  # the conv of the frames before i's, once per latent frame
                    if i % frame == 0:
                        t, n = i // frame, c.frame_shortcut_depth
                        before = table[0, codes[:, max(0, t - n) * frame : i]]  # (B, <=n * P, D)
                        before = before.view(batch, -1, *c.shape[1:], c.embedding_dim)  # (B, <=n, H', W', D)
                        pad = before.new_zeros(batch, n - before.shape[1], *before.shape[2:])
                        shortcut = self.frame_features(torch.cat([pad, before], 1))  # (B, P, hidden)
                    x = x + shortcut[:, i % frame][:, None].to(x.dtype)
                if c.row_shortcut and (above := self._row_step(table, codes, i)) is not None:
                    x = x + above.to(x.dtype)
                keys = None
                if block_keys is not None:  # the sparse layout's row i as key indices
                    row = block_keys[i // c.sparse_block]
                    keys = row[: len(row) - c.sparse_block + i % c.sparse_block + 1]
                for blk, memory, cache in zip(self.blocks, memories, caches, strict=True):
                    x = blk.step(x, vec, memory, cache, i, keys)
                logits = self.head(self.norm(x, vec))[:, 0].float()  # (B, K)
                if all_logits is not None:
                    all_logits[:, i] = logits
                codes[:, i] = sample_tokens(logits, u[:, i], temperature, top_k, top_p)
        codes = codes.view(batch, *c.shape)
        return (codes, all_logits) if return_logits else codes

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Accept a saved mask (persistent buffers of older files) when it equals the one rebuilt from the config.
        key = prefix + "attn_mask"
        if key in state_dict:
            saved = state_dict.pop(key)
            if (
                self.attn_mask is None
                or saved.shape != self.attn_mask.shape
                or not torch.equal(saved.bool().cpu(), self.attn_mask.cpu())
            ):
                raise InputError(f"{key}: the saved attention mask differs from this config's "
                                 f"({self.config.attention}) mask")  # fmt: skip
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


# ----------------------------------------------------------------------------------------------------------
# Token selection (pure functions)


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:  # fmt: skip
    """Temperature, then top-k, then top-p (nucleus) filtering of (B, K) logits; removed entries become -inf."""
    if not temperature > 0:
        raise InputError(f"temperature must be > 0, got {temperature}")
    logits = logits / temperature
    if top_k is not None:
        if top_k < 1:
            raise InputError(f"top_k must be >= 1, got {top_k}")
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        if not 0 < top_p <= 1:
            raise InputError(f"top_p must be in (0, 1], got {top_p}")
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        drop = probs.cumsum(dim=-1) - probs >= top_p  # the mass before this token already reaches top_p
        drop[:, 0] = False
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def sample_tokens(logits: torch.Tensor, u: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:  # fmt: skip
    """Pick one token per row of (B, K) ``logits`` by inverse CDF of the filtered softmax at uniforms ``u`` (B,)
    in [0, 1): the first token whose cumulative probability exceeds u. Each row uses only its own uniform."""
    probs = filter_logits(logits.double(), temperature, top_k, top_p).softmax(dim=-1)
    cdf = probs.cumsum(dim=-1)  # (B, K)
    idx = torch.searchsorted(cdf, (u.double() * cdf[:, -1]).unsqueeze(-1), right=True)
    return idx.squeeze(-1).clamp_(max=logits.shape[-1] - 1)


def _batch_size(n: int | None, cond: dict | None) -> int:
    sizes = {int(v.shape[0]) for v in (cond or {}).values() if v is not None}
    if len(sizes) > 1:
        raise InputError(f"conditioning tensors disagree on the batch size: {sorted(sizes)}")
    if sizes:
        if n is not None and n != next(iter(sizes)):
            raise InputError(f"n={n} but the conditioning holds {next(iter(sizes))} samples")
        return next(iter(sizes))
    if n is None or n < 1:
        raise InputError(f"give the number of samples n >= 1 (unconditional prior), got {n}")
    return int(n)


def _check_seeds(seeds, batch: int) -> list[int]:
    if seeds is None:
        return torch.randint(0, 2**62, (batch,)).tolist()
    seeds = [int(s) for s in seeds]
    if len(seeds) != batch:
        raise InputError(f"one seed per sample: {batch} samples but {len(seeds)} seeds")
    return seeds


# ----------------------------------------------------------------------------------------------------------
# The prior with its frozen VQ-VAE


def codebook_table(vqvae: nn.Module) -> torch.Tensor:
    """The vectors the VQ-VAE feeds the prior, as a (C, K, D) table, read through ``vqvae.embed`` only: grids whose
    positions of codebook c hold codes 0, 1, ... are embedded and read back (the codebook axis is the last)."""
    latent = tuple(vqvae.latent_shape)
    k = vqvae.config.n_codes
    c = latent[-1] if len(latent) == 4 else 1
    per_grid = math.prod(latent) // c
    grids = -(-k // per_grid)
    device = next(vqvae.buffers(), next(vqvae.parameters(), torch.empty(0))).device
    codes = torch.arange(grids * per_grid, device=device).clamp(max=k - 1)  # (G * P,)
    codes = codes.view(grids, per_grid, 1).expand(-1, -1, c).reshape(grids, *latent)
    with torch.no_grad():
        emb = vqvae.embed(codes)  # (G, *latent, D)
    return emb.reshape(grids * per_grid, c, -1)[:k].transpose(0, 1).contiguous()  # (C, K, D)


def vqvae_fields(vqvae: nn.Module) -> dict[str, Any]:
    """The prior's config fields that the VQ-VAE fixes (see VQVAE_FIELDS)."""
    cfg = vqvae.config
    res = cfg.resolution if isinstance(cfg.resolution, int) else cfg.resolution[0]
    return {
        "shape": tuple(int(s) for s in vqvae.latent_shape),
        "vocab_size": int(cfg.n_codes),
        "embedding_dim": int(cfg.embedding_dim),  # per codebook
        "codebooks": int(getattr(cfg, "n_codebooks", 1)),
        "frame_channels": int(cfg.in_channels),
        "frames": int(cfg.frames),
        "resolution": int(res),
    }


class VideoGPT(nn.Module):
    """The prior with its frozen VQ-VAE (always in eval mode, without gradients).

    The state_dict holds both (``vqvae.*`` and ``prior.*``), so a checkpoint is self-contained.
    """

    def __init__(self, vqvae: nn.Module, prior: GPT):
        super().__init__()
        fields = vqvae_fields(vqvae)
        mine = {k: getattr(prior.config, k) for k in VQVAE_FIELDS}
        if fields != mine:
            diff = {k: (fields[k], mine[k]) for k in VQVAE_FIELDS if fields[k] != mine[k]}
            raise InputError(f"prior and VQ-VAE disagree on (VQ-VAE, prior): {diff}")
        self.vqvae = vqvae.requires_grad_(False).eval()
        self.prior = prior

    def train(self, mode: bool = True):
        super().train(mode)
        self.vqvae.eval()  # codebook statistics never move under the prior
        return self

    @property
    def config(self) -> GPTConfig:
        return self.prior.config

    def _check_codes(self, codes: torch.Tensor) -> torch.Tensor:
        c = self.config
        if codes.dtype not in (torch.int64, torch.int32) or tuple(codes.shape[1:]) != tuple(c.shape):
            raise InputError(f"codes must be integer (B, {', '.join(map(str, c.shape))}), "
                             f"got {codes.dtype} {tuple(codes.shape)}")  # fmt: skip
        if codes.numel() and (codes.min() < 0 or codes.max() >= c.vocab_size):
            raise InputError(f"codes out of range: allowed 0..{c.vocab_size - 1}, got "
                             f"{int(codes.min())}..{int(codes.max())}")  # fmt: skip
        return codes.long()

    def _check_video(self, video: torch.Tensor) -> None:
        c = self.config
        expect = (c.frame_channels, c.frames, c.resolution, c.resolution)
        if video.dim() != 5 or tuple(video.shape[1:]) != expect or not video.is_floating_point():
            raise InputError(f"video must be float (B, C, T, H, W) = (B, {', '.join(map(str, expect))}) in "
                             f"[-0.5, 0.5], got {video.dtype} {tuple(video.shape)}")  # fmt: skip

    def condition(self, video: torch.Tensor, label: torch.Tensor | None = None, action=None) -> dict:
        """The conditioning dict of real clips: their first ``cond_frames`` frames, plus label / action."""
        c = self.config
        cond = {}
        if c.cond_frames:
            self._check_video(video)
            cond["frames"] = video[:, :, : c.cond_frames]
        if label is not None:
            cond["label"] = label
        if action is not None:
            cond["action"] = action
        return cond

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Codes (B, *shape) of clips (B, C, T, H, W) in [-0.5, 0.5]."""
        self._check_video(video)
        return self.vqvae.encode(video)

    @torch.no_grad()
    def still_prefix(self, first: torch.Tensor) -> torch.Tensor:
        """Codes (B, 1, H', W') of the first latent frame of clips that hold ``first`` (B, C, H, W) in [-0.5, 0.5]
        still for all their frames: the latent-prefix condition of an unconditional prior (issue 19)."""
        c = self.config
        video = first[:, :, None].expand(-1, -1, c.frames, -1, -1).contiguous()
        return self.encode(video)[:, :1]

    def _inputs(self, video_or_codes: torch.Tensor, cond: dict | None):
        if video_or_codes.is_floating_point():
            video = video_or_codes
            codes = self.encode(video)
            cond = dict(cond or {})
            if self.config.cond_frames and cond.get("frames") is None:
                cond["frames"] = video[:, :, : self.config.cond_frames]
        else:
            codes = self._check_codes(video_or_codes)
        with torch.no_grad():
            x = self.vqvae.embed(codes)  # (B, *shape, D)
        return codes, x, cond

    def loss(self, video: torch.Tensor, cond: dict | None = None):
        """Teacher-forced training loss.

        Args:
            video: (B, C, T, H, W) float in [-0.5, 0.5]; frame conditioning takes its first frames unless
                ``cond["frames"]`` is given.
            cond: conditioning dict (see :meth:`GPT.forward`).

        Returns:
            (mean cross-entropy in nats per latent token, logits (B, *shape, K), codes (B, *shape)).
        """
        codes, x, cond = self._inputs(video, cond)
        logits = self.prior(x, cond)
        loss = F.cross_entropy(logits.float().flatten(0, -2), codes.flatten())
        return loss, logits, codes

    def token_nll(self, video_or_codes: torch.Tensor, cond: dict | None = None) -> torch.Tensor:
        """-log p(z_i | z_<i, cond) in nats, (B, S) in raster order: bits/dim is its mean / ln 2.

        ``video_or_codes``: float clips (B, C, T, H, W) or integer codes (B, *shape) (then frame conditioning needs
        ``cond["frames"]``).
        """
        codes, x, cond = self._inputs(video_or_codes, cond)
        logits = self.prior(x, cond)
        nll = F.cross_entropy(logits.float().flatten(0, -2), codes.flatten(), reduction="none")
        return nll.view(codes.shape[0], -1)

    @torch.no_grad()
    def sample(
        self,
        n_or_cond: int | dict,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seeds: list[int] | None = None,
        batch_size: int = 32,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Generate clips, decoded through the VQ-VAE (conditioning frames are regenerated, as in the reference).

        Args:
            n_or_cond: number of samples (unconditional) or a conditioning dict (e.g. from :meth:`condition`).
            temperature, top_k, top_p: see :meth:`GPT.sample_codes`.
            seeds: one integer per sample; a sample depends only on its seed (not on ``batch_size``).
            batch_size: samples generated together.
            context: (N, t, H', W') codes of the first t latent frames, kept rather than sampled (latent-prefix
                conditioning, e.g. :meth:`still_prefix`); N samples.

        Returns:
            uint8 (N, T, H, W, C) (see :func:`to_uint8` for the rounding).
        """
        cond = n_or_cond if isinstance(n_or_cond, dict) else None
        total = _batch_size(None if cond else n_or_cond, cond)
        if context is not None and len(context) != total:
            raise InputError(f"context holds {len(context)} code grids for {total} samples")
        seeds = _check_seeds(seeds, total)
        was_training = self.prior.training
        self.prior.eval()
        table = codebook_table(self.vqvae)
        out = []
        try:
            for lo in range(0, total, batch_size):
                sub = None if cond is None else {k: v[lo : lo + batch_size] for k, v in cond.items()}
                hi = min(lo + batch_size, total)
                ctx = None if context is None else context[lo:hi]
                codes = self.prior.sample_codes(table, hi - lo, sub, temperature, top_k, top_p, seeds[lo:hi],
                                                context=ctx)  # fmt: skip
                # one clip per decode: convolution kernels pick other algorithms for other batch sizes, and a last-bit
                # difference can move a pixel across a uint8 level; per clip, a sample is the same in any batch
                out += [to_uint8(self.vqvae.decode(c[None])).cpu() for c in codes]
        finally:
            self.prior.train(was_training)
        return torch.cat(out)


    @torch.no_grad()
    def sample_windows(
        self,
        n_or_cond: int | dict,
        frames: int,
        stride: int | None = None,
        cond_policy: str = "window",
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seeds: list[int] | None = None,
    ):
        """Sample videos of ``frames`` frames (>= the training clip) with a sliding window in latent time, one batch.

        Yields ``(first_frame, chunk)`` in time order: uint8 (N, f, H, W, C) frames ``first_frame ..
        first_frame + f - 1`` of every sample, one chunk per window, so a caller can stream them to disk; memory holds
        one window's codes and KV cache, whatever ``frames`` is (see :mod:`vgbench.models.sliding` for the plan).

        - Window 0 is today's sample exactly (same uniforms, same decode), so ``frames`` = the clip length gives
          :meth:`sample`'s videos bit for bit.
        - Window k keeps the last T' - S latent frames of the video so far as context (prefilled, not re-sampled)
          and samples S new ones with the next uniforms of each sample's own stream.
        - Decoding (:class:`SpanDecoder`): a VQ-VAE that is convolutional in time (no attention, no position
          embedding: the quickstart's, Moving MNIST's) decodes overlapping spans with a halo of its temporal reach on
          either side and keeps their centres, which equals decoding the whole latent sequence at once (measured:
          benchmarks/bench_long_sample.py decode) in bounded memory; one whose decoder attends along time decodes
          each window as one training-length clip and keeps the frames of its new latent frames. Either way per clip,
          as in :meth:`sample`.
        - Class and action conditioning is the same in every window. Frame conditioning: ``cond_policy`` "first"
          keeps the given frames for every window; "window" conditions window k on the decoded (uint8) frames at
          its own start (the previous window decoded as a clip), the frames the prior would have seen had the
          window been a real clip.
        """
        from vgbench.models import sliding

        c = self.config
        if cond_policy not in sliding.COND_POLICIES:
            raise InputError(f"--cond-policy {cond_policy!r}: allowed {', '.join(sliding.COND_POLICIES)}")
        cond = n_or_cond if isinstance(n_or_cond, dict) else None
        total = _batch_size(None if cond else n_or_cond, cond)
        seeds = _check_seeds(seeds, total)
        dt = c.frames // c.shape[0]
        windows = sliding.plan(frames, c.frames, dt, c.shape[0], stride)
        per_frame = math.prod(c.shape[1:])  # positions per latent frame
        if c.cond_frames and cond_policy == "window" and c.cond_frames > (c.shape[0] - windows.stride) * dt:
            raise InputError(f"--cond-policy window: the prior takes {c.cond_frames} conditioning frames but a window "
                             f"keeps only {(c.shape[0] - windows.stride) * dt} decoded frames; use a smaller "
                             "--stride or --cond-policy first")  # fmt: skip
        gens = [torch.Generator().manual_seed(x) for x in seeds]
        was_training = self.prior.training
        self.prior.eval()
        table = codebook_table(self.vqvae)
        decoder = SpanDecoder(self.vqvae, windows.latent_length)
        recent = None  # uint8 (N, T, H, W, C): the current window decoded as a clip, for the "window" policy
        codes = None
        try:
            for k, w in enumerate(windows.windows):
                n_new = c.shape[0] - w.context()
                u = torch.stack([torch.rand(n_new * per_frame, generator=g, dtype=torch.float64) for g in gens])
                sub = cond
                if k and c.cond_frames and cond_policy == "window":
                    at = (w.start - windows.windows[k - 1].start) * dt  # the window's first frame within ``recent``
                    f = recent[:, at : at + c.cond_frames].permute(0, 4, 1, 2, 3).float() / 255.0 - 0.5
                    sub = {**cond, "frames": f.to(cond["frames"].device)}  # (B, C, n, H, W) in [-0.5, 0.5]
                context = None if k == 0 else codes[:, w.start - windows.windows[k - 1].start :]
                codes = self.prior.sample_codes(table, total, sub, temperature, top_k, top_p, context=context,
                                                uniforms=u)  # fmt: skip  # (N, *shape)
                if c.cond_frames and cond_policy == "window" and k + 1 < len(windows.windows):
                    recent = decoder.clips(codes)
                yield from decoder.push(codes[:, w.context() :], recent)
        finally:
            self.prior.train(was_training)


class SpanDecoder:
    """Decodes a long latent sequence as it grows, window by window, into uint8 frames in time order.

    ``halo`` mode (the VQ-VAE's :meth:`time_reach` is defined): spans of ``chunk`` latent frames are decoded with
    ``halo`` latent frames of context on each side (fewer at the ends) and only their centre is kept, so every frame
    equals the frame of one decode of the whole sequence; memory holds one span. ``clip`` mode: each window is
    decoded as one training-length clip and the frames of its new latent frames are kept. Decodes run per clip
    (a sample never depends on the batch it shares). A sequence no longer than one window is decoded in one call
    in both modes: today's decode."""

    def __init__(self, vqvae: nn.Module, total: int):
        self.vqvae, self.total = vqvae, total
        self.window = int(vqvae.latent_shape[0])
        self.dt = int(vqvae.config.frames) // self.window
        reach = vqvae.time_reach() if hasattr(vqvae, "time_reach") else None
        self.halo = None if reach is None or total <= self.window else reach
        self.chunk = max(self.window, 2 * (self.halo or 0))
        self.buf, self.buf_start, self.emitted, self.end = None, 0, 0, 0

    @property
    def mode(self) -> str:
        return "clip" if self.halo is None else "halo"

    def clips(self, codes: torch.Tensor) -> torch.Tensor:
        """Windows (N, *latent) decoded as clips: uint8 (N, T, H, W, C)."""
        return torch.cat([to_uint8(self.vqvae.decode(x[None])).cpu() for x in codes])

    def _span(self, lo: int, hi: int) -> torch.Tensor:
        part = self.buf[:, lo - self.buf_start : hi - self.buf_start]
        return torch.cat([to_uint8(self.vqvae.decode_span(x[None])).cpu() for x in part])  # (N, f, H, W, C)

    def push(self, new: torch.Tensor, decoded: torch.Tensor | None = None):
        """Add the window's new latent frames (N, n, ...); yield (first_frame, uint8 (N, f, H, W, C)) chunks that
        are final. ``decoded``: this window already decoded as a clip (clip mode reuses it)."""
        start = self.end
        self.end += new.shape[1]
        if self.halo is None:  # clip mode: the window is the last T' latent frames
            if decoded is None:
                window = new if new.shape[1] == self.window else torch.cat([self.buf, new], 1)[:, -self.window :]
                decoded = self.clips(window)
            keep = decoded[:, (self.window - new.shape[1]) * self.dt :]
            self.buf = torch.cat([self.buf, new], 1)[:, -self.window :] if self.buf is not None else new
            yield start * self.dt, keep
            return
        self.buf = new if self.buf is None else torch.cat([self.buf, new], 1)
        while self.end - self.emitted >= self.chunk + self.halo or (self.end == self.total and self.emitted < self.end):
            hi = min(self.emitted + self.chunk, self.end)
            lo_ctx, hi_ctx = max(0, self.emitted - self.halo), min(self.end, hi + self.halo)
            frames = self._span(lo_ctx, hi_ctx)
            yield self.emitted * self.dt, frames[:, (self.emitted - lo_ctx) * self.dt : (hi - lo_ctx) * self.dt]
            self.emitted = hi
            drop = max(0, self.emitted - self.halo) - self.buf_start
            self.buf, self.buf_start = self.buf[:, drop:], self.buf_start + drop


# ----------------------------------------------------------------------------------------------------------
# Cards


def _vqvae_of(card, weights: bool, root, device=None) -> nn.Module:
    from vgbench import cards
    from vgbench.registry import ARCHS

    if not card.vqvae:
        raise CardError(f"card {card.name}", "vqvae", "a prior card names the VQ-VAE card it models")
    vq_card = cards.model(card.vqvae)
    with torch.device(device) if device is not None else nullcontext():
        return ARCHS.get(vq_card.arch)(vq_card, weights=weights, root=root)


def prior_config(card, vqvae: nn.Module | None = None, **overrides) -> GPTConfig:
    """The validated :class:`GPTConfig` of a prior card: the card's ``config``, the VQ-VAE's fields (from
    ``vqvae``, else from the card's VQ-VAE card, built on the meta device), then ``overrides``."""
    from vgbench import cards

    where = f"card {card.name}"
    for key in VQVAE_FIELDS:
        if key in card.config:
            raise CardError(where, f"config.{key}", f"comes from the VQ-VAE card ({card.vqvae or 'see vqvae'}); "
                            "a prior card does not set it")  # fmt: skip
    derived = vqvae_fields(vqvae if vqvae is not None else _vqvae_of(card, False, None, "meta"))
    return cards.build_config(GPTConfig, card, **{**derived, **overrides}).validate(where)


def card_summary(card) -> dict:
    """Latent grid and trainable parameter count of a prior card's full-size network (the frozen VQ-VAE not
    counted), built on the meta device: no memory, no compute (``vgbench list models``). Invalid cards raise
    :class:`CardError`."""
    config = prior_config(card)  # builds the card's VQ-VAE on the meta device for its fields
    with torch.device("meta"):
        prior = GPT(config)
    params = sum(p.numel() for p in prior.parameters() if p.requires_grad)
    return {"latent": "x".join(map(str, config.shape)), "params": params}


def from_card(card, weights: bool = True, root=None, vqvae: nn.Module | None = None, **overrides) -> VideoGPT:
    """The model factory's builder: the prior of ``card`` on its VQ-VAE (``vqvae``, or the card's VQ-VAE card).

    A prior card is trainable and ships no weights: ``weights=True`` is an error that says how to get them;
    ``weights=False`` gives the initialised network. ``overrides`` replace config fields (not the VQ-VAE's).
    """
    if weights and card.weights is None:
        raise CardError(
            f"card {card.name}", "weights",
            "a trainable prior card has no published weights: build it with weights=False (an initialised network) "
            "and train it (`vgbench train`), or load a trained checkpoint with vgbench.models.checkpoint",
        )  # fmt: skip
    if vqvae is None:
        vqvae = _vqvae_of(card, False, root)
    # A checkpoint's resolved config repeats the VQ-VAE's fields: accepted where they agree with the VQ-VAE.
    derived = vqvae_fields(vqvae)
    for key in sorted(set(overrides) & set(VQVAE_FIELDS)):
        given = tuple(overrides[key]) if isinstance(overrides[key], list | tuple) else overrides[key]
        if given != derived[key]:
            raise CardError(
                f"card {card.name}", f"config.{key}", "comes from the VQ-VAE; change the VQ-VAE instead",
                repr(derived[key]), given,
            )  # fmt: skip
        del overrides[key]
    config = prior_config(card, vqvae, **overrides)
    return VideoGPT(vqvae, GPT(config))


__all__ = [
    "GPT",
    "GPTConfig",
    "VideoGPT",
    "card_summary",
    "filter_logits",
    "from_card",
    "prior_config",
    "sample_tokens",
]
