"""The UCF-101 Inception Score (TGANv2 style) under named protocols.

Maths (tgan2 ``tgan2/evaluations/inception_score.py``; metrics.md §9.4), as pure functions: for each split of the
(N, K) float64 probabilities, p <- p + eps, KL_i = sum_y p_iy (log p_iy - log mean_j p_jy), score = exp(mean_i KL_i);
split s covers rows [s*n//splits, (s+1)*n//splits); 0 log 0 counts as 0. Protocols (``metrics/is.yaml``):
``is.tganv2`` = 10 fresh sets of 2048 with one split each, eps 1e-20; ``is.styleganv`` = one set of 2048 shuffled
with RandomState(42) into 10 splits, no eps. Both report mean and population std of their scores.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from vgbench import cache, cards, dist, models, validation
from vgbench.device import exact_math, resolve_device
from vgbench.errors import InputError
from vgbench.metrics.contract import MetricRequest, make_result
from vgbench.metrics.planning import plan_chunks, prefetch, progress
from vgbench.results import Result
from vgbench.video import SampleSet, generated_by

log = logging.getLogger(__name__)

PROBS_FORMAT = "vgbench-class-probabilities/1"


# ----------------------------------------------------------------------------------------------------------
# Pure maths


def split_scores(probs: np.ndarray, splits: int = 1, eps: float = 0.0) -> np.ndarray:
    """Inception Score of each of ``splits`` contiguous parts of ``probs`` (N, K), tgan2's formula and boundaries."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise InputError(f"probabilities must be (N, K), got shape {probs.shape}")
    n = len(probs)
    if not 1 <= splits <= n:
        raise InputError(f"cannot cut {n} samples into {splits} splits; need 1 <= splits <= N")
    scores = np.empty(splits, dtype=np.float64)
    for i in range(splits):
        part = probs[i * n // splits : (i + 1) * n // splits] + eps
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = part * (np.log(part) - np.log(part.mean(axis=0, keepdims=True)))
        # 0 log 0 = 0, the limit: where the references are finite this changes nothing; with eps = 0 and a
        # probability that underflowed to 0 they return NaN, vgbench the score that NaN stands for.
        kl = np.where(part > 0, kl, 0.0)
        scores[i] = np.exp(kl.sum(axis=1).mean())
    return scores


def inception_score(
    probs: np.ndarray, splits: int = 1, eps: float = 0.0, shuffle_seed: int | None = None
) -> tuple[float, float]:
    """(mean, population std) of :func:`split_scores`; ``shuffle_seed`` first shuffles rows with RandomState(seed)."""
    if shuffle_seed is not None:
        probs = np.array(probs, dtype=np.float64)
        np.random.RandomState(shuffle_seed).shuffle(probs)
    s = split_scores(probs, splits, eps)
    return float(s.mean()), float(s.std())


# ----------------------------------------------------------------------------------------------------------
# Inputs


def to_minus_one_one(batch: np.ndarray, value_range: str) -> np.ndarray:
    """A raw batch -> float32 in [-1, 1]: uint8 and 0-255 floats as (u - 128) / 128 (tgan2's data scaling),
    so that the classifier's 128 (x + 1) restores the pixel values exactly; 0-1 as 2x - 1; -1-1 as is."""
    x = batch.astype(np.float32, copy=False)
    if value_range == "0-255":
        return (x - np.float32(128.0)) / np.float32(128.0)
    if value_range == "0-1":
        return x * np.float32(2.0) - np.float32(1.0)
    return x


class C3DExtractor:
    """Softmax probabilities (B, 101) float64 of clips (B, T, H, W, 3) in [-1, 1], from a built C3D classifier."""

    def __init__(self, model: torch.nn.Module, exact: bool = True):
        self.model, self.exact = model, exact
        self.device = next(model.parameters()).device
        if self.device.type == "cpu":
            self.model.net.to(memory_format=torch.channels_last_3d)  # faster oneDNN convs, same maths

    @classmethod
    def from_card(cls, model_name: str, arrays: dict | None = None, device: str = "auto", exact: bool = True):
        """Build the card's classifier with :func:`vgbench.models.create` (``arrays`` in memory, else the cache)."""
        weights = arrays if arrays is not None else True
        return cls(models.create(model_name, weights=weights, device=resolve_device(device)), exact)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), exact_math(self.exact):
            return self.model(torch.from_numpy(np.ascontiguousarray(x)).to(self.device)).double().cpu().numpy()


