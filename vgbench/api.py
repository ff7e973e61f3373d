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
    **options,
) -> Result | None:
    """Evaluate ``metric`` (``fvd``, ``fvd.official``, ``is``, ``nmse``, ...) and optionally append to a store.

    The metric card says which of ``samples``, ``reference`` and ``checkpoint`` it reads; a missing one is named,
    one it does not read is refused. ``overrides`` (``--set key=value``) change protocol parameters and mark the
    result off-protocol. ``store``: True for the default results store, a path for another, None/False for none.
    ``options`` go to the metric's engine: None counts as not given, one the engine does not take is an error.
    Under torchrun only rank 0 returns the result (the others return None).
    """
    from vgbench.metrics.contract import build_request

    request = build_request(metric, protocol, samples, reference, checkpoint, overrides, dataset)
    fn = METRIC_FNS.get(request.card.fn)
    result = fn(request, **bind_options(fn, options, f"metric {request.card.name}"))
    if dist.rank_and_size()[0] != 0:
        return None
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
    records = results_mod.to_frame(results_mod.read_records(store, must_exist=results is not None))
    text = leaderboard.render_tables(which, fmt, records)
    if plot_dir is not None:
        from vgbench import plots

        for n in plots.PLOTTED:
            if which in ("all", n):
                plots.plot_table(leaderboard.with_results(leaderboard.get_table(n), records), Path(plot_dir))
    return text


def check(
    expected: str | Path,
    results: str | Path | None = None,
    junit: str | Path | None = None,
    json_out: str | Path | None = None,
) -> tuple[bool, str]:
    """Judge a results store against EXPECTED; returns (all passed, human summary) and writes optional reports."""
    from vgbench import check as check_mod
    from vgbench.hub import atomic_write_bytes

    expectations = check_mod.load_expected(expected)  # a bad check file is named before the store is read
    records = results_mod.read_records(results or results_mod.default_store(), must_exist=True)
    outcomes = [check_mod.evaluate_check(e, records) for e in expectations]
    if junit:
        atomic_write_bytes(junit, check_mod.to_junit(outcomes).encode())
    if json_out:
        atomic_write_bytes(json_out, check_mod.to_json(outcomes).encode())
    return all(o.passed for o in outcomes), check_mod.summary(outcomes)
