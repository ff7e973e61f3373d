"""The metric contract: what :func:`vgbench.api.evaluate` hands a metric engine, and how a result is made.

``api.evaluate`` resolves the protocol once and builds a :class:`MetricRequest`: the metric card, the protocol tag,
the protocol dataclass of the card's engine (with ``--set`` overrides applied and named), and the inputs given,
checked against the card's ``inputs`` (each a way to call the metric: which of ``--samples``, ``--reference``,
``--checkpoint`` it reads, with their roles). An input no way reads is refused by name; a missing one is named
with its role. The engine (the card's ``fn``) is called as ``fn(request, **options)``; an option its signature
does not take is refused by name. Engines return :func:`make_result`'s record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vgbench import cards
from vgbench.errors import InputError
from vgbench.results import Result


@dataclass(frozen=True)
class MetricRequest:
    """A resolved evaluation: metric card, protocol (overrides applied), the inputs and their roles."""

    card: cards.MetricCard
    tag: str
    protocol: Any  # the engine's protocol dataclass (FVDProtocol, ISProtocol, NMSEProtocol, ...)
    inputs: cards.InputSet  # the way of calling that the given inputs match: their roles
    samples: str | Path | None = None
    reference: str | Path | None = None
    checkpoint: str | Path | None = None
    overrides: dict[str, list] = field(default_factory=dict)  # key -> [card value, value used]
    dataset: str = ""

    @property
    def name(self) -> str:
        """``metric.protocol``."""
        return f"{self.card.name}.{self.tag}"

    def role(self, slot: str) -> str:
        """What the set in ``slot`` (``samples`` or ``reference``) holds, derived sets included."""
        kind = self.inputs.derive.get(slot)
        if kind is not None:
            return f"{kind} made by {self.checkpoint} from {self.reference}"
        return getattr(self.inputs, slot)

    def derived(self, slot: str) -> str | None:
        """``samples`` or ``reconstructions`` when the checkpoint makes the set in ``slot``, else None."""
        return self.inputs.derive.get(slot)


def build_request(
    metric: str,
    protocol: str | None = None,
    samples=None,
    reference=None,
    checkpoint=None,
    overrides: dict[str, str] | None = None,
    dataset: str = "",
) -> MetricRequest:
    """Resolve ``metric`` (``fvd``, ``fvd.official``, ...) and check the inputs against its card's ``inputs``."""
    card, tag, p = cards.resolve_protocol(metric, protocol)
    given = {k: v for k, v in (("samples", samples), ("reference", reference), ("checkpoint", checkpoint))}
    ways = _match_inputs(card, frozenset(k for k, v in given.items() if v is not None))
    p, changed = cards.override_protocol(p, overrides)
    return MetricRequest(card, tag, p, ways, **given, overrides=changed, dataset=dataset)


def _flag_list(ways: cards.InputSet, names) -> str:
    return " and ".join(f"--{k} ({getattr(ways, k)})" for k in cards.INPUTS if k in names)


def _match_inputs(card: cards.MetricCard, given: frozenset[str]) -> cards.InputSet:
    """The one way of calling ``card`` that reads exactly ``given``; otherwise an error naming the input."""
    for ways in card.inputs:
        if ways.reads() == given:
            return ways
    read = frozenset().union(*(w.reads() for w in card.inputs))
    for extra in (k for k in cards.INPUTS if k in given - read):
        takes = " or ".join(" + ".join(f"--{k}" for k in cards.INPUTS if k in w.reads()) for w in card.inputs)
        raise InputError(f"--{extra} does not apply to metric {card.name}: it reads {takes}; drop --{extra}")
    completions = [w for w in card.inputs if given < w.reads()]
    if completions:
        needs = [_flag_list(w, w.reads() - given) for w in completions]
        raise InputError(f"metric {card.name} needs {' or '.join(needs)}")
    flags = [f"--{k}" for k in cards.INPUTS if k in given]
    ways = " | ".join(_flag_list(w, w.reads()) for w in card.inputs)
    raise InputError(
        f"metric {card.name} does not take {', '.join(flags[:-1])} and {flags[-1]} together; it is called with "
        f"{ways}. Drop the one you do not mean."
    )


def make_result(request: MetricRequest, values: list[float], t0: float, **fields) -> Result:
    """The record of ``request``: protocol parameters and hash (of the parameters used), mean and (population,
    where the protocol says so) std of the per-trial ``values``, world size, versions, time since ``t0``.

    ``--set`` overrides mark the result off-protocol and are named in its notes and ``protocol_overrides``."""
    import numpy as np
    import torch

    from vgbench import dist

    card, p = request.card, request.protocol
    notes = list(fields.pop("notes", []))
    off = fields.pop("off_protocol", False)
    if request.overrides:
        changed = ", ".join(f"{k}={new!r} (protocol: {old!r})" for k, (old, new) in request.overrides.items())
        notes.append(f"off-protocol: --set changed {changed}")
        off = True
    if request.checkpoint is not None:
        fields.setdefault("checkpoint", {"path": str(request.checkpoint)})
    return Result(
        metric=card.name,
        protocol=request.tag,
        protocol_hash=cards.protocol_hash(card.name, request.tag, p, card.card_version),
        protocol_params=cards.protocol_dict(p),
        protocol_overrides=dict(request.overrides),
        card_version=card.card_version,
        value=float(np.mean(values)),
        std=float(np.std(values)) if p.std == "population" and len(values) > 1 else None,
        trial_values=values,
        higher_is_better=card.higher_is_better,
        label=card.label,
        world_size=dist.rank_and_size()[1],
        elapsed_s=round(time.time() - t0, 3),
        torch_version=torch.__version__,
        dataset=request.dataset,
        off_protocol=off,
        notes=notes,
        **fields,
    )