def extract_probs(
    samples: SampleSet,
    extractor,
    frames: int,
    chunks: list[tuple[int, int]],
    batch_size: int,
    num_classes: int,
    need: validation.Need | None = None,
) -> list[np.ndarray]:
    """Per-sample probabilities (n, K) of each range in ``chunks``; under torchrun each process classifies its
    shard and the rows are summed across processes (each row is non-zero on exactly one). Videos are checked as
    they are read under ``need`` (default: ``frames`` frames each)."""
    rank, size = dist.rank_and_size()
    shards = [dist.shard(a, b, rank, size) for a, b in chunks]
    bar = progress(sum(hi - lo for lo, hi in shards), "samples", disable=rank != 0)
    out = []
    for (a, b), (lo, hi) in zip(chunks, shards, strict=True):
        full = np.zeros((b - a, num_classes), np.float64)
        pos = lo - a
        batches = samples.iter_batches(batch_size, lo, hi, frames=frames, min_frames=frames, need=need)
        for batch in prefetch(to_minus_one_one(b, samples.value_range) for b in batches):
            full[pos : pos + len(batch)] = extractor(batch)
            pos += len(batch)
            bar.update(len(batch))
        out.append(dist.all_reduce_sum([full])[0])
    bar.close()
    return out


def write_probs(path: str | Path, probs: list[np.ndarray], meta: dict) -> None:
    """Per-sample probabilities of every trial (.npz, no pickle), written atomically."""
    with cache.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            format=np.array(PROBS_FORMAT),
            meta=np.array(json.dumps(meta, sort_keys=True)),
            probs=np.concatenate(probs),
            trial_sizes=np.array([len(p) for p in probs], np.int64),
        )


# ----------------------------------------------------------------------------------------------------------
# The evaluation


def plan_samples(n: int, p, name: str, allow_fewer: bool = False) -> tuple[list[tuple[int, int]], list[str], bool]:
    """The video ranges of each trial for ``n`` samples under IS protocol ``p`` (``eval`` and ``doctor``):
    (chunks, notes, off_protocol); too few samples for the trials or the splits is an error."""
    chunks, notes, off = plan_chunks(n, p.num_samples, p.trials, "samples", name, allow_fewer)
    if chunks[0][1] - chunks[0][0] < p.splits:
        raise InputError(
            f"{name}: {chunks[0][1] - chunks[0][0]} samples per trial cannot make {p.splits} splits; "
            f"provide at least {p.splits} (the protocol wants {p.num_samples})"
        )
    return chunks, notes, off


def evaluate_is(
    request: MetricRequest,
    device: str = "auto",
    batch_size: int | None = None,
    allow_fewer: bool = False,
    samples_range: str | None = None,
    save_probs: str | Path | None = None,
    run: str = "",
    arrays: dict | None = None,
    backend: str = "torch",
) -> Result:
    """Inception Score of the request's samples under an ``is`` protocol.

    ``arrays`` = {"weights": ..., "mean": ...} overrides the cached files (tests). ``save_probs`` writes the
    per-sample probabilities for comparison with another implementation.
    """
    t0 = time.time()
    dist.maybe_init()
    card, p, name = request.card, request.protocol, request.name
    if backend != "torch":
        raise InputError(f"{name} has only the torch backend, got --backend {backend}")
    # Cheap before expensive: the samples' headers, counts and every video the protocol reads (pre-scan), and the
    # device, before the classifier is built or its weights fetched.
    fake = SampleSet.open(request.samples, samples_range)
    chunks, notes, off = plan_samples(fake.count, p, name, allow_fewer)
    need = validation.need_for(name, p)
    warnings = validation.check(fake, need, stop=max(b for _, b in chunks), per_trial=min(b - a for a, b in chunks))
    for w in warnings:
        log.warning("%s", w)
    resolve_device(device)
    fake.content_sha256()  # recorded in the result
    model_card = cards.model(card.extractor)
    extractor = C3DExtractor.from_card(model_card.name, arrays, device, p.exact)
    batch_size = batch_size or p.batch_size
    probs = extract_probs(fake, extractor, p.frames, chunks, batch_size, model_card.config["num_classes"], need)
    if save_probs is not None and dist.rank_and_size()[0] == 0:
        write_probs(save_probs, probs, {"protocol": name, "chunks": chunks, "source": fake.describe()})

    for w in validation.after_reading(fake, need):
        log.warning("%s", w)
        warnings.append(w)
    sampled, sidecar_notes = generated_by(fake)  # `vgbench sample`'s samples.json, when it describes these samples
    warnings += sidecar_notes
    values = []
    for trial in probs:
        if p.shuffle_seed is not None:
            trial = trial.copy()
            np.random.RandomState(p.shuffle_seed).shuffle(trial)
        values.extend(float(v) for v in split_scores(trial, p.splits, p.eps))
    from vgbench.metrics.uncertainty import Contributions

    contrib = Contributions(
        "inception",
        [{"probs": trial} for trial in probs],
        {"splits": p.splits, "eps": p.eps, "shuffle_seed": p.shuffle_seed},
        card.higher_is_better,
    )
    result = make_result(
        request,
        values,
        t0,
        n_samples=len(probs[0]),
        n_reference=0,
        samples={"role": request.role("samples"), **fake.describe(), **sampled},
        reference={},
        extractor={"name": model_card.name, **extractor.model.provenance},
        backend="torch",
        device=str(extractor.device),
        batch_size=batch_size,
        seed=p.shuffle_seed if p.shuffle_seed is not None else p.seed,
        off_protocol=off,
        notes=notes + warnings,
        run=run,
    )
    result.contributions = contrib
    return result
