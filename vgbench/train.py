"""``vgbench train``: the VideoGPT VQ-VAE, then its prior on the frozen VQ-VAE, with exact resume and torchrun.

One loop serves both stages. What makes it exact:

- **Data order** is a function of (seed, step) only: global batch ``s`` is slice ``s`` of a per-epoch permutation
  (seeded with (seed, epoch)), and clip windows are drawn from (seed, epoch, index) by ``ClipDataset``. Rank r of W
  takes the r-th contiguous part of each global batch, split into ``accum`` micro-batches, so 1 process and W
  processes see the same global batch, and a resumed run continues at the same clip.
- **State**: model, optimiser, scheduler, gradient scaler, the codebook's EMA state and initialised flag (buffers
  of the model), every RNG (Python, numpy, torch, CUDA; per rank) and the step are in each checkpoint
  (:mod:`vgbench.models.checkpoint`), written atomically by rank 0. On CPU a resumed run is bitwise equal to an
  uninterrupted one.
- **Stopping**: SIGINT / SIGTERM set a flag that every rank agrees on at the next step boundary; the run writes a
  checkpoint and exits with code 130. A crash loses at most the steps since the last checkpoint.

Distributed: under ``torchrun`` the model is wrapped in DistributedDataParallel (gloo on CPU, NCCL on GPU); the
VQ-VAE codebook all-reduces its own statistics. Only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import logging
import math
import os
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from vgbench import cache, cards, dist
from vgbench import device as device_mod
from vgbench.errors import InputError, VgbenchError
from vgbench.models import checkpoint as ckpt_mod
from vgbench.results import versions

log = logging.getLogger(__name__)

# The paper's configuration per dataset: (VQ-VAE card, prior card).
DEFAULT_CARDS = {
    "bair": ("vqvae.bair", "gpt.bair"),
    "moving_mnist": ("vqvae.mmnist", "gpt.mmnist"),
    "ucf101": ("vqvae.ucf101_128", "gpt.ucf101_128"),
    "tgif": ("vqvae.tgif", "gpt.tgif"),
}
STAGES = ("vqvae", "prior", "all")
RUN_FORMAT = "vgbench-run/1"


# ----------------------------------------------------------------------------------------------------------
# Options and overrides


@dataclass
class TrainOptions:
    """Everything about a run that is not in the card (recorded in the run folder's config.json)."""

    steps: int | None = None  # default: the card's training.steps
    batch_size: int | None = None  # global batch; default: the card's
    accum: int = 1  # micro-batches per step on each process (gradient accumulation)
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU; or fp32, bf16, fp16
    compile: bool = False
    workers: int = 0  # DataLoader workers per process
    log_every: int = 10
    val_every: int = 1000
    val_clips: int = 64  # clips of the validation split scored at each validation
    sample_every: int = 0  # prior: write a small sample grid every K steps (0: only at the end)
    ckpt_every: int = 1000
    keep: int = 2  # step checkpoints kept besides best.pt
    grad_checkpointing: bool = False
    progress: bool = True
    max_seconds: float | None = None  # stop (as if finished) once this much time has passed: runs are then
    # time-bounded, not step-exact (recorded in the run's config and the final checkpoint's meta)


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> dict[str, dict[str, dict]]:
    """``--set`` pairs -> {stage: {"config": {...}, "training": {...}}} for stages ``vqvae`` and ``prior``.

    KEY is ``[STAGE.]SECTION.NAME`` or a bare ``NAME`` (= ``config.NAME``): ``config.hidden=64``,
    ``training.lr=1e-3``, ``prior.config.layers=4``. Without a stage the pair applies to every stage trained (a
    field a stage's card does not have is then an error naming it). Values are YAML scalars or lists
    (``64``, ``1e-3``, ``true``, ``[2, 2, 2]``)."""
    out = {st: {"config": {}, "training": {}} for st in ("vqvae", "prior")}
    for pair in pairs:
        if "=" not in pair:
            raise InputError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set config.hidden=64 or training.lr=3e-4")
        key, raw = pair.split("=", 1)
        parts = key.strip().split(".")
        stages = [parts.pop(0)] if parts[0] in out and len(parts) > 1 else list(out)
        section = parts.pop(0) if len(parts) > 1 else "config"
        if section not in ("config", "training") or len(parts) != 1 or not parts[0]:
            raise InputError(f"--set {pair!r}: KEY is [vqvae.|prior.](config|training).NAME, or a bare config NAME")
        value = _scalar(raw, pair)
        for st in stages:
            out[st][section][parts[0]] = value
    return out


def _scalar(raw: str, pair: str):
    """A --set value: int, then float (``1e-3`` too, which YAML 1.1 reads as a string), then YAML."""
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise InputError(f"--set {pair!r}: the value is not a plain scalar or list ({exc})") from exc


def resolve_training(card: cards.ModelCard, overrides: dict) -> cards.TrainingSpec:
    """The card's training spec with ``overrides`` applied and type-checked (errors name card and field)."""
    if card.training is None:
        raise VgbenchError(f"{card.name} is not a trainable model card (it has no training section)")
    data = {**dataclasses.asdict(card.training), **overrides}
    return cards._build(cards.TrainingSpec, data, f"card {card.name}", "training")


def resolve_cards(dataset: str | None, model: str | None, stage: str) -> tuple[str | None, str | None]:
    """(VQ-VAE card, prior card) for a stage: the named card (a prior brings its VQ-VAE), else the paper's default."""
    if stage not in STAGES:
        raise InputError(f"unknown stage {stage!r}; allowed: {', '.join(STAGES)}")
    if model is not None:
        card = cards.model(model)
        if card.vqvae:
            return card.vqvae, card.name
        if stage == "prior":
            raise InputError(f"--model {card.name} is a VQ-VAE card; --stage prior needs a prior card (gpt.*)")
        return card.name, None
    if dataset is None:
        raise InputError(
            f"give a DATASET ({', '.join(sorted(DEFAULT_CARDS))}: trains the paper's model for it) or --model CARD "
            "(`vgbench list models` lists them)"
        )
    if dataset not in DEFAULT_CARDS:
        from vgbench.registry import did_you_mean

        raise InputError(did_you_mean("dataset with a default model", str(dataset), DEFAULT_CARDS))
    return DEFAULT_CARDS[dataset]


# ----------------------------------------------------------------------------------------------------------
# Data: global batches that do not depend on the world size


class GlobalBatches:
    """Index lists of this process's micro-batches for each step: a pure function of (seed, step).

    Global batch ``s`` is ``perm_e[k*B:(k+1)*B]`` with ``e, k = divmod(s, n // B)`` and ``perm_e`` a permutation of
    the ``n`` items seeded with (seed, e) (the incomplete tail of an epoch is dropped). Items are encoded as
    ``e * n + i`` so that the dataset can redraw random windows per epoch inside DataLoader workers.
    """

    def __init__(self, n: int, batch: int, seed: int, rank: int, world: int, accum: int):
        if batch % (world * accum):
            raise InputError(
                f"global batch {batch} is not divisible by processes x accumulation = {world} x {accum}; "
                "choose --batch-size or --accum so that it is"
            )
        if n < batch:
            raise InputError(f"the training split has {n} clips, fewer than one global batch of {batch}")
        self.n, self.batch, self.seed, self.rank, self.world, self.accum = n, batch, seed, rank, world, accum
        self.per_epoch = n // batch
        self._perm: tuple[int, np.ndarray] | None = None

    def micro_batches(self, step: int) -> list[list[int]]:
        """This rank's ``accum`` micro-batches of global batch ``step`` (encoded indices)."""
        epoch, k = divmod(step, self.per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n))
        glob = self._perm[1][k * self.batch : (k + 1) * self.batch]
        local = np.array_split(glob, self.world)[self.rank]
        return [[int(epoch * self.n + i) for i in part] for part in np.array_split(local, self.accum)]


