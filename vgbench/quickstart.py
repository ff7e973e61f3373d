"""``vgbench quickstart``: the whole product in one offline command, resumable stage by stage.

1. data: moving digits from the embedded MNIST subset (the ``quickstart`` dataset card), stored in ``DIR/data``;
2. vqvae, 3. prior: a tiny VQ-VAE and a tiny unconditional prior (cards ``vqvae.quickstart``, ``gpt.quickstart``:
   the real architecture at reduced width and depth, sized so that 2 CPU cores train them in minutes) trained with
   ``vgbench train``'s trainer;
4. samples: videos from the prior with its KV cache (``vgbench sample --prefix``), each continuing the first frame
   of a test clip (its codes kept as the first latent frame);
5. metrics: FVD (official protocol, real I3D), FVD*, R-FVD, NMSE and bits/dim through ``vgbench eval``'s code path,
   appended to ``DIR/results.jsonl``;
6. long: a few videos longer than training from the same prior (``vgbench sample --frames``, sliding window), their
   FVD against long real clips of the same moving-digit generator, and the drift curve: FVD of each 16-frame window
   against the real 16-frame test clips;
7. report: ``DIR/report.html`` and ``report.md`` with the videos, curves, metrics and timings.

``DIR/quickstart.json`` records each finished stage; a re-run (after Ctrl-C, say) skips them. Deterministic under
``--seed`` on one machine. ``--small`` is the reduced version CI runs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vgbench import cache, cards
from vgbench.errors import InputError, MissingDependencyError
from vgbench.workers import Interrupted

log = logging.getLogger(__name__)

STATE_FORMAT = "vgbench-quickstart/1"
STAGES = ("data", "vqvae", "prior", "samples", "pretrained", "metrics", "long", "report")


@dataclass(frozen=True)
class Plan:
    """Sizes of a quickstart run."""

    train_videos: int
    test_videos: int
    vqvae_steps: int
    prior_steps: int
    batch_size: int
    samples: int
    val_every: int
    long_samples: int = 4  # videos longer than training (sliding window), for the long row and the drift curve
    long_frames: int = 64
    long_reference: int = 8  # real moving-digit clips of long_frames frames for the long row
    # every sample set draws each code from the prior's 2 likeliest (issue 19; the pretrained prior, 64 clips:
    # FVD 221.5 against 267.0 at plain sampling, continuity of frames 5-16 0.023 against 0.012;
    # docs/notes/issue19-measurements.md). None: plain sampling, as `vgbench sample` does by default.
    top_k: int | None = 2


PLANS = {
    # measured on 2 CPU cores (torch 2.13, 2026-12-07): the frame-wise 16x8x8 VQ-VAE's step 0.09 s, the prior's
    # 0.35 s at batch 8, so the full plan spends about 5 of `make demo`'s 10 minutes on training (NMSE 0.120 and
    # bits/dim 2.07 at 600 steps each; docs/notes/issue19-measurements.md)
    "full": Plan(train_videos=1024, test_videos=64, vqvae_steps=600, prior_steps=600, batch_size=8, samples=64,
                 val_every=50),
    "small": Plan(train_videos=256, test_videos=32, vqvae_steps=250, prior_steps=150, batch_size=8, samples=32,
                  val_every=40, long_samples=4, long_frames=32, long_reference=8),
}  # fmt: skip


VQVAE_CARD, PRIOR_CARD = "vqvae.quickstart", "gpt.quickstart"


class State:
    """``DIR/quickstart.json``: the settings of the run and each finished stage's outputs and time."""

    def __init__(self, folder: Path, settings: dict):
        self.path = folder / "quickstart.json"
        self.data = {"format": STATE_FORMAT, "settings": settings, "stages": {}}
        if self.path.exists():
            try:
                old = json.loads(self.path.read_text())
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                old = {"error": str(exc)}
            if not isinstance(old, dict) or old.get("format") != STATE_FORMAT:
                if not isinstance(old, dict):
                    seen = f"a JSON {type(old).__name__}, not an object"
                else:
                    seen = old.get("error") or f"format {old.get('format')!r}"
                raise InputError(
                    f"{self.path} is not a quickstart state file of format {STATE_FORMAT} ({seen}); it is written "
                    "atomically, so something else changed it: give another --out, or delete the folder, to start over"
                )
            if old.get("settings") != settings:
                diff = _settings_diff(old.get("settings"), settings)
                if _from_earlier_vgbench((old.get("settings") or {}).get("plan")):
                    how = "this vgbench cannot resume it: give another --out, or delete the folder, to start over"
                else:
                    how = "run the same command as before to resume it, or give another --out (or delete the folder)"
                    how += " to start over"
                raise InputError(f"{folder} holds a quickstart run made with other settings ({diff}); {how}")
            self.data = old

    def done(self, stage: str) -> dict | None:
        return self.data["stages"].get(stage)

    def finish(self, stage: str, seconds: float, **outputs) -> dict:
        self.data["stages"][stage] = {"seconds": round(seconds, 2), **outputs}
        cache.atomic_write_bytes(self.path, (json.dumps(self.data, indent=1, sort_keys=True) + "\n").encode())
        return self.data["stages"][stage]


