"""bits/dim of a latent prior, per latent token (metrics.md §11; VideoGPT Tables 4, 6, 7).

bits/dim = mean over held-out clips and over every latent position (times the number of codebooks) of
-log2 p(z_i | z_<i, cond) = mean cross-entropy in nats / ln 2, teacher-forced with the training attention mask.
The paper calls it bits/dim, but its magnitudes are bits per *latent token* (8 x 32 x 32 latents stand for
16 x 64 x 64 x 3 sub-pixels, 24 times as many): every output labels it "bits/dim (per latent token)".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LABEL = "bits/dim (per latent token)"


def token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-log p(target) in nats for every position: logits (..., K), targets (...) int64 -> (...) float64."""
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match targets {tuple(targets.shape)} (..., K)")
    k = logits.shape[-1]
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= k):
        raise ValueError(f"targets must lie in [0, {k}), got [{int(targets.min())}, {int(targets.max())}]")
    return F.cross_entropy(logits.reshape(-1, k).double(), targets.reshape(-1), reduction="none").view(targets.shape)


def bits_per_token(nats: float, tokens: int) -> float:
    """Total negative log-likelihood in nats over ``tokens`` latent tokens -> bits per token."""
    if tokens <= 0:
        raise ValueError(f"need at least one token, got {tokens}")
    return nats / tokens / math.log(2)


@dataclass
class NLLSum:
    """Streaming total NLL (nats, float64) and token count; ``compute`` gives bits per latent token."""

    nats: float = 0.0
    tokens: int = 0

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Add a batch of logits (..., K) and their targets (...)."""
        self.nats += float(token_nll(logits, targets).sum())
        self.tokens += targets.numel()

    def compute(self) -> float:
        """bits per latent token of everything added."""
        return bits_per_token(self.nats, self.tokens)


def evaluate_bits_per_dim(request, device: str = "auto", batch_size: int | None = None, run: str = ""):
    """bits/dim (per latent token) of the checkpoint's prior on the ``--reference`` split.

    ``request`` is a :class:`vgbench.metrics.contract.MetricRequest` (checkpoint, reference, BitsPerDimProtocol).
    """
    # lead: implemented in issue 12
    from vgbench.errors import VgbenchError

    raise VgbenchError(
        f"{request.name} needs a VideoGPT checkpoint; arrives with `vgbench train` (the prior models are not in "
        "this version yet)"
    )
