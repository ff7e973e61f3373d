"""Attention building blocks of the VideoGPT prior: LayerNorm (with VideoGPT's epsilon quirk as an option),
self- and cross-attention through ``torch.nn.functional.scaled_dot_product_attention``, the KV cache, and the
"local and strided" sparse layout as a dense boolean mask.

Why a dense mask (videogpt.md §5, §8 item 8): both VideoGPT code bases run the sparse layout through DeepSpeed's
block-sparse kernels (DeepSpeed 0.3.1, triton 0.2.3, CUDA 10.1), so a teacher-forced pass (likelihood, bits/dim,
fine-tuning) cannot run without them. The layout is re-implemented here as ``allow[q, k] = layout[q // 32, k // 32]
and k <= q``, which is exactly what DeepSpeed computes (its diagonal blocks carry a lower-triangular mask and the
layout holds only blocks at or below the diagonal). SDPA then picks its kernel: flash / memory-efficient on CUDA,
the fused CPU kernel otherwise. FlexAttention's block mask would skip the masked blocks, but it needs
``torch.compile`` to be fast, and without a GPU to show it faster and equal it is not used here (a future option:
the layout functions below are what its ``mask_mod`` would read).

The projections follow the paper's code (VGP): q, k and v without bias, initialised N(0, 1/dim_in); the output
projection N(0, 1/(dim_q * n_layer)), with bias only when asked (the clean repository's variant has one).
Self-attention stores q, k and v as one fused matrix (one GEMM per step while sampling); an importer of the
reference's separate ``w_qs``/``w_ks``/``w_vs`` concatenates them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------------------------------------------------
# LayerNorm


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5, quirk: bool = False):
    """LayerNorm over the last axis, computed in float32 and returned in ``x``'s dtype.

    standard: ``(x - mu) * rsqrt(var + eps) * weight + bias``;
    ``quirk=True`` (VG and VGP ``LayerNorm``): ``(x - mu) * (eps + rsqrt(var)) * weight + bias``, the epsilon added
    after the reciprocal square root (videogpt.md §4, §8 item 1). ``var`` is the biased variance. ``weight`` and
    ``bias`` broadcast against ``x``: (C,) for a plain norm, (B, 1, C) for a conditional one.
    """
    xf = x.float()
    if not quirk and weight.dim() == 1:
        return F.layer_norm(xf, xf.shape[-1:], weight.float(), bias.float(), eps).type_as(x)
    var, mu = torch.var_mean(xf, dim=-1, unbiased=False, keepdim=True)
    scale = var.rsqrt() + eps if quirk else (var + eps).rsqrt()
    return torch.addcmul(bias.float(), (xf - mu) * scale, weight.float()).type_as(x)


class LayerNorm(nn.Module):
    """LayerNorm with a learned gain and bias; ``quirk`` selects VideoGPT's epsilon placement (see
    :func:`layer_norm`). Called as ``norm(x, c)`` like the conditional norm; ``c`` is ignored."""

    def __init__(self, dim: int, quirk: bool = False, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.quirk, self.eps = quirk, eps

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return layer_norm(x, self.weight, self.bias, self.eps, self.quirk)


# ----------------------------------------------------------------------------------------------------------
# Sparse "local and strided" layout (VG/VGP StridedSparsityConfig, videogpt.md §5)


def sparse_block_grid(shape: tuple[int, ...], block: int = 32) -> tuple[int, ...]:
    """The block grid of the strided layout: fold trailing latent axes, starting from the last, until their
    product exceeds ``block``; that product must be a multiple of ``block``.

    (4, 32, 32) -> (4, 32); (8, 32, 32) -> (8, 32); (4, 16, 16) -> (4, 8); (1, 64, 64) -> (1, 64, 2).
    Raises ValueError when the folded product is not a multiple of ``block``.
    """
    prod, i = 1, len(shape) - 1
    for i in range(len(shape) - 1, -1, -1):
        prod *= shape[i]
        if prod > block:
            break
    if prod % block:
        raise ValueError(
            f"latent grid {tuple(shape)} cannot be cut into {block}-token blocks: its trailing axes fold to {prod}, "
            f"not a multiple of {block}"
        )
    return (*shape[:i], prod // block)


def sparse_block_layout(shape: tuple[int, ...], block: int = 32, local_blocks: int = 4) -> torch.Tensor:
    """Causal block layout (n_blocks, n_blocks) bool: row r attends to blocks r - local_blocks .. r ("local") and,
    for every block-grid axis but the last, to the blocks that differ from r only by a smaller or equal index on
    that axis ("strided"). The same layout serves every head."""
    grid = sparse_block_grid(shape, block)
    n = math.prod(grid)
    r = torch.arange(n)
    dist = r[:, None] - r[None, :]  # (n, n) row - column
    layout = (dist >= 0) & (dist <= local_blocks)
    idx = torch.stack(torch.unravel_index(r, grid), dim=-1)  # (n, len(grid)) block coordinates
    same = idx[:, None, :] == idx[None, :, :]  # (n, n, len(grid))
    for d in range(len(grid) - 1):
        others = torch.cat([same[..., :d], same[..., d + 1 :]], dim=-1).all(dim=-1)
        layout |= others & (idx[None, :, d] <= idx[:, None, d])
    return layout


def sparse_decode_keys(shape: tuple[int, ...], block: int = 32, local_blocks: int = 4) -> list[torch.Tensor]:
    """Per block row r, the sorted key positions of the blocks r attends to (its own block last). Position i
    attends to the first ``len - block + i % block + 1`` of its block row's list: the mask row of
    :func:`sparse_attention_mask` as indices."""
    layout = sparse_block_layout(shape, block, local_blocks)
    offsets = torch.arange(block)
    return [(row.nonzero()[:, 0, None] * block + offsets).flatten() for row in layout]


def sparse_attention_mask(shape: tuple[int, ...], block: int = 32, local_blocks: int = 4) -> torch.Tensor:
    """Dense (S, S) bool mask of the sparse layout: ``allow[q, k] = layout[q // block, k // block] and k <= q``.

    The ``k <= q`` term is the lower triangle DeepSpeed applies inside diagonal blocks; off-diagonal blocks of the
    layout lie strictly below the diagonal, where it is always true.
    """
    layout = sparse_block_layout(shape, block, local_blocks)
    s = math.prod(shape)
    blk = torch.arange(s) // block
    return layout[blk][:, blk] & torch.ones(s, s, dtype=torch.bool).tril()


# ----------------------------------------------------------------------------------------------------------
# Attention


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, s, c = x.shape
    return x.view(b, s, heads, c // heads).transpose(1, 2)  # (B, h, S, d)


def _merge(x: torch.Tensor) -> torch.Tensor:
    b, h, s, d = x.shape
    return x.transpose(1, 2).reshape(b, s, h * d)  # (B, S, h*d)


class KVCache:
    """Keys and values of one self-attention layer while sampling: (B, h, S, d) each, filled one position per
    step; step i attends over positions 0..i."""

    def __init__(self, batch: int, heads: int, seq_len: int, qk_dim: int, v_dim: int, device, dtype):
        self.k = torch.zeros(batch, heads, seq_len, qk_dim // heads, device=device, dtype=dtype)
        self.v = torch.zeros(batch, heads, seq_len, v_dim // heads, device=device, dtype=dtype)


class SelfAttention(nn.Module):
    """Multi-head causal self-attention: full (``is_causal``) or masked by a dense boolean mask."""

    def __init__(self, dim: int, heads: int, qk_dim: int, v_dim: int, n_layer: int, dropout: float = 0.0,
                 out_bias: bool = False):  # fmt: skip
        super().__init__()
        self.heads, self.qk_dim, self.v_dim, self.dropout = heads, qk_dim, v_dim, dropout
        self.qkv = nn.Linear(dim, 2 * qk_dim + v_dim, bias=False)  # rows: q, k, v
        self.out = nn.Linear(v_dim, dim, bias=out_bias)
        nn.init.normal_(self.qkv.weight, std=1.0 / math.sqrt(dim))
        nn.init.normal_(self.out.weight, std=1.0 / math.sqrt(dim * n_layer))
        if out_bias:
            nn.init.zeros_(self.out.bias)

    def _project(self, x: torch.Tensor):
        q, k, v = self.qkv(x).split([self.qk_dim, self.qk_dim, self.v_dim], dim=-1)
        return _heads(q, self.heads), _heads(k, self.heads), _heads(v, self.heads)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced: ``x`` (B, S, C); ``mask`` (S, S) bool (True = attend) or None for full causal."""
        q, k, v = self._project(x)  # (B, h, S, d)
        p = self.dropout if self.training else 0.0
        if mask is None:
            a = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.out(_merge(a))  # (B, S, C)

    def prefill(self, x: torch.Tensor, cache: KVCache, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced pass over the first n positions of a window (the context a sliding window keeps):
        ``x`` (B, n, C); writes their k, v into ``cache`` positions 0..n-1 and returns the same output as
        :meth:`forward` on them (``mask`` the (n, n) corner of the window's mask, or None for full causal)."""
        q, k, v = self._project(x)  # (B, h, n, d)
        n = x.shape[1]
        cache.k[:, :, :n] = k
        cache.v[:, :, :n] = v
        if mask is None:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(_merge(a))  # (B, n, C)

    def step(self, x: torch.Tensor, cache: KVCache, i: int, keys: torch.Tensor | None = None) -> torch.Tensor:
        """One sampling step at flat position ``i``: ``x`` (B, 1, C); writes this position's k, v into ``cache``
        and attends over positions 0..i, or only over the positions ``keys`` (sorted, ending at i) that the sparse
        layout allows: gathering them reads a few hundred cached keys instead of all i + 1 (decoding is bound by
        reading the cache), with the same result as masking the others."""
        q, k, v = self._project(x)  # (B, h, 1, d)
        cache.k[:, :, i : i + 1] = k
        cache.v[:, :, i : i + 1] = v
        if keys is None:
            ks, vs = cache.k[:, :, : i + 1], cache.v[:, :, : i + 1]  # (B, h, i + 1, d)
        else:
            ks, vs = cache.k.index_select(2, keys), cache.v.index_select(2, keys)  # (B, h, len(keys), d)
        a = F.scaled_dot_product_attention(q, ks, vs)  # (B, h, 1, d)
        return self.out(_merge(a))  # (B, 1, C)


class CrossAttention(nn.Module):
    """Multi-head attention from the prior's positions to conditioning features (no mask, no attention dropout,
    as in both reference code bases). Keys and values are projected once per conditioning input
    (:meth:`memory`) and reused by every position and every sampling step."""

    def __init__(self, dim: int, memory_dim: int, heads: int, qk_dim: int, v_dim: int, n_layer: int,
                 out_bias: bool = False):  # fmt: skip
        super().__init__()
        self.heads, self.qk_dim, self.v_dim = heads, qk_dim, v_dim
        self.q = nn.Linear(dim, qk_dim, bias=False)
        self.kv = nn.Linear(memory_dim, qk_dim + v_dim, bias=False)  # rows: k, v
        self.out = nn.Linear(v_dim, dim, bias=out_bias)
        nn.init.normal_(self.q.weight, std=1.0 / math.sqrt(dim))
        nn.init.normal_(self.kv.weight, std=1.0 / math.sqrt(memory_dim))
        nn.init.normal_(self.out.weight, std=1.0 / math.sqrt(dim * n_layer))
        if out_bias:
            nn.init.zeros_(self.out.bias)

    def memory(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of the conditioning ``features`` (B, M, Cm): two (B, h, M, d) tensors."""
        k, v = self.kv(features).split([self.qk_dim, self.v_dim], dim=-1)
        # contiguous once: every sampling step reads them, and SDPA on the strided head view cost 0.63 ms per call
        # instead of 0.35 ms (batch 32, 4 heads, 256 keys, CPU)
        return _heads(k, self.heads).contiguous(), _heads(v, self.heads).contiguous()

    def forward(self, x: torch.Tensor, memory: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        q = _heads(self.q(x), self.heads)  # (B, h, S, d)
        a = F.scaled_dot_product_attention(q, *memory)  # (B, h, S, d)
        return self.out(_merge(a))  # (B, S, C)


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU approximated as x * sigmoid(1.702 x) (``GeLU2`` in both reference code bases)."""
    return x * torch.sigmoid(1.702 * x)


class MLP(nn.Module):
    """Position-wise feed-forward block: Linear -> x·sigmoid(1.702x) -> Linear, both with bias (PyTorch init)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(quick_gelu(self.fc1(x)))
