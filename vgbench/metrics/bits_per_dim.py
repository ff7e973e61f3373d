"""bits/dim of a latent prior, per latent token (metrics.md §11; VideoGPT Tables 4, 6, 7).

bits/dim = mean over held-out clips and over every latent position (times the number of codebooks) of
-log2 p(z_i | z_<i, cond) = mean cross-entropy in nats / ln 2, teacher-forced with the training attention mask.
The paper calls it bits/dim, but its magnitudes are bits per *latent token* (8 x 32 x 32 latents stand for
16 x 64 x 64 x 3 sub-pixels, 24 times as many): every output labels it "bits/dim (per latent token)".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vgbench.metrics.accumulate import RatioAccumulator
from vgbench.metrics.runner import ClipMetric, evaluate_clips

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


class TokenNLL(RatioAccumulator):
    """bits/dim (per latent token): nats of every latent token, over the number of tokens, in bits."""

    scale = 1.0 / math.log(2)

    def update(self, nll: torch.Tensor, at: int) -> None:
        """Token NLLs (B, S) in nats of clips ``at ..``."""
        self.add(at, nll.double().sum(1), nll.shape[1], float(nll.double().sum()), nll.numel())

    def compute(self) -> float:
        nats, tokens = self.states["total"]
        return bits_per_token(float(nats), int(tokens))


class BitsPerDimMetric(ClipMetric):
    """bits/dim of a prior checkpoint: teacher-forced token NLLs of each reference clip's codes."""

    count_note = "only {count} clips scored (the protocol names {wanted})"

    def check(self, request, plan, device) -> None:
        from vgbench.errors import InputError
        from vgbench.metrics.derived import load_checkpoint

        self.model, self.ck, plan.device = load_checkpoint(request.checkpoint, device)
        if self.ck.vqvae is None:
            raise InputError(
                f"{request.checkpoint}: a VQ-VAE checkpoint ({self.ck.card}); bits/dim needs a prior checkpoint "
                "(prior/checkpoints/*.pt)"
            )
        p, prior = request.protocol, self.model.prior.config
        self.need = getattr(prior, "cond_frames", 0)
        if (p.conditioning_frames or 0) != self.need:
            raise InputError(
                f"protocol {request.name} conditions on {p.conditioning_frames or 0} frame(s), the prior "
                f"{self.ck.card} on {self.need}; pass --set conditioning_frames={self.need or 'null'} (the result is "
                "then marked off-protocol)"
            )
        self.labelled = bool(getattr(prior, "n_classes", 0))
        if self.labelled:
            plan.notes.append("class-conditional prior: conditioned on the reference clips' labels")

    def accumulator(self, request, plan) -> TokenNLL:
        return TokenNLL(plan.n)

    def update(self, acc: TokenNLL, batch, at: int, plan) -> None:
        from vgbench.tensors import to_model_input

        x = to_model_input(batch, self.model.vqvae.config.in_channels, plan.device)
        cond = {}
        if self.need:
            cond["frames"] = x[:, :, : self.need]
        if self.labelled:
            cond["label"] = torch.tensor(plan.src.labels(at, at + len(batch)), device=plan.device)
        acc.update(self.model.token_nll(x, cond or None), at)  # (B, S) nats

    def fields(self, request, plan, acc: TokenNLL) -> dict:
        nats, tokens = acc.states["total"]
        prior = self.model.prior.config
        return {
            "samples": {"role": "latent codes of the reference clips", "tokens": int(tokens), "nats": float(nats)},
            "extractor": {"prior": self.ck.card, "vqvae": self.ck.vqvae["card"],
                          "attention": getattr(prior, "attention", "")},  # fmt: skip
            "checkpoint": self.ck.describe(),
        }


def evaluate_bits_per_dim(request, device: str = "auto", batch_size: int | None = None, run: str = ""):
    """bits/dim (per latent token) of a prior checkpoint on the ``--reference`` clips, teacher-forced with the
    attention mask it was trained with, conditioned as the protocol says; sharded over torchrun processes."""
    return evaluate_clips(request, BitsPerDimMetric(), device, batch_size, run)
