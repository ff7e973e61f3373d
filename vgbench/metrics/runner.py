"""One runner for the metrics scored clip by clip over a reference (NMSE, bits/dim, PSNR, SSIM, continuity).

What every such engine did on its own before, done once: plan the reference clips and their count, run the
engine's cheap checks before any network is built, shard the clips over torchrun processes, iterate batches without
gradients, one all-reduce of the accumulator's states, then the record (reference identity, device, batch, seed,
notes) with the per-video contributions for the interval. An engine is a :class:`ClipMetric`: what one batch adds
and what its record says.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vgbench import dist
from vgbench.errors import InputError
from vgbench.metrics.accumulate import Accumulator
from vgbench.metrics.contract import MetricRequest, make_result
from vgbench.metrics.derived import ClipSource


@dataclass
class Plan:
    """The reference clips as planned, before any network runs."""

    src: ClipSource
    n: int  # clips scored
    batch_size: int
    device: torch.device | None = None
    notes: list[str] = field(default_factory=list)
    off_protocol: bool = False


class ClipMetric:
    """An engine over reference clips. The runner calls, in order: ``source`` (the clips), ``check`` (cheap checks
    and notes, the device), ``open`` (networks, derived sets), ``accumulator``, ``update`` per batch, ``fields``."""

    count_note = "only {count} clips scored"  # when the protocol names more clips than the reference holds

    def source(self, request: MetricRequest) -> ClipSource:
        """The reference clips, after the cheapest check of all: that the checkpoint file exists."""
        if request.checkpoint is not None and not Path(request.checkpoint).exists():
            raise InputError(f"{request.checkpoint}: no such checkpoint")
        p = request.protocol
        return ClipSource(request.reference, p.frames, p.windows, p.seed)

    def check(self, request: MetricRequest, plan: Plan, device: str) -> None:
        """Cheap checks (raise) and notes; may set ``plan.device``."""

    def open(self, request: MetricRequest, plan: Plan, device: str) -> None:
        """Build what the batches need (networks, derived sets); set ``plan.device`` if ``check`` did not."""

    def accumulator(self, request: MetricRequest, plan: Plan) -> Accumulator:
        raise NotImplementedError

    def update(self, acc: Accumulator, batch, at: int, plan: Plan) -> None:
        raise NotImplementedError

    def fields(self, request: MetricRequest, plan: Plan, acc: Accumulator) -> dict[str, Any]:
        """The record's samples, extractor, checkpoint (and any other) fields."""
        return {}


def evaluate_clips(
    request: MetricRequest, metric: ClipMetric, device: str = "auto", batch_size: int | None = None, run: str = ""
):
    """Score ``request`` with ``metric`` over the reference clips; sharded under torchrun."""
    t0 = time.time()
    dist.maybe_init()
    p = request.protocol
    src = metric.source(request)
    n = src.count if p.num_samples is None else min(p.num_samples, src.count)
    plan = Plan(src, n, batch_size or p.batch_size)
    metric.check(request, plan, device)
    if p.num_samples is not None and src.count < p.num_samples:
        plan.notes.append(metric.count_note.format(count=src.count, wanted=p.num_samples))
    metric.open(request, plan, device)
    acc = metric.accumulator(request, plan)
    rank, world = dist.rank_and_size()
    lo, hi = dist.shard(0, n, rank, world)
    with torch.no_grad():
        for at, batch in zip(range(lo, hi, plan.batch_size), src.batches(plan.batch_size, lo, hi), strict=True):
            metric.update(acc, batch, at, plan)
    acc.sync()
    fields = metric.fields(request, plan, acc)
    result = make_result(
        request,
        [float(acc.compute())],
        t0,
        n_samples=n,
        n_reference=n,
        reference={"role": request.inputs.reference, **src.identity()},
        backend="torch",
        device=str(plan.device),
        batch_size=plan.batch_size,
        seed=p.seed,
        notes=plan.notes + fields.pop("notes", []),
        off_protocol=plan.off_protocol,
        run=run,
        **fields,
    )
    result.contributions = acc.contributions(request.card.higher_is_better)
    return result
