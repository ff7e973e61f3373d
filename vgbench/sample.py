"""``vgbench sample``: videos from a trained prior, reproducible per sample, written for ``vgbench eval`` and people.

Sample ``i`` of a run with ``--seed S`` draws all its randomness from a generator seeded with
:func:`vgbench.samplesdir.sample_seed` (S, i) alone (the prior picks tokens by inverse CDF from per-sample
uniforms), so the videos do not depend on the batch size or on the number of torchrun processes. Outputs in
``--out``:

- ``samples.npz``: uint8 (N, T, H, W, 3) under ``videos`` (grayscale models are repeated to 3 channels), the input
  ``vgbench eval --samples`` takes;
- ``samples.json``: checkpoint sha256 and card, seeds, sampling settings, conditioning source, timing — copied into
  the record of every evaluation of these samples;
- ``grid.gif`` and ``grid.mp4``: the first 16 samples side by side.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vgbench import cache, dist
from vgbench.errors import InputError
from vgbench.samplesdir import SIDECAR_FORMAT, sample_seed, write_sidecar

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------------------
# Pictures


def grid(videos: np.ndarray, cols: int | None = None, pad: int = 2) -> np.ndarray:
    """uint8 (N, T, H, W, C) -> uint8 (T, H', W', 3): the videos tiled row by row on a dark background."""
    if videos.ndim != 5:
        raise InputError(f"grid: expected (N, T, H, W, C) videos, got shape {videos.shape}")
    n, t, h, w, c = videos.shape
    if c == 1:
        videos = np.repeat(videos, 3, axis=-1)
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    gh, gw = rows * (h + pad) + pad, cols * (w + pad) + pad
    gh, gw = gh + gh % 2, gw + gw % 2  # even sizes for yuv420p video
    out = np.full((t, gh, gw, 3), 24, np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        out[:, y : y + h, x : x + w] = videos[i]
    return out


def write_gif(path: str | os.PathLike, frames, fps: int = 8) -> Path:
    """uint8 (T, H, W, 3) frames -> an animated GIF (PyAV's GIF encoder, palette per frame), atomically."""
    return _encode(path, frames, "gif", "rgb8", fps)


def write_mp4(path: str | os.PathLike, frames, fps: int = 8) -> Path:
    """uint8 (T, H, W, 3) frames (even H and W) -> an H.264 MP4 (MPEG-4 Part 2 where libx264 is absent)."""
    import av

    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    return _encode(path, frames, codec, "yuv420p", fps)


def _encode(path, frames, codec: str, pix_fmt: str, fps: int) -> Path:
    """``frames``: uint8 (T, H, W, 3), or an iterable of (H, W, 3) frames (long videos, streamed)."""
    import av

    path = Path(path)
    frames = iter(frames)
    first = next(frames)
    with cache.atomic_path(path) as tmp, av.open(str(tmp), "w", format=path.suffix.lstrip(".")) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = first.shape[1], first.shape[0]
        stream.pix_fmt = pix_fmt
        for f in itertools.chain([first], frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_gif_grid(path: str | os.PathLike, videos: np.ndarray, max_videos: int = 16) -> Path:
    """The first ``max_videos`` videos as one GIF grid."""
    return write_gif(path, grid(videos[:max_videos]))


# ----------------------------------------------------------------------------------------------------------
# Sampling


@dataclass
class SampleRun:
    """What ``vgbench sample`` wrote."""

    folder: Path
    samples: Path
    sidecar: Path
    gif: Path
    mp4: Path
    count: int
    tokens_per_s: float
    cond: str | None = None  # the conditioning clips (DATASET:SPLIT), the natural reference

    def text(self) -> str:
        """A short human summary."""
        return (
            f"{self.count} samples -> {self.samples} ({self.tokens_per_s:.0f} tokens/s)\n"
            f"  provenance: {self.sidecar}\n  grid: {self.gif}, {self.mp4}\n"
            f"  next: vgbench eval --metric fvd --samples {self.samples} --reference {self.cond or 'DATASET:SPLIT'}"
        )


def conditioning(prior_config, ref: str | None, n: int, clip_len: int, channels: int, seed: int, root=None,
                 prefix: bool = False):  # fmt: skip
    """(cond-maker, description) for a prior: ``make(indices, device) -> cond dict``; None when unconditional.
    ``prefix``: an unconditional prior conditioned by latent prefix; the dict holds ``first`` (B, C, H, W), the first
    frames, whose still clip's first latent frame the sampler keeps (:meth:`VideoGPT.still_prefix`)."""
    needs_frames = getattr(prior_config, "cond_frames", 0)
    needs_label = getattr(prior_config, "n_classes", 0)
    if prefix:
        if needs_frames or needs_label:
            raise InputError("latent-prefix conditioning is for unconditional priors; this prior has its own condition")
        if not ref:
            raise InputError("latent-prefix conditioning needs the clips: pass --cond DATASET:SPLIT")
        needs_frames = 1
    elif not needs_frames and not needs_label:
        if ref:
            raise InputError(f"--cond {ref}: this prior is unconditional; leave --cond out")
        return None, None
    if not ref:
        what = f"{needs_frames} conditioning frame(s)" if needs_frames else "class labels"
        raise InputError(f"this prior needs {what}: pass --cond DATASET:SPLIT (e.g. --cond bair:test)")
    from vgbench import datasets

    view = datasets.open_split(ref, clip_len=clip_len, seed=seed, root=root, channels=channels)
    count = len(view)
    if n > count:
        log.warning("%s has %d clips for %d samples: conditioning clips are reused in order", ref, count, n)

    def make(indices: list[int], device) -> dict:
        items = [view[i % count] for i in indices]
        cond = {}
        if needs_frames:
            v = torch.stack([it["video"] for it in items])  # (B, T, H, W, C) uint8
            v = v.permute(0, 4, 1, 2, 3).float() / 255.0 - 0.5  # (B, C, T, H, W) in [-0.5, 0.5]
            cond["frames"] = v[:, :, :needs_frames].to(device)
            if prefix:
                cond = {"first": cond["frames"][:, :, 0]}
        if needs_label:
            cond["label"] = torch.tensor([it["label"] for it in items], device=device)
        return cond

    describe = {
        "dataset": ref,
        "clips": count,
        "window_seed": seed,
        "clip_len": clip_len,
        "rule": "sample i is conditioned on clip i mod clips (first frames of its fixed window; regenerated)",
    }
    if prefix:
        describe["prefix"] = ("latent prefix: the first latent frame is kept as the VQ-VAE's codes of the first frame "
                              "held still; the prior samples the rest")  # fmt: skip
    return make, describe


def sample(
    checkpoint: str | os.PathLike,
    n: int,
    out: str | os.PathLike,
    cond: str | None = None,
    seed: int = 0,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    batch_size: int = 32,
    device: str = "auto",
    root=None,
    progress: bool = True,
    frames: int | None = None,
    stride: int | None = None,
    cond_policy: str = "window",
    prefix: bool = False,
) -> SampleRun | None:
    """Sample ``n`` videos from a prior checkpoint into ``out`` (sharded over torchrun processes; rank 0 writes).

    ``frames``: videos of that many frames (>= the training clip) by sliding-window sampling in latent time
    (:meth:`VideoGPT.sample_windows`), ``stride`` latent frames per window (default half a window), frame-conditional
    priors' later windows conditioned as ``cond_policy`` says; streamed to disk window by window, so memory does not
    grow with ``frames``. None: the training length, sampled as one window (the classic path)."""
    from vgbench.device import resolve_device
    from vgbench.models import checkpoint as ckpt_mod

    if n < 1:
        raise InputError(f"--n {n}: need at least one sample")
    if temperature <= 0:
        raise InputError(f"--temperature {temperature}: must be > 0")
    if top_k is not None and top_k < 1:
        raise InputError(f"--top-k {top_k}: must be >= 1")
    if top_p is not None and not 0 < top_p <= 1:
        raise InputError(f"--top-p {top_p}: must lie in (0, 1]")
    from vgbench.models import sliding

    if cond_policy not in sliding.COND_POLICIES:
        raise InputError(f"--cond-policy {cond_policy}: allowed {', '.join(sliding.COND_POLICIES)}")
    if frames is None and stride is not None:
        raise InputError(f"--stride {stride}: a stride slides a window over a long video; give --frames too")
    rank, world = dist.maybe_init()
    ck = ckpt_mod.load(checkpoint)
    if ck.vqvae is None:
        raise InputError(
            f"{checkpoint}: a VQ-VAE checkpoint ({ck.card}); sampling needs a prior checkpoint (prior/checkpoints/*.pt)"
        )
    dev = resolve_device(device)
    net = ckpt_mod.build(ck, dev).eval()
    vq = net.vqvae.config
    plan = None
    if frames is not None:
        pc = net.prior.config
        plan = sliding.plan(frames, pc.frames, pc.frames // pc.shape[0], pc.shape[0], stride)
    if prefix and plan is not None:
        raise InputError("latent-prefix conditioning samples one window: leave --frames out")
    make_cond, cond_desc = conditioning(net.prior.config, cond, n, vq.frames, vq.in_channels, seed, root, prefix)
    out = Path(out)
    if plan is not None:
        return _sample_long(ck, net, plan, n, out, make_cond, cond_desc, seed, temperature, top_k, top_p, batch_size,
                            dev, cond_policy, rank, world, progress)  # fmt: skip
    lo, hi = dist.shard(0, n, rank, world)
    parts = []
    t0 = time.time()
    from tqdm import tqdm

    bar = tqdm(total=hi - lo, desc="sampling", unit="video", disable=rank != 0 or not progress)
    for i in range(lo, hi, batch_size):
        idx = list(range(i, min(i + batch_size, hi)))
        c = make_cond(idx, dev) if make_cond else None
        ctx = None
        if prefix:
            ctx, c = net.still_prefix(c["first"]), None
        with torch.no_grad():
            videos = net.sample(
                c if c else len(idx),
                seeds=[sample_seed(seed, j) for j in idx],
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                batch_size=len(idx),
                context=ctx,
            )
        parts.append(np.asarray(videos))
        bar.update(len(idx))
    bar.close()
    local = np.concatenate(parts) if parts else np.zeros((0,), np.uint8)
    elapsed = time.time() - t0
    tokens = (hi - lo) * math.prod(net.vqvae.latent_shape)
    videos = _gather(local, out, rank, world)
    if rank != 0:
        return None
    if videos.shape[-1] == 1:
        videos = np.repeat(videos, 3, axis=-1)
    samples_path = out / "samples.npz"
    with cache.atomic_path(samples_path) as tmp, open(tmp, "wb") as f:
        np.savez(f, videos=videos)  # uncompressed: vgbench eval memory-maps it
    from vgbench import contenthash

    sidecar = {
        "format": SIDECAR_FORMAT,
        "samples_sha256": contenthash.file_sha256(samples_path),  # ties the sidecar to these very samples
        "checkpoint": ck.describe(),
        "card": ck.card,
        "vqvae_card": ck.vqvae["card"],
        "count": int(len(videos)),
        "shape": list(videos.shape),
        "seed": seed,
        "sample_seeds": "vgbench.samplesdir.sample_seed(seed, i) for sample i",
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "conditioning": cond_desc,
    }
    sidecar_path, sidecar = write_sidecar(out, sidecar, world, elapsed, tokens)
    frames = grid(videos[:16])
    gif, mp4 = write_gif(out / "grid.gif", frames), write_mp4(out / "grid.mp4", frames)
    return SampleRun(out, samples_path, sidecar_path, gif, mp4, len(videos), sidecar["tokens_per_s"], cond)


def _sample_long(ck, net, plan, n, out: Path, make_cond, cond_desc, seed, temperature, top_k, top_p, batch_size,
                 dev, cond_policy, rank, world, progress) -> SampleRun | None:
    """Long videos window by window: each rank writes its samples' frames into its own .npy part as they are
    decoded (one window's frames in memory), then rank 0 streams the parts into samples.npz."""
    from tqdm import tqdm

    from vgbench.models.gpt import SpanDecoder

    pc = net.prior.config
    lo, hi = dist.shard(0, n, rank, world)
    shape = (hi - lo, plan.frames, pc.resolution, pc.resolution, 3)
    parts = out / ".parts"
    parts.mkdir(parents=True, exist_ok=True)
    part = parts / f"rank-{rank:05d}.npy"
    t0 = time.time()
    bar = tqdm(total=(hi - lo) * len(plan.windows), desc="sampling", unit="window", disable=rank != 0 or not progress)
    try:
        with cache.atomic_path(part) as tmp, open(tmp, "wb") as f:
            np.lib.format.write_array_header_2_0(f, {"descr": "|u1", "fortran_order": False, "shape": shape})
            offset = f.tell()
            frame_bytes = math.prod(shape[2:])
            f.truncate(offset + math.prod(shape))
            for i in range(lo, hi, batch_size):
                idx = list(range(i, min(i + batch_size, hi)))
                c = make_cond(idx, dev) if make_cond else None
                seeds = [sample_seed(seed, j) for j in idx]
                windows = net.sample_windows(c if c else len(idx), plan.frames, plan.stride, cond_policy, temperature,
                                             top_k, top_p, seeds)  # fmt: skip
                for first, chunk in windows:  # (B, f, H, W, C) uint8 frames first .. first + f - 1
                    chunk = np.asarray(chunk)
                    if chunk.shape[-1] == 1:
                        chunk = np.repeat(chunk, 3, axis=-1)
                    for b, j in enumerate(idx):
                        f.seek(offset + ((j - lo) * plan.frames + first) * frame_bytes)
                        f.write(np.ascontiguousarray(chunk[b]).tobytes())
                    bar.update(len(idx))
    except BaseException:  # Ctrl-C or an error: the part's temporary file is gone; leave no empty .parts folder
        bar.close()
        if parts.exists() and not any(parts.iterdir()):
            parts.rmdir()
        raise
    bar.close()
    elapsed = time.time() - t0
    per_frame = math.prod(pc.shape[1:])
    tokens = (hi - lo) * per_frame * (pc.shape[0] + sum(pc.shape[0] - w.context() for w in plan.windows[1:]))
    if world > 1:
        import torch.distributed as tdist

        tdist.barrier()  # every part written
    if rank != 0:
        if world > 1:
            tdist.barrier()  # rank 0 has read them
        return None
    part_paths = [parts / f"rank-{r:05d}.npy" for r in range(world)]
    total = (n, plan.frames, pc.resolution, pc.resolution, 3)
    samples_path = out / "samples.npz"
    _stream_npz(samples_path, part_paths, total)
    if world > 1:
        tdist.barrier()
    from vgbench import contenthash

    sidecar = {
        "format": SIDECAR_FORMAT,
        "samples_sha256": contenthash.file_sha256(samples_path),
        "checkpoint": ck.describe(),
        "card": ck.card,
        "vqvae_card": ck.vqvae["card"],
        "count": n,
        "shape": list(total),
        "seed": seed,
        "sample_seeds": "vgbench.samplesdir.sample_seed(seed, i) for sample i",
        "seeds": [sample_seed(seed, j) for j in range(n)],
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "conditioning": cond_desc,
        "long_video": {
            **plan.as_dict(),
            "method": "sliding window in latent time; kept latent frames prefilled into the KV cache (teacher "
                      "forced), new ones sampled",
            "decode": {
                "halo": "overlapping spans with the decoder's temporal reach as halo, centres kept: equal to one "
                        "decode of the whole latent sequence",
                "clip": "each window decoded as one training-length clip, the frames of its new latent frames kept "
                        "(the VQ-VAE attends along time)",
            }[SpanDecoder(net.vqvae, plan.latent_length).mode],
            "cond_policy": cond_policy if pc.cond_frames else None,
            "uniforms": "one float64 stream per sample (torch.Generator seeded with its seed), drawn window by window",
        },
    }
    sidecar_path, sidecar = write_sidecar(out, sidecar, world, elapsed, tokens)
    gif, mp4 = _long_grids(out, part_paths, total)
    for p in part_paths:
        p.unlink()
    parts.rmdir()
    return SampleRun(out, samples_path, sidecar_path, gif, mp4, n, sidecar["tokens_per_s"])


def _part_frames(parts: list[Path], count: int, t0: int, t1: int) -> np.ndarray:
    """Frames t0..t1-1 of the first ``count`` samples, read from the .npy parts (file reads, no memory map)."""
    out = []
    for p in parts:
        with open(p, "rb") as f:
            np.lib.format.read_magic(f)
            shape, _, _ = np.lib.format.read_array_header_2_0(f)
            offset, frame = f.tell(), math.prod(shape[2:])
            for j in range(min(shape[0], count - len(out))):
                f.seek(offset + (j * shape[1] + t0) * frame)
                out.append(np.frombuffer(f.read((t1 - t0) * frame), np.uint8).reshape(t1 - t0, *shape[2:]))
        if len(out) >= count:
            break
    return np.stack(out)


def _long_grids(out: Path, parts: list[Path], shape: tuple[int, ...], chunk: int = 64) -> tuple[Path, Path]:
    """grid.gif and grid.mp4 of the first 16 long samples, built ``chunk`` frames at a time (flat memory)."""
    count, frames = min(16, shape[0]), shape[1]

    def stream():
        for t0 in range(0, frames, chunk):
            yield from grid(_part_frames(parts, count, t0, min(t0 + chunk, frames)))

    return write_gif(out / "grid.gif", stream()), write_mp4(out / "grid.mp4", stream())


def _stream_npz(path: Path, parts: list[Path], shape: tuple[int, ...]) -> None:
    """Write ``samples.npz`` (one uncompressed member ``videos.npy``) from .npy parts, in 16 MiB pieces."""
    import zipfile

    with (
        cache.atomic_path(path) as tmp,
        zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf,
        zf.open("videos.npy", "w", force_zip64=True) as dst,
    ):
        np.lib.format.write_array_header_2_0(dst, {"descr": "|u1", "fortran_order": False, "shape": shape})
        for p in parts:
            with open(p, "rb") as src:
                np.lib.format.read_magic(src)
                np.lib.format.read_array_header_2_0(src)
                while piece := src.read(16 << 20):
                    dst.write(piece)


def _gather(local: np.ndarray, out: Path, rank: int, world: int) -> np.ndarray:
    """Every rank's samples in index order on rank 0 (through files in ``out/.parts``; no big collectives)."""
    if world == 1:
        return local
    import torch.distributed as tdist

    parts = out / ".parts"
    parts.mkdir(parents=True, exist_ok=True)
    with cache.atomic_path(parts / f"rank-{rank:05d}.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, local)
    tdist.barrier()
    if rank != 0:
        tdist.barrier()
        return local
    arrays = [np.load(parts / f"rank-{r:05d}.npy") for r in range(world)]
    for r in range(world):
        (parts / f"rank-{r:05d}.npy").unlink()
    parts.rmdir()
    tdist.barrier()
    return np.concatenate([a for a in arrays if a.size])
