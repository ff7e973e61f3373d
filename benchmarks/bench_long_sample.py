"""Long-video sampling (issue 20): peak memory is flat in the number of frames, speed per frame, and the two
measurements behind the sampler's choices (how windows are decoded; what conditions later windows).

Run: python benchmarks/bench_long_sample.py memory --checkpoint QS/runs/prior/checkpoints/final.pt --data QS/data
     python benchmarks/bench_long_sample.py decode --checkpoint ... --data ...

memory: for F = 16, 64, 256, 1024 a fresh subprocess runs `vgbench sample --frames F` (one video, one thread) on a
        quickstart-sized prior and reports its peak RSS (ru_maxrss), the RSS after loading (before sampling), the
        seconds and seconds per frame. A missing --checkpoint means an untrained quickstart pair (same sizes).
        Measured (quickstart --small prior, 1 thread, shared 2-core machine): 293 / 306 / 327 / 339 MiB at F = 16 /
        64 / 256 / 1024. The rise is glibc keeping freed blocks: with MALLOC_MMAP_THRESHOLD_=65536
        MALLOC_TRIM_THRESHOLD_=0 the peak at F = 1024 is 314 MiB (289 MiB at F = 16).
decode: three ways to decode a long latent sequence, against one decode of the whole sequence (defined only for a
        VQ-VAE without attention or position embedding, such as the quickstart's; it needs memory in proportion to
        F): the sampler's halo spans (SpanDecoder), and each sampling window decoded as a training-length clip with
        its new frames kept. uint8 levels that differ, and best-of-3 seconds per frame of each.
policy: --cond-policy first vs window on a frame-conditional prior: FVD of each 16-frame window of --n samples of
        --frames[0] frames against the real 16-frame test clips, and of the whole samples against long real clips.
        python benchmarks/bench_long_sample.py policy --checkpoint ... --data ... --frames 64 --n 16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's vgbench, as the subprocesses get through PYTHONPATH

CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(1)
from vgbench import sample as sample_mod
from vgbench.models import checkpoint as ckpt_mod
ckpt, frames, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ckpt_mod.build(ckpt_mod.load(ckpt), "cpu")  # what loading costs, before any sampling
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
run = sample_mod.sample(ckpt, 1, out, cond="quickstart:test", seed=0, batch_size=1, device="cpu", progress=False,
                        frames=frames)
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"frames": frames, "peak_rss_mib": peak / 1024, "loaded_rss_mib": loaded / 1024, "seconds": dt,
                  "s_per_frame": dt / frames, "tokens_per_s": run.tokens_per_s}))
"""


def _untrained(folder: Path) -> Path:
    """An initialised quickstart VQ-VAE + prior saved as a vgbench checkpoint (sizes matter here, not quality)."""
    from vgbench import train as train_mod

    _, prior = train_mod.train(model="gpt.quickstart", stage="all", out=folder, steps=1, batch_size=2, val_every=1,
                               ckpt_every=1, progress=False, device="cpu")  # fmt: skip
    return prior.folder / "checkpoints" / "final.pt"


def memory(args) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(args.checkpoint) if args.checkpoint else _untrained(Path(tmp) / "run")
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        if args.data:
            env["VGBENCH_DATA"] = str(Path(args.data).resolve())
        for f in args.frames:
            out = Path(tmp) / f"s{f}"
            r = subprocess.run([sys.executable, "-c", CHILD, str(ckpt), str(f), str(out)], env=env,
                               capture_output=True, text=True)  # fmt: skip
            if r.returncode:
                raise SystemExit(r.stderr[-3000:])
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| F | peak RSS (MiB) | RSS after loading (MiB) | seconds | s / frame |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['frames']} | {r['peak_rss_mib']:.0f} | {r['loaded_rss_mib']:.0f} | {r['seconds']:.1f} | "
              f"{r['s_per_frame']:.3f} |")  # fmt: skip
    return rows


