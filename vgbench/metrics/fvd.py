"""Fréchet Video Distance (FVD) and its VQ-VAE variants FVD* and R-FVD, under named protocols.

Parity (protocol ``fvd.official``): GR-FVD + TF-GAN with the TF-Hub I3D (metrics.md §3): TF1 legacy bilinear
resize of every frame straight to 224x224, x*2/255-1, 400-d I3D logits averaged over time, float64 Fréchet
distance via symmetric SVD square roots, result cast to float32. Measured: the TF-Hub random-video golden
10.13808536529541 is reproduced to 4e-6 and the official example (0 vs 255) gives 133.91; the resize is
bit-identical to ``tf.compat.v1.image.resize_bilinear`` on the inputs tested.

Other protocols reproduce their own code, not the official numbers: ``fvd.videogpt_paper`` (PyTorch
half-pixel resize, BN eps 1e-5, truncating uint8 conversion, float32 distance, 256 vs 256 per trial, mean and
population std over trials), ``fvd.videogpt_repo`` (shorter side to 224 and centre crop, one trial) and
``fvd.stylegan_v_2048_16f`` (2048 vs 2048 16-frame clips, rounding, scipy sqrtm). Known deviation: StyleGAN-V's
TorchScript detector resizes with an undocumented kernel; vgbench uses the legacy TF grid there.

FVD* = FD(samples, VQ-VAE reconstructions); R-FVD = FD(reconstructions, real). Same engine, different inputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vgbench import cache, cards, dist, models, validation
from vgbench.device import exact_math, resolve_device
from vgbench.errors import InputError, ProtocolError, VgbenchError
from vgbench.metrics.contract import MetricRequest, build_request, make_result
from vgbench.metrics.derived import compared_sets
from vgbench.metrics.frechet import FeatureStats, frechet_distance, frechet_distance_from_stats
from vgbench.metrics.planning import plan_chunks, prefetch, progress
from vgbench.metrics.protocols import FVDProtocol
from vgbench.metrics.resize import resize_frames
from vgbench.models.i3d import FEATURE_DIM
from vgbench.readers import reading
from vgbench.results import Result
from vgbench.tensors import to_network_scale
from vgbench.video import SampleSet, generated_by

log = logging.getLogger(__name__)

STATS_FORMAT = "vgbench-feature-stats/1"
BACKENDS = ("torch", "tf", "tfhub")


# ----------------------------------------------------------------------------------------------------------
# Preprocessing


ROUND_TRIP_NOTE = (
    "uint8 input under a truncating protocol: VideoGPT's loader round trip u -> u/255 - 0.5 -> +0.5 -> x255 -> "
    "truncate moves 63 of the 256 levels down by one, as the paper code did with real data; the same videos as "
    "float 0-255 skip it and give a different FVD (+0.24% on one set)"
)


def preprocess(x: torch.Tensor, p: FVDProtocol) -> torch.Tensor:
    """float32 (B, T, H, W, C) on the 0-255 scale -> float32 (B, C, T, S, S) network input."""
    b, t, h, w, c = x.shape
    s = p.size
    frames = x.reshape(b * t, h, w, c).permute(0, 3, 1, 2)  # (BT, C, H, W)
    if p.resize == "none":
        if (h, w) != (s, s):
            raise InputError(f"protocol resize 'none' needs {s}x{s} frames, got {h}x{w}")
    elif p.resize_mode == "direct":
        frames = resize_frames(frames, (s, s), p.resize)
    else:  # short_side_center_crop (VideoGPT repo): shorter side to S, long side ceil, centre crop
        scale = s / min(h, w)
        nh, nw = math.ceil(h * scale), math.ceil(w * scale)
        frames = resize_frames(frames, (nh, nw), p.resize)
        top, left = (nh - s) // 2, (nw - s) // 2
        frames = frames[:, :, top : top + s, left : left + s]
    if p.scale == "minus_one_one":
        frames = frames.mul(2.0).div_(255.0).sub_(1.0)  # TF: 2. * x / 255. - 1, same order of operations
    # (BT, C, S, S) channels-last -> (B, C, T, S, S) channels-last-3d: I3D's memory format, a view when possible
    return frames.reshape(b, t, c, s, s).permute(0, 2, 1, 3, 4).contiguous(memory_format=torch.channels_last_3d)


# ----------------------------------------------------------------------------------------------------------
# Extractors


class TorchExtractor:
    """I3D features with the PyTorch network; input float32 (B, T, H, W, C) on the 0-255 scale."""

    backend = "torch"

    def __init__(self, model: torch.nn.Module, protocol: FVDProtocol):
        self.protocol = protocol
        self.model = model
        self.device = next(model.parameters()).device

    def __call__(self, x0255: np.ndarray) -> np.ndarray:  # (B, T, H, W, C) -> (B, 400)
        with torch.inference_mode(), exact_math(self.protocol.exact):
            x = torch.from_numpy(x0255)
            if self.device.type == "cuda":
                x = x.pin_memory().to(self.device, non_blocking=True)
            x = preprocess(x.to(self.device), self.protocol)
            return self.model(x).double().cpu().numpy()


def build_extractor(
    model_name: str, protocol: FVDProtocol, backend: str = "torch", device: str = "auto", tensors: dict | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """An extractor for ``backend`` (torch, tf or tfhub) configured by ``protocol``.

    The torch network is built by :func:`vgbench.models.create` from the model card (weights verified from the
    cache, or ``tensors`` given in memory), with the protocol's BN eps."""
    if backend not in BACKENDS:
        raise VgbenchError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    if backend == "tfhub":
        from vgbench.metrics.i3d_tf import TFHubExtractor

        return TFHubExtractor(protocol)
    if backend == "tf":
        from vgbench import weights as weights_mod
        from vgbench.metrics.i3d_tf import TFExtractor

        return TFExtractor(tensors if tensors is not None else weights_mod.load(model_name), protocol)
    weights = tensors if tensors is not None else True
    model = models.create(model_name, weights=weights, device=resolve_device(device), bn_eps=protocol.bn_eps)
    return TorchExtractor(model, protocol)