def _from_earlier_vgbench(plan) -> bool:
    """Whether a recorded plan has other fields than :class:`Plan` now has (a run of an earlier vgbench)."""
    return isinstance(plan, dict) and set(plan) != {f.name for f in dataclasses.fields(Plan)}


def _plan_name(plan: dict | None) -> str:
    """'--small', 'the full plan', a custom plan as it is, or, for an earlier vgbench's plan, the nearest plan and the
    fields that differ from it: 'an earlier vgbench's full plan (top_k: none, now 2)'."""
    named = {("--small" if name == "small" else "the full plan"): dataclasses.asdict(p) for name, p in PLANS.items()}
    for words, p in named.items():
        if plan == p:
            return words
    if not _from_earlier_vgbench(plan):
        return f"plan {plan}"
    words, p = min(named.items(), key=lambda kv: sum(plan.get(k, "?") != v for k, v in kv[1].items()))
    fields = ", ".join(f"{k}: {plan.get(k, 'none')}, now {v}" for k, v in p.items() if plan.get(k, "?") != v)
    return f"an earlier vgbench's {words.removeprefix('the ')} ({fields})"


def _settings_diff(old: dict | None, new: dict) -> str:
    """What differs between two runs' settings, in command-line words: 'it was made with --small, now the full
    plan; --seed 1, now 0'."""
    old = old or {}
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key == "plan":
            out.append(f"it was made with {_plan_name(a)}, now {_plan_name(b)}")
        else:
            out.append(f"--{key} {a}, now {b}")
    return "; ".join(out)


