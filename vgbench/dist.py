"""torch.distributed helpers: under ``torchrun`` extraction shards across processes (gloo on CPU, NCCL on GPU)."""

from __future__ import annotations

import atexit
import os

import numpy as np


def maybe_init() -> tuple[int, int]:
    """Initialise the default process group when launched by torchrun; returns (rank, world_size)."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and dist.is_available() and not dist.is_initialized():
        import torch

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
        atexit.register(_destroy)
    return rank_and_size()


def _destroy() -> None:
    """Tear the process group down before interpreter exit: left to static destructors, gloo's context can abort
    a rank that exits after its peer ("terminate called without an active exception", exit -6)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_and_size() -> tuple[int, int]:
    """(rank, world size); (0, 1) when not distributed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(start: int, stop: int, rank: int, size: int) -> tuple[int, int]:
    """The contiguous part of [start, stop) that ``rank`` of ``size`` processes (sequential reads stay sequential)."""
    n = stop - start
    return start + n * rank // size, start + n * (rank + 1) // size


def all_reduce_sum(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Sum float64 arrays over all processes (identity when not distributed)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return arrays
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    out = []
    for a in arrays:
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)).to(device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        out.append(t.cpu().numpy())
    return out


def barrier() -> None:
    """Wait for every process (no-op when not distributed)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
