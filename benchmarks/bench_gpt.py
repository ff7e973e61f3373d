"""VideoGPT prior speed: vgbench's GPT against the clean reference (VG, wilson1yan/VideoGPT) at one configuration.

Run: python benchmarks/bench_gpt.py --vg PATH [--threads 2]
``PATH`` is a checkout of wilson1yan/VideoGPT or its bare git directory (its ``videogpt/`` is exported to a
temporary folder). VG's modules are imported at run time, never copied: a stand-in ``pytorch_lightning`` (only
``LightningModule = nn.Module``) and ``skvideo.io`` (imported by VG's utils for video saving) go into
``sys.modules``, and VG's ``torch.utils.checkpoint`` calls get ``use_reentrant=True`` (the only mode of the torch 1.7
VG was written for). Without ``--vg`` the script measures vgbench alone.

Configuration (issue 11's benchmark table): latent grid 4x16x16 (S = 1024), 1024 codes of dimension 256, prior
192 wide, 4 heads, 8 layers, FF 768, full causal attention, dropout 0.2, attention dropout 0.3, one 64x64 RGB
conditioning frame through ResNet-34 (240 units): VG's defaults at that width. Both models are the prior alone
(the VQ-VAE is not timed). Rows:
- train step: forward, backward and an Adam step at batch 4 (VG checkpoints every sublayer, as it always does in
  training; vgbench does not, its default);
- teacher-forced forward at batch 32 (the floor for sampling: the same tokens in one pass);
- KV-cache sampling at batch 32 over all 1024 positions (``--sparse`` adds the paper's sparse layout, whose steps
  gather only the keys of their mask row). VG's full run takes minutes, so it is timed over its first
  ``--vg-steps`` positions and extrapolated: step 0 (which also runs the ResNet) plus 1023 times the mean later
  step (VG's step cost is constant: it attends over the whole zero-padded cache and re-projects the frame
  features' keys and values in every layer at every step).

FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` on the same work at batch 1, scaled by the batch (every term
is linear in it). Counted FLOPs are what the kernels are asked to do: convolution taps over zero padding are
counted (VG's 3x3x3 convs on one frame: 2/3 of their taps read padding; vgbench runs those as 2D convs, so it is
not asked to do them), attention is counted dense over its keys (a causal mask does not halve it), and VG's
checkpoint recomputation is counted. PyTorch's counter has no formula for the CPU flash-attention kernels, so one
is registered here (torch's own SDPA formulas). GFLOP/s is compared with the ~170 GFLOP/s fp32 GEMM peak of the
development machine (2 threads; issue 11).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import itertools
import json
import subprocess
import sys
import tarfile
import tempfile
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from vgbench.models.gpt import GPT, GPTConfig

PEAK_GFLOPS = 170.0  # fp32 GEMM peak of the development machine at 2 threads (issue 11)
SHAPE, VOCAB, DIM, RES = (4, 16, 16), 1024, 256, 64
HIDDEN, HEADS, LAYERS, FF, RESNET_DIM = 192, 4, 8, 768, 240
S = 16 * 16 * 4


def vgbench_prior(attention: str = "full") -> GPT:
    return GPT(GPTConfig(shape=SHAPE, vocab_size=VOCAB, embedding_dim=DIM, frames=16, resolution=RES, hidden=HIDDEN,
                         heads=HEADS, layers=LAYERS, ff_hidden=FF, dropout=0.2, attn_dropout=0.3, attention=attention,
                         pos_embedding="axes", cond_frames=1, resnet_depth=34, resnet_dim=RESNET_DIM))  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# VG, imported at run time


def load_vg(path: Path, tmp: Path) -> types.SimpleNamespace:
    """VG's attention, resnet and gpt modules from a checkout or a bare git directory."""
    if (path / "videogpt" / "gpt.py").is_file():
        src = path
    else:  # bare repository: export videogpt/ at HEAD
        archive = subprocess.run(["git", "--git-dir", str(path), "archive", "HEAD", "videogpt"], check=True,
                                 capture_output=True).stdout  # fmt: skip
        tar = tmp / "vg.tar"
        tar.write_bytes(archive)
        with tarfile.open(tar) as t:
            t.extractall(tmp, filter="data")
        src = tmp
    pl = types.ModuleType("pytorch_lightning")
    pl.LightningModule = nn.Module
    skvideo = types.ModuleType("skvideo")
    skvideo.io = types.ModuleType("skvideo.io")
    pkg = types.ModuleType("videogpt")
    pkg.__path__ = [str(src / "videogpt")]
    sys.modules.update({"pytorch_lightning": pl, "skvideo": skvideo, "skvideo.io": skvideo.io, "videogpt": pkg})
    attention = importlib.import_module("videogpt.attention")
    attention.checkpoint = functools.partial(attention.checkpoint, use_reentrant=True)
    return types.SimpleNamespace(attention=attention, resnet=importlib.import_module("videogpt.resnet"),
                                 gpt=importlib.import_module("videogpt.gpt"))  # fmt: skip