def _check_requirements() -> None:
    """Cheap checks before any work: plotting library and the I3D weights (fetched with pip when allowed)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "plot", "the quickstart report's training curves") from exc
    from vgbench import weights

    weights.load("i3d.kinetics400_tfhub")  # fetched and verified once; offline: a message saying what to place where


def run(
    out: str | os.PathLike = "quickstart",
    seed: int = 0,
    small: bool = False,
    device: str = "auto",
    minutes: float | None = None,
    progress: bool = True,
    plan: Plan | None = None,
) -> Path:
    """Run (or resume) the quickstart into ``out``; returns the path of ``report.html``.

    ``minutes``: a time budget for the two training stages (35% VQ-VAE, 45% prior); the run is then time-bounded
    rather than step-exact, and says so in its report.
    """
    folder = Path(out).resolve()
    plan = plan or PLANS["small" if small else "full"]
    if minutes is not None and minutes <= 0:
        raise InputError(f"--minutes {minutes}: give a positive time budget")
    settings = {"seed": seed, "plan": dataclasses.asdict(plan), "device": device, "minutes": minutes}
    from vgbench.device import resolve_device

    resolve_device(device)  # cheap checks first: no stage runs for a device that is not there
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--out {folder}: is a file, not a folder; give a folder for the quickstart run")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {folder}: cannot create the folder ({exc.strerror}); give a writable folder") from exc
    _check_requirements()
    state = State(folder, settings)
    # the quickstart's data lives in its folder: dataset references (quickstart:test) resolve there
    os.environ["VGBENCH_DATA"] = str(folder / "data")
    ctx = {"folder": folder, "plan": plan, "seed": seed, "device": device, "minutes": minutes, "state": state,
           "progress": progress}  # fmt: skip
    for stage in STAGES:
        if state.done(stage):
            log.info("quickstart: %s already done, skipped", stage)
            continue
        log.info("quickstart: %s", stage)
        t0 = time.time()
        try:
            outputs = STAGE_FUNCS[stage](**ctx)
        except Interrupted as exc:  # the trainer's own words say `--resume`; the quickstart resumes by itself
            where = str(exc).split(". Continue with")[0]  # "stopped at step S of N; checkpoint PATH"
            raise Interrupted(
                f"quickstart: {stage} stage {where}. The finished stages and the checkpoint are kept: run the same "
                "command again (no extra option) to continue from there"
            ) from exc
        state.finish(stage, time.time() - t0, **outputs)
    return folder / "report.html"


# ----------------------------------------------------------------------------------------------------------
# Stages


def _data(folder: Path, plan: Plan, **_) -> dict:
    from vgbench.datasets import quickstart as qs

    counts = {"train": plan.train_videos, "test": plan.test_videos}
    summary = qs.prepare(cards.dataset("quickstart"), root=folder / "data", counts=counts)
    return {"store": str(summary.store), "counts": summary.counts}


def _train(stage: str):
    def fn(folder: Path, plan: Plan, seed: int, device: str, minutes, state: State, progress: bool, **_) -> dict:
        from vgbench import train as train_mod

        steps = plan.vqvae_steps if stage == "vqvae" else plan.prior_steps
        kw = {"vqvae": Path(state.done("vqvae")["checkpoint"])} if stage == "prior" else {}
        card = VQVAE_CARD if stage == "vqvae" else PRIOR_CARD
        budget = None if minutes is None else minutes * 60 * (0.35 if stage == "vqvae" else 0.45)
        resume = any((folder / "runs" / stage / "checkpoints").glob("step-*.pt"))
        (res,) = train_mod.train(
            model=card,
            stage=stage,
            out=folder / "runs",
            resume=resume,
            steps=steps,
            batch_size=plan.batch_size,
            seed=seed,
            device=device,
            val_every=plan.val_every,
            ckpt_every=plan.val_every,
            run_name="quickstart",
            progress=progress,
            max_seconds=budget,
            **kw,
        )
        final = res.folder / "checkpoints" / "final.pt"
        from vgbench.models import checkpoint as ckpt_mod

        weights = ckpt_mod.load(final).weights_sha256
        return {"checkpoint": str(final), "sha256": cache.sha256_file(final), "weights_sha256": weights,
                "steps": res.step}  # fmt: skip

    return fn


def _unconditional() -> bool:
    """Whether the quickstart prior card is unconditional (then its clips continue a first frame by latent prefix)."""
    from vgbench.models.gpt import prior_config

    c = prior_config(cards.model(PRIOR_CARD))
    return not (c.cond_frames or c.n_classes or c.action_dim)


def _continuity_protocol() -> str:
    """Frames 2-5 when the samples keep frame 1 (latent prefix, one frame per latent frame), else frames 1-4."""
    return "next_frames" if _unconditional() else "first_frames"


def _sample_prior(state: State, n: int, out: Path, seed: int, device: str, progress: bool, prior=None, **options):
    """``vgbench sample`` of the trained prior (or the checkpoint ``prior``), one batch, continuing the test clips'
    first frames: through the prior's own frame condition, or by latent prefix for an unconditional prior
    (``vgbench sample --prefix``). Videos longer than training (``frames``) from an unconditional prior are
    unconditional: a prefix keeps one window."""
    from vgbench import sample as sample_mod

    prior = prior or state.done("prior")["checkpoint"]
    unconditional, long = _unconditional(), options.get("frames") is not None
    cond = None if unconditional and long else "quickstart:test"
    return sample_mod.sample(prior, n, out, cond=cond, seed=seed, device=device, batch_size=n, progress=progress,
                             prefix=unconditional and not long, **options)  # fmt: skip


def _samples(folder: Path, plan: Plan, seed: int, device: str, state: State, progress: bool, **_) -> dict:
    run = _sample_prior(state, plan.samples, folder / "samples", seed, device, progress, top_k=plan.top_k)
    return {"samples": str(run.samples), "gif": str(run.gif), "tokens_per_s": run.tokens_per_s}


def _pretrained(folder: Path, plan: Plan, seed: int, device: str, state: State, progress: bool, **_) -> dict:
    """The shipped pretrained models (vgbench/pretrained/quickstart: made by ``vgbench train``, longer than a demo
    can train), verified, unpacked and sampled exactly like this run's prior, so the report shows both side by side."""
    from vgbench import pretrained

    made = pretrained.manifest()["made_by"]
    checkpoint = pretrained.unpack(folder / "pretrained" / "prior.pt")
    run = _sample_prior(state, plan.samples, folder / "pretrained" / "samples", seed, device, progress,
                        prior=str(checkpoint), top_k=plan.top_k)  # fmt: skip
    return {"checkpoint": str(checkpoint), "sha256": cache.sha256_file(checkpoint), "samples": str(run.samples),
            "made_by": made}  # fmt: skip


