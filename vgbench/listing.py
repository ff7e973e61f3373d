"""``vgbench list KIND``: the cards of a kind as wrapped text, above both the cards and the model summaries it
reads."""

from __future__ import annotations

import textwrap

from vgbench import cards
from vgbench.models.summary import listing as model_listing


def listing(kind: str, width: int = 118) -> str:
    """``vgbench list KIND``: every card (``protocols``: every metric protocol) with its whole description,
    wrapped at word boundaries; ``models`` adds each card's arch, latent grid and size
    (:func:`vgbench.models.summary.listing`)."""
    if kind == "models":
        return model_listing(width)
    if kind == "protocols":
        entries = [
            (f"{m}.{tag}", p.description)
            for m in cards.names("metrics")
            for tag, p in cards.metric_protocols(cards.metric(m)).items()
        ]
    else:
        entries = [(name, cards.get(kind, name).description) for name in cards.names(kind)]
    pad = max((len(n) for n, _ in entries), default=0) + 2
    return "\n".join(
        textwrap.fill(
            " ".join(text.split()),
            width,
            initial_indent=name.ljust(pad),
            subsequent_indent=" " * pad,
            break_on_hyphens=False,
        )
        for name, text in entries
    )
