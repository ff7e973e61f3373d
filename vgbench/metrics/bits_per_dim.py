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
    """bits/dim (per latent token) of a prior checkpoint on the ``--reference`` clips, teacher-forced with the
    attention mask it was trained with, conditioned as the protocol says; sharded over torchrun processes."""
    import time

    import numpy as np

    from vgbench import dist
    from vgbench.errors import InputError
    from vgbench.metrics import derived
    from vgbench.metrics.derived import ClipSource, load_checkpoint, to_model_input

    t0 = time.time()
    dist.maybe_init()
    p = request.protocol
    model, ck, dev = load_checkpoint(request.checkpoint, device)
    if ck.vqvae is None:
        raise InputError(
            f"{request.checkpoint}: a VQ-VAE checkpoint ({ck.card}); bits/dim needs a prior checkpoint "
            "(prior/checkpoints/*.pt)"
        )
    prior = model.prior.config
    need = getattr(prior, "cond_frames", 0)
    notes = []
    if (p.conditioning_frames or 0) != need:
        raise InputError(
            f"protocol {request.name} conditions on {p.conditioning_frames or 0} frame(s), the prior {ck.card} on "
            f"{need}; pass --set conditioning_frames={need or 'null'} (the result is then marked off-protocol)"
        )
    if getattr(prior, "n_classes", 0):
        notes.append("class-conditional prior: conditioned on the reference clips' labels")
    src = ClipSource(request.reference, p.frames, p.windows, p.seed)
    n = src.count if p.num_samples is None else min(p.num_samples, src.count)
    bs = batch_size or p.batch_size
    rank, world = dist.rank_and_size()
    lo, hi = dist.shard(0, n, rank, world)
    nats, tokens = 0.0, 0
    per_video = np.zeros((2, n), np.float64)  # NLL sum (nats) and token count of every clip, for the interval
    with torch.no_grad():
        for i, batch in zip(range(lo, hi, bs), src.batches(bs, lo, hi), strict=True):
            x = to_model_input(batch, model.vqvae.config.in_channels, dev)
            cond = {}
            if need:
                cond["frames"] = x[:, :, :need]
            if getattr(prior, "n_classes", 0):
                cond["label"] = torch.tensor(src.labels(i, i + len(batch)), device=dev)
            nll = model.token_nll(x, cond or None)  # (B, S) nats
            nats += float(nll.double().sum())
            tokens += nll.numel()
            per_video[0, i : i + len(nll)] = nll.double().sum(1).cpu().numpy()
            per_video[1, i : i + len(nll)] = nll.shape[1]
    nats, tokens = dist.all_reduce_sum([np.array([nats, float(tokens)])])[0]
    (per_video,) = dist.all_reduce_sum([per_video])  # each clip's row is filled by one process: a gather
    value = bits_per_token(float(nats), int(tokens))
    from vgbench.metrics.uncertainty import Contributions

    contrib = Contributions("ratio", [{"num": per_video[0], "den": per_video[1]}], {"scale": 1.0 / math.log(2)})
    result = derived.result(
        request,
        value,
        t0,
        n=n,
        src=src,
        device=dev,
        batch_size=bs,
        seed=p.seed,
        samples={"role": "latent codes of the reference clips", "tokens": int(tokens), "nats": float(nats)},
        extractor={"prior": ck.card, "vqvae": ck.vqvae["card"], "attention": getattr(prior, "attention", "")},
        notes=notes,
        run=run,
        checkpoint=ck.describe(),
    )
    result.contributions = contrib
    return result
