"""Training and sampling throughput of the VideoGPT models on this machine (issue 12's benchmark).

- **train**: clips/s of one optimiser step (forward, backward, Adam) of the VQ-VAE and the prior at the Moving MNIST
  cards (batch 2) and the BAIR cards (batch 1 and 2; the 16-layer BAIR prior over 8,192 tokens takes minutes per
  step on a CPU, so it is timed once, without warm-up, and only with ``--bair-prior``);
- **scaling**: the same global batch (4) of the Moving MNIST VQ-VAE in 1 process (2 threads) and in 2 gloo
  processes (1 thread each) under DistributedDataParallel: efficiency = rate(2) / rate(1) on 2 cores;
- **sampling**: videos/s and tokens/s of KV-cache sampling against the teacher-forced floor (a forward over the
  whole sequence at the same batch), quickstart and Moving MNIST priors;
- **data**: the ClipDataset loader alone (clips/s, float CTHW from a prepared store) against the training step it
  feeds, so that loading is never the bottleneck.

Run: ``python benchmarks/bench_train.py [--bair-prior]`` (about 5 minutes without the BAIR prior). Prints a table
and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch


def _model(card: str, vqvae=None):
    from vgbench import cards
    from vgbench.models import create

    return create(cards.model(card), weights=False, **({"vqvae": vqvae} if vqvae is not None else {}))


def _clips(card: str, batch: int) -> torch.Tensor:
    from vgbench import cards

    c = cards.model(card)
    vq = cards.model(c.vqvae).config if c.vqvae else c.config
    ch, t, r = vq.get("in_channels", 3), vq.get("frames", 16), vq.get("resolution", 64)
    return torch.rand(batch, ch, t, r, r) - 0.5


def train_rate(card: str, batch: int, steps: int, warmup: bool = True) -> tuple[float, float]:
    """(clips/s, seconds per step) of the fastest of ``steps`` optimiser steps."""
    torch.manual_seed(0)
    from vgbench import cards

    c = cards.model(card)
    if c.vqvae:
        vq = _model(c.vqvae).eval()
        net = _model(card, vq)
        params = [p for p in net.parameters() if p.requires_grad]
        n = getattr(net.config, "cond_frames", 0)

        def loss(x):
            return net.loss(x, {"frames": x[:, :, :n]} if n else None)[0]
    else:
        net = _model(card)
        params = list(net.parameters())

        def loss(x):
            return net(x).loss

    opt = torch.optim.Adam(params, 3e-4)
    x = _clips(card, batch)
    times = []
    for i in range(steps + (1 if warmup else 0)):
        t0 = time.perf_counter()
        loss(x).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i or not warmup:
            times.append(time.perf_counter() - t0)
    best = min(times)
    return batch / best, best


def _ddp_worker(rank: int, world: int, init: str, steps: int, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    rate, _ = _ddp_rate("vqvae.mmnist", 4 // world, steps, ddp=True)
    if rank == 0:
        Path(out).write_text(json.dumps(rate * world))
    dist.destroy_process_group()


def _ddp_rate(card: str, batch: int, steps: int, ddp: bool) -> tuple[float, float]:
    torch.manual_seed(0)
    net = _model(card)
    model = torch.nn.parallel.DistributedDataParallel(net, broadcast_buffers=False) if ddp else net
    opt = torch.optim.Adam(net.parameters(), 3e-4)
    x = _clips(card, batch)
    best = float("inf")
    for i in range(steps + 1):
        t0 = time.perf_counter()
        model(x).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:
            best = min(best, time.perf_counter() - t0)
    return batch / best, best


def scaling(steps: int) -> dict:
    import torch.multiprocessing as mp

    one, _ = _ddp_rate("vqvae.mmnist", 4, steps, ddp=False)
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_ddp_worker, args=(2, f"{d}/init", steps, f"{d}/rate"), nprocs=2, join=True)
        two = json.loads(Path(f"{d}/rate").read_text())
    return {"one_process_clips_s": one, "two_processes_clips_s": two, "efficiency": two / one}


def sampling(card: str, batch: int) -> dict:
    torch.manual_seed(0)
    from vgbench import cards

    c = cards.model(card)
    vq = _model(c.vqvae).eval()
    net = _model(card, vq).eval()
    x = _clips(card, batch)
    n = net.config.cond_frames
    cond = {"frames": x[:, :, :n]} if n else None
    tokens = batch * net.config.seq_len
    with torch.no_grad():
        net.token_nll(x, cond)  # warm-up
        t0 = time.perf_counter()
        net.token_nll(x, cond)
        floor = time.perf_counter() - t0
        t0 = time.perf_counter()
        net.sample(cond or batch, seeds=list(range(batch)), batch_size=batch)
        samp = time.perf_counter() - t0
    return {
        "batch": batch,
        "tokens": tokens,
        "floor_tokens_s": tokens / floor,
        "sampling_tokens_s": tokens / samp,
        "sampling_videos_s": batch / samp,
        "x_floor": samp / floor,
    }


def loader_rate(clips: int = 64, workers: int = 0) -> float:
    from vgbench import cards
    from vgbench.datasets import quickstart
    from vgbench.datasets.loader import ClipDataset
    from vgbench.datasets.store import Store

    with tempfile.TemporaryDirectory() as d:
        summary = quickstart.prepare(cards.dataset("quickstart"), root=d, counts={"train": clips, "test": 2})
        ds = ClipDataset(Store(summary.store), "train", output="float_cthw", channels=1)
        loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=workers)
        for _ in loader:  # warm-up (page cache, worker start)
            pass
        t0 = time.perf_counter()
        for _ in loader:
            pass
        return clips / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bair-prior", action="store_true", help="also time one step of the 16-layer BAIR prior")
    ap.add_argument("--steps", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    out: dict = {"threads": torch.get_num_threads(), "torch": torch.__version__, "train": {}}
    rows = [("vqvae.mmnist", 2), ("vqvae.bair", 1), ("vqvae.bair", 2), ("gpt.mmnist", 2), ("gpt.quickstart", 8)]
    for card, batch in rows:
        rate, sec = train_rate(card, batch, args.steps)
        out["train"][f"{card}@{batch}"] = {"clips_s": rate, "s_per_step": sec}
        print(f"train  {card:18s} batch {batch}: {rate:8.3f} clips/s  ({sec:.2f} s/step)", flush=True)
    if args.bair_prior:
        rate, sec = train_rate("gpt.bair", 1, 1, warmup=False)
        out["train"]["gpt.bair@1"] = {"clips_s": rate, "s_per_step": sec}
        print(f"train  gpt.bair           batch 1: {rate:8.4f} clips/s  ({sec:.1f} s/step, one step)", flush=True)
    out["scaling"] = scaling(args.steps)
    s = out["scaling"]
    print(f"scaling vqvae.mmnist global batch 4: 1 proc {s['one_process_clips_s']:.3f}, 2 gloo procs "
          f"{s['two_processes_clips_s']:.3f} clips/s: efficiency {s['efficiency']:.2f}", flush=True)  # fmt: skip
    out["sampling"] = {c: sampling(c, b) for c, b in (("gpt.quickstart", 32), ("gpt.mmnist", 8))}
    for c, r in out["sampling"].items():
        print(f"sample {c:18s} batch {r['batch']}: {r['sampling_videos_s']:.3f} videos/s, "
              f"{r['sampling_tokens_s']:.0f} tokens/s = {r['x_floor']:.2f} x the teacher-forced floor "
              f"({r['floor_tokens_s']:.0f} tokens/s)", flush=True)  # fmt: skip
    out["loader"] = {"workers0_clips_s": loader_rate(), "workers2_clips_s": loader_rate(workers=2)}
    step = out["train"]["vqvae.mmnist@2"]["clips_s"]
    out["loader"]["x_training_step"] = out["loader"]["workers0_clips_s"] / step
    print(f"loader alone {out['loader']['workers0_clips_s']:.1f} clips/s (2 workers "
          f"{out['loader']['workers2_clips_s']:.1f}) = {out['loader']['x_training_step']:.0f} x the vqvae.mmnist "
          "training step", flush=True)  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    main()