def vg_prior(vg) -> nn.Module:
    """VG's VideoGPT without its VQ-VAE: the attributes its __init__ sets, built with its own classes."""
    m = vg.gpt.VideoGPT.__new__(vg.gpt.VideoGPT)
    nn.Module.__init__(m)
    m.args = types.SimpleNamespace(n_cond_frames=1, class_cond=False)
    m.use_frame_cond = True
    m.resnet = vg.resnet.resnet34(1, (1, 4, 4), resnet_dim=RESNET_DIM)
    m.cond_pos_embd = vg.attention.AddBroadcastPosEmbed(shape=(1, RES // 4, RES // 4), embd_dim=RESNET_DIM)
    m.shape = SHAPE
    m.fc_in = nn.Linear(DIM, HIDDEN, bias=False)
    m.attn_stack = vg.attention.AttentionStack(SHAPE, HIDDEN, HEADS, LAYERS, 0.2, "full", 0.3, None,
                                               (1, RES // 4, RES // 4, RESNET_DIM))  # fmt: skip
    m.norm = vg.attention.LayerNorm(HIDDEN, None)
    m.fc_out = nn.Linear(HIDDEN, VOCAB, bias=False)
    m.frame_cond_cache = None
    return m


def vg_sampling_steps(m, table, frames, steps: int) -> list[tuple[float, float]]:
    """VG's VideoGPT.sample loop (same calls: full-grid dictionary lookup, forward with decode_step, softmax,
    multinomial) for its first ``steps`` positions; returns (wall, CPU) seconds of each step."""
    n = frames.shape[0]
    samples = torch.zeros((n, *SHAPE), dtype=torch.long)
    cond = {"frame_cond": frames}
    times, prev = [], None
    with torch.no_grad():
        for i, idx in enumerate(itertools.islice(itertools.product(*[range(s) for s in SHAPE]), steps)):
            t0, c0 = time.perf_counter(), time.process_time()
            sl = (slice(None), *[slice(j, j + 1) for j in idx])
            emb = F.embedding(samples, table)  # codebook.dictionary_lookup
            e, s = (emb[sl], samples[sl]) if prev is None else (emb[prev], samples[prev])
            logits = m(e, s, cond, decode_step=i, decode_idx=idx)[1]
            logits = logits.squeeze().unsqueeze(0) if logits.shape[0] == 1 else logits.squeeze()
            samples[(slice(None), *idx)] = torch.multinomial(F.softmax(logits, dim=-1), 1).squeeze(-1)
            prev = sl
            times.append((time.perf_counter() - t0, time.process_time() - c0))
    return times


# ----------------------------------------------------------------------------------------------------------
# Measurements


def _cpu_flash_formulas() -> dict:
    """FLOP formulas for the CPU flash-attention kernels (torch's SDPA formulas; shapes of q, k, v)."""
    fwd = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    bwd = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward

    def f(q, k, v, *args, out_val=None, **kw):
        return sdpa_flop_count(q, k, v)

    def b(g, q, k, v, *args, out_val=None, **kw):
        return sdpa_backward_flop_count(g, q, k, v)

    return {fwd: f, bwd: b}


def gflop(run, scale: int) -> float:
    with FlopCounterMode(display=False, custom_mapping=_cpu_flash_formulas()) as counter:
        run()
    return counter.get_total_flops() * scale / 1e9


def timed(run, repeats: int = 1) -> tuple[float, float]:
    """(wall, CPU) seconds of the fastest of ``repeats`` calls. CPU seconds of this process count every thread and
    move less with other people's load on a shared machine than wall seconds do (benchmarks/timing.py)."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
    return best


def inputs(batch: int, table: torch.Tensor, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, VOCAB, (batch, *SHAPE), generator=g)
    frames = torch.rand(batch, 3, 1, RES, RES, generator=g) - 0.5
    return codes, F.embedding(codes, table), frames


def row(name: str, seconds: tuple[float, float], tokens: int, gflops: float) -> dict:
    wall, cpu = seconds
    rate = gflops / wall
    return {
        "row": name,
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "tokens_per_s": round(tokens / wall, 1),
        "tokens_per_cpu_s": round(tokens / cpu, 1),
        "gflop": round(gflops, 1),
        "gflop_per_s": round(rate, 1),
        "pct_peak": round(100 * rate / PEAK_GFLOPS, 1),
    }


def bench_vgbench(table, train_batch: int, batch: int, attention: str = "full") -> dict:
    torch.manual_seed(0)
    model = vgbench_prior(attention)
    tag = "vgbench" if attention == "full" else f"vgbench {attention}"
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)

    def train_step(b):
        codes, x, frames = inputs(b, table)
        model.train()
        loss = F.cross_entropy(model(x, {"frames": frames}).flatten(0, -2), codes.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def forward(b):
        _, x, frames = inputs(b, table)
        model.eval()
        with torch.no_grad():
            model(x, {"frames": frames})

    def sample(b):
        model.eval()
        frames = inputs(b, table)[2]
        model.sample_codes(table, cond={"frames": frames}, seeds=list(range(b)))

    out = {}
    if attention == "full":
        train_step(train_batch)  # warm-up
        out["train"] = row(f"{tag} train step", timed(lambda: train_step(train_batch), 2), train_batch * S,
                           gflop(lambda: train_step(1), train_batch))  # fmt: skip
    forward(2)
    out["forward"] = row(f"{tag} forward", timed(lambda: forward(batch)), batch * S, gflop(lambda: forward(1), batch))
    out["sample"] = row(f"{tag} KV-cache sampling", timed(lambda: sample(batch)), batch * S,
                        gflop(lambda: sample(1), batch))  # fmt: skip
    out["params"] = sum(p.numel() for p in model.parameters())
    return out


def bench_vg(vg, table, train_batch: int, batch: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = vg_prior(vg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)

    def train_step(b):
        codes, x, frames = inputs(b, table)
        model.train()
        loss, _ = model(x, codes, {"frame_cond": frames})
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def forward(b):
        codes, x, frames = inputs(b, table)
        model.eval()
        with torch.no_grad():
            model(x, codes, {"frame_cond": frames})

    train_step(train_batch)
    out = {"train": row("VG train step", timed(lambda: train_step(train_batch)), train_batch * S,
                        gflop(lambda: train_step(1), train_batch))}  # fmt: skip
    forward(2)
    out["forward"] = row("VG forward", timed(lambda: forward(batch)), batch * S, gflop(lambda: forward(1), batch))
    model.eval()
    frames = inputs(batch, table)[2]
    times = vg_sampling_steps(model, table, frames, steps)
    total = tuple(times[0][j] + (S - 1) * sum(t[j] for t in times[1:]) / (len(times) - 1) for j in (0, 1))
    flops = []
    with FlopCounterMode(display=False) as counter:
        vg_sampling_steps(model, table, frames[:1], 1)
    flops.append(counter.get_total_flops())
    with FlopCounterMode(display=False) as counter:
        vg_sampling_steps(model, table, frames[:1], 3)
    step = (counter.get_total_flops() - flops[0]) / 2
    out["sample"] = row(f"VG KV-cache sampling (extrapolated from {steps} steps)", total, batch * S,
                        (flops[0] + (S - 1) * step) * batch / 1e9)  # fmt: skip
    out["params"] = sum(p.numel() for p in model.parameters())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vg", type=Path, help="wilson1yan/VideoGPT checkout or bare git directory")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-batch", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--vg-steps", type=int, default=24)
    ap.add_argument("--sparse", action="store_true", help="also time the paper's sparse layout (forward, sampling)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    table = torch.randn(VOCAB, DIM, generator=torch.Generator().manual_seed(0))
    result = {"threads": args.threads, "shape": SHAPE, "train_batch": args.train_batch, "batch": args.batch}
    result["vgbench"] = ours = bench_vgbench(table, args.train_batch, args.batch)
    if args.sparse:  # VG's sparse decoding costs what its full one does (dense over the cache, masked)
        result["vgbench_sparse"] = sp = bench_vgbench(table, args.train_batch, args.batch, "sparse")
        result["sparse_sampling_over_floor"] = round(sp["sample"]["seconds"] / sp["forward"]["seconds"], 2)
    if args.vg is not None:
        with tempfile.TemporaryDirectory() as tmp:
            result["vg"] = ref = bench_vg(load_vg(args.vg, Path(tmp)), table, args.train_batch, args.batch,
                                          args.vg_steps)  # fmt: skip
        for k in ("train", "forward", "sample"):  # wall and CPU-second ratios
            result[f"{k}_speedup"] = round(ref[k]["seconds"] / ours[k]["seconds"], 2)
            result[f"{k}_speedup_cpu"] = round(ref[k]["cpu_seconds"] / ours[k]["cpu_seconds"], 2)
    result["sampling_over_floor"] = round(ours["sample"]["seconds"] / ours["forward"]["seconds"], 2)
    result["sampling_over_floor_cpu"] = round(ours["sample"]["cpu_seconds"] / ours["forward"]["cpu_seconds"], 2)
    rows = [
        r for k in ("vgbench", "vgbench_sparse", "vg") if k in result for r in result[k].values() if isinstance(r, dict)
    ]
    print(f"{'row':52s} {'s':>8s} {'cpu s':>8s} {'tok/s':>9s} {'tok/cpu-s':>9s} {'GFLOP':>8s} {'GFLOP/s':>8s} "
          f"{'%peak':>6s}", file=sys.stderr)  # fmt: skip
    for r in rows:
        print(f"{r['row']:52s} {r['seconds']:8.2f} {r['cpu_seconds']:8.2f} {r['tokens_per_s']:9.1f} "
              f"{r['tokens_per_cpu_s']:9.1f} {r['gflop']:8.1f} {r['gflop_per_s']:8.1f} {r['pct_peak']:6.1f}",
              file=sys.stderr)  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
