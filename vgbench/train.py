"""``vgbench train``: the VideoGPT VQ-VAE, then its prior on the frozen VQ-VAE, with exact resume and torchrun.

:class:`VQVAEStage` and :class:`PriorStage` say what differs between the stages (how to build, the loss, how to
validate through the metric accumulators, which value is best, what to do after fitting); one
:class:`Trainer` owns the loop, checkpoints, resume, DDP, accumulation and logging. What makes it exact:

- **Data order** is a function of (seed, step) only (:mod:`vgbench.datasets.trainclips`): 1 process and W
  processes see the same global batch, and a resumed run continues at the same clip.
- **State**: model, optimiser, scheduler, gradient scaler, the codebook's EMA state and initialised flag (buffers
  of the model), every RNG (Python, numpy, torch, CUDA; per rank) and the step are in each checkpoint
  (:mod:`vgbench.models.checkpoint`), written atomically by rank 0. On CPU a resumed run is bitwise equal to an
  uninterrupted one.
- **Stopping**: SIGINT / SIGTERM set a flag that every rank agrees on at the next step boundary; the run writes a
  checkpoint and exits with code 130 (:class:`vgbench.workers.StopFlag`). A crash loses at most the steps since the
  last checkpoint.
- **Validation** scores the validation clips with the accumulators ``vgbench eval`` uses (``nmse.SquaredError``,
  ``bits_per_dim.TokenNLL``), so a training log's val_nmse and val_bits_per_dim are the numbers eval gives for the
  checkpoint of that step and the same clips.

Distributed: under ``torchrun`` the model is wrapped in DistributedDataParallel (gloo on CPU, NCCL on GPU); the
VQ-VAE codebook all-reduces its own statistics. Only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vgbench import cache, cards, dist
from vgbench import device as device_mod
from vgbench.datasets.trainclips import EpochClips, GlobalBatches, TrainData, store_data
from vgbench.errors import InputError, VgbenchError
from vgbench.metrics.accumulate import Accumulator, CodeUsage
from vgbench.metrics.bits_per_dim import TokenNLL
from vgbench.metrics.nmse import SquaredError
from vgbench.models import checkpoint as ckpt_mod
from vgbench.results import versions
from vgbench.rng import rng_state, seed_everything, set_rng_state
from vgbench.runfolder import RUN_FORMAT, RunFolder, newest_valid_checkpoint
from vgbench.workers import Interrupted, StopFlag

log = logging.getLogger(__name__)

# The paper's configuration per dataset: (VQ-VAE card, prior card).
DEFAULT_CARDS = {
    "bair": ("vqvae.bair", "gpt.bair"),
    "moving_mnist": ("vqvae.mmnist", "gpt.mmnist"),
    "ucf101": ("vqvae.ucf101_128", "gpt.ucf101_128"),
    "tgif": ("vqvae.tgif", "gpt.tgif"),
}
STAGES = ("vqvae", "prior", "all")


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
    """``--set`` pairs (:func:`vgbench.cards.parse_settings`, the grammar eval shares) -> {stage: {"config": {...},
    "training": {...}}} for stages ``vqvae`` and ``prior``.

    KEY is ``[STAGE.]SECTION.NAME`` or a bare ``NAME`` (= ``config.NAME``): ``config.hidden=64``,
    ``training.lr=1e-3``, ``prior.config.layers=4``. Without a stage the pair applies to every stage trained (a
    field a stage's card does not have is then an error naming it)."""
    out = {st: {"config": {}, "training": {}} for st in ("vqvae", "prior")}
    for key, value in cards.parse_settings(pairs, example="config.hidden=64 or training.lr=3e-4").items():
        parts = key.split(".")
        stages = [parts.pop(0)] if parts[0] in out and len(parts) > 1 else list(out)
        section = parts.pop(0) if len(parts) > 1 else "config"
        if section not in ("config", "training") or len(parts) != 1 or not parts[0]:
            raise InputError(f"--set {key}: KEY is [vqvae.|prior.](config|training).NAME, or a bare config NAME")
        for st in stages:
            out[st][section][parts[0]] = value
    return out


def resolve_cards(dataset: str | None, model: str | None, stage: str) -> list[tuple[str, str]]:
    """The stages to train, in order, as (stage, card): the named card (a prior brings its VQ-VAE; a VQ-VAE card
    alone trains that VQ-VAE), else the paper's default pair for ``dataset``."""
    if stage not in STAGES:
        from vgbench.registry import did_you_mean

        raise InputError(did_you_mean("stage", stage, STAGES))
    if model is not None:
        card = cards.model(model)
        if card.vqvae:
            pair = (card.vqvae, card.name)
        elif stage == "prior":
            raise InputError(f"--model {card.name} is a VQ-VAE card; --stage prior needs a prior card (gpt.*)")
        else:
            return [("vqvae", card.name)]
    elif dataset is None:
        raise InputError(
            f"give a DATASET ({', '.join(sorted(DEFAULT_CARDS))}: trains the paper's model for it) or --model CARD "
            "(`vgbench list models` lists them)"
        )
    elif dataset not in DEFAULT_CARDS:
        from vgbench.registry import did_you_mean

        raise InputError(did_you_mean("dataset with a default model", str(dataset), DEFAULT_CARDS))
    else:
        pair = DEFAULT_CARDS[dataset]
    return [(name, card) for name, card in zip(("vqvae", "prior"), pair, strict=True) if stage in (name, "all")]


# ----------------------------------------------------------------------------------------------------------
# Pieces of both stages


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


# ----------------------------------------------------------------------------------------------------------
# The two stages: what differs between them, and nothing else


class PriorObjective(torch.nn.Module):
    """The prior's training loss as a module's forward, so that DistributedDataParallel can hook it."""

    def __init__(self, videogpt: torch.nn.Module):
        super().__init__()
        self.net = videogpt

    def forward(self, video: torch.Tensor, cond: dict | None) -> torch.Tensor:
        return self.net.loss(video, cond)[0]


class VQVAEStage:
    """The VQ-VAE: reconstruction + commitment loss; validated by NMSE (the number `vgbench eval --metric nmse`
    gives for the checkpoint and clips) and code usage; the best checkpoint has the lowest validation NMSE."""

    name, best_key = "vqvae", "val_nmse"

    def __init__(self, card: cards.ModelCard):
        self.card = card
        self.variance_record: dict | None = None  # set when a fresh run measures the NMSE divisor

    def build(self, config_overrides: dict) -> torch.nn.Module:
        from vgbench.models import create

        return create(self.card, weights=False, **config_overrides)

    def objective(self, net: torch.nn.Module) -> torch.nn.Module:
        return net

    def train_mode(self, net: torch.nn.Module) -> None:
        net.train()

    def loss(self, model: torch.nn.Module, net: torch.nn.Module, batch: dict, x: torch.Tensor):
        """(loss to minimise, detached statistics to log) of one micro-batch under autocast."""
        out = model(x)
        stats = {
            "recon_loss": out.recon_loss.detach(),
            "commitment_loss": out.commitment_loss.detach(),
            "perplexity": torch.as_tensor(out.perplexity).detach(),
            "usage": torch.as_tensor(out.usage, dtype=torch.float32).detach(),
        }
        return out.loss, stats

    def accumulators(self, net: torch.nn.Module, n: int) -> list[Accumulator]:
        # the divisor is the card's constant, or the value measured on the training split before step 1
        return [SquaredError(n, float(net.recon_variance)), CodeUsage(net.config.n_codes)]

    def score(self, net: torch.nn.Module, accs: list[Accumulator], batch: dict, x: torch.Tensor, at: int) -> None:
        codes = net.encode(x)  # (B, t, h, w): reconstructions exactly as the NMSE engine makes them
        accs[0].update(net.decode(codes), x, at)
        accs[1].update(codes)

    def summary(self, accs: list[Accumulator]) -> dict:
        err, usage = accs
        return {"val_nmse": err.compute(), **usage.compute(), "nmse_variance": err.variance}

    def vqvae_record(self) -> dict | None:
        return None

    def begin(self, trainer: Trainer, fresh: bool) -> None:
        if fresh:
            self.set_recon_variance(trainer.net, trainer.data)

    def after_step(self, trainer: Trainer) -> None:
        pass

    def end(self, trainer: Trainer) -> None:
        pass

    def set_recon_variance(self, net: torch.nn.Module, data: TrainData) -> None:
        """Before the first step of a fresh run: a ``recon_variance: measured`` VQ-VAE gets the pixel variance of
        the training split (:func:`vgbench.metrics.nmse.split_variance`). A resumed run never measures again: the
        value is the model buffer in its checkpoint."""
        if net.config.recon_variance != "measured":
            return
        store, split = getattr(data.train, "store", None), getattr(data.train, "split", None)
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

    def record(self, trainer: Trainer) -> dict:
        """config.json's ``recon_variance``: how the VQ-VAE's NMSE divisor was set (a resumed run keeps the first
        run's record when the checkpoint's value is the one it recorded)."""
        value = float(trainer.net.recon_variance)
        record = self.variance_record
        if record is None:
            earlier = (trainer.run.read_config() or {}).get("recon_variance")
            if isinstance(earlier, dict) and earlier.get("value") == value:
                record = earlier
            elif trainer.net.config.recon_variance == "measured":
                record = {"value": value, "source": "checkpoint (measured by the run that wrote it)"}
            else:
                record = {"value": value, "source": "card constant"}
        return {"recon_variance": record, "vqvae_checkpoint": None}


class PriorStage:
    """The prior on the frozen VQ-VAE's codes: teacher-forced cross-entropy; validated by bits/dim (the number
    `vgbench eval --metric bits-per-dim` gives); the best checkpoint has the lowest validation bits/dim."""

    name, best_key = "prior", "val_bits_per_dim"

    def __init__(self, card: cards.ModelCard, vqvae_ckpt: ckpt_mod.Checkpoint):
        if vqvae_ckpt.card != card.vqvae:
            log.warning("prior card %s names VQ-VAE %s; training on %s from %s",
                        card.name, card.vqvae, vqvae_ckpt.card, vqvae_ckpt.path)  # fmt: skip
        self.card, self.vqvae_ckpt = card, vqvae_ckpt

    def build(self, config_overrides: dict) -> torch.nn.Module:
        from vgbench.models import create

        vqvae = ckpt_mod.build(self.vqvae_ckpt)
        return create(self.card, weights=False, vqvae=vqvae, **config_overrides)

    def objective(self, net: torch.nn.Module) -> torch.nn.Module:
        return PriorObjective(net)

    def train_mode(self, net: torch.nn.Module) -> None:
        net.train()
        net.vqvae.eval()  # frozen: only the prior trains

    def loss(self, model: torch.nn.Module, net: torch.nn.Module, batch: dict, x: torch.Tensor):
        loss = model(x, make_cond(net.prior.config, batch, x.device))
        return loss, {"bits_per_dim": loss.detach() / math.log(2)}

    def accumulators(self, net: torch.nn.Module, n: int) -> list[Accumulator]:
        return [TokenNLL(n)]

    def score(self, net: torch.nn.Module, accs: list[Accumulator], batch: dict, x: torch.Tensor, at: int) -> None:
        accs[0].update(net.token_nll(x, make_cond(net.prior.config, batch, x.device)), at)  # (B, S) nats

    def summary(self, accs: list[Accumulator]) -> dict:
        bits = accs[0].compute()
        return {"val_nats": bits * math.log(2), "val_bits_per_dim": bits}

    def vqvae_record(self) -> dict:
        ck = self.vqvae_ckpt
        return {"card": ck.card, "config": ck.config, "sha256": ck.sha256}

    def begin(self, trainer: Trainer, fresh: bool) -> None:
        pass

    def after_step(self, trainer: Trainer) -> None:
        if trainer.opts.sample_every and trainer.step % trainer.opts.sample_every == 0:
            self.write_samples(trainer)

    def end(self, trainer: Trainer) -> None:
        self.write_samples(trainer)

    def write_samples(self, trainer: Trainer, n: int = 4) -> Path | None:
        """A small GIF grid of samples conditioned on validation clips."""
        from vgbench import sample as sample_mod

        if trainer.rank != 0:
            return None
        net, val = trainer.net, trainer.data.val
        net.eval()
        cond = None
        if val is not None:
            items = [val[i] for i in range(min(n, len(val)))]
            cond = make_cond(net.prior.config, torch.utils.data.default_collate(items), trainer.device)
            n = len(items)
        videos = net.sample(cond or n, seeds=list(range(n)), batch_size=n)
        self.train_mode(net)
        path = trainer.run.path / "samples" / f"step-{trainer.step:08d}.gif"
        sample_mod.write_gif_grid(path, videos)
        return path

    def record(self, trainer: Trainer) -> dict:
        return {"vqvae_checkpoint": self.vqvae_ckpt.describe()}


Stage = VQVAEStage | PriorStage


# ----------------------------------------------------------------------------------------------------------
# The loop, the same for both stages


def _loader(dataset, batches: Iterator[list[int]], workers: int, seed: int):
    g = torch.Generator().manual_seed(seed)  # DataLoader base seeds never consume the global RNG
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=list(batches), num_workers=workers, generator=g, persistent_workers=False
    )