def _metrics(folder: Path, plan: Plan, device: str, state: State, **_) -> dict:
    from vgbench import api

    results = folder / "results.jsonl"
    results.unlink(missing_ok=True)  # the stage is redone whole: no duplicate records
    vq, prior, samples = state.done("vqvae")["checkpoint"], state.done("prior")["checkpoint"], state.done("samples")
    ref = "quickstart:test"
    jobs = [  # the same calls `vgbench eval` makes
        ("fvd", {"samples": samples["samples"], "reference": ref}),
        ("fvd-star", {"samples": samples["samples"], "reference": ref, "checkpoint": vq}),
        ("r-fvd", {"reference": ref, "checkpoint": vq}),
        ("nmse", {"reference": ref, "checkpoint": vq}),
        ("bits-per-dim", {"reference": ref, "checkpoint": prior,
                          "protocol": "unconditional" if _unconditional() else "videogpt"}),
        ("continuity", {"samples": samples["samples"], "reference": ref, "protocol": _continuity_protocol()}),
    ]
    records, made = [], {}
    with warnings.catch_warnings():  # 64 videos < 400 features is the quickstart's design; each record notes it
        warnings.filterwarnings("ignore", message=r"N = \d+ samples <= feature dimension")
        for metric, inputs in jobs:
            r = api.evaluate(metric, **inputs, store=results, dataset="quickstart", run="quickstart", device=device)
            made[metric] = r
            records.append({"metric": r.key, "value": r.value, "interval": r.interval,
                            "value_inf": r.curve.get("value_inf")})  # fmt: skip
    return {"results": str(results), "records": records, "comparison": _samples_vs_reconstructions(made),
            "references": _reference_points(folder, plan, device, results, vq, state)}


# Reference sets of the metrics stage, each scored like the samples (run "quickstart/<set>")
REFERENCE_SETS = {
    "real": "real clips: for FVD held-out clips (the train generator's, not trained on) against the test clips, "
    "the floor; for continuity the test clips themselves",
    "reconstructions": "the VQ-VAE's reconstructions of the test clips: the best its samples can look",
    "samples": "this run's prior's samples",
    "pretrained": "samples of the pretrained models shipped with vgbench (made by vgbench train, trained longer than "
    "this run; not this run's training), sampled like this run's",
    "repeat": "the conditioning frame repeated 16 times: the trivial baseline a generator must beat",
}
NOT_MEASURED: dict = {}  # a reference-table cell that no record fills (shown as "—")
LATER = "later_frames"  # continuity of frames 5-16: do the given digits last, not only the next few frames?


def _reference_points(folder: Path, plan: Plan, device: str, results: Path, vq: str, state: State) -> dict:
    """FVD and continuity of the reference sets at the samples' N, appended to ``results`` (issue 19): held-out
    real clips, the pretrained models' samples, the conditioning frames repeated; the reconstructions' FVD is R-FVD,
    the samples' the main rows. Continuity of the later frames for every set, and the pretrained prior's bits/dim."""
    from vgbench import api, datasets
    from vgbench.datasets import quickstart as qs
    from vgbench.metrics import derived

    n, ref = plan.samples, "quickstart:test"
    p = cards.dataset("quickstart").preprocess
    gen = qs.generator("train", plan.train_videos + n, p["frames"], p["size"], p["seed"])
    view = datasets.open_split(ref, channels=1)
    test = np.stack([view[i]["video"].numpy() for i in range(n)])  # (N, T, H, W, 1): the first N, the samples' N
    recon, _ = derived.reconstructions(vq, ref, p["frames"], device, 16)  # cached by the r-fvd row
    sets = {
        "real": np.stack([gen[i] for i in range(plan.train_videos, plan.train_videos + n)]),
        "test": test,
        "reconstructions": np.load(recon, mmap_mode="r")[:n, ..., :1],
        "repeat": np.repeat(test[:, :1], p["frames"], axis=1),  # the conditioning frame, held
    }
    paths = {}
    for name, videos in sets.items():
        paths[name] = folder / "references" / f"{name}.npy"
        with cache.atomic_path(paths[name]) as tmp, open(tmp, "wb") as f:
            np.save(f, np.repeat(videos, 3, axis=-1))  # grey as RGB, as samples are stored
    paths["samples"] = Path(state.done("samples")["samples"])
    paths["pretrained"] = Path(state.done("pretrained")["samples"])
    cont = _continuity_protocol()
    jobs = [  # (metric, protocol, set, videos)
        ("fvd", None, "real", paths["real"]),
        ("fvd", None, "pretrained", paths["pretrained"]),
        ("fvd", None, "repeat", paths["repeat"]),
        *[("continuity", cont, name, paths[name]) for name in ("test", "reconstructions", "pretrained", "repeat")],
        *[("continuity", LATER, name, paths[name]) for name in ("test", "reconstructions", "samples", "pretrained",
                                                                 "repeat")],  # fmt: skip
    ]
    out = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"N = \d+ samples <= feature dimension")
        for metric, protocol, name, videos in jobs:
            name = "real" if name == "test" else name  # continuity's real clips are the test clips themselves
            r = api.evaluate(metric, samples=videos, reference=ref, protocol=protocol, store=results,
                             dataset="quickstart", run=f"quickstart/{name}", device=device)  # fmt: skip
            out.append({"metric": metric, "protocol": r.protocol, "set": name, "value": r.value})
        r = api.evaluate("bits-per-dim", reference=ref, checkpoint=state.done("pretrained")["checkpoint"],
                         protocol="unconditional" if _unconditional() else "videogpt", store=results,
                         dataset="quickstart", run="quickstart/pretrained", device=device)  # fmt: skip
        out.append({"metric": "bits-per-dim", "protocol": r.protocol, "set": "pretrained", "value": r.value})
    return {"records": out}