# ----------------------------------------------------------------------------------------------------------
# Streaming extraction


def feature_key(protocol: FVDProtocol, extractor_hash: str, backend: str) -> dict:
    """Everything that changes the features (not the distance): stats are reusable when these match."""
    keys = ("resize", "resize_mode", "size", "scale", "quantize", "frames", "bn_eps")
    key = {"extractor_sha256": extractor_hash, "backend": backend, **{k: getattr(protocol, k) for k in keys}}
    for k in ("subsample", "reference_start", "seed"):  # long-video protocols only: earlier keys stay the same
        if protocol.subsample or protocol.reference_start:
            key[k] = getattr(protocol, k)
    return key


def _short_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def add_features(
    stats: FeatureStats,
    batches: Iterable[np.ndarray],
    value_range: str,
    extractor,
    p: FVDProtocol,
    bar=None,
    keep: list | None = None,
):
    """Add the I3D features of raw batches (B, T, H, W, C) to ``stats``; the next batch is read, decoded and
    brought to the network's scale in a background thread while the network runs on this one. ``keep``: a list
    that each batch's (B, 400) features are appended to (for intervals)."""
    scaled = (to_network_scale(b, value_range, p.quantize) for b in batches)
    for x in prefetch(scaled):
        feats = extractor(x)
        stats.update(feats)
        if keep is not None:
            keep.append(feats)
        if bar is not None:
            bar.update(len(x))


def extract_stats(
    samples: SampleSet,
    extractor: Callable,
    protocol: FVDProtocol,
    chunks: list[tuple[int, int]],
    batch_size: int,
    desc: str = "",
    need: validation.Need | None = None,
    role: str = "samples",
) -> list[FeatureStats]:
    """Streaming feature statistics of each video range in ``chunks``; shards ranges over torchrun processes.

    Every video is checked as it is read by the rules of :mod:`vgbench.validation` under ``need`` (default: the
    protocol's)."""
    need = need or validation.need_for("this protocol", protocol)
    if protocol.subsample or protocol.reference_start:
        samples = _Selected(samples, protocol, role)  # the frames a long-video protocol reads
    rank, size = dist.rank_and_size()
    unique = sorted(set(chunks))
    out: dict[tuple[int, int], FeatureStats] = {}
    shards = {c: dist.shard(*c, rank, size) for c in unique}
    bar = progress(sum(hi - lo for lo, hi in shards.values()), desc, disable=rank != 0)
    for a, b in unique:
        lo, hi = shards[(a, b)]
        stats, kept = FeatureStats.empty(FEATURE_DIM), []
        feats = np.zeros((b - a, FEATURE_DIM), np.float64)  # every process fills its rows: the sum gathers them
        if hi > lo:
            batches = samples.iter_batches(batch_size, lo, hi, need=need)
            add_features(stats, batches, samples.value_range, extractor, protocol, bar, keep=kept)
            feats[lo - a : hi - a] = np.concatenate(kept)
        n, s, so, feats = dist.all_reduce_sum([np.array([stats.n], np.float64), stats.sum, stats.sum_outer, feats])
        out[(a, b)] = FeatureStats(int(round(n[0])), s, so, features=feats)
    bar.close()
    return [out[c] for c in chunks]


