"""The VideoGPT VQ-VAE as the paper describes it (``arch: videogpt_vqvae``; videogpt.md §1, §3, Appendix A).

    x (B, C, T, H, W) in [-0.5, 0.5]
    -> encoder: n = max(log2 d) strided "same" convs (stride 2 on an axis while it has downsampling left) + ReLU,
       a 3x3x3 conv, residual stack                                                -> (B, hidden, T', H', W')
    -> pre-quantisation 1x1x1 conv to C*D channels -> C EMA codebooks (channel slices of D) -> codes (B, *latent)
    -> post-quantisation conv -> residual stack -> n transposed convs (ReLU between, none after) -> recon

Residual block: ``x + f(x)``, f = norm -> ReLU -> conv3 (hidden -> res_hidden, no bias) -> norm -> ReLU ->
conv1 (res_hidden -> hidden, no bias) [-> norm -> ReLU -> + position embedding -> axial attention]. The stack ends
with norm -> ReLU. One learned position embedding of the latent grid is shared by every attention layer of the
encoder and the decoder. Loss = MSE(recon, x) / variance + commitment.

Choices where the paper and the code bases differ (the paper where it is explicit, VGP where it is not; each card's
``notes`` repeats the ones that affect it):
- norm: channel LayerNorm (paper §3); VG and VGP use (Sync)BatchNorm (``norm: batch``).
- strided encoder convs: kernel 3 (Appendix A "encoder filter size 3"); both code bases use 4 (``encoder_kernel``).
- upsampling convs: kernel 4 (Appendix A and both code bases).
- residual units 128 (paper, VGP); VG uses hidden / 2 = 120.
- post-quantisation conv 3x3x3 (VGP; the paper is silent); VG uses 1x1x1 (``post_vq_kernel``).
- attention: 2 heads, the three per-axis attentions summed, q/k/v without bias, output with bias, default Linear
  init, one shared position embedding of per-axis tables concatenated (VGP; the paper says only "axial attention"
  with shared learned position embeddings). VG sums the same way but has no position embedding.
- several codebooks: the pre-quantisation conv outputs C*D channels, sliced into C groups of D (paper Table 7
  "encoder output channels multiplied by C", VGP); so D need not be divisible by C.

vgbench's ``frame_wise`` (no paper card): every conv is one frame deep (kernels 1 x k x k), so with no temporal
downsampling latent frame t holds frame t alone; a prior then predicts each frame's codes from earlier frames only.

The padding of every conv is the reference's "same" padding with the extra pad in front (:mod:`.layers`).
Configured with ``norm: batch, res_hidden: 120, encoder_kernel: 4, post_vq_kernel: 1, pos_embedding: false`` the
network has VG's layer structure and exactly its 21,141,619 parameters (tested): the building blocks a VG-compatible
variant and checkpoint importer need (VG's separate w_qs/w_ks/w_vs map onto ``qkv`` by concatenation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from vgbench.errors import CardError, InputError, VgbenchError
from vgbench.models.codebook import EMACodebook
from vgbench.models.layers import (
    AxialAttention,
    BroadcastPositionEmbedding,
    SamePadConv3d,
    SamePadConvTranspose3d,
    make_norm,
)


@dataclass
class VQVAEConfig:
    """Configuration of the VQ-VAE (defaults: the paper's BAIR model, Appendix A)."""

    in_channels: int = 3
    frames: int = 16
    resolution: int = 64  # square frames
    downsample: tuple[int, ...] = (2, 2, 2)  # (t, h, w) powers of two
    latent: tuple[int, ...] | None = None  # optional statement of the latent shape (T', H', W'[, C]); checked
    hidden: int = 240
    res_hidden: int = 128  # Appendix A "residual units"; VG uses hidden // 2
    res_layers: int = 4
    attention: bool = True
    attn_heads: int = 2  # VGP vae_res64_*; the paper does not say
    pos_embedding: bool = True  # shared learned position embedding before every attention (paper, VGP); VG: none
    norm: Literal["layer", "batch"] = "layer"  # paper §3 LayerNorm; both code bases BatchNorm
    encoder_kernel: int = 3  # Appendix A "encoder filter size"; both code bases 4
    upsample_kernel: int = 4  # Appendix A "upsampling conv filter size"; the reference transposed conv needs s + 2
    post_vq_kernel: int = 3  # VGP decoder conv1; VG post_vq_conv is 1x1x1
    n_codes: int = 1024  # per codebook
    embedding_dim: int = 256  # D, per codebook
    n_codebooks: int = 1  # C (Table 7); the encoder emits C*D channels
    commitment: float = 0.25
    ema_decay: float = 0.99
    ema_eps: float = 1e-7  # Laplace smoothing of the EMA counts (VG, VGP)
    restart_threshold: float = 1.0  # codes with EMA count below it are restarted
    recon_variance: float | Literal["measured"] = 0.06  # NMSE divisor; "measured": the trainer sets it
    channels_last: bool = True  # channels-last-3d activations (faster oneDNN / cuDNN convs, same maths)
    frame_wise: bool = False  # vgbench: every conv is 1 frame deep, so latent frame t encodes frame t alone

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(T, H, W) of the clips."""
        return (self.frames, self.resolution, self.resolution)

    @property
    def grid(self) -> tuple[int, int, int]:
        """(T', H', W') latent grid."""
        return tuple(s // d for s, d in zip(self.input_shape, self.downsample, strict=True))  # type: ignore[return-value]

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """(T', H', W') for one codebook, (T', H', W', C) for C codebooks."""
        return self.grid if self.n_codebooks == 1 else (*self.grid, self.n_codebooks)


def validate(cfg: VQVAEConfig, where: str) -> None:
    """Impossible combinations -> CardError naming ``where`` (card) and ``config.FIELD``; cheap checks only."""

    def fail(field: str, problem: str, expected: str, got) -> None:
        raise CardError(where, f"config.{field}", problem, expected, got)

    for field in ("in_channels", "frames", "resolution", "hidden", "res_hidden", "n_codes", "embedding_dim",
                  "n_codebooks", "attn_heads", "encoder_kernel", "upsample_kernel", "post_vq_kernel"):  # fmt: skip
        if getattr(cfg, field) < 1:
            fail(field, "must be positive", ">= 1", getattr(cfg, field))
    if cfg.res_layers < 0:
        fail("res_layers", "must not be negative", ">= 0", cfg.res_layers)
    ds = cfg.downsample
    if len(ds) != 3 or any(d < 1 or d & (d - 1) for d in ds):
        fail("downsample", "needs three powers of two (t, h, w)", "e.g. [2, 2, 2] or [4, 2, 2]", list(ds))
    for axis, size, d in zip(("frames", "resolution", "resolution"), cfg.input_shape, ds, strict=True):
        if size % d:
            fail("downsample", f"does not divide the input ({axis} = {size})", f"a divisor of {size}", list(ds))
    if cfg.latent is not None and tuple(cfg.latent) != cfg.latent_shape:
        fail("latent", f"does not match input {cfg.input_shape} / downsample {list(ds)}"
             + (f" with {cfg.n_codebooks} codebooks" if cfg.n_codebooks > 1 else ""),
             str(list(cfg.latent_shape)), list(cfg.latent))  # fmt: skip
    if max(ds) > 1 and cfg.encoder_kernel < 2:
        fail("encoder_kernel", "a strided conv needs kernel >= stride 2", ">= 2", cfg.encoder_kernel)
    if max(ds) > 1 and cfg.upsample_kernel != 4:
        fail("upsample_kernel", "the reference transposed conv upsamples x2 exactly only with kernel 4", "4",
             cfg.upsample_kernel)  # fmt: skip
    if cfg.frame_wise and ds[0] != 1:
        fail("frame_wise", "convs one frame deep cannot downsample time",
             f"downsample [1, h, w] (got t = {ds[0]}), or frame_wise: false", cfg.frame_wise)  # fmt: skip
    if cfg.frame_wise and cfg.attention and cfg.res_layers:
        fail("frame_wise", "axial attention along time would mix the frames again",
             "attention: false, or frame_wise: false", cfg.frame_wise)  # fmt: skip
    if cfg.attention:
        if cfg.hidden % cfg.attn_heads:
            fail("attn_heads", f"does not divide hidden = {cfg.hidden}", f"a divisor of {cfg.hidden}", cfg.attn_heads)
        if cfg.pos_embedding and cfg.hidden % 3:
            fail("hidden", "the position embedding concatenates 3 per-axis tables", "a multiple of 3", cfg.hidden)
    if isinstance(cfg.recon_variance, float) and not cfg.recon_variance > 0:
        fail("recon_variance", "must be positive", "> 0 or 'measured'", cfg.recon_variance)
    if not 0 < cfg.ema_decay < 1:
        fail("ema_decay", "must lie in (0, 1)", "e.g. 0.99", cfg.ema_decay)
    if cfg.commitment < 0:
        fail("commitment", "must not be negative", ">= 0", cfg.commitment)


@dataclass
class VQVAEOutput:
    """One forward pass (``loss`` is what training minimises)."""

    recon: torch.Tensor  # (B, C, T, H, W) unclamped
    loss: torch.Tensor  # recon_loss + commitment_loss
    recon_loss: torch.Tensor  # MSE / variance (NMSE of this batch)
    commitment_loss: torch.Tensor
    codes: torch.Tensor  # (B, *latent_shape) int64
    perplexity: torch.Tensor  # exp(entropy of code use in this batch), mean over codebooks
    usage: torch.Tensor  # fraction of codes used in this batch, mean over codebooks


def kernel(cfg: VQVAEConfig, k: int) -> int | tuple[int, int, int]:
    """A conv's kernel: k on every axis, or (1, k, k) for a frame-wise model (nothing reaches across frames)."""
    return (1, k, k) if cfg.frame_wise else k


class ResidualBlock(nn.Module):
    """x + f(x); f = norm, ReLU, conv3 (no bias), norm, ReLU, conv1 (no bias) [, norm, ReLU, + pos, axial attn]."""

    def __init__(self, cfg: VQVAEConfig, attention: bool):
        super().__init__()
        C, R = cfg.hidden, cfg.res_hidden
        self.norm1 = make_norm(cfg.norm, C)
        self.conv1 = SamePadConv3d(C, R, kernel(cfg, 3), bias=False)
        self.norm2 = make_norm(cfg.norm, R)
        self.conv2 = SamePadConv3d(R, C, 1, bias=False)
        if attention:
            self.norm3 = make_norm(cfg.norm, C)
            self.attn = AxialAttention(C, cfg.attn_heads)
        else:
            self.norm3 = self.attn = None

    def forward(self, x: torch.Tensor, pos: BroadcastPositionEmbedding | None) -> torch.Tensor:  # (B, C, T, H, W)
        # in-place ReLUs: a norm's backward needs its input, not its output
        h = self.conv1(F.relu_(self.norm1(x)))  # (B, R, T, H, W)
        h = self.conv2(F.relu_(self.norm2(h)))  # (B, C, T, H, W)
        if self.attn is not None:
            h = self.attn(F.relu_(self.norm3(h)), pos)
        return x + h


class ResidualStack(nn.Module):
    """``res_layers`` residual blocks, then norm and ReLU."""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.blocks = nn.ModuleList(ResidualBlock(cfg, cfg.attention) for _ in range(cfg.res_layers))
        self.norm = make_norm(cfg.norm, cfg.hidden)

    def forward(self, x: torch.Tensor, pos: BroadcastPositionEmbedding | None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, pos)
        return F.relu_(self.norm(x))


def stride_schedule(downsample: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Strides of the down (and mirrored up) convs: 2 on an axis while it has downsampling left, else 1."""
    left = [int(math.log2(d)) for d in downsample]
    out = []
    while any(n > 0 for n in left):
        out.append(tuple(2 if n > 0 else 1 for n in left))
        left = [n - 1 for n in left]
    return out  # type: ignore[return-value]


class Encoder(nn.Module):
    """Strided convs + ReLU, a 3x3x3 conv, residual stack: (B, in, T, H, W) -> (B, hidden, T', H', W')."""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.convs = nn.ModuleList()
        c_in = cfg.in_channels
        for stride in stride_schedule(cfg.downsample):
            self.convs.append(SamePadConv3d(c_in, cfg.hidden, kernel(cfg, cfg.encoder_kernel), stride=stride))
            c_in = cfg.hidden
        self.conv_last = SamePadConv3d(c_in, cfg.hidden, kernel(cfg, 3))  # c_in, not a loop variable: VG quirk §8.9
        self.res_stack = ResidualStack(cfg)

    def forward(self, x: torch.Tensor, pos) -> torch.Tensor:
        for conv in self.convs:
            x = F.relu_(conv(x))  # a conv's backward needs its input, not its output
        return self.res_stack(self.conv_last(x), pos)


class Decoder(nn.Module):
    """Residual stack, then transposed convs (ReLU between, none after): (B, hidden, T', H', W') -> (B, in, T, H, W)."""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.res_stack = ResidualStack(cfg)
        strides = stride_schedule(cfg.downsample)
        self.convts = nn.ModuleList()
        for i, stride in enumerate(strides):
            c_out = cfg.in_channels if i == len(strides) - 1 else cfg.hidden
            self.convts.append(SamePadConvTranspose3d(cfg.hidden, c_out, kernel(cfg, cfg.upsample_kernel), stride))

    def forward(self, x: torch.Tensor, pos) -> torch.Tensor:
        x = self.res_stack(x, pos)
        for i, convt in enumerate(self.convts):
            x = convt(x)
            if i < len(self.convts) - 1:
                x = F.relu_(x)
        return x


class VQVAE(nn.Module):
    """The VideoGPT VQ-VAE. Inputs are float (B, C, T, H, W) in [-0.5, 0.5]; reconstructions are unclamped."""

    def __init__(self, config: VQVAEConfig, where: str = "VQVAEConfig"):
        super().__init__()
        validate(config, where)
        self.config = cfg = config
        self.latent_shape = cfg.latent_shape
        # one table of the latent grid shared by every attention layer of encoder and decoder
        use_pos = cfg.attention and cfg.pos_embedding and cfg.res_layers > 0
        self.pos_embd = BroadcastPositionEmbedding(cfg.grid, cfg.hidden) if use_pos else None
        self.encoder = Encoder(cfg)
        channels = cfg.n_codebooks * cfg.embedding_dim
        self.pre_vq_conv = SamePadConv3d(cfg.hidden, channels, 1)
        self.codebook = EMACodebook(cfg.n_codes, cfg.embedding_dim, cfg.n_codebooks, cfg.commitment, cfg.ema_decay,
                                    cfg.ema_eps, cfg.restart_threshold)  # fmt: skip
        self.post_vq_conv = SamePadConv3d(channels, cfg.hidden, kernel(cfg, cfg.post_vq_kernel))
        self.decoder = Decoder(cfg)
        variance = cfg.recon_variance if isinstance(cfg.recon_variance, float) else float("nan")
        self.register_buffer("recon_variance", torch.tensor(variance, dtype=torch.float64))  # saved with the model
        if cfg.channels_last:
            self.to(memory_format=torch.channels_last_3d)

    # -- inputs ---------------------------------------------------------------------------------------------
    def set_recon_variance(self, variance: float) -> None:
        """Set the NMSE divisor of a ``recon_variance: measured`` model (the training split's pixel variance)."""
        if not variance > 0:
            raise InputError(f"recon_variance must be positive, got {variance}")
        self.recon_variance.fill_(float(variance))

    def _check_video(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if x.ndim != 5 or x.shape[1] != cfg.in_channels:
            raise InputError(
                f"VQ-VAE input must be float (B, {cfg.in_channels}, T, H, W) in [-0.5, 0.5], got shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise InputError(
                f"VQ-VAE input must be float in [-0.5, 0.5], got dtype {x.dtype}; scale uint8 by /255 - 0.5"
            )
        size = tuple(x.shape[2:])
        if any(s % d for s, d in zip(size, cfg.downsample, strict=True)):
            raise InputError(
                f"clip size (T, H, W) = {size} is not divisible by the downsampling {tuple(cfg.downsample)}; "
                f"crop or resize the clips to multiples of it (this model expects {cfg.input_shape})"
            )
        if self.pos_embd is not None and size != cfg.input_shape:
            raise InputError(
                f"clip size (T, H, W) = {size} differs from the model's {cfg.input_shape}; its position embedding "
                f"is learned for the latent grid {cfg.grid}"
            )
        return x.contiguous(memory_format=torch.channels_last_3d) if cfg.channels_last else x

    def _check_codes(self, codes: torch.Tensor) -> None:
        cfg = self.config
        if codes.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool):
            raise InputError(f"codes must be an integer tensor, got dtype {codes.dtype}")
        if tuple(codes.shape[1:]) != self.latent_shape:
            raise InputError(
                f"codes must have shape (B, {', '.join(map(str, self.latent_shape))}), got {tuple(codes.shape)}"
            )
        if codes.numel():
            lo, hi = int(codes.min()), int(codes.max())
            if lo < 0 or hi >= cfg.n_codes:
                raise InputError(
                    f"codes out of range: min {lo}, max {hi}; this codebook has codes 0..{cfg.n_codes - 1}"
                )

    # -- passes ---------------------------------------------------------------------------------------------
    def _encode(self, x: torch.Tensor):
        z = self.pre_vq_conv(self.encoder(self._check_video(x), self.pos_embd))  # (B, C*D, T', H', W')
        return self.codebook(z)

    def _codes_out(self, codes: torch.Tensor) -> torch.Tensor:  # (B, T', H', W', C) -> (B, *latent_shape)
        return codes.squeeze(-1) if self.config.n_codebooks == 1 else codes

    def _decode_quantized(self, q: torch.Tensor) -> torch.Tensor:  # (B, C*D, T', H', W') -> (B, C, T, H, W)
        return self.decoder(self.post_vq_conv(q), self.pos_embd)

    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        """Encode, quantise (updating the codebook in training mode), decode; losses and code statistics."""
        vq = self._encode(x)
        recon = self._decode_quantized(vq.quantized)
        variance = self.recon_variance
        if torch.isnan(variance):
            raise VgbenchError(
                "this model's recon_variance is 'measured' and has not been set: call "
                "model.set_recon_variance(pixel variance of the training split) before computing the loss"
            )
        recon_loss = F.mse_loss(recon, x) / variance.to(recon.dtype)
        return VQVAEOutput(
            recon=recon,
            loss=recon_loss + vq.commitment_loss,
            recon_loss=recon_loss,
            commitment_loss=vq.commitment_loss,
            codes=self._codes_out(vq.codes),
            perplexity=vq.perplexity,
            usage=vq.usage,
        )

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes (B, *latent_shape) int64 of clips (B, C, T, H, W); never updates the codebook."""
        was_training = self.codebook.training
        self.codebook.eval()
        try:
            return self._codes_out(self._encode(x).codes)
        finally:
            self.codebook.train(was_training)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Codebook vectors (B, *latent_shape, D) of codes (B, *latent_shape): the prior's input."""
        self._check_codes(codes)
        c = codes if self.config.n_codebooks > 1 else codes.unsqueeze(-1)
        v = self.codebook.lookup(c.long())  # (B, T', H', W', C, D)
        return v if self.config.n_codebooks > 1 else v.squeeze(-2)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Reconstruction (B, C, T, H, W), unclamped, of codes (B, *latent_shape)."""
        v = self.embed(codes)
        B = v.shape[0]
        q = v.reshape(B, *self.config.grid, -1).permute(0, 4, 1, 2, 3)  # (B, C*D, T', H', W')
        if self.config.channels_last:
            q = q.contiguous(memory_format=torch.channels_last_3d)
        return self._decode_quantized(q)

    def time_reach(self) -> int | None:
        """Latent frames on either side that can reach a decoded frame: an upper bound from the decoder's kernels
        (post-quantisation conv, one 3-tap conv per residual block, the transposed convs), or None when the
        decoder attends along time or has a position embedding (then only a training-length clip is defined);
        0 for a frame-wise model."""
        cfg = self.config
        if cfg.frame_wise:
            return 0
        if self.pos_embd is not None or (cfg.attention and cfg.res_layers):
            return None
        return cfg.post_vq_kernel // 2 + cfg.res_layers + len(self.decoder.convts) * (cfg.upsample_kernel // 2) + 1

    def decode_span(self, codes: torch.Tensor) -> torch.Tensor:
        """Reconstruction (B, C, L·d_t, H, W) of codes (B, L, H', W'[, C]) of any latent length L: the decoder is
        convolutional in time when :meth:`time_reach` is not None (long videos decode in overlapping spans)."""
        if self.time_reach() is None:
            raise InputError("this VQ-VAE attends along time (or has a position embedding): it decodes only "
                             f"{self.latent_shape[0]} latent frames at a time")  # fmt: skip
        cfg = self.config
        c = codes if cfg.n_codebooks > 1 else codes.unsqueeze(-1)
        v = self.codebook.lookup(c.long())  # (B, L, H', W', C, D)
        q = v.flatten(-2).permute(0, 4, 1, 2, 3)  # (B, C*D, L, H', W')
        if cfg.channels_last:
            q = q.contiguous(memory_format=torch.channels_last_3d)
        return self._decode_quantized(q)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (the codebook is buffers, not parameters)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def card_summary(card) -> dict:
    """Latent shape and trainable parameter count of a card's full-size network, built on the meta device
    (no memory, no compute: for listings such as ``vgbench list models``); invalid cards raise CardError."""
    from vgbench import cards

    config = cards.build_config(VQVAEConfig, card)
    with torch.device("meta"):
        model = VQVAE(config, f"card {card.name}")
    return {"latent": "x".join(map(str, model.latent_shape)), "params": count_parameters(model)}


def from_card(card, weights: bool = True, root=None, **overrides) -> VQVAE:
    """The model factory's builder: a freshly initialised VQ-VAE of the card's config.

    Args:
        card: a ``videogpt_vqvae`` model card.
        weights: must be False: these models are trained by the user; a trained state is loaded from a vgbench
            checkpoint (``vgbench.models.checkpoint`` / ``vgbench train``), never from the card.
        root: unused (no published weights).
        **overrides: replace fields of the card's ``config`` (e.g. ``hidden=24`` for a reduced-width test).
    """
    from vgbench import cards

    where = f"card {card.name}"
    if weights and card.weights is None:
        raise VgbenchError(
            f"{card.name} has no published weights: it is trained with `vgbench train` and a trained state is "
            "loaded from its vgbench checkpoint (vgbench.models.checkpoint); build it with weights=False for an "
            "initialised network"
        )
    config = cards.build_config(VQVAEConfig, card, **overrides)
    if config.latent is not None and overrides and "latent" not in overrides:
        shape_fields = {"frames", "resolution", "downsample", "n_codebooks"}
        if shape_fields & set(overrides):  # a reduced-size override makes the card's stated latent moot
            config.latent = None
    return VQVAE(config, where)