def _samples_vs_reconstructions(made: dict) -> dict:
    """Paired bootstrap of FVD (prior samples vs test clips) against R-FVD (reconstructions vs the same clips):
    does the noise really score better than the reconstructions? (README, "How sure is this number?")"""
    from vgbench.metrics import uncertainty

    a, b = made["fvd"], made["r-fvd"]
    out = uncertainty.compare(a.contributions, b.contributions, values=(a.value, b.value))
    words = [uncertainty.compare_words("FVD", out["fixed_n"], where=f" at N = {a.n_samples}")]
    if "at_inf" in out:
        words.append(uncertainty.compare_words("FVD", out["at_inf"], where=" at N -> inf"))
    return {"a": "prior samples (fvd)", "b": "VQ-VAE reconstructions (r-fvd)", "words": words, **out}


def _long(folder: Path, plan: Plan, seed: int, device: str, state: State, progress: bool, **_) -> dict:
    from vgbench import api, drift
    from vgbench.datasets import quickstart as qs

    t0 = time.time()
    run = _sample_prior(state, plan.long_samples, folder / "long", seed, device, progress, frames=plan.long_frames,
                        top_k=plan.top_k)  # fmt: skip
    sampled = time.time() - t0
    # long real clips: the test split's generator at the long length (its first 16 frames are the test clips)
    p = cards.dataset("quickstart").preprocess
    gen = qs.generator("test", plan.long_reference, plan.long_frames, p["size"], p["seed"])
    real = folder / "long" / f"real{plan.long_frames}.npy"
    with cache.atomic_path(real) as tmp, open(tmp, "wb") as f:
        np.save(f, np.repeat(np.stack([gen[i] for i in range(plan.long_reference)]), 3, axis=-1))
    from vgbench import results as results_mod

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"N = \d+ samples <= feature dimension")
        r = api.evaluate("fvd", samples=run.samples, reference=real, dataset="quickstart", run="quickstart-long",
                         device=device)  # fmt: skip
        curve = drift.window_curve(run.samples, "quickstart:test", folder / "long" / "windows", window=16,
                                        device=device)  # fmt: skip
    drift.plot_curve(curve, folder / "figures" / "long_curve.png")
    results_mod.append(r, folder / "results.jsonl")  # once the stage has succeeded: a rerun adds no duplicate
    return {"samples": str(run.samples), "sampling_seconds": round(sampled, 2), "fvd": r.value,
            "curve": [{k: c[k] for k in ("window", "frames", "value")} for c in curve]}  # fmt: skip