class EpochClips(torch.utils.data.Dataset):
    """A ClipDataset read with encoded ``epoch * n + index`` items (random windows redrawn per epoch)."""

    def __init__(self, clips):
        self.clips = clips
        self.n = len(clips)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, code: int) -> dict:
        epoch, index = divmod(int(code), self.n)
        self.clips.set_epoch(epoch)
        return self.clips[index]


@dataclass
class TrainData:
    """Training and validation clips (float CTHW in [-0.5, 0.5]) and their provenance."""

    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset | None
    describe: dict


AUGMENT = {  # training.augment -> ClipDataset (crop, flip); evaluation clips are always the centre, unflipped
    "none": ("center", False),
    "hflip": ("center", True),
    "random_crop_flip": ("random", True),
}


def store_data(spec: cards.TrainingSpec, channels: int, seed: int, root=None, variant: str | None = None) -> TrainData:
    """Clips of a prepared store, as the card's training spec says; a missing or broken store is a clear error.

    The store is the dataset's variant for the spec's split and resolution (UCF-101 ``fold1/train`` at 128:
    ``fold1_128``, split ``train``) unless ``variant`` names one. Training clips are augmented as
    ``spec.augment`` says (:data:`AUGMENT`), validation clips never."""
    from vgbench import datasets
    from vgbench.datasets.loader import ClipDataset

    mapped, split = datasets.store_split(spec.dataset, spec.split, spec.resolution)
    val_split = datasets.store_split(spec.dataset, spec.val_split, spec.resolution)[1] if spec.val_split else ""
    try:
        store = datasets.open_store(spec.dataset, variant or mapped, root)
    except InputError as exc:
        raise InputError(f"{exc} (training reads its clips from the prepared store)") from exc
    check_store(store, [split, val_split])
    clip_hw = store.crop_size or tuple(store.manifest.get("frame_shape") or (None, None))[:2]
    if clip_hw[0] is not None and tuple(clip_hw) != (spec.resolution, spec.resolution):
        raise InputError(
            f"{store.folder}: clips of {clip_hw[0]}x{clip_hw[1]}, but the card trains at {spec.resolution}x"
            f"{spec.resolution} (training.resolution); prepare that size (`vgbench data prepare {spec.dataset} "
            f"--resolution {spec.resolution}`) or train another card"
        )
    extras = ()
    crop, flip = AUGMENT[spec.augment]
    common = {"clip_len": spec.clip_len, "output": "float_cthw", "channels": channels, "seed": seed}
    train = ClipDataset(store, split, windows=spec.windows, extras=extras, crop=crop, flip=flip, **common)
    val = ClipDataset(store, val_split, windows="fixed", **common) if val_split else None
    manifest = store.folder / "manifest.json"
    return TrainData(
        train,
        val,
        {
            "dataset": spec.dataset,
            "store": str(store.folder),
            "manifest_sha256": cache.sha256_file(manifest),
            "split": spec.split,
            "val_split": spec.val_split,
            "train_clips": len(train),
            "val_clips": len(val) if val is not None else 0,
            "windows": spec.windows,
            "clip_len": spec.clip_len,
            "augment": spec.augment,
        },
    )


