"""EMA vector-quantisation codebook of the VideoGPT VQ-VAE (videogpt.md §1, §3; paper §3.1, after Jukebox).

C codebooks of K codes of dimension D. The encoder output's C*D channels are sliced into C groups of D, each
quantised by its own codebook (Table 7; VGP ``Quantize``). Per training forward, in this order:

1. **Init** (first training forward only): the flattened encoder outputs of the batch, tiled with
   N(0, (0.01/sqrt(D))^2) noise when there are fewer than K, randomly permuted; the first K rows become both
   ``embeddings`` and ``z_avg``, and ``N = 1``. The ``initialized`` flag is a buffer, so it is saved and restored
   with the state dict (the reference keeps it as a plain attribute and re-initialises on resume: a bug).
2. **Assignment**: nearest code by squared L2; straight-through estimator; commitment loss
   beta * mean((z - sg[e])^2). There is no codebook loss: the codes move by EMA only.
3. **EMA**: ``N <- g N + (1 - g) counts``, ``z_avg <- g z_avg + (1 - g) sums``, then Laplace-smoothed counts
   ``w = (N + eps) / (n + K eps) * n`` with n = sum(N), and ``embeddings = z_avg / w`` (decay g = 0.99, eps = 1e-7).
4. **Dead-code restart**: codes with ``N < threshold`` (1.0) get their embedding replaced by a random (tiled,
   noised) encoder output of the current batch. ``N`` and ``z_avg`` are left alone, as in VG, VGP and Jukebox, so
   a dead code is overwritten every step until it is used.

Under ``torch.distributed`` (when initialised) the counts and sums are all-reduced before the EMA, and the init
and restart rows are drawn by rank 0 from the global batch (the ranks' batches in rank order; each rank supplies
the rows it holds), so every rank holds the same codebook, equal to one process's on the whole batch. Randomness
comes from the global torch RNG, so restoring the RNG state replays it. Nothing is updated in eval mode.

Library decision: ``vector-quantize-pytorch`` (lucidrains) was compared and not used. Its ``EuclideanCodebook``
has the same EMA and Laplace formula and an ``initted`` buffer, but it differs from the reference in what fixes
the numbers: it initialises by k-means (or random normal), not by copying shuffled encoder outputs; its dead-code
expiry also resets the restarted codes' cluster size and running sum; under DDP each rank contributes restart
samples instead of rank 0 broadcasting; its smoothing eps defaults to 1e-5 (reference 1e-7); and its buffer names
and (heads, K, D) layout differ from the checkpoints a VG importer must map. Matching the reference rule would
need options it does not have, so the ~150 lines here are written out, with the formulas tested on hand examples.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)


@dataclass
class CodebookOutput:
    """What one quantisation returns."""

    quantized: torch.Tensor  # (B, C*D, T, H, W) straight-through codebook vectors
    codes: torch.Tensor  # (B, T, H, W, C) int64
    commitment_loss: torch.Tensor  # scalar
    perplexity: torch.Tensor  # scalar: exp(entropy of code use in this batch), mean over codebooks
    usage: torch.Tensor  # scalar: fraction of codes used in this batch, mean over codebooks


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def ema_update(N, z_avg, counts, sums, decay: float, eps: float) -> torch.Tensor:
    """One EMA step in place; returns the new embeddings.

    N (C, K) and z_avg (C, K, D) are updated in place with counts (C, K) and sums (C, K, D) of this step;
    embeddings = z_avg / ((N + eps) / (n + K eps) * n), n = N.sum(-1) (Laplace-smoothed counts).
    """
    N.mul_(decay).add_(counts, alpha=1 - decay)
    z_avg.mul_(decay).add_(sums, alpha=1 - decay)
    n = N.sum(-1, keepdim=True)  # (C, 1)
    w = (N + eps) / (n + N.shape[-1] * eps) * n  # (C, K)
    return z_avg / w.unsqueeze(-1)


class EMACodebook(nn.Module):
    """C EMA codebooks of K codes in D dimensions; buffers ``embeddings`` (C, K, D), ``N`` (C, K), ``z_avg``
    (C, K, D) and ``initialized`` (bool), all in the state dict."""

    def __init__(self, n_codes: int, dim: int, n_codebooks: int = 1, commitment: float = 0.25, decay: float = 0.99,
                 eps: float = 1e-7, restart_threshold: float = 1.0):  # fmt: skip
        super().__init__()
        self.n_codes, self.dim, self.n_codebooks = n_codes, dim, n_codebooks
        self.commitment, self.decay, self.eps, self.restart_threshold = commitment, decay, eps, restart_threshold
        embeddings = torch.randn(n_codebooks, n_codes, dim)  # replaced by encoder outputs on the first batch
        self.register_buffer("embeddings", embeddings)
        self.register_buffer("N", torch.zeros(n_codebooks, n_codes))
        self.register_buffer("z_avg", embeddings.clone())
        self.register_buffer("initialized", torch.tensor(False))
        self._warned = False

    # -- pieces -------------------------------------------------------------------------------------------
    def _flatten(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C*D, T, H, W) -> (C, M, D) with M = B*T*H*W, positions in (b, t, h, w) raster order."""
        C, D = self.n_codebooks, self.dim
        flat = z.permute(0, 2, 3, 4, 1).reshape(-1, C, D)  # (M, C, D)
        return flat.transpose(0, 1)  # (C, M, D)

    def _random_rows(self, flat: torch.Tensor) -> torch.Tensor:
        """K random encoder outputs per codebook (C, K, D): tiled with small noise if M < K, then shuffled
        (VG/VGP ``_tile`` + ``randperm``). Under torch.distributed the rows are drawn from the *global* batch (the
        ranks' batches in rank order) with rank 0's RNG, so W processes pick exactly what one process would."""
        if _distributed():
            return self._random_rows_global(flat)
        return self._draw(flat.detach())

    def _draw(self, y: torch.Tensor) -> torch.Tensor:
        C, M, D = y.shape
        K = self.n_codes
        if M < K:
            y = y.repeat(1, (K + M - 1) // M, 1)
            y = y + torch.randn_like(y) * (0.01 / D**0.5)
        return torch.stack([y[c, torch.randperm(y.shape[1], device=y.device)[:K]] for c in range(C)])  # (C, K, D)

    def _random_rows_global(self, flat: torch.Tensor) -> torch.Tensor:
        y = flat.detach().contiguous()
        C, M, D = y.shape
        K, rank, world = self.n_codes, dist.get_rank(), dist.get_world_size()
        sizes = [torch.zeros(1, dtype=torch.int64, device=y.device) for _ in range(world)]
        dist.all_gather(sizes, torch.tensor([M], dtype=torch.int64, device=y.device))
        sizes = [int(s) for s in sizes]
        if len(set(sizes)) != 1:
            raise RuntimeError(f"codebook init/restart needs equal batches on every rank, got {sizes} rows")
        total = M * world
        if total < K:  # tiny global batch: gather it whole (cheap) and draw as one process would
            parts = [torch.empty_like(y) for _ in range(world)]
            dist.all_gather(parts, y)
            rows = (
                self._draw(torch.cat(parts, 1)) if rank == 0 else torch.empty(C, K, D, dtype=y.dtype, device=y.device)
            )
            dist.broadcast(rows, 0)
            return rows
        # rank 0 draws K global row indices per codebook; each rank fills in the rows it holds; a sum joins them
        idx = (
            torch.stack([torch.randperm(total, device=y.device)[:K] for _ in range(C)])
            if rank == 0
            else torch.empty(C, K, dtype=torch.int64, device=y.device)
        )  # (C, K)
        dist.broadcast(idx, 0)
        local = idx - rank * M
        mine = (local >= 0) & (local < M)
        rows = torch.zeros(C, K, D, dtype=y.dtype, device=y.device)
        gathered = torch.gather(y, 1, local.clamp(0, M - 1).unsqueeze(-1).expand(C, K, D))
        rows[mine] = gathered[mine]
        dist.all_reduce(rows)
        return rows

    @torch.no_grad()
    def _init(self, flat: torch.Tensor) -> None:
        rows = self._random_rows(flat)
        self.embeddings.copy_(rows)
        self.z_avg.copy_(rows)
        self.N.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, idx: torch.Tensor, counts: torch.Tensor) -> None:
        C, M, D = flat.shape
        sums = torch.zeros_like(self.z_avg).scatter_add_(1, idx.unsqueeze(-1).expand(C, M, D), flat)  # (C, K, D)
        counts = counts.clone()
        if _distributed():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.embeddings.copy_(ema_update(self.N, self.z_avg, counts, sums, self.decay, self.eps))
        dead = self.N.lt(self.restart_threshold)  # (C, K): the same on every rank (N is all-reduced)
        if bool(dead.any()):
            rows = self._random_rows(flat)
            self.embeddings.copy_(torch.where(dead.unsqueeze(-1), rows, self.embeddings))

    def nearest(self, flat: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
        """Index of the nearest code by squared L2 for (C, M, D) vectors -> (C, M) int64 (M in chunks, so the
        (C, chunk, K) distance block stays bounded)."""
        e = self.embeddings
        e2 = (e * e).sum(-1).unsqueeze(1)  # (C, 1, K)
        # |z|^2 is the same for every code of a row, so it is left out of the argmin
        out = [torch.baddbmm(e2, f, e.transpose(1, 2), alpha=-2.0).argmin(-1) for f in flat.split(chunk, 1)]
        return torch.cat(out, 1)  # (C, M)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codebook vectors of codes (..., C) -> (..., C, D)."""
        C = self.n_codebooks
        offset = torch.arange(C, device=codes.device) * self.n_codes
        return F.embedding(codes + offset, self.embeddings.reshape(C * self.n_codes, self.dim))

    # -- forward ------------------------------------------------------------------------------------------
    def forward(self, z: torch.Tensor) -> CodebookOutput:
        """Quantise encoder outputs z (B, C*D, T, H, W); in training mode also init / EMA / restart.

        Computed in float32 whatever the autocast state (distances and EMA sums need it)."""
        with torch.autocast(z.device.type, enabled=False):
            return self._forward(z.float())

    def _forward(self, z: torch.Tensor) -> CodebookOutput:
        B, _, T, H, W = z.shape
        C, K = self.n_codebooks, self.n_codes
        flat = self._flatten(z)  # (C, M, D)
        if self.training and not bool(self.initialized):
            self._init(flat.detach())
        elif not self.initialized and not self._warned:
            log.warning("codebook used before initialisation (no training forward yet, nor a checkpoint loaded)")
            self._warned = True
        idx = self.nearest(flat.detach())  # (C, M)
        counts = torch.zeros(C, K, device=z.device, dtype=flat.dtype).scatter_add_(
            1, idx, torch.ones_like(flat[..., 0])
        )
        codes = idx.t().reshape(B, T, H, W, C)  # (B, T, H, W, C)
        q = self.lookup(codes)  # (B, T, H, W, C, D)
        q = q.reshape(B, T, H, W, C * self.dim).permute(0, 4, 1, 2, 3)  # (B, C*D, T, H, W)
        commitment = self.commitment * F.mse_loss(z, q.detach())
        if self.training:
            self._update(flat.detach(), idx, counts)
        probs = counts / counts.sum(-1, keepdim=True)  # (C, K), local batch as in the reference
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum(-1)).mean()
        usage = (counts > 0).float().mean()
        return CodebookOutput(z + (q - z).detach(), codes, commitment, perplexity, usage)