def decode(args) -> dict:
    import torch
    from timing import best_seconds

    from vgbench.models import checkpoint as ckpt_mod
    from vgbench.models.gpt import SpanDecoder, to_uint8

    torch.set_num_threads(1)
    net = ckpt_mod.build(ckpt_mod.load(args.checkpoint), "cpu").eval()
    vq = net.vqvae
    t_lat = vq.latent_shape[0]
    dt = vq.config.frames // t_lat
    if vq.pos_embd is not None or vq.config.attention and vq.config.res_layers:
        raise SystemExit("this VQ-VAE has attention / a position embedding: only windowed decoding is defined")
    g = torch.Generator().manual_seed(0)
    latent_len = args.latent_len
    codes = torch.randint(0, vq.config.n_codes, (1, latent_len, *vq.latent_shape[1:]), generator=g)
    # sampled-like codes: real clips encoded back to back, so the decoder sees plausible inputs
    if args.data:
        os.environ["VGBENCH_DATA"] = str(Path(args.data).resolve())
        from vgbench import datasets

        view = datasets.open_split("quickstart:test", channels=1)
        clips = [view[i]["video"] for i in range(latent_len // t_lat)]
        x = torch.stack(clips).permute(0, 4, 1, 2, 3).float() / 255.0 - 0.5  # (n, 1, T, H, W)
        with torch.no_grad():
            codes = vq.encode(x).reshape(1, latent_len, *vq.latent_shape[1:])
    stride = max(1, t_lat // 2)

    def whole():
        return to_uint8(vq.decode_span(codes))[0]  # (F, H, W, C)

    def spans():
        dec = SpanDecoder(vq, latent_len)
        out = list(dec.push(codes[:, :t_lat]))
        for i in range(t_lat, latent_len, stride):
            out += list(dec.push(codes[:, i : i + stride]))
        return torch.cat([c for _, c in out], 1)[0]

    def windowed():
        out = [to_uint8(vq.decode(codes[:, :t_lat]))[0]]
        end = t_lat
        while end < latent_len:
            new_end = min(end + stride, latent_len)
            start = new_end - t_lat
            out.append(to_uint8(vq.decode(codes[:, start:new_end]))[0, (end - start) * dt :])
            end = new_end
        return torch.cat(out)

    res = {"frames": latent_len * dt, "stride_latent": stride, "halo_latent": vq.time_reach()}
    with torch.no_grad():
        a = whole()
        for name, fn in (("whole", whole), ("halo_spans", spans), ("clip_windows", windowed)):
            b = fn()
            diff = (a.int() - b.int()).abs()
            res[name] = {
                "s_per_frame": best_seconds(fn, repeats=3) / b.shape[0],
                "levels_differing_from_whole": float((diff > 0).float().mean()),
                "max_level_difference": int(diff.max()),
                "mean_level_difference": float(diff.float().mean()),
                "frames_with_a_difference": int((diff.flatten(1).amax(1) > 0).sum()),
            }
    print(json.dumps(res, indent=1))
    return res


def policy(args) -> dict:
    """Frame-conditional priors: which conditioning of later windows drifts less? For each --cond-policy, sample
    --n videos of --frames frames and score every 16-frame window against the real 16-frame test clips (the
    per-window curve), and the whole videos against real clips as long (fvd.official, all frames)."""
    import warnings

    import numpy as np

    from vgbench import cache, cards, drift
    from vgbench import sample as sample_mod
    from vgbench.datasets import quickstart as qs

    os.environ["VGBENCH_DATA"] = str(Path(args.data).resolve())
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        p = cards.dataset("quickstart").preprocess
        gen = qs.generator("test", args.n, args.frames[0], p["size"], p["seed"])
        real = Path(tmp) / "real.npy"
        with cache.atomic_path(real) as t, open(t, "wb") as f:
            np.save(f, np.repeat(np.stack([gen[i] for i in range(args.n)]), 3, axis=-1))
        for pol in ("first", "window"):
            run = sample_mod.sample(args.checkpoint, args.n, Path(tmp) / pol, cond="quickstart:test", seed=1,
                                    batch_size=args.n, progress=False, frames=args.frames[0],
                                    cond_policy=pol)  # fmt: skip
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from vgbench import api

                whole = api.evaluate("fvd", samples=run.samples, reference=real, use_cache=False).value
                curve = drift.window_curve(run.samples, "quickstart:test", Path(tmp) / f"w-{pol}", window=16)
            out[pol] = {"whole_fvd": whole, "window_fvd": [round(c["value"], 1) for c in curve]}
            print(pol, json.dumps(out[pol]), flush=True)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["memory", "decode", "policy"])
    p.add_argument("--n", type=int, default=16, help="policy: videos per policy")
    p.add_argument("--checkpoint", default=None, help="a quickstart prior checkpoint (final.pt)")
    p.add_argument("--data", default=None, help="the quickstart's data folder (for --cond quickstart:test)")
    p.add_argument("--frames", type=int, nargs="+", default=[16, 64, 256, 1024])
    p.add_argument("--latent-len", type=int, default=32, help="decode: latent frames of the long sequence")
    args = p.parse_args()
    {"memory": memory, "decode": decode, "policy": policy}[args.what](args)


if __name__ == "__main__":
    main()