def check_store(store, splits: list[str]) -> None:
    """Cheap structural checks before training: splits exist and every shard file has the size its .json says."""
    for split in splits:
        if not split:
            continue
        folder = store.folder / split
        jsons = sorted(folder.glob("shard-*.json")) if folder.is_dir() else []
        if not jsons:
            raise InputError(
                f"{store.folder}: split {split!r} is not prepared (available: {', '.join(store.splits) or 'none'}); "
                f"run `vgbench data prepare {store.manifest.get('dataset', 'NAME')}`"
            )
        for f in jsons:
            meta = json.loads(f.read_text())
            npy = f.with_suffix(".npy")
            try:
                arr = np.load(npy, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise InputError(
                    f"{npy}: unreadable shard ({exc}); the store is damaged. Delete {f.name} and {npy.name} and "
                    "run `vgbench data prepare` again (it redoes only missing shards)."
                ) from exc
            if list(arr.shape) != meta.get("frames_shape", list(arr.shape)):
                raise InputError(
                    f"{npy}: shape {list(arr.shape)} differs from {meta['frames_shape']} recorded in {f.name}; "
                    "the store is damaged. Delete both files and run `vgbench data prepare` again."
                )


# ----------------------------------------------------------------------------------------------------------
# Stage-specific pieces


def make_cond(prior_config: Any, batch: dict, device) -> dict | None:
    """The prior's conditioning from a batch: the first ``cond_frames`` frames, or the class label."""
    cond = {}
    n = getattr(prior_config, "cond_frames", 0)
    if n:
        cond["frames"] = batch["video"][:, :, :n].to(device)  # (B, C, n, H, W)
    if getattr(prior_config, "n_classes", 0):
        cond["label"] = torch.as_tensor(batch["label"], device=device)
    return cond or None


def _lr_lambda(spec: cards.TrainingSpec, steps: int):
    def fn(step: int) -> float:
        if spec.warmup_steps and step < spec.warmup_steps:
            return (step + 1) / spec.warmup_steps
        if spec.schedule == "cosine":
            t = (step - spec.warmup_steps) / max(1, steps - spec.warmup_steps)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
        return 1.0

    return fn


def _optimizer(params, spec: cards.TrainingSpec) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if spec.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=spec.lr, betas=tuple(spec.betas), weight_decay=spec.weight_decay)


# ----------------------------------------------------------------------------------------------------------
# RNG state (saved per rank)


def rng_state() -> dict:
    """Every RNG this process uses, as tensors and plain values (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore :func:`rng_state`'s output."""
    random.setstate(_tuples(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, list | tuple) else x


def seed_everything(seed: int, rank: int) -> None:
    """Seed Python, numpy and torch; ranks differ (dropout), data order does not depend on these."""
    s = seed * 1000 + rank
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)


# ----------------------------------------------------------------------------------------------------------
# Stopping on signals


