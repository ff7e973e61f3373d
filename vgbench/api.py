"""The public Python API; the CLI calls exactly these functions, so the two cannot disagree."""

from __future__ import annotations

import logging
from pathlib import Path

from vgbench import dist
from vgbench import results as results_mod
from vgbench.registry import METRIC_FNS, bind_options
from vgbench.results import Result

log = logging.getLogger(__name__)


def evaluate(
    metric: str,
    samples=None,
    reference=None,
    protocol: str | None = None,
    store: bool | str | Path | None = None,
    dataset: str = "",
    checkpoint=None,
    overrides: dict[str, str] | None = None,
    interval=None,
    save_features: str | Path | None = None,
    **options,
) -> Result | None:
    """Evaluate ``metric`` (``fvd``, ``fvd.official``, ``is``, ``nmse``, ...) and optionally append to a store.

    The metric card says which of ``samples``, ``reference`` and ``checkpoint`` it reads; a missing one is named,
    one it does not read is refused. ``overrides`` (``--set key=value``) change protocol parameters and mark the
    result off-protocol. ``store``: True for the default results store, a path for another, None/False for none.
    ``options`` go to the metric's engine: None counts as not given, one the engine does not take is an error.
    Under torchrun only rank 0 returns the result (the others return None).

    ``interval``: an :class:`~vgbench.metrics.uncertainty.IntervalConfig` (default: 95 % percentile bootstrap,
    1000 resamples, seed 0), or False for none. ``save_features``: write the per-video contributions and the
    record to this ``.npz`` (:mod:`vgbench.metrics.featurefile`).
    """
    from vgbench.metrics import uncertainty
    from vgbench.metrics.contract import build_request

    request = build_request(metric, protocol, samples, reference, checkpoint, overrides, dataset)
    fn = METRIC_FNS.get(request.card.fn)
    result = fn(request, **bind_options(fn, options, f"metric {request.card.name}"))
    if dist.rank_and_size()[0] != 0:
        return None
    if interval is not False:
        uncertainty.annotate(result, interval or None)
    if save_features is not None:
        from dataclasses import asdict

        from vgbench.metrics import featurefile

        contrib = getattr(result, "contributions", None)
        if contrib is None:
            from vgbench.errors import InputError

            raise InputError(f"--save-features: {result.key} kept no per-video contributions to write")
        featurefile.write(save_features, contrib, asdict(result))
    if store:
        path = results_mod.default_store() if store is True else Path(store)
        results_mod.append(result, path)
        log.info("result appended to %s", path)
    return result


def tables(
    which: str = "all", fmt: str = "md", results: str | Path | None = None, plot_dir: str | Path | None = None
) -> str:
    """Render the paper's tables with measured rows from a results store; optionally write PNG charts."""
    from vgbench import leaderboard

    # a store named with --results must exist; the default one may not yet (no measured rows)
    store = results if results is not None else results_mod.default_store()
    raw = results_mod.read_records(store, must_exist=results is not None)
    records = results_mod.to_frame(raw)
    text = leaderboard.render_tables(which, fmt, records)
    if plot_dir is not None:
        from vgbench import plots
        from vgbench import quickstart_report as report

        for n in plots.PLOTTED:
            if which in ("all", n):
                plots.plot_table(leaderboard.with_results(leaderboard.get_table(n), records), Path(plot_dir))
        # the sample-count curves of the records that have one (FVD family, IS), labelled by run
        curves = [{**r, "label": f"{r['metric']}.{r['protocol']} ({r.get('run') or 'unnamed run'})"} for r in raw]
        report.plot_sample_curves(curves, Path(plot_dir) / "sample_curves.png")
    return text


def check(
    expected: str | Path,
    results: str | Path | None = None,
    junit: str | Path | None = None,
    json_out: str | Path | None = None,
) -> tuple[bool, str]:
    """Judge a results store against EXPECTED; returns (all passed, human summary) and writes optional reports."""
    from vgbench import check as check_mod
    from vgbench.cache import atomic_write_bytes

    expectations = check_mod.load_expected(expected)  # a bad check file is named before the store is read
    records = results_mod.read_records(results or results_mod.default_store(), must_exist=True)
    outcomes = [check_mod.evaluate_check(e, records) for e in expectations]
    if junit:
        atomic_write_bytes(junit, check_mod.to_junit(outcomes).encode())
    if json_out:
        atomic_write_bytes(json_out, check_mod.to_json(outcomes).encode())
    return all(o.passed for o in outcomes), check_mod.summary(outcomes)


def compare(
    metric: str,
    samples: list | tuple = (),
    reference=None,
    features: list | tuple = (),
    protocol: str | None = None,
    interval=None,
    **options,
) -> dict:
    """Paired comparison of two sample sets against one reference (``samples=[A, B]``), or of two records whose
    features were kept (``features=[A.npz, B.npz]``): {"words": [...], "a": record, "b": record, "fixed_n": ...,
    "at_inf": ...}; see :func:`vgbench.metrics.uncertainty.compare`."""
    from dataclasses import asdict

    from vgbench.errors import InputError
    from vgbench.metrics import featurefile, uncertainty

    samples, features = list(samples or ()), list(features or ())
    if features and samples:
        raise InputError("give --samples twice (A and B) or --features twice, not both")
    given = features or samples
    flag = "--features" if features else "--samples"
    if len(given) != 2:
        raise InputError(
            f"compare needs exactly two sets, A and B: {flag} was given {len(given)} time(s) "
            f"({', '.join(map(str, given)) or 'none'}); give it once for A and once for B, e.g. "
            "vgbench compare --metric fvd --samples A.npz --samples B.npz --reference real.npz"
        )
    cfg = interval or uncertainty.IntervalConfig()
    if features:
        if reference is not None:
            raise InputError("--reference does not apply with --features: the files hold their reference features")
        (ca, ra), (cb, rb) = (featurefile.load(f) for f in features)
        for key in ("metric", "protocol", "protocol_hash"):
            if ra.get(key) != rb.get(key):
                raise InputError(
                    f"the two features files hold records of different {key}s ({ra.get(key)!r} vs {rb.get(key)!r}); "
                    "compare records of one metric and protocol"
                )
    else:
        if reference is None and metric.split(".")[0] not in ("is",):
            raise InputError(f"compare --metric {metric} needs --reference (the set both A and B are scored against)")
        recs = []
        for s in samples:
            r = evaluate(metric, s, reference, protocol=protocol, interval=False, **options)
            if r is None:  # another torchrun process
                return {}
            if getattr(r, "contributions", None) is None:
                raise InputError(f"{s}: {r.key} kept no per-video contributions; nothing to compare")
            recs.append(r)
        (ca, ra), (cb, rb) = ((r.contributions, asdict(r)) for r in recs)
    out = uncertainty.compare(ca, cb, cfg, (float(ra["value"]), float(rb["value"])))
    label = ra.get("label") or ra["metric"].upper()
    hib = bool(ra.get("higher_is_better", False))
    words = [uncertainty.compare_words(label, out["fixed_n"], hib, f" at N = {out['fixed_n']['n_a']}")]
    if "at_inf" in out:
        words.append(uncertainty.compare_words(label, out["at_inf"], hib, " at N -> inf"))
    keep = ("metric", "protocol", "protocol_hash", "value", "n_samples", "n_reference", "samples", "reference")
    return {
        "words": words,
        "metric": ra["metric"],
        "protocol": ra["protocol"],
        "a": {k: ra.get(k) for k in keep},
        "b": {k: rb.get(k) for k in keep},
        **out,
    }