class _Selected:
    """A sample set whose batches are the clips a long-video protocol reads from its videos
    (:func:`vgbench.metrics.long_video.select`, which needs each batch's position in the set)."""

    def __init__(self, videos, protocol: FVDProtocol, role: str):
        self.videos, self.protocol, self.role = videos, protocol, role

    def __getattr__(self, name):
        return getattr(self.videos, name)

    def iter_batches(self, batch_size: int, start: int = 0, stop: int | None = None, **kw):
        from vgbench.metrics import long_video

        pos = start
        for batch in self.videos.iter_batches(batch_size, start, stop, **kw):
            yield long_video.select(batch, pos, self.protocol, self.role)
            pos += len(batch)


def fvd_value(fake: FeatureStats, real: FeatureStats, p: FVDProtocol) -> float:
    """The Fréchet distance of two feature statistics in the protocol's precision and result dtype."""
    if p.covariance == "biased":  # StyleGAN-V's FeatureStats: covariance divided by n, not n - 1
        fs, rs = (x.sigma * ((x.n - 1) / x.n) for x in (fake, real))
        v = frechet_distance(fake.mu, fs, real.mu, rs, sqrtm=p.fd_sqrtm, dtype=p.fd_dtype)
    else:
        v = frechet_distance_from_stats(fake, real, sqrtm=p.fd_sqrtm, dtype=p.fd_dtype)
    return float(np.float32(v)) if p.result_dtype == "float32" else v


# ----------------------------------------------------------------------------------------------------------
# Stats files (usable as --reference)


def write_stats(path: str | Path, stats: list[FeatureStats], meta: dict) -> None:
    """Write per-chunk feature statistics and their provenance to ``path`` (.npz, no pickle), atomically."""
    arrays = {
        "format": np.array(STATS_FORMAT),
        "meta": np.array(json.dumps(meta, sort_keys=True)),
        "n": np.array([s.n for s in stats], np.int64),
        "sum": np.stack([s.sum for s in stats]),
        "sum_outer": np.stack([s.sum_outer for s in stats]),
    }
    if all(s.features is not None for s in stats):  # per-video features (N, 400) of every chunk, concatenated
        arrays["features"] = np.concatenate([s.features for s in stats])
    with cache.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def is_stats_file(path: str | Path) -> bool:
    """True for a file written by :func:`write_stats` (False for anything else, damaged files included: those are
    then read as a sample set, whose reader names the problem)."""
    path = Path(path)
    if path.suffix != ".npz" or not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as z:
            return "format" in z.files and str(z["format"]) == STATS_FORMAT
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):
        return False


def load_stats(path: str | Path) -> tuple[list[FeatureStats], dict]:
    """Read a stats file: per-chunk statistics and metadata, every array's shape checked."""
    what, fix = "a vgbench stats file (--save-stats)", "write it again with --save-stats"
    with reading(path, what, fix):
        try:
            with np.load(path, allow_pickle=False) as z:
                if "format" not in z.files or str(z["format"]) != STATS_FORMAT:
                    raise InputError(f"{path}: not a vgbench stats file (expected format {STATS_FORMAT})")
                missing = sorted({"meta", "n", "sum", "sum_outer"} - set(z.files))
                if missing:
                    raise InputError(f"{path}: a stats file without {', '.join(missing)}; {fix}")
                meta = json.loads(str(z["meta"]))
                n, sums, outer = z["n"], z["sum"], z["sum_outer"]
                feats = z["features"] if "features" in z.files else None
        except zipfile.BadZipFile as exc:
            raise InputError(f"{path}: cannot be read as {what} ({exc}); {fix}") from exc
    k = len(n) if n.ndim == 1 else -1
    if (
        k < 1
        or sums.shape != (k, FEATURE_DIM)
        or outer.shape != (k, FEATURE_DIM, FEATURE_DIM)
        or not isinstance(meta, dict)
    ):
        raise InputError(
            f"{path}: damaged stats file: n {n.shape}, sum {sums.shape}, sum_outer {outer.shape}; expected (K,), "
            f"(K, {FEATURE_DIM}), (K, {FEATURE_DIM}, {FEATURE_DIM}) and a JSON object of metadata; {fix}"
        )
    stats = [FeatureStats(int(c), s_, so) for c, s_, so in zip(n, sums, outer, strict=True)]
    if feats is not None:
        if feats.shape != (int(n.sum()), FEATURE_DIM):
            raise InputError(
                f"{path}: damaged stats file: features {feats.shape}, expected ({int(n.sum())}, {FEATURE_DIM}) "
                f"(one row per video of the {k} chunk(s)); {fix}"
            )
        for st, part in zip(stats, np.split(feats.astype(np.float64), np.cumsum(n)[:-1]), strict=True):
            st.features = part
    return stats, meta