def _report(folder: Path, plan: Plan, seed: int, state: State, minutes, **_) -> dict:
    from vgbench import datasets, results
    from vgbench import quickstart_report as report
    from vgbench import sample as sample_mod
    from vgbench.models import checkpoint as ckpt_mod
    from vgbench.tensors import to_rgb_uint8

    # real clips and their reconstructions, as GIF grids beside the samples' grid
    view = datasets.open_split("quickstart:test", channels=1)
    real = np.stack([view[i]["video"].numpy() for i in range(min(16, len(view)))])  # (N, T, H, W, 1)
    vq, _ = ckpt_mod.load_model(state.done("vqvae")["checkpoint"])
    with torch.no_grad():
        x = torch.from_numpy(real).permute(0, 4, 1, 2, 3).float() / 255.0 - 0.5  # (N, 1, T, H, W)
        recon_u8 = to_rgb_uint8(vq.decode(vq.encode(x)))  # stored as the metrics see them (floor, metrics.md §7)
    gifs = folder / "figures"
    sample_mod.write_gif_grid(gifs / "real.gif", real)
    sample_mod.write_gif_grid(gifs / "reconstructions.gif", recon_u8)
    samples = np.load(state.done("samples")["samples"])["videos"]
    sample_mod.write_gif_grid(gifs / "samples.gif", samples)
    if state.done("long"):
        sample_mod.write_gif_grid(gifs / "long.gif", np.load(state.done("long")["samples"])["videos"])
    pre = state.done("pretrained")
    sample_mod.write_gif_grid(gifs / "pretrained.gif", np.load(pre["samples"])["videos"])
    logs = {s: folder / "runs" / s / "metrics.jsonl" for s in ("vqvae", "prior")}
    report.plot_curves(
        logs,
        gifs / "curves.png",
        [
            ("vqvae", "train", "loss", "VQ-VAE training loss"),
            ("vqvae", "val", "val_nmse", "VQ-VAE validation NMSE"),
            ("vqvae", "val", "val_usage", "codebook usage (validation)"),
            ("prior", "train", "loss", "prior training loss (nats/token)"),
            ("prior", "val", "val_bits_per_dim", "bits/dim (per latent token), validation"),
        ],
    )
    records = results.read_records(folder / "results.jsonl")
    labels = {
        "fvd": "FVD",
        "fvd-star": "FVD*",
        "r-fvd": "R-FVD",
        "nmse": "NMSE",
        "bits-per-dim": "bits/dim (per latent token)",
        "continuity": "continuity (SSIM gain over other first frames)",
    }
    long = state.done("long")
    for r in records:
        r["label"] = labels.get(r["metric"], r["metric"])
    references = _reference_table(records)
    records = [r for r in records if not str(r.get("run", "")).startswith("quickstart/")]  # those: the table
    notes = [
        report.curve_note(_val_points(logs["vqvae"], "val_nmse"), "VQ-VAE validation NMSE"),
        report.curve_note(_val_points(logs["prior"], "val_bits_per_dim"), "prior validation bits/dim"),
    ]
    sample_png = report.plot_sample_curves(records, gifs / "sample_curves.png")
    comparison = state.done("metrics").get("comparison") or {}
    stages = [{"name": s, "seconds": state.done(s)["seconds"]} for s in STAGES if state.done(s)]
    for r in records:  # the long samples' row (issue 20)
        if r.get("run") == "quickstart-long":
            r["label"] = f"FVD, {plan.long_frames}-frame sliding-window samples vs real clips as long"
    data = report.ReportData(
        title="vgbench quickstart: VideoGPT on moving digits",
        intro=(
            "A tiny VQ-VAE and GPT prior (the VideoGPT architecture at reduced width and depth) trained on two-digit "
            "Moving MNIST made from MNIST digits embedded in vgbench, then sampled from each test clip's first frame "
            "(its codes kept as the first latent frame) and scored. "
            "The numbers show that every stage works end to end; they are not the paper's (far smaller models, "
            "minutes of CPU training, 64 videos instead of thousands)."
        ),
        videos=[
            report.Figure("figures/real.gif", "real test clips"),
            report.Figure("figures/reconstructions.gif", "VQ-VAE reconstructions"),
            report.Figure("figures/samples.gif", "this run's prior samples (frame 1 given: its codes kept, frames 2-16 "
                          f"sampled{_sampling_words(plan)})"),
            report.Figure("figures/pretrained.gif", _pretrained_caption(pre["made_by"])),
        ],
        curves=[
            report.Figure("figures/curves.png", "training and validation curves"),
        ]
        + (
            [report.Figure("figures/sample_curves.png", "FVD family against the number of videos, fit v∞ + k/n")]
            if sample_png
            else []
        ),
        metrics=records,
        references=references,
        reference_columns=REFERENCE_SETS,
        notes=notes,
        comparisons=[f"A = {comparison['a']}, B = {comparison['b']}: {w}" for w in comparison.get("words", [])],
        stages=stages,
        next_steps=NEXT_STEPS,
        facts={
            "seed": seed,
            "vqvae checkpoint sha256": state.done("vqvae")["sha256"],
            "prior checkpoint sha256": state.done("prior")["sha256"],
            "pretrained checkpoint sha256 (vgbench/pretrained/quickstart, as unpacked)": pre["sha256"],
            "pretrained models made by": f"{pre['made_by']['vqvae_command']}; {pre['made_by']['command']}",
            "samples": "x".join(map(str, samples.shape)),
            "training steps (VQ-VAE, prior)": f"{state.done('vqvae')['steps']}, {state.done('prior')['steps']}",
            "time budget": f"{minutes} min (time-bounded: not step-exact)" if minutes else "none (step-exact)",
            "data": "quickstart:test under data/ (VGBENCH_DATA=<this folder>/data for vgbench eval)",
            "torch": str(torch.__version__),
        },
    )
    if long:  # issue 20: a long sample and its drift curve
        data.videos.append(report.Figure("figures/long.gif", f"{plan.long_frames} frames from the 16-frame prior "
                                         "(sliding window)"))  # fmt: skip
        data.curves.append(report.Figure("figures/long_curve.png", "drift: FVD of each 16-frame window of the long "
                                         "samples against real 16-frame clips"))  # fmt: skip
    html, md = report.write(folder, data)
    return {"html": str(html), "markdown": str(md)}