class Trainer:
    """Trains one stage of one card into one run folder: the loop, checkpoints, resume, DDP, accumulation, logs."""

    def __init__(self, stage: Stage, spec: cards.TrainingSpec, data: TrainData, out: Path, opts: TrainOptions,
                 overrides: dict, run_name: str = ""):  # fmt: skip
        self.stage, self.card, self.spec, self.data, self.opts = stage, stage.card, spec, data, opts
        self.rank, self.world = dist.maybe_init()
        self.device = device_mod.resolve_device(opts.device)
        device_mod.steady_heap()  # tensors of one step reuse the pages of the last (CPU and pinned host memory)
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        self.precision = device_mod.resolve_precision(opts.precision, self.device)
        if self.device.type == "cuda":  # TF32 speeds training; the parity metrics switch it off for themselves
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.overrides = {k: v for k, v in overrides.items() if v}  # --set changes to the card, kept in checkpoints
        self.steps = opts.steps if opts.steps is not None else spec.steps
        self.batch = opts.batch_size or spec.batch_size
        self.run = RunFolder(out, self.rank == 0)
        self.run_name = run_name or f"{self.card.name}@{out}"
        seed_everything(opts.seed, self.rank)  # initialisation depends on the seed alone
        config = {**overrides.get("config", {}), **({"checkpointing": True} if opts.grad_checkpointing else {})}
        self.net = stage.build(config).to(self.device)
        self.model = self._wrap(stage.objective(self.net))
        self.config_dict = ckpt_mod.config_dict(self.net.config)
        self.optimizer = _optimizer([p for p in self.net.parameters() if p.requires_grad], spec)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _lr_lambda(spec, self.steps))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.batches = GlobalBatches(len(data.train), self.batch, opts.seed, self.rank, self.world, opts.accum)
        self.step = 0
        self.best: float | None = None

    def _wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """``torch.compile`` and DistributedDataParallel around the objective (sharing self.net's parameters)."""
        if self.opts.compile:
            module = torch.compile(module)
        if self.world > 1:
            module = torch.nn.parallel.DistributedDataParallel(
                module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                broadcast_buffers=False,  # the codebook keeps its buffers in sync itself
                find_unused_parameters=False,
            )
        return module

    def fit(self, resume: bool) -> StageResult:
        """Train to ``steps`` (resuming from the newest valid checkpoint when asked); Ctrl-C checkpoints and raises
        :class:`Interrupted`."""
        if resume:
            ck = newest_valid_checkpoint(self.run)
            if ck is None:
                raise InputError(f"--resume: no readable checkpoint in {self.run.ckpts}; start without --resume")
            self.restore(ck)
        self.stage.begin(self, fresh=not resume)
        self.run.write_config(self.record())
        start, t_start = self.step, time.time()
        from tqdm import tqdm

        bar = tqdm(total=self.steps, initial=start, desc=f"{self.stage.name} {self.card.name}", unit="step",
                   disable=self.rank != 0 or not self.opts.progress, dynamic_ncols=True)  # fmt: skip
        micro = (mb for s in range(start, self.steps) for mb in self.batches.micro_batches(s))
        batches = iter(_loader(EpochClips(self.data.train), micro, self.opts.workers, self.opts.seed))
        self.stage.train_mode(self.net)
        interrupted, clips, t_last = False, 0, time.time()
        with StopFlag() as stop:
            while self.step < self.steps:
                loss, stats, n = self.train_step(batches)
                clips += n
                if self.step % self.opts.log_every == 0 or self.step == self.steps:
                    rate = clips * self.world / max(time.time() - t_last, 1e-9)
                    lr = self.scheduler.get_last_lr()[0]
                    self.run.log({"step": self.step, "kind": "train", "loss": loss, "lr": lr, **stats,
                                  "clips_per_s": round(rate, 4)})  # fmt: skip
                    bar.set_postfix(loss=f"{loss:.4f}", clips_s=f"{rate:.2f}")
                    clips, t_last = 0, time.time()
                bar.update(1)
                if self._out_of_time(t_start):
                    log.info("time budget of %.0f s spent at step %d: finishing here", self.opts.max_seconds, self.step)
                    self.steps = self.step
                last_step = self.step == self.steps
                if self.opts.val_every and (self.step % self.opts.val_every == 0 or last_step):
                    self._validate_and_keep_best()
                self.stage.after_step(self)
                if stop.agreed():
                    interrupted = True
                    break
                if (self.opts.ckpt_every and self.step % self.opts.ckpt_every == 0) or last_step:
                    self.save()
        bar.close()
        last = self.save() if interrupted else self.run.ckpts / f"step-{self.step:08d}.pt"
        if not interrupted and self.rank == 0:
            ckpt_mod.export(last, self.run.ckpts / "final.pt")
        if not interrupted:
            self.stage.end(self)
        self.run.write_csv()
        dist.barrier()  # every rank sees the final files before going on
        if interrupted:
            raise Interrupted(
                f"stopped at step {self.step} of {self.steps}; checkpoint {last}. Continue with the same command "
                "and --resume."
            )
        best = self.run.ckpts / "best.pt"
        metrics = {"elapsed_s": round(time.time() - t_start, 2), "steps_done": self.step - start}
        return StageResult(self.stage.name, self.card.name, self.run.path, self.step, last,
                           best if best.exists() else None, metrics)  # fmt: skip

    def train_step(self, batches: Iterator[dict]) -> tuple[float, dict, int]:
        """One optimiser step over ``accum`` micro-batches: (loss, stats averaged over the global batch, clips)."""
        loss_sum, stats_sum, clips = 0.0, {}, 0
        for j in range(self.opts.accum):
            batch = next(batches)
            sync = j == self.opts.accum - 1 or self.world == 1
            with contextlib.nullcontext() if sync else self.model.no_sync():
                x = batch["video"].to(self.device, non_blocking=True)  # (B, C, T, H, W)
                with device_mod.autocast(self.device, self.precision):
                    loss, stats = self.stage.loss(self.model, self.net, batch, x)
                if not torch.isfinite(loss):
                    raise VgbenchError(
                        f"{self.card.name}: the loss became {float(loss)} at step {self.step}; lower the "
                        "learning rate (--set training.lr=...) or resume from the last checkpoint"
                    )
                self.scaler.scale(loss / self.opts.accum).backward()
            loss_sum += float(loss.detach()) / self.opts.accum
            for k, v in stats.items():
                stats_sum[k] = stats_sum.get(k, 0.0) + float(v) / self.opts.accum
            clips += len(batch["video"])
        if self.spec.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.spec.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        if self.world > 1:  # the logged loss is the global batch's mean
            vals = dist.all_reduce_sum([np.array([loss_sum, *stats_sum.values()], np.float64)])[0] / self.world
            loss_sum, stats_sum = float(vals[0]), dict(zip(stats_sum, map(float, vals[1:]), strict=True))
        return loss_sum, stats_sum, clips

    def _out_of_time(self, t_start: float) -> bool:
        """``max_seconds`` spent (every rank agrees, so all stop at the same step)."""
        if self.opts.max_seconds is None:
            return False
        out = time.time() - t_start > self.opts.max_seconds
        if self.world > 1:
            out = float(dist.all_reduce_sum([np.array([float(out)])])[0][0]) > 0
        return out

    @torch.no_grad()
    def validate(self) -> dict:
        """The stage's validation numbers over the first ``val_clips`` validation clips, through the metric
        accumulators in float32 without autocast: what ``vgbench eval`` gives for this checkpoint and these clips."""
        val = self.data.val
        if val is None or self.opts.val_clips <= 0:
            return {}
        n = min(self.opts.val_clips, len(val))
        lo, hi = dist.shard(0, n, self.rank, self.world)
        bs = max(1, self.batch // max(1, self.world * self.opts.accum))
        self.net.eval()
        accs = self.stage.accumulators(self.net, n)
        for i in range(lo, hi, bs):
            batch = torch.utils.data.default_collate([val[j] for j in range(i, min(i + bs, hi))])
            self.stage.score(self.net, accs, batch, batch["video"].to(self.device), i)
        for acc in accs:
            acc.sync()
        self.stage.train_mode(self.net)
        return self.stage.summary(accs) if accs[0].count else {}

    def _validate_and_keep_best(self) -> None:
        metrics = self.validate()
        if not metrics:
            return
        self.run.log({"step": self.step, "kind": "val", **metrics})
        key = self.stage.best_key
        if self.best is None or metrics[key] < self.best:
            self.best = float(metrics[key])
            path = self.save("best.pt")
            if path is not None:
                log.info("step %d: %s %.5f (best so far) -> %s", self.step, key, metrics[key], path)

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

    def save(self, name: str | None = None) -> Path | None:
        """Write a step checkpoint (and prune old ones); rank 0 only, but every rank takes part in RNG gathering."""
        state = self._train_state()
        if self.rank != 0:
            return None
        path = self.run.ckpts / (name or f"step-{self.step:08d}.pt")
        meta = {"step": self.step, "stage": self.stage.name, "run": self.run_name, "data": self.data.describe}
        if self.overrides:  # tables mark numbers of a changed configuration as not reproducing the card's row
            meta["overrides"] = self.overrides
        ckpt_mod.save(path, self.net, self.card, self.config_dict, vqvae=self.stage.vqvae_record(),
                      train_state=state, meta=meta)  # fmt: skip
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
        self.net.load_state_dict(ck.model)
        self.optimizer.load_state_dict(ts["optimizer"])
        self.scheduler.load_state_dict(ts["scheduler"])
        self.scaler.load_state_dict(ts["scaler"])
        self.step, self.best = int(ts["step"]), ts.get("best")
        states = ts["rng"]
        set_rng_state(states[self.rank] if self.rank < len(states) else states[0])
        self.run.truncate_log(self.step)
        log.info("resumed %s at step %d from %s", self.card.name, self.step, ck.path)

    def record(self) -> dict:
        """The resolved run configuration written to config.json."""
        return {
            "format": RUN_FORMAT,
            "stage": self.stage.name,
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
            "versions": versions(),
            **self.stage.record(self),
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
    plan = resolve_cards(dataset, model, stage)
    ov = parse_overrides(overrides)
    out = Path(out) if out else Path("runs") / (dataset or cards.model(model).name)
    vq_ckpt = ckpt_mod.load(vqvae) if vqvae else None
    results = []
    for name, card_name in plan:
        card = cards.model(card_name)
        spec = cards.training_spec(card, ov[name]["training"])
        if name == "vqvae":
            stage_obj: Stage = VQVAEStage(card)
        else:
            if results or vq_ckpt is None:  # a VQ-VAE trained by this call, else --vqvae, else out's
                vq_ckpt = _trained_vqvae(results, out, dataset or f"--model {card.vqvae}")
            stage_obj = PriorStage(card, vq_ckpt)
        clips = (data or {}).get(name) or store_data(spec, _in_channels(card, ov[name]), opts.seed, root)
        trainer = Trainer(stage_obj, spec, clips, out / name, opts, ov[name], run_name=run_name)
        results.append(trainer.fit(resume and (out / name / "checkpoints").exists()))
    return results


def _trained_vqvae(results: list[StageResult], out: Path, what: str) -> ckpt_mod.Checkpoint:
    """The VQ-VAE a prior trains on: the one this call just trained (its best checkpoint), else ``out``'s."""
    if results:
        return ckpt_mod.load(results[-1].best or results[-1].folder / "checkpoints" / "final.pt")
    default = out / "vqvae" / "checkpoints" / "best.pt"
    if not default.exists():
        raise InputError(
            f"--stage prior needs a VQ-VAE checkpoint: pass --vqvae CKPT, or train it first "
            f"(`vgbench train {what} --stage vqvae --out {out}`); looked for {default}"
        )
    return ckpt_mod.load(default)


def _in_channels(card: cards.ModelCard, ov: dict) -> int:
    if card.vqvae:  # a prior sees the clips its VQ-VAE was trained on
        return int(cards.model(card.vqvae).config.get("in_channels", 3))
    return int(ov.get("config", {}).get("in_channels", card.config.get("in_channels", 3)))