# ----------------------------------------------------------------------------------------------------------
# The evaluation


@dataclass
class Reference:
    """The reference as planned before any network runs: a stats file's statistics, or a set and its chunks."""

    describe: dict
    stats: list[FeatureStats] | None = None  # from a stats file or the cache; None: extract from ``videos``
    videos: SampleSet | None = None
    chunks: list[tuple[int, int]] | None = None
    notes: list[str] = field(default_factory=list)
    off_protocol: bool = False
    cache_file: Path | None = None  # where extracted statistics are cached
    warnings: list[str] = field(default_factory=list)  # about this set alone (validation), noted in the result

    @property
    def clip_shape(self) -> list[int] | None:
        """[T, H, W] of the reference clips: as read, else as recorded with cached or saved statistics (None when
        unknown, e.g. a stats file written by an older vgbench)."""
        read = self.videos.clip_shape() if self.videos is not None else None
        return read or self.describe.get("clip_shape")


def _stats_reference(path, request: MetricRequest, fkey: dict, trials: int) -> Reference:
    """A stats file as the reference, checked against the protocol's feature settings and trial count."""
    stats, meta = load_stats(path)
    if meta.get("feature_key") != fkey:
        old = meta.get("feature_key") or {}
        diff = {k: (old.get(k), v) for k, v in fkey.items() if old.get(k) != v}
        raise ProtocolError(
            f"{path}: these statistics were made with other feature settings than protocol "
            f"{request.name}: (file, protocol) = {diff}. Recompute them with --save-stats."
        )
    if len(stats) not in (1, trials):
        raise ProtocolError(f"{path}: holds {len(stats)} trial statistics; protocol needs 1 or {trials}")
    if min(st.n for st in stats) < 2:
        raise InputError(f"{path}: statistics of {min(st.n for st in stats)} video(s); FVD needs at least 2 per set")
    from vgbench import contenthash

    source = meta.get("source", {}) if isinstance(meta.get("source"), dict) else {}
    described = {
        "stats_file": str(Path(path).resolve()),
        "stats_file_sha256": contenthash.file_sha256(path),
        **source,
    }
    warnings = [str(w) for w in meta.get("warnings", [])]  # about the set the statistics summarise
    return Reference(described, stats=stats * trials if len(stats) == 1 else stats, warnings=warnings)


def _plan_reference(reference, request: MetricRequest, trials: int, allow_fewer: bool, value_range) -> Reference:
    """Open the reference set and plan its chunks (headers and counts only)."""
    ref = reference if isinstance(reference, SampleSet) else SampleSet.open(reference, value_range)
    p = request.protocol
    chunks, notes, off = plan_chunks(ref.count, p.num_reference, trials, "reference", request.name, allow_fewer)
    return Reference({}, videos=ref, chunks=chunks, notes=notes + _round_trip(ref, p), off_protocol=off)


