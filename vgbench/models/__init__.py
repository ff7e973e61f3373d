"""The networks: feature extractors (I3D for FVD, C3D for the Inception Score) and the VideoGPT reference models.

Every network is built through :func:`create`: card -> ``arch`` registry -> config dataclass -> network -> weights
(from the verified cache for feature networks; trainable models start from their initialisation or load a
checkpoint). Each network's checkpoint converter lives in its own module beside it.
"""

from __future__ import annotations

from typing import Any

from vgbench import cards


def create(
    name_or_card: str | cards.ModelCard, weights: bool | dict = True, device: Any = "cpu", root=None, **overrides
):
    """Build the network of a model card (e.g. ``i3d.kinetics400_tfhub``) on ``device``.

    ``weights``: load the card's verified weights (False: random initialisation, e.g. for tests or training; arrays
    already in memory may be passed instead, in the form the arch's builder documents).
    ``overrides`` replace fields of the card's ``config`` (checked against the arch's config dataclass).
    """
    from vgbench.registry import ARCHS

    card = cards.model(name_or_card) if isinstance(name_or_card, str) else name_or_card
    build = ARCHS.get(card.arch)
    return build(card, weights=weights, root=root, **overrides).to(device)


__all__ = ["create"]
