"""The public Python API; the CLI calls exactly these functions, so the two cannot disagree."""

from __future__ import annotations

import logging
from pathlib import Path

from vgbench import cards, dist
from vgbench import results as results_mod
from vgbench.registry import METRIC_FNS
from vgbench.results import Result

log = logging.getLogger(__name__)


def evaluate(metric: str, samples, reference, protocol: str | None = None, store: bool | str | Path | None = None,
             **kwargs) -> Result | None:
    """Evaluate ``metric`` (``fvd``, ``fvd.official``, ``fvd-star``, ...) and optionally append to a store.

    ``store``: True for the default results store, a path for another, None/False for none. Under torchrun
    only rank 0 returns the result (the others return None).
    """
    card, tag, _ = cards.resolve_protocol(metric, protocol)
    fn = METRIC_FNS.get(card.fn)
    result = fn(card.name, samples, reference, protocol=tag, **kwargs)
    if dist.rank_and_size()[0] != 0:
        return None
    if store:
        path = results_mod.default_store() if store is True else Path(store)
        results_mod.append(result, path)
        log.info("result appended to %s", path)
    return result