def _cached_reference(ref: Reference, fkey: dict, use_cache: bool) -> None:
    """Look a set's statistics up in the cache, keyed by the sha256 of its content (never by path, size or
    modification time: a file rewritten with the same size and time must not return the old numbers). Both sides
    use it: statistics do not depend on the role, so FVD* reuses the samples' statistics of FVD, and R-FVD the
    reconstructions' statistics of FVD*."""
    videos = ref.videos
    digest = videos.content_sha256()
    key = _short_hash({"fkey": fkey, "content_sha256": digest, "range": videos.value_range, "chunks": ref.chunks})
    ref.cache_file = cache.cache_dir("stats") / f"{key}.npz" if use_cache else None
    if ref.cache_file is None or not ref.cache_file.exists():
        return
    try:
        stats, meta = load_stats(ref.cache_file)
    except InputError as exc:
        log.warning("ignoring a damaged cache file (%s); the statistics are computed again", exc)
        return
    source = meta.get("source") or {}
    if source.get("content_sha256") != digest or meta.get("feature_key") != fkey or len(stats) != len(ref.chunks):
        return  # a cache entry of other content: never used
    if any(st.features is None for st in stats):
        return  # written before per-video features were kept: computed again, with them, for the interval
    log.info("statistics of %s from cache %s", videos.path, ref.cache_file)
    ref.stats, ref.describe = stats, {**videos.describe(), "clip_shape": source.get("clip_shape")}
    ref.warnings = [str(w) for w in meta.get("warnings", [])]


def _extract_unless_cached(plan: Reference, role: str, extractor, p, batch_size: int, need, fkey: dict) -> None:
    """Fill ``plan.stats`` from its videos unless the cache gave them, add what only reading showed to its
    warnings, and cache the statistics with those warnings (rank 0 writes)."""
    if plan.stats is not None:
        return
    plan.stats = extract_stats(plan.videos, extractor, p, plan.chunks, batch_size, role, need, role=role)
    plan.warnings = plan.warnings + _warn(validation.after_reading(plan.videos, need))
    plan.describe = plan.videos.describe()
    if plan.cache_file is not None and dist.rank_and_size()[0] == 0:
        meta = {"feature_key": fkey, "source": plan.describe, "chunks": plan.chunks, "warnings": plan.warnings}
        write_stats(plan.cache_file, plan.stats, meta)


def _read_shape(shape, p: FVDProtocol):
    """A reference clip shape in the samples' terms (their first ``span`` frames): a randomly started real clip
    covers ``span`` frames of a longer video."""
    if shape is None or p.reference_start != "random" or shape[0] is None:
        return shape
    return (p.span, *shape[1:])


def _round_trip(videos: SampleSet, p: FVDProtocol) -> list[str]:
    return [f"{videos.path.name}: {ROUND_TRIP_NOTE}"] if p.quantize == "truncate" and videos.dtype == "uint8" else []


def _warn(messages: list[str]) -> list[str]:
    for m in messages:
        log.warning("%s", m)
    return messages