class StopFlag:
    """SIGINT / SIGTERM request a clean stop at the next step boundary (a second Ctrl-C stops at once)."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: no handler, Ctrl-C raises as usual
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("stop requested (signal %d): finishing the step, writing a checkpoint", signum)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False

    def agreed(self) -> bool:
        """True when any process was asked to stop (all ranks stop at the same step)."""
        flag = float(self.requested)
        if dist.rank_and_size()[1] > 1:
            flag = float(dist.all_reduce_sum([np.array([flag])])[0][0])
        return flag > 0


class Interrupted(VgbenchError):
    """Training stopped on request after writing a checkpoint (the CLI exits with 130, as for any interrupt)."""

    from vgbench.workers import EXIT_INTERRUPTED as exit_code


# ----------------------------------------------------------------------------------------------------------
# The run folder


class RunFolder:
    """``DIR/config.json``, ``metrics.jsonl`` (+ ``metrics.csv``), ``checkpoints/``, ``samples/``; rank 0 writes."""

    def __init__(self, path: Path, writer: bool):
        self.path = Path(path)
        self.ckpts = self.path / "checkpoints"
        self.writer = writer
        if writer:
            self.ckpts.mkdir(parents=True, exist_ok=True)
            (self.path / "samples").mkdir(exist_ok=True)

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    def write_config(self, config: dict) -> None:
        if self.writer:
            cache.atomic_write_bytes(self.config_file, (json.dumps(config, indent=1, sort_keys=True) + "\n").encode())

    def read_config(self) -> dict | None:
        return json.loads(self.config_file.read_text()) if self.config_file.exists() else None

    def step_checkpoints(self) -> list[Path]:
        """Step checkpoints, newest first."""
        return sorted(self.ckpts.glob("step-*.pt"), reverse=True)

    def log(self, record: dict) -> None:
        if self.writer:
            cache.append_line(self.path / "metrics.jsonl", json.dumps(record, sort_keys=True))
            tb = self._tensorboard()
            if tb is not None:
                for k, v in record.items():
                    if k not in ("step", "kind") and isinstance(v, int | float):
                        tb.add_scalar(f"{record['kind']}/{k}", v, record["step"])
                tb.flush()

    def _tensorboard(self):
        """A TensorBoard writer into ``DIR/tensorboard`` when the tensorboard package is installed, else None."""
        if not hasattr(self, "_tb"):
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.path / "tensorboard"))
            except ImportError:  # optional: the JSONL/CSV logs are always written
                self._tb = None
        return self._tb

    def truncate_log(self, step: int) -> None:
        """Drop records after ``step`` (written after the checkpoint a resumed run starts from)."""
        path = self.path / "metrics.jsonl"
        if not self.writer or not path.exists():
            return
        keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
        cache.atomic_write_bytes(path, ("\n".join(keep) + "\n" if keep else "").encode())

    def records(self) -> list[dict]:
        path = self.path / "metrics.jsonl"
        return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.exists() else []

    def write_csv(self) -> None:
        """metrics.csv: the JSONL log as a table (one row per record, union of columns)."""
        if not self.writer:
            return
        rows = self.records()
        cols = ["step", "kind", *sorted({k for r in rows for k in r} - {"step", "kind"})]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
        cache.atomic_write_bytes(self.path / "metrics.csv", buf.getvalue().encode())


def newest_valid_checkpoint(run: RunFolder) -> ckpt_mod.Checkpoint | None:
    """The newest step checkpoint that loads; a damaged newer one is reported and skipped."""
    for path in run.step_checkpoints():
        try:
            return ckpt_mod.load(path)
        except InputError as exc:
            log.warning("skipping damaged checkpoint %s (%s); using the one before", path, exc)
    return None


# ----------------------------------------------------------------------------------------------------------
# The loop


@dataclass
class StageResult:
    """What a finished (or stopped) stage leaves."""

    stage: str
    card: str
    folder: Path
    step: int
    last: Path | None
    best: Path | None
    metrics: dict = field(default_factory=dict)
    interrupted: bool = False


def _loader(dataset, batches: Iterator[list[int]], workers: int, seed: int):
    g = torch.Generator().manual_seed(seed)  # DataLoader base seeds never consume the global RNG
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=list(batches), num_workers=workers, generator=g, persistent_workers=False
    )


class PriorObjective(torch.nn.Module):
    """The prior's training loss as a module's forward, so that DistributedDataParallel can hook it."""

    def __init__(self, videogpt: torch.nn.Module):
        super().__init__()
        self.net = videogpt

    def forward(self, video: torch.Tensor, cond: dict | None) -> torch.Tensor:
        return self.net.loss(video, cond)[0]


class StageTrainer:
    """Trains one stage (``vqvae`` or ``prior``) of one card into one run folder."""

    def __init__(
        self,
        stage: str,
        card: cards.ModelCard,
        data: TrainData,
        out: Path,
        opts: TrainOptions,
        overrides: dict,
        vqvae_ckpt: ckpt_mod.Checkpoint | None = None,
        run_name: str = "",
    ):
        from vgbench.device import resolve_device

        self.stage, self.card, self.data, self.opts = stage, card, data, opts
        self.rank, self.world = dist.maybe_init()
        self.device = resolve_device(opts.device)
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        self.precision = device_mod.resolve_precision(opts.precision, self.device)
        if self.device.type == "cuda":  # TF32 speeds training; the parity metrics switch it off for themselves
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.overrides = {k: v for k, v in overrides.items() if v}  # --set changes to the card, kept in checkpoints
        self.spec = resolve_training(card, overrides.get("training", {}))
        self.steps = opts.steps if opts.steps is not None else self.spec.steps
        self.batch = opts.batch_size or self.spec.batch_size
        self.run = RunFolder(out, self.rank == 0)
        self.run_name = run_name or f"{card.name}@{out}"
        self.vqvae_ckpt = vqvae_ckpt
        seed_everything(opts.seed, self.rank)  # initialisation depends on the seed alone
        self.model = self._build(overrides.get("config", {}))
        self.config_dict = ckpt_mod.config_dict(self._net().config)
        params = [p for p in self._net().parameters() if p.requires_grad]
        self.optimizer = _optimizer(params, self.spec)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _lr_lambda(self.spec, self.steps))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.batches = GlobalBatches(len(data.train), self.batch, opts.seed, self.rank, self.world, opts.accum)
        self.step = 0
        self.best: float | None = None
        self.variance_record: dict | None = None  # set when a fresh run measures the VQ-VAE's NMSE divisor

    # -- model ---------------------------------------------------------------------------------------------

    def _build(self, config_overrides: dict) -> torch.nn.Module:
        from vgbench.models import create

        if self.opts.grad_checkpointing:
            config_overrides = {**config_overrides, "checkpointing": True}
        if self.stage == "vqvae":
            model = create(self.card, weights=False, **config_overrides)
        else:
            if self.vqvae_ckpt is None:
                raise InputError(f"training the prior {self.card.name} needs a trained VQ-VAE checkpoint (--vqvae)")
            if self.vqvae_ckpt.card != self.card.vqvae:
                log.warning(
                    "prior card %s names VQ-VAE %s; training on %s from %s",
                    self.card.name,
                    self.card.vqvae,
                    self.vqvae_ckpt.card,
                    self.vqvae_ckpt.path,
                )
            vqvae = ckpt_mod.build(self.vqvae_ckpt)
            model = create(self.card, weights=False, vqvae=vqvae, **config_overrides)
        self.net = model.to(self.device)
        model = self.net if self.stage == "vqvae" else PriorObjective(self.net)
        if self.opts.compile:  # the compiled module shares parameters and buffers with self.net
            model = torch.compile(model)
        if self.world > 1:
            model = torch.nn.parallel.DistributedDataParallel(
                model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                broadcast_buffers=False,  # the codebook keeps its buffers in sync itself
                find_unused_parameters=False,
            )
        return model

    def _net(self) -> torch.nn.Module:
        return self.net

    def _forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        x = batch["video"].to(self.device, non_blocking=True)  # (B, C, T, H, W)
        with device_mod.autocast(self.device, self.precision):
            if self.stage == "vqvae":
                out = self.model(x)
                stats = {
                    "recon_loss": out.recon_loss.detach(),
                    "commitment_loss": out.commitment_loss.detach(),
                    "perplexity": torch.as_tensor(out.perplexity).detach(),
                    "usage": torch.as_tensor(out.usage, dtype=torch.float32).detach(),
                }
                return out.loss, stats
            cond = make_cond(self._net().prior.config, batch, self.device)
            loss = self.model(x, cond)
            return loss, {"bits_per_dim": loss.detach() / math.log(2)}

    # -- checkpoints ----------------------------------------------------------------------------------------

    def _train_state(self) -> dict:
        states = [rng_state()]
        if self.world > 1:
            gathered: list = [None] * self.world
            torch.distributed.all_gather_object(gathered, states[0])
            states = gathered
        return {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": states,
            "world_size": self.world,
            "best": self.best,
        }

    def _vqvae_record(self) -> dict | None:
        if self.stage != "prior":
            return None
        return {"card": self.vqvae_ckpt.card, "config": self.vqvae_ckpt.config, "sha256": self.vqvae_ckpt.sha256}

    def save(self, name: str | None = None) -> Path | None:
        """Write a step checkpoint (and prune old ones); rank 0 only, but every rank takes part in RNG gathering."""
        state = self._train_state()
        if self.rank != 0:
            return None
        path = self.run.ckpts / (name or f"step-{self.step:08d}.pt")
        meta = {"step": self.step, "stage": self.stage, "run": self.run_name, "data": self.data.describe}
        if self.overrides:  # tables mark numbers of a changed configuration as not reproducing the card's row
            meta["overrides"] = self.overrides
        ckpt_mod.save(
            path, self._net(), self.card, self.config_dict, vqvae=self._vqvae_record(), train_state=state, meta=meta
        )
        for old in self.run.step_checkpoints()[self.opts.keep :]:
            old.unlink(missing_ok=True)
        cache.atomic_write_bytes(self.run.ckpts / "last.txt", f"{path.name}\n".encode())
        return path

    def restore(self, ck: ckpt_mod.Checkpoint) -> None:
        """Continue from a training checkpoint of the same card and run configuration."""
        if ck.card != self.card.name:
            raise InputError(
                f"{ck.path}: a checkpoint of card {ck.card}, but this run trains {self.card.name}; "
                "resume with the same --model, or start a new --out folder"
            )
        if ck.config != self.config_dict:
            diff = {k: (ck.config.get(k), v) for k, v in self.config_dict.items() if ck.config.get(k) != v}
            raise InputError(f"{ck.path}: written with another config than this run: (checkpoint, now) = {diff}")
        ts = ck.train_state
        if ts is None:
            raise InputError(f"{ck.path}: holds no training state (an exported checkpoint); it cannot be resumed")
        if ts["world_size"] != self.world:
            log.warning(
                "resuming a run of %d processes with %d: data order is unchanged, dropout RNG streams differ",
                ts["world_size"],
                self.world,
            )
        self._net().load_state_dict(ck.model)
        self.optimizer.load_state_dict(ts["optimizer"])
        self.scheduler.load_state_dict(ts["scheduler"])
        self.scaler.load_state_dict(ts["scaler"])
        self.step, self.best = int(ts["step"]), ts.get("best")
        states = ts["rng"]
        set_rng_state(states[self.rank] if self.rank < len(states) else states[0])
        self.run.truncate_log(self.step)
        log.info("resumed %s at step %d from %s", self.card.name, self.step, ck.path)

    # -- the NMSE divisor -----------------------------------------------------------------------------------

    def set_recon_variance(self) -> None:
        """Before the first step of a fresh run: a ``recon_variance: measured`` VQ-VAE gets the pixel variance of
        the training split (:func:`vgbench.metrics.nmse.split_variance`). A resumed run never measures again: the
        value is the model buffer in its checkpoint."""
        net = self._net()
        if self.stage != "vqvae" or net.config.recon_variance != "measured":
            return
        store, split = getattr(self.data.train, "store", None), getattr(self.data.train, "split", None)
        if store is None or split is None:
            raise InputError(
                f"{self.card.name}: recon_variance 'measured' needs training clips from a prepared store (the "
                "variance is measured on its training split); set a constant with --set config.recon_variance=0.06"
            )
        from vgbench.metrics.nmse import split_variance

        t0 = time.time()
        variance, how = split_variance(store, split)
        if not variance > 0:
            raise InputError(
                f"{store.folder}:{split}: every pixel of the training split has the same value (variance 0 over "
                f"{how['values']:,} values), so it cannot divide the NMSE; check the store (`vgbench data info`) or "
                "set a constant with --set config.recon_variance=0.06"
            )
        net.set_recon_variance(variance)
        self.variance_record = {"value": variance, "source": "measured", **how, "seconds": round(time.time() - t0, 2)}
        log.info("recon_variance: %.6f measured on %s:%s (%d values)", variance, store.folder, split, how["values"])

    def _variance_record(self) -> dict:
        """config.json's ``recon_variance``: how the VQ-VAE's NMSE divisor was set (a resumed run keeps the first
        run's record when the checkpoint's value is the one it recorded)."""
        if self.stage != "vqvae":
            return {}
        value = float(self._net().recon_variance)
        record = self.variance_record
        if record is None:
            earlier = (self.run.read_config() or {}).get("recon_variance") if self.run.config_file.exists() else None
            if isinstance(earlier, dict) and earlier.get("value") == value:
                record = earlier
            elif self._net().config.recon_variance == "measured":
                record = {"value": value, "source": "checkpoint (measured by the run that wrote it)"}
            else:
                record = {"value": value, "source": "card constant"}
        return {"recon_variance": record}

    # -- validation -----------------------------------------------------------------------------------------

    @torch.no_grad()
    def validate(self) -> dict:
        """VQ-VAE: NMSE (the model's variance), code usage and perplexity; prior: nats and bits/dim per token."""
        val = self.data.val
        if val is None or self.opts.val_clips <= 0:
            return {}
        net = self._net()
        was_training = net.training
        net.eval()
        n = min(self.opts.val_clips, len(val))
        lo, hi = dist.shard(0, n, self.rank, self.world)
        sums = np.zeros(4, np.float64)  # stage-specific sums, count
        used = None
        bs = max(1, self.batch // max(1, self.world * self.opts.accum))
        for i in range(lo, hi, bs):
            items = [val[j] for j in range(i, min(i + bs, hi))]
            batch = torch.utils.data.default_collate(items)
            x = batch["video"].to(self.device)
            with device_mod.autocast(self.device, self.precision):
                if self.stage == "vqvae":
                    out = net(x)
                    sums[0] += float(((out.recon.float() - x) ** 2).sum())
                    sums[1] += x.numel()
                    hist = torch.bincount(out.codes.flatten(), minlength=net.config.n_codes).cpu().numpy()
                    used = hist if used is None else used + hist
                else:
                    nll = net.token_nll(x, make_cond(net.prior.config, batch, self.device))  # (B, S) nats
                    sums[0] += float(nll.double().sum())
                    sums[1] += nll.numel()
        sums = dist.all_reduce_sum([sums])[0]
        if used is not None or self.stage == "vqvae":
            used = dist.all_reduce_sum([used if used is not None else np.zeros(net.config.n_codes)])[0]
        net.train(was_training)
        if sums[1] == 0:
            return {}
        if self.stage == "vqvae":
            p = used / max(used.sum(), 1)
            nz = p[p > 0]
            variance = float(net.recon_variance)  # the card's constant, or the measured value set before step 1
            return {
                "val_nmse": float(sums[0] / sums[1] / variance),
                "val_usage": float((used > 0).mean()),
                "val_perplexity": float(np.exp(-(nz * np.log(nz)).sum())),
                "nmse_variance": variance,
            }
        nats = float(sums[0] / sums[1])
        return {"val_nats": nats, "val_bits_per_dim": nats / math.log(2)}

    # -- main loop ------------------------------------------------------------------------------------------

    def fit(self, resume: bool) -> StageResult:
        """Train to ``steps`` (resuming from the newest valid checkpoint when asked)."""
        if resume:
            ck = newest_valid_checkpoint(self.run)
            if ck is None:
                raise InputError(f"--resume: no readable checkpoint in {self.run.ckpts}; start without --resume")
            self.restore(ck)
        else:
            self.set_recon_variance()
        self.run.write_config(self.record())
        start, t_start = self.step, time.time()
        from tqdm import tqdm

        bar = tqdm(
            total=self.steps,
            initial=start,
            desc=f"{self.stage} {self.card.name}",
            disable=self.rank != 0 or not self.opts.progress,
            unit="step",
            dynamic_ncols=True,
        )
        loader_iter = iter(
            _loader(
                EpochClips(self.data.train),
                (mb for s in range(start, self.steps) for mb in self.batches.micro_batches(s)),
                self.opts.workers,
                self.opts.seed,
            )
        )
        self.model.train()
        if self.stage == "prior":
            self._net().vqvae.eval()
        interrupted = False
        clips_done, t_last = 0, time.time()
        with StopFlag() as stop:
            while self.step < self.steps:
                loss_sum, stats_sum = 0.0, {}
                for j in range(self.opts.accum):
                    batch = next(loader_iter)
                    sync = j == self.opts.accum - 1 or self.world == 1
                    ctx = contextlib.nullcontext() if sync else self.model.no_sync()
                    with ctx:
                        loss, stats = self._forward(batch)
                        if not torch.isfinite(loss):
                            raise VgbenchError(
                                f"{self.card.name}: the loss became {float(loss)} at step {self.step}; lower the "
                                "learning rate (--set training.lr=...) or resume from the last checkpoint"
                            )
                        self.scaler.scale(loss / self.opts.accum).backward()
                    loss_sum += float(loss.detach()) / self.opts.accum
                    for k, v in stats.items():
                        stats_sum[k] = stats_sum.get(k, 0.0) + float(v) / self.opts.accum
                    clips_done += len(batch["video"])
                if self.spec.grad_clip:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self._net().parameters(), self.spec.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                self.scheduler.step()
                self.step += 1
                if self.world > 1:  # the logged loss is the global batch's mean
                    vals = np.array([loss_sum, *stats_sum.values()], np.float64)
                    vals = dist.all_reduce_sum([vals])[0] / self.world
                    loss_sum, stats_sum = float(vals[0]), dict(zip(stats_sum, map(float, vals[1:]), strict=True))
                if self.step % self.opts.log_every == 0 or self.step == self.steps:
                    now = time.time()
                    rate = clips_done * self.world / max(now - t_last, 1e-9)
                    rec = {"step": self.step, "kind": "train", "loss": loss_sum, "lr": self.scheduler.get_last_lr()[0]}
                    rec.update(stats_sum)
                    rec["clips_per_s"] = round(rate, 4)
                    self.run.log(rec)
                    bar.set_postfix(loss=f"{loss_sum:.4f}", clips_s=f"{rate:.2f}")
                    clips_done, t_last = 0, now
                bar.update(1)
                out_of_time = self.opts.max_seconds is not None and time.time() - t_start > self.opts.max_seconds
                if self.opts.max_seconds is not None and self.world > 1:  # every rank stops at the same step
                    out_of_time = float(dist.all_reduce_sum([np.array([float(out_of_time)])])[0][0]) > 0
                if out_of_time:
                    log.info("time budget of %.0f s spent at step %d: finishing here", self.opts.max_seconds, self.step)
                    self.steps = self.step
                last_step = self.step == self.steps
                if self.opts.val_every and (self.step % self.opts.val_every == 0 or last_step):
                    self._validate_and_keep_best()
                if self.stage == "prior" and self.opts.sample_every and self.step % self.opts.sample_every == 0:
                    self.write_samples()
                if stop.agreed():
                    interrupted = True
                    break
                if (self.opts.ckpt_every and self.step % self.opts.ckpt_every == 0) or last_step:
                    self.save()
        bar.close()
        last = self.save() if interrupted else self.run.ckpts / f"step-{self.step:08d}.pt"
        if not interrupted and self.rank == 0:
            ckpt_mod.export(last, self.run.ckpts / "final.pt")
            if self.stage == "prior":
                self.write_samples()
        self.run.write_csv()
        dist.barrier()  # every rank sees the final files before going on
        metrics = {"elapsed_s": round(time.time() - t_start, 2), "steps_done": self.step - start}
        result = StageResult(
            self.stage,
            self.card.name,
            self.run.path,
            self.step,
            last,
            self.run.ckpts / "best.pt" if (self.run.ckpts / "best.pt").exists() else None,
            metrics,
            interrupted,
        )
        if interrupted:
            raise Interrupted(
                f"stopped at step {self.step} of {self.steps}; checkpoint {last}. Continue with the same command "
                "and --resume."
            )
        return result

    def _validate_and_keep_best(self) -> None:
        metrics = self.validate()
        if not metrics:
            return
        self.run.log({"step": self.step, "kind": "val", **metrics})
        key = "val_nmse" if self.stage == "vqvae" else "val_bits_per_dim"
        if self.best is None or metrics[key] < self.best:
            self.best = float(metrics[key])
            path = self.save("best.pt")
            if path is not None:
                log.info("step %d: %s %.5f (best so far) -> %s", self.step, key, metrics[key], path)

    def write_samples(self, n: int = 4) -> Path | None:
        """A small GIF grid of samples conditioned on validation clips (prior stage)."""
        from vgbench import sample as sample_mod

        if self.rank != 0:
            return None
        net = self._net()
        was = net.training
        net.eval()
        cond = None
        if self.data.val is not None:
            items = [self.data.val[i] for i in range(min(n, len(self.data.val)))]
            cond = make_cond(net.prior.config, torch.utils.data.default_collate(items), self.device)
            n = len(items)
        videos = net.sample(cond or n, seeds=list(range(n)), batch_size=n)
        net.train(was)
        net.vqvae.eval()
        path = self.run.path / "samples" / f"step-{self.step:08d}.gif"
        sample_mod.write_gif_grid(path, videos)
        return path

    def record(self) -> dict:
        """The resolved run configuration written to config.json."""
        return {
            "format": RUN_FORMAT,
            "stage": self.stage,
            "card": self.card.name,
            "card_version": self.card.card_version,
            "config": self.config_dict,
            "training": ckpt_mod.config_dict(self.spec),
            "steps": self.steps,
            "global_batch": self.batch,
            "options": dataclasses.asdict(self.opts),
            "overrides": self.overrides,
            "precision": self.precision,
            "world_size": self.world,
            "device": str(self.device),
            "data": self.data.describe,
            "vqvae_checkpoint": self.vqvae_ckpt.describe() if self.vqvae_ckpt else None,
            "versions": versions(),
            **self._variance_record(),
        }


# ----------------------------------------------------------------------------------------------------------
# Entry point


def train(
    dataset: str | None = None,
    model: str | None = None,
    stage: str = "all",
    out: str | Path | None = None,
    resume: bool = False,
    overrides: list[str] | tuple[str, ...] = (),
    vqvae: str | Path | None = None,
    root=None,
    data: dict[str, TrainData] | None = None,
    run_name: str = "",
    **options,
) -> list[StageResult]:
    """Train the VQ-VAE and/or the prior of ``dataset`` (or of ``model``) into ``out``.

    ``out/vqvae`` and ``out/prior`` hold one stage each. ``vqvae``: an existing VQ-VAE checkpoint for
    ``--stage prior``. ``data`` maps stage -> TrainData to train on clips that are not a prepared store (quickstart).
    ``options`` are :class:`TrainOptions` fields. Returns the finished stages.
    """
    opts = TrainOptions(**options)
    vq_name, prior_name = resolve_cards(dataset, model, stage)
    ov = parse_overrides(overrides)
    out = Path(out) if out else Path("runs") / (dataset or (prior_name or vq_name))
    results = []
    vq_ckpt = ckpt_mod.load(vqvae) if vqvae else None
    if stage in ("vqvae", "all"):
        card = cards.model(vq_name)
        stage_data = (data or {}).get("vqvae") or _data_for(card, ov["vqvae"], opts, root)
        trainer = StageTrainer("vqvae", card, stage_data, out / "vqvae", opts, ov["vqvae"], run_name=run_name)
        res = trainer.fit(resume and (out / "vqvae" / "checkpoints").exists())
        results.append(res)
        if stage == "all":
            vq_ckpt = ckpt_mod.load(res.best or res.folder / "checkpoints" / "final.pt")
    if stage in ("prior", "all"):
        if prior_name is None:
            raise InputError("no prior card: pass --model gpt.NAME")
        card = cards.model(prior_name)
        if vq_ckpt is None:
            default = out / "vqvae" / "checkpoints" / "best.pt"
            if not default.exists():
                what = dataset or f"--model {vq_name}"
                raise InputError(
                    f"--stage prior needs a VQ-VAE checkpoint: pass --vqvae CKPT, or train it first "
                    f"(`vgbench train {what} --stage vqvae --out {out}`); looked for {default}"
                )
            vq_ckpt = ckpt_mod.load(default)
        stage_data = (data or {}).get("prior") or _data_for(card, ov["prior"], opts, root)
        trainer = StageTrainer("prior", card, stage_data, out / "prior", opts, ov["prior"], vq_ckpt, run_name=run_name)
        results.append(trainer.fit(resume and (out / "prior" / "checkpoints").exists()))
    return results


def _data_for(card: cards.ModelCard, ov: dict, opts: TrainOptions, root) -> TrainData:
    spec = resolve_training(card, ov.get("training", {}))
    channels = _in_channels(card, ov)
    return store_data(spec, channels, opts.seed, root)


def _in_channels(card: cards.ModelCard, ov: dict) -> int:
    if card.vqvae:  # a prior sees the clips its VQ-VAE was trained on
        return int(cards.model(card.vqvae).config.get("in_channels", 3))
    return int(ov.get("config", {}).get("in_channels", card.config.get("in_channels", 3)))
