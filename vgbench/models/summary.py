"""``vgbench list models``: one row per model card with its architecture, latent grid and size.

Trainable cards (the VideoGPT VQ-VAEs and priors) are built at full size on the meta device, so a row costs no
memory and no compute however large the network (253 M parameters for the UCF-101 prior): the count is the
network's own, not a formula that could drift from it. A prior's count is the prior alone (its VQ-VAE is frozen
under it and listed in its own row). Feature networks (I3D, C3D) are not built: their rows give the tensor and
value counts their cards pin for the weight file. Cards of the VideoGPT checkpoint importer show both: the
nominal network's parameters and the imported file's counts.

A card that fails validation does not stop the listing: its row carries the :class:`~vgbench.errors.CardError`
(which names the file and the field), so one broken user card never hides the others.
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass

from vgbench.errors import CardError, UnknownNameError
from vgbench.registry import Registry

# arch -> "module:function" returning {"latent": "TxHxW[xC]", "params": int} for a card (lazy: no torch at import)
SUMMARIES: Registry = Registry("model summary")
SUMMARIES.register("videogpt_vqvae", "vgbench.models.vqvae:card_summary")
SUMMARIES.register("videogpt_gpt", "vgbench.models.gpt:card_summary")
SUMMARIES.register("videogpt_repo_vqvae", "vgbench.models.videogpt_repo:vqvae_card_summary")
SUMMARIES.register("videogpt_repo_gpt", "vgbench.models.videogpt_repo:gpt_card_summary")

COLUMNS = ("name", "arch", "latent", "parameters", "weights (tensors / values)")


@dataclass(frozen=True)
class ModelRow:
    """One card in ``vgbench list models``; ``error`` is set (and the rest may be empty) for an invalid card."""

    name: str
    arch: str = ""
    latent: str = ""  # e.g. "8x32x32", or "4x16x16x8" with 8 codebooks; "" for feature networks
    params: int | None = None  # trainable parameters of the full-size network (a prior without its VQ-VAE)
    tensors: int | None = None  # of the card's weight file (feature networks, imported checkpoints)
    values: int | None = None
    description: str = ""
    error: str = ""


@contextlib.contextmanager
def _no_init() -> Iterator[None]:
    """Skip ``torch.nn.init``'s initialisers while building on the meta device.

    Meta tensors hold no values, so initialising them only costs time (each call runs a Python decomposition:
    ~75% of a prior's meta build); shapes, hence counts, do not depend on it."""
    import torch

    names = [n for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(torch.nn.init, n) for n in names}

    def skip(tensor, *args, **kwargs):
        return tensor

    try:
        for n in names:
            setattr(torch.nn.init, n, skip)
        yield
    finally:
        for n, fn in saved.items():
            setattr(torch.nn.init, n, fn)


def model_row(name: str) -> ModelRow:
    """The listing row of model card ``name``; an invalid card gives a row with its error."""
    from vgbench import cards

    try:
        card = cards.model(name)
    except (CardError, UnknownNameError) as exc:
        return ModelRow(name, error=str(exc))
    w = card.weights
    row = {
        "name": name,
        "arch": card.arch,
        "description": " ".join(card.description.split()),
        "tensors": w.tensors if w is not None else None,
        "values": w.values if w is not None else None,
    }
    if card.arch in SUMMARIES:
        try:
            with _no_init():
                summary = SUMMARIES.get(card.arch)(card)
        except (CardError, UnknownNameError) as exc:
            return ModelRow(**row, error=str(exc))
        row.update(latent=summary["latent"], params=summary["params"])
    else:
        from vgbench.registry import ARCHS

        if card.arch not in ARCHS:
            return ModelRow(**row, error=str(UnknownNameError(_unknown_arch(card.arch))))
    return ModelRow(**row)


def _unknown_arch(arch: str) -> str:
    from vgbench.registry import ARCHS, did_you_mean

    return did_you_mean("model architecture", arch, ARCHS.names())


def model_rows(names: list[str] | None = None) -> list[ModelRow]:
    """Rows of the named model cards (default: every card, sorted by name)."""
    from vgbench import cards

    return [model_row(n) for n in (cards.names("models") if names is None else names)]


def _count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def format_rows(rows: list[ModelRow], width: int = 118) -> str:
    """The rows as a table: name, arch, latent, parameters and weight counts on one line, the card's description
    (or its error, marked ``INVALID CARD``) wrapped below it."""
    cells = [
        [r.name, r.arch, r.latent or "-", _count(r.params),
         "-" if r.tensors is None else f"{r.tensors:,} / {_count(r.values)}"]
        for r in rows
    ]  # fmt: skip
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(COLUMNS)]
    right = {3, 4}  # numbers align right

    def line(values) -> str:
        parts = [v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))]
        return "  ".join(parts).rstrip()

    out = [line(COLUMNS)]
    for r, c in zip(rows, cells, strict=True):
        out.append(line(c))
        text = f"INVALID CARD: {r.error}" if r.error else r.description
        if text:
            out.append(textwrap.fill(text, width, initial_indent="    ", subsequent_indent="    ",
                                     break_on_hyphens=False, break_long_words=False))  # fmt: skip
    return "\n".join(out)


def listing(width: int = 118) -> str:
    """``vgbench list models``: every model card's row (see :func:`format_rows`)."""
    return format_rows(model_rows(), width)


__all__ = ["ModelRow", "format_rows", "listing", "model_row", "model_rows"]