def evaluate_fvd(
    request: MetricRequest,
    backend: str = "torch",
    device: str = "auto",
    batch_size: int | None = None,
    allow_fewer: bool = False,
    save_stats: str | Path | None = None,
    use_cache: bool = True,
    samples_range: str | None = None,
    reference_range: str | None = None,
    run: str = "",
    tensors: dict | None = None,
) -> Result:
    """Evaluate an FVD-family metric (``fvd``, ``fvd-star``, ``r-fvd``): samples against the reference.

    The reference is a sample set, a prepared split (``bair:test``) or a stats file written with ``save_stats``.
    Cheap before expensive: both inputs are opened, counted and validated (a pre-scan of every video the protocol
    reads, :mod:`vgbench.validation`), and the device checked, before the network is built or any weight fetched.
    Returns a :class:`Result`; the caller decides whether to print or store it.
    """
    t0 = time.time()
    dist.maybe_init()
    card, p = request.card, request.protocol
    need = validation.need_for(request.name, p)
    ref_need = validation.need_for(request.name, p, "reference")  # differs for randomly started real clips
    model_card = cards.model(card.extractor)
    ext_hash = model_card.weights.content_sha256 if backend != "tfhub" else "tfhub:deepmind/i3d-kinetics-400/1"
    fkey = feature_key(p, ext_hash, backend)

    # 1. Headers and counts of both inputs (made first where the checkpoint makes them), and the device
    samples, reference, made = compared_sets(request, device)
    fake = samples if isinstance(samples, SampleSet) else SampleSet.open(samples, samples_range)
    chunks, notes, off = plan_chunks(fake.count, p.num_samples, p.trials, "samples", request.name, allow_fewer)
    trials = len(chunks)
    if not isinstance(reference, SampleSet) and is_stats_file(reference):
        ref = _stats_reference(reference, request, fkey, trials)
    else:
        ref = _plan_reference(reference, request, trials, allow_fewer, reference_range)
    if backend == "torch":
        resolve_device(device)
    # 2. Every video the protocol reads, pre-scanned. The reference's statistics come from the cache when its
    # content was seen before; its warnings then come with them (stored beside the statistics).
    fake_warnings = validation.check(
        fake, need, stop=max(b for _, b in chunks), per_trial=min(b - a for a, b in chunks)
    )
    fake_plan = Reference({}, videos=fake, chunks=chunks)
    _cached_reference(fake_plan, fkey, use_cache)
    fake_warnings += [w for w in fake_plan.warnings if w not in fake_warnings]  # cached: found when extracted
    fake_plan.warnings = fake_warnings
    if ref.videos is not None:
        _cached_reference(ref, fkey, use_cache)
        if ref.stats is None:
            ref.warnings = validation.check(
                ref.videos, ref_need, stop=max(b for _, b in ref.chunks), per_trial=min(b - a for a, b in ref.chunks)
            )
    pair = validation.pair_problems(fake.clip_shape(), _read_shape(ref.clip_shape, p), need)
    validation.raise_fatal(pair)
    pair_warnings = [x.text() for x in pair]
    _warn(fake_warnings + ref.warnings + pair_warnings)
    fake.content_sha256()  # recorded in the result: hashed before the network runs, as the reference was

    # 3. The network, then the features; what only reading could show (values of decoded videos) is added to
    # each set's warnings, which are stored with its statistics
    batch_size = batch_size or p.batch_size
    extractor = build_extractor(model_card.name, p, backend, device, tensors)
    for plan, role in ((ref, "reference"), (fake_plan, "samples")):
        _extract_unless_cached(plan, role, extractor, p, batch_size, ref_need if role == "reference" else need, fkey)
    fake_stats, fake_warnings = fake_plan.stats, fake_plan.warnings
    if save_stats is not None and dist.rank_and_size()[0] == 0:
        meta = {"feature_key": fkey, "source": fake.describe(), "chunks": chunks, "warnings": fake_warnings}
        write_stats(save_stats, fake_stats, meta)

    # 4. Clip shapes of decoded videos (unknown before decoding)
    if not pair:
        late = validation.pair_problems(fake_plan.clip_shape, _read_shape(ref.clip_shape, p), need)
        validation.raise_fatal(late)
        pair_warnings = _warn([x.text() for x in late])
    warnings = fake_warnings + ref.warnings + pair_warnings

    values = [fvd_value(fs, rs, p) for fs, rs in zip(fake_stats, ref.stats, strict=True)]
    contrib = _contributions(fake_stats, ref.stats, request)
    if contrib is None:
        notes.append("no interval: the reference statistics hold no per-video features (a stats file written "
                     "before vgbench kept them); write it again with --save-stats")  # fmt: skip
    sampled, sidecar_notes = generated_by(fake)  # `vgbench sample`'s samples.json, when it describes these samples
    notes += sidecar_notes
    if min(fake_stats[0].n, ref.stats[0].n) <= FEATURE_DIM:
        notes.append(f"N <= {FEATURE_DIM}: singular covariances; compare only with numbers made at the same N")
    result = make_result(
        request,
        values,
        t0,
        n_samples=fake_stats[0].n,
        n_reference=ref.stats[0].n,
        samples={
            "role": request.role("samples"),
            **fake_plan.describe,
            **_made(made, "samples"),
            **sampled,
        },  # fmt: skip
        reference={"role": request.role("reference"), **ref.describe, **_made(made, "reference")},
        extractor={"name": model_card.name, "content_sha256": ext_hash, "bn_eps": p.bn_eps},
        backend=backend,
        device=str(getattr(extractor, "device", "cpu")),
        batch_size=batch_size,
        seed=p.seed,
        off_protocol=off or ref.off_protocol,
        notes=notes + _round_trip(fake, p) + ref.notes + warnings + made.get("notes", []),
        run=run,
        **({"checkpoint": made["checkpoint"]} if "checkpoint" in made else {}),
    )
    result.contributions = contrib
    return result