def _sampling_words(plan: Plan) -> str:
    return f"; each code drawn from the prior's {plan.top_k} likeliest: top-k {plan.top_k}" if plan.top_k else ""


def _pretrained_caption(made: dict) -> str:
    minutes = (made["vqvae_seconds"] + made["seconds"]) / 60
    return (f"PRETRAINED models shipped with vgbench, not trained in this run ({made['vqvae_steps']} VQ-VAE and "
            f"{made['steps']} prior steps of vgbench train, {minutes:.0f} min on {made['machine']}): their samples "
            "from the same first frames, sampled the same way")  # fmt: skip


def _val_points(log_path: Path, key: str) -> list[tuple[int, float]]:
    from vgbench.runfolder import read_log

    recs = read_log(log_path)
    return [(r["step"], r[key]) for r in recs if r.get("kind") == "val" and key in r]


# The continuity a sample set must reach to count as continuing its frames; derived from measured runs
# (metrics/continuity.yaml notes and tests/test_quickstart.py): samples that ignore their first frame scored -0.004
# to 0.004, the --small run's samples 0.073 and the full run's 0.1 (frames 2-5).
CONTINUITY_THRESHOLD = 0.05


def _reference_table(records: list[dict]):
    """The reference-points rows: each metric with its value for every reference set, the ordering a working
    pipeline shows and whether this run shows it."""
    from vgbench import quickstart_report as report

    def rec(metric: str, run: str, protocol: str | None = None) -> dict:
        return next((r for r in records if r["metric"] == metric and r.get("run") == run
                     and protocol in (None, r.get("protocol"))), {})  # fmt: skip

    def row(label, recs, expected, verdict):
        """A table row, or None where a set it needs was not measured; ``verdict`` says whether the run shows it."""
        values = {k: r.get("value") for k, r in recs.items()}
        if any(values[k] is None for k, r in recs.items() if r is not NOT_MEASURED):
            return None
        return report.Reference(label, values, expected, verdict(values),
                                {k: r.get("interval") for k, r in recs.items()})  # fmt: skip

    def shows(ok: bool, why: str) -> str:
        return "This run shows it." if ok else f"This run does not show it: {why}."

    fvd = {"real": rec("fvd", "quickstart/real"), "reconstructions": rec("r-fvd", "quickstart"),
           "samples": rec("fvd", "quickstart"), "pretrained": rec("fvd", "quickstart/pretrained"),
           "repeat": rec("fvd", "quickstart/repeat")}  # fmt: skip
    runs = {k: "quickstart" if k == "samples" else f"quickstart/{k}" for k in REFERENCE_SETS}
    cont = {k: rec("continuity", run, _continuity_protocol()) for k, run in runs.items()}
    later = {k: rec("continuity", f"quickstart/{k}", LATER) for k in REFERENCE_SETS}
    bits = {k: rec("bits-per-dim", runs[k]) if k in ("samples", "pretrained") else NOT_MEASURED for k in runs}
    t = CONTINUITY_THRESHOLD
    rows = [
        row("FVD (R-FVD for the reconstructions)", fvd,
            "Working: real clips lowest (what N = {n} alone costs), the samples below the repeated frame (their digits "
            "move); samples and reconstructions between.".format(n=_n(records, "fvd")),
            lambda v: shows(v["real"] < min(v["samples"], v["reconstructions"]) and v["samples"] < v["repeat"],
                            _order(v, low_first=True))),
        row("continuity, frames 2-5 (SSIM gain, higher: closer to the own first frame)", cont,
            f"Working: the samples above {t} (noise, and samples that ignore their first frame, score 0), near the "
            "real clips and reconstructions; the repeated frame is the ceiling.",
            lambda v: f"This run shows it ({v['samples']:.3f})." if v["samples"] > t else
            f"This run does not show it: the samples score {v['samples']:.3f}, no closer to their own first frame "
            "than to the others."),
        row("continuity, frames 5-16 (spectrum gain: do the given digits last?)", later,
            "Working: real clips and reconstructions well above 0, the repeated frame highest; samples whose digits "
            "dissolve score near 0.",
            lambda v: shows(v["real"] > t and v["reconstructions"] > t, _order(v, low_first=False))
            + f" This run's samples: {v['samples']:.3f}, the pretrained models': {v['pretrained']:.3f}."),
        row("bits/dim of the prior on the test clips (per latent token, each on its own VQ-VAE's codes)", bits,
            "Working: the longer-trained pretrained prior lower than this run's (guessing uniformly over 128 codes "
            "costs 7).",
            lambda v: shows(v["pretrained"] < v["samples"],
                            f"this run's prior {v['samples']:.3f}, the pretrained {v['pretrained']:.3f}")),
    ]  # fmt: skip
    return [r for r in rows if r is not None]


