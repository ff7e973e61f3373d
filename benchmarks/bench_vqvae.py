"""VQ-VAE training-step throughput (clips/s) and GFLOP/s: vgbench against VideoGPT's own modules.

Run: python benchmarks/bench_vqvae.py [--vg-repo PATH] [--steps 2] [--threads 2] [--only NAME]

Rows (issue 11, Benchmark): a training step = forward, loss, backward, Adam step, codebook EMA, fp32.
- ``bair_4x2x2`` batch 2: VG's VQVAE(downsample 4x2x2, 240 hidden, 4 res layers, 2048 x 256 codes); vgbench built
  with VG's architecture (``VG_ARCH``: BatchNorm, residual units 120, 4x4x4 strided encoder convs, 1x1x1
  post-quantisation conv, no position embedding) for the like-for-like ratio, and the paper card
  ``vqvae.bair_latent4x32x32`` (same grid, the paper's architecture).
- ``mmnist_like`` batch 4: VG at 4x4x4, 2 res layers, 512 x 64 codes (VG always has attention and 3 channels);
  vgbench with VG's architecture, and the paper card ``vqvae.mmnist`` (1 channel, no attention).
- ``bair_2x2x2`` batch 2: the paper card ``vqvae.bair`` (VG cannot build 2x2x2: videogpt.md §8.9).

VG's modules are imported at run time from a fetched copy of github:wilson1yan/VideoGPT (a work tree or a bare git
directory, ``--vg-repo`` or ``VGBENCH_VG_REPO``), never copied into this repository; ``pytorch_lightning`` is
replaced by a stand-in module (VG's VQVAE subclasses LightningModule only for its training loop), and so is
``skvideo`` (imported by VG's utils.py for writing videos). Without the
copy the VG rows are skipped and vgbench is reported alone.

FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` over one training step, as executed: every tap a kernel
multiplies is counted, including taps on zero padding. VG's transposed convs run over their padded input and
are counted with those padding taps; vgbench's transposed convs leave them out (a shrunk crop instead).
The CPU flash-attention kernel (vgbench's attention) is counted with the CUDA kernels' formula.
``useful`` FLOPs = the vgbench count of the same architecture (what VG's step would cost without the waste).
GFLOP/s are compared with the ~170 GFLOP/s fp32 GEMM peak of the 2-thread development CPU (issue 11).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import torch
from torch import nn
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vgbench import cards  # noqa: E402
from vgbench.models.vqvae import VQVAE, VQVAEConfig, count_parameters  # noqa: E402

GEMM_PEAK_GFLOPS = 170.0  # issue 11: torch fp32 GEMM peak of the 2-thread development CPU
# vgbench's config fields that reproduce VG's VQ-VAE architecture (videogpt.md §3)
VG_ARCH = dict(norm="batch", res_hidden=120, encoder_kernel=4, post_vq_kernel=1, pos_embedding=False)


# FlopCounterMode has formulas for the CUDA attention kernels only; count the CPU flash kernel the same way
@flop_counter.register_flop_formula(torch.ops.aten._scaled_dot_product_flash_attention_for_cpu)
def _sdpa_cpu_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query, key, value)


@flop_counter.register_flop_formula(torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward)
def _sdpa_cpu_backward_flops(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)


# ----------------------------------------------------------------------------------------------------------
# VG's modules from a fetched copy


def load_vg(repo: Path | None, workdir: Path):
    """VG's ``videogpt.vqvae`` module from a fetched copy (work tree or bare git dir), or None."""
    if repo is None or not repo.exists():
        return None
    src = workdir / "videogpt"
    src.mkdir()
    for name in ("vqvae.py", "attention.py", "utils.py"):
        if (repo / "videogpt" / name).is_file():
            text = (repo / "videogpt" / name).read_text()
        else:  # a bare git directory (the fetch tool's mirror)
            text = subprocess.run(
                ["git", "--git-dir", str(repo), "show", f"HEAD:videogpt/{name}"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        (src / name).write_text(text)
    if "pytorch_lightning" not in sys.modules:  # stand-in: VG's VQVAE only needs the base class

        class LightningModule(nn.Module):
            def save_hyperparameters(self, *args, **kwargs):
                pass

        sys.modules["pytorch_lightning"] = types.SimpleNamespace(LightningModule=LightningModule)
    if "skvideo" not in sys.modules:  # VG's utils.py imports it for video writing, unused by the VQ-VAE
        sys.modules["skvideo"] = types.SimpleNamespace(io=None)
        sys.modules["skvideo.io"] = types.ModuleType("skvideo.io")
    pkg = types.ModuleType("videogpt")  # skip videogpt/__init__.py (it imports the GPT, data and download code)
    pkg.__path__ = [str(src)]
    sys.modules["videogpt"] = pkg
    import importlib

    return importlib.import_module("videogpt.vqvae")


def vg_model(vg, downsample, res_layers, n_codes, dim, frames=16, resolution=64):
    args = argparse.Namespace(
        embedding_dim=dim,
        n_codes=n_codes,
        n_hiddens=240,
        n_res_layers=res_layers,
        downsample=downsample,
        sequence_length=frames,
        resolution=resolution,
    )
    return vg.VQVAE(args)


def vg_loss(model, x):
    recon_loss, _, vq = model(x)
    return recon_loss + vq["commitment_loss"]


def vgb_loss(model, x):
    return model(x).loss


# ----------------------------------------------------------------------------------------------------------
# Measurement


def train_step(model, opt, loss_fn, x):
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model, x)
    loss.backward()
    opt.step()


class Runner:
    """A model, its Adam optimiser and its input; the warm-up step also counts the step's executed FLOPs."""

    def __init__(self, model, loss_fn, x):
        self.model, self.loss_fn, self.x = model.train(), loss_fn, x
        self.opt = torch.optim.Adam(model.parameters(), lr=3e-4)
        with FlopCounterMode(display=False) as counter:  # warm-up: codebook init, allocator, oneDNN primitives
            train_step(model, self.opt, loss_fn, x)
        self.flops, self.best = counter.get_total_flops(), float("inf")

    def step(self) -> None:
        t0 = time.perf_counter()
        train_step(self.model, self.opt, self.loss_fn, self.x)
        self.best = min(self.best, time.perf_counter() - t0)

    def result(self) -> dict:
        return {"s_per_step": self.best, "flops": self.flops, "params": count_parameters(self.model)}


def measure(runners: list[Runner], steps: int) -> list[dict]:
    """Best seconds per step of each runner; steps interleaved so that load from other users hits all alike."""
    for _ in range(steps):
        for r in runners:
            r.step()
    return [r.result() for r in runners]


def row(name, impl, batch, m, useful_flops) -> dict:
    s = m["s_per_step"]
    return {
        "config": name,
        "impl": impl,
        "batch": batch,
        "params": m["params"],
        "s_per_step": round(s, 3),
        "clips_per_s": round(batch / s, 3),
        "gflop_executed": round(m["flops"] / 1e9, 1),
        "gflop_useful": round(useful_flops / 1e9, 1),
        "gflops_executed": round(m["flops"] / s / 1e9, 1),
        "gflops_useful": round(useful_flops / s / 1e9, 1),
        "pct_peak_useful": round(100 * useful_flops / s / 1e9 / GEMM_PEAK_GFLOPS, 1),
    }


def run(args) -> list[dict]:
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        vg = load_vg(args.vg_repo, Path(tmp))
        configs = {
            # name: (batch, VG model, paper card at the same grid)
            "bair_4x2x2": (2, dict(downsample=(4, 2, 2), res_layers=4, n_codes=2048, dim=256),
                           "vqvae.bair_latent4x32x32"),
            "mmnist_like": (4, dict(downsample=(4, 4, 4), res_layers=2, n_codes=512, dim=64), "vqvae.mmnist"),
        }  # fmt: skip
        for name, (batch, kw, card) in configs.items():
            if args.only and args.only != name:
                continue
            x = torch.rand(batch, 3, 16, 64, 64) - 0.5
            cfg = VQVAEConfig(
                downsample=kw["downsample"], res_layers=kw["res_layers"], n_codes=kw["n_codes"],
                embedding_dim=kw["dim"], **VG_ARCH,
            )  # fmt: skip
            pc = cards.model(card)
            paper_cfg = cards.build_config(VQVAEConfig, pc)
            xc = torch.rand(batch, paper_cfg.in_channels, 16, 64, 64) - 0.5
            runners = [Runner(VQVAE(cfg), vgb_loss, x), Runner(VQVAE(paper_cfg), vgb_loss, xc)]
            if vg is not None:
                runners.append(Runner(vg_model(vg, **kw), vg_loss, x))
            res = measure(runners, args.steps)
            ours = res[0]
            if vg is not None:
                rows.append(row(name, "VG", batch, res[2], ours["flops"]))
            rows.append(row(name, "vgbench (VG architecture)", batch, ours, ours["flops"]))
            if vg is not None:
                rows[-1]["speedup_vs_vg"] = round(res[2]["s_per_step"] / ours["s_per_step"], 2)
            rows.append(row(name, f"vgbench {card}", batch, res[1], res[1]["flops"]))
        if not args.only or args.only == "bair_2x2x2":
            pc = cards.model("vqvae.bair")
            x = torch.rand(2, 3, 16, 64, 64) - 0.5
            (paper,) = measure([Runner(VQVAE(cards.build_config(VQVAEConfig, pc)), vgb_loss, x)], args.steps)
            rows.append(row("bair_2x2x2", "vgbench vqvae.bair", 2, paper, paper["flops"]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_repo = os.environ.get("VGBENCH_VG_REPO")
    ap.add_argument("--vg-repo", type=Path, default=Path(default_repo) if default_repo else None)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per row (best is kept), after one warm-up")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=["bair_4x2x2", "mmnist_like", "bair_2x2x2"], default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = run(args)
    for r in rows:
        print(
            f"{r['config']:12s} {r['impl']:34s} b={r['batch']} {r['s_per_step']:7.3f} s/step "
            f"{r['clips_per_s']:6.3f} clips/s {r['gflops_useful']:6.1f} useful GFLOP/s "
            f"({r['pct_peak_useful']:.0f}% of peak)"
            + (f"  x{r['speedup_vs_vg']} vs VG" if "speedup_vs_vg" in r else ""),
            file=sys.stderr,
        )
    print(json.dumps({"threads": torch.get_num_threads(), "peak_gflops": GEMM_PEAK_GFLOPS, "rows": rows}))


if __name__ == "__main__":
    main()