def _contributions(fake: list[FeatureStats], real: list[FeatureStats], request: MetricRequest):
    """Per-video features of every trial for the interval (None when a side has none, e.g. an old stats file)."""
    from vgbench.metrics.uncertainty import Contributions

    if any(s.features is None for s in fake + real):
        return None
    trials = [{"samples": f.features, "reference": r.features} for f, r in zip(fake, real, strict=True)]
    return Contributions("frechet", trials, {"feature_dim": FEATURE_DIM}, request.card.higher_is_better)


def _made(made: dict, slot: str) -> dict:
    """Provenance of a set the checkpoint made, for the result record."""
    return {"made_from_checkpoint": made[slot]} if slot in made else {}


# ----------------------------------------------------------------------------------------------------------
# Streaming FVD for training loops


class FrechetVideoDistance:
    """FVD accumulated batch by batch, like torchmetrics' FID: ``update(videos, real=...)``, ``compute()``,
    ``reset()``. For training loops that evaluate without writing files.

    Videos are uint8 (B, T, H, W, C), or floats in ``value_range``, as numpy arrays or tensors; they are checked,
    quantised, resized and scored exactly as ``vgbench eval`` does under ``protocol`` (same batches, same value).
    ``compute`` is one trial over everything added: the protocol's counts and trials are the caller's to respect.
    Under torchrun each process adds its share of the videos; ``compute`` sums the statistics of every process
    (one all-reduce) and every process gets the same value.

    Example::

        fvd = FrechetVideoDistance("fvd.official", device="cuda")
        fvd.update(real_clips, real=True)
        for batch in sampler:
            fvd.update(batch, real=False)
        value = fvd.compute()
    """

    def __init__(
        self,
        protocol: str = "fvd.official",
        device: str = "auto",
        value_range: str | None = None,
        backend: str = "torch",
        tensors: dict | None = None,
        extractor: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        card, tag, _ = cards.resolve_protocol(protocol)
        if card.fn != "frechet_video_distance":
            raise InputError(f"{card.name}.{tag} is not an FVD-family metric (fvd, fvd-star, r-fvd)")
        request = build_request(protocol, samples="<stream>", reference="<stream>")
        self.request, self.protocol, self.value_range = request, request.protocol, value_range
        self.extractor = extractor or build_extractor(request.card.extractor, self.protocol, backend, device, tensors)
        self.ranges: dict[bool, str] = {}  # the range each set's first batch resolved to
        self.reset()

    def reset(self, real: bool = True) -> None:
        """Forget the generated videos (and the real ones unless ``real=False``, to keep reference statistics)."""
        self.fake = FeatureStats.empty(FEATURE_DIM)
        self.ranges.pop(False, None)
        if real or not hasattr(self, "real"):
            self.real = FeatureStats.empty(FEATURE_DIM)
            self.ranges.pop(True, None)

    def update(self, videos, real: bool) -> None:
        """Add a batch of videos (B, T, H, W, C) to the real or the generated set."""
        if isinstance(videos, torch.Tensor):
            videos = videos.detach().cpu().numpy()
        what = "real" if real else "generated"
        clips = SampleSet.from_array(np.asarray(videos), self.value_range, name=f"{what} videos")
        seen = self.ranges.setdefault(real, clips.value_range)
        if clips.value_range != seen:
            raise InputError(
                f"{what} videos: this batch reads as range {clips.value_range} ({clips.range_source}), earlier ones "
                f"as {seen}; pass value_range= to FrechetVideoDistance so that every batch is read the same way"
            )
        need = validation.need_for(self.request.name, self.protocol)
        batches = clips.iter_batches(self.protocol.batch_size, need=need)
        add_features(self.real if real else self.fake, batches, clips.value_range, self.extractor, self.protocol)

    def compute(self) -> float:
        """FVD between everything added as generated and as real (by every process), in the protocol's precision."""
        fake, real = _synced(self.fake), _synced(self.real)
        for what, stats in (("generated", fake), ("real", real)):
            if stats.n < 2:
                raise InputError(f"FVD needs at least 2 {what} videos; {stats.n} were added with update()")
        return fvd_value(fake, real, self.protocol)


def _synced(stats: FeatureStats) -> FeatureStats:
    """The statistics of every torchrun process's videos together (the same object in one process)."""
    if dist.rank_and_size()[1] == 1:
        return stats
    n, s, outer = dist.all_reduce_sum([np.array([float(stats.n)]), stats.sum, stats.sum_outer])
    return FeatureStats(int(round(n[0])), s, outer)