def _n(records: list[dict], metric: str):
    return next((r.get("n_samples") for r in records if r["metric"] == metric), "?")


def _order(values: dict, low_first: bool) -> str:
    ranked = sorted(values, key=values.get, reverse=not low_first)
    return (" < " if low_first else " > ").join(f"{k} {values[k]:.4g}" for k in ranked)


# Each runs as written from the quickstart folder (checked by hand on a finished run; the eval lines by
# tests/test_quickstart.py); VGBENCH_DATA=data makes quickstart:test the clips of this folder.
NEXT_STEPS = [
    "export VGBENCH_DATA=data             # quickstart:test = this folder's clips",
    "vgbench eval --metric continuity --protocol next_frames --samples samples/samples.npz --reference quickstart:test "
    "--no-store",
    "vgbench sample runs/prior/checkpoints/final.pt --n 16 --cond quickstart:test --prefix "
    "--out samples/plain                # plain sampling (no top-k), to compare with the report",
    "vgbench eval --metric fvd --samples samples/plain/samples.npz --reference quickstart:test --no-store",
    "vgbench train --model gpt.quickstart --stage prior --vqvae runs/vqvae/checkpoints/final.pt --steps 2000 "
    "--out runs/longer                   # a longer prior from the same VQ-VAE",
    "vgbench table 4 --results results.jsonl",
]


STAGE_FUNCS = {
    "data": _data,
    "vqvae": _train("vqvae"),
    "prior": _train("prior"),
    "samples": _samples,
    "pretrained": _pretrained,
    "metrics": _metrics,
    "long": _long,
    "report": _report,
}


def summary(report_html: Path) -> str:
    """What the terminal prints at the end: where everything went and the numbers."""
    from vgbench import results

    folder = report_html.parent
    lines = [f"quickstart done in {folder}", ""]
    for r in results.read_records(folder / "results.jsonl"):
        run = str(r.get("run", ""))
        name = r.get("label") or r["metric"]
        if r["metric"] == "continuity" and r.get("protocol") == LATER:
            name = "continuity, frames 5-16"
        if run.startswith("quickstart/"):  # a reference point: say of which set
            name += f" ({run.removeprefix('quickstart/')})"
        elif run == "quickstart-long":
            name += " (long)"
        iv, inf = r.get("interval") or {}, (r.get("curve") or {}).get("value_inf")
        extra = f" [{iv['low']:.4g}, {iv['high']:.4g}]" if iv else ""
        extra += f", N->inf {inf:.4g}" if inf is not None else ""
        lines.append(f"  {name:28s} {r['value']:10.4f}{extra}   ({r['metric']}.{r['protocol']}, N={r['n_samples']})")
    lines += [
        "",
        f"  report:      {report_html}   (open it in a browser; report.md beside it)",
        f"  videos:      {folder / 'figures'} (real, reconstructions, samples as GIF grids)",
        f"  checkpoints: {folder / 'runs'}/vqvae|prior/checkpoints/final.pt",
        f"  samples:     {folder / 'samples' / 'samples.npz'}",
        f"  results:     {folder / 'results.jsonl'}",
        "The numbers come from minutes of CPU training on tiny models: they show that every stage works, not the "
        "paper's quality.",
    ]
    return "\n".join(lines)
