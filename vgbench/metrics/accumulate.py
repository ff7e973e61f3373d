"""Accumulators: what one batch adds to a metric, in the torchmetrics shape.

An accumulator holds named float64 states. ``update`` adds a batch, ``merge`` adds another accumulator's states
(two halves of a set give the statistics of the whole), ``sync`` sums the states of every torchrun process in one
all-reduce, ``compute`` gives the value and ``contributions`` what each video added, so that
:mod:`vgbench.metrics.uncertainty` can resample videos without running a network again.

Per-video states are rows indexed by the video's position in the whole set: each process fills the rows of its
own shard, so their sum over processes is a gather. The totals are summed batch by batch in the order the batches
come, exactly as the engines did before they shared this code (the values are bit-identical).

Each metric's accumulator lives beside its maths (``nmse.SquaredError``, ``bits_per_dim.TokenNLL``,
``psnr_ssim.FrameScoreMean``, ``continuity.PairingGain``); the engines over reference clips use them through
:func:`vgbench.metrics.runner.evaluate_clips`, and the trainer's validation uses the same classes, so a training
log states the numbers ``vgbench eval`` gives. The FVD family accumulates :class:`~vgbench.metrics.frechet.FeatureStats`
and the Inception Score class probabilities, whose engines plan trials of their own.
"""

from __future__ import annotations

import numpy as np
import torch

from vgbench import dist
from vgbench.metrics.uncertainty import Contributions


class Accumulator:
    """Named float64 states; subclasses say what a batch adds (``update``) and what the value is (``compute``)."""

    def __init__(self, **states: np.ndarray):
        self.states = {k: np.asarray(v, np.float64) for k, v in states.items()}

    def merge(self, other: Accumulator) -> Accumulator:
        """Add ``other``'s states to these (another shard or another part of the same set)."""
        if type(other) is not type(self) or other.states.keys() != self.states.keys():
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        for k, v in other.states.items():
            self.states[k] = self.states[k] + v
        return self

    def sync(self) -> Accumulator:
        """Sum every state over the torchrun processes (one all-reduce call; a no-op in one process)."""
        names = list(self.states)
        for k, v in zip(names, dist.all_reduce_sum([self.states[k] for k in names]), strict=True):
            self.states[k] = v
        return self

    def compute(self) -> float:
        raise NotImplementedError

    def contributions(self) -> Contributions:
        raise NotImplementedError


class RatioAccumulator(Accumulator):
    """A value that is ``scale * sum(num) / sum(den)`` over videos: ``total`` = [sum num, sum den] and one
    (num, den) row per video."""

    scale: float | None = None  # recorded with the contributions (value = scale * sum num / sum den) when set

    def __init__(self, n: int):
        super().__init__(total=np.zeros(2), per_video=np.zeros((2, n)))

    def add(self, at: int, num: torch.Tensor, den: torch.Tensor | float, batch_num: float, batch_den: float) -> None:
        """Rows ``at .. at + len(num)`` get ``num`` and ``den`` (per video); the totals grow by the batch's sums."""
        rows = self.states["per_video"]
        k = len(num)
        rows[0, at : at + k] = num.cpu().numpy() if isinstance(num, torch.Tensor) else num
        rows[1, at : at + k] = den.cpu().numpy() if isinstance(den, torch.Tensor) else den
        self.states["total"][0] += batch_num
        self.states["total"][1] += batch_den

    @property
    def count(self) -> float:
        return float(self.states["total"][1])

    def contributions(self, higher_is_better: bool = False) -> Contributions:
        rows = self.states["per_video"]
        params = {"scale": self.scale} if self.scale is not None else {}
        return Contributions("ratio", [{"num": rows[0], "den": rows[1]}], params, higher_is_better)


class CodeUsage(Accumulator):
    """How often each codebook entry is used (the trainer's VQ-VAE validation): usage and perplexity."""

    def __init__(self, n_codes: int):
        super().__init__(counts=np.zeros(n_codes))

    def update(self, codes: torch.Tensor) -> None:
        self.states["counts"] += torch.bincount(codes.flatten(), minlength=len(self.states["counts"])).cpu().numpy()

    def compute(self) -> dict:
        used = self.states["counts"]
        p = used / max(used.sum(), 1)
        nz = p[p > 0]
        return {"val_usage": float((used > 0).mean()), "val_perplexity": float(np.exp(-(nz * np.log(nz)).sum()))}
